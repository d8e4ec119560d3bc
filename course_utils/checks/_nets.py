"""Whole networks as programs of layers: the references of the network exercises.

A *program* is a tuple of ops (:class:`Conv`, :class:`BN`, :class:`Act`, :class:`Pool`,
:class:`GAP`, :class:`Flatten`, :class:`Linear`, :class:`Block`) that :func:`run` executes
with plain torch on a params dict. :func:`slots` lists its weighted layers in the order it
runs them, so the weight transplant of ``_behaviour`` applies to whole networks exactly as to
one block: copy the program's random weights into the student's layers, compare outputs in
eval and train mode. A known mistake is the correct program with one switch flipped (no
BatchNorm, ReLU before BatchNorm, a softmax on the logits, stride 1 everywhere, ...), so a
mistake the checker names is always confirmed by behaviour, never guessed from names.

:func:`trace` records what every leaf layer of the student's network receives and returns
in one forward pass, with global module hooks (which the grader replays on mirrors of the
student's module), so that checks can read the shapes the network produces and name the
student's own layers.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _reference as ref
from ._behaviour import Match, Subject, Variant, Verdict, failure_message, match, mistake_id
from ._calls import fail, shape_str
from ._mistakes import NET_MISTAKES, _block_slots
from ._structure import run_hooked
from ._weights import Params, Slot, Unit, count_params

# --- ops ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    name: str
    cin: int
    cout: int
    k: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    pad: int | tuple[int, int] | str | None = None  # None: k // 2
    bias: bool | None = False    # None: with or without, either is fine
    label: str = ""
    dilation: int | tuple[int, int] = 1
    groups: int = 1

    @property
    def ks(self) -> tuple[int, int]:
        return _pair(self.k)

    @property
    def padding(self) -> tuple[int, int] | str:
        if self.pad is None:
            return (self.ks[0] // 2, self.ks[1] // 2)
        return self.pad if isinstance(self.pad, str) else _pair(self.pad)


@dataclass(frozen=True)
class BN:
    name: str
    c: int
    label: str = ""


@dataclass(frozen=True)
class Act:
    kind: str = "relu"   # relu, tanh, sigmoid, softmax, log_softmax, ...


@dataclass(frozen=True)
class Pool:
    kind: str = "max"    # max | avg | adaptive (average to k×k) | adaptive_max
    k: int = 2
    s: int | None = None
    p: int = 0


@dataclass(frozen=True)
class GAP:
    """Global average pooling to (batch, channels)."""


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Linear:
    name: str
    fin: int
    fout: int
    bias: bool | None = True
    label: str = ""


@dataclass(frozen=True)
class Block:
    """The lesson's BasicBlock (a 1×1 conv + BN projection when the shape changes)."""
    name: str
    cin: int
    cout: int
    stride: int = 1
    label: str = ""

    @property
    def projects(self) -> bool:
        return self.stride != 1 or self.cin != self.cout


Op = Conv | BN | Act | Pool | GAP | Flatten | Linear | Block
Program = tuple


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


# --- running a program ------------------------------------------------------------------------

_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "softmax": lambda t: torch.softmax(t, 1, None),
    "log_softmax": lambda t: torch.log_softmax(t, 1, None),
    "leaky_relu": F.leaky_relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu,
    "relu6": F.relu6,
}


def _apply(op: Op, p: Params, h: Tensor, training: bool) -> Tensor:
    if isinstance(op, Conv):
        w = p[op.name]
        return F.conv2d(h, w["weight"], w.get("bias"), _pair(op.stride), op.padding,
                        _pair(op.dilation), op.groups)
    if isinstance(op, BN):
        return ref.bn(p[op.name], h, training)
    if isinstance(op, Act):
        return _ACTS[op.kind](h)
    if isinstance(op, Pool):
        if op.kind == "adaptive":
            return F.adaptive_avg_pool2d(h, op.k)
        if op.kind == "adaptive_max":
            return F.adaptive_max_pool2d(h, op.k)
        pool = F.max_pool2d if op.kind == "max" else F.avg_pool2d
        return pool(h, op.k, op.s or op.k, op.p)
    if isinstance(op, GAP):
        return torch.mean(h, (2, 3))
    if isinstance(op, Flatten):
        return torch.flatten(h, 1)
    if isinstance(op, Linear):
        w = p[op.name]
        return F.linear(h, w["weight"], w.get("bias"))
    if isinstance(op, Block):
        prefix = op.name + "_"
        sub = {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}
        return ref.basic_block(sub, h, training, stride=op.stride,
                               shortcut="bn" if op.projects else None)
    raise TypeError(op)


def run(program: Program, params: Params, x: Tensor, training: bool) -> Tensor:
    h = x
    for op in program:
        h = _apply(op, params, h, training)
    return h


def slots(program: Program) -> tuple[Slot, ...]:
    out: list[Slot] = []
    for op in program:
        if isinstance(op, Conv):
            out.append(Slot(op.name, "conv", (op.cout, op.cin // op.groups, *op.ks), op.bias,
                            op.label))
        elif isinstance(op, BN):
            out.append(Slot(op.name, "bn", (op.c,), label=op.label))
        elif isinstance(op, Linear):
            out.append(Slot(op.name, "linear", (op.fout, op.fin), op.bias, op.label))
        elif isinstance(op, Block):
            for s in _block_slots(op.cin, op.cout, "bn" if op.projects else None):
                out.append(dataclasses.replace(s, name=f"{op.name}_{s.name}",
                                               label=f"{op.label}: {s.label}"))
    return tuple(out)


def variant(key: str, program: Program, mistake: str = "", why: str = "",
            short: str = "") -> Variant:
    return Variant(key, slots(program), functools.partial(run, program), mistake, why, short)


def _out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def shapes(program: Program, in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shape after each op (for an input of ``in_shape``)."""
    shape, out = tuple(in_shape), []
    for op in program:
        if isinstance(op, Conv):
            b, _, h, w = shape
            if isinstance(op.padding, str):  # "same" (stride 1) or "valid"
                pad = (op.ks[0] // 2, op.ks[1] // 2) if op.padding == "same" else (0, 0)
            else:
                pad = op.padding
            (kh, kw), (sh, sw), (dh, dw) = op.ks, _pair(op.stride), _pair(op.dilation)
            shape = (b, op.cout, _out(h, kh, sh, pad[0], dh), _out(w, kw, sw, pad[1], dw))
        elif isinstance(op, Pool):
            b, c, h, w = shape
            if op.kind.startswith("adaptive"):
                shape = (b, c, op.k, op.k)
            else:
                s = op.s or op.k
                shape = (b, c, _out(h, op.k, s, op.p), _out(w, op.k, s, op.p))
        elif isinstance(op, Block):
            b, _, h, w = shape
            shape = (b, op.cout, (h - 1) // op.stride + 1, (w - 1) // op.stride + 1)
        elif isinstance(op, GAP):
            shape = shape[:2]
        elif isinstance(op, Flatten):
            size = 1
            for v in shape[1:]:
                size *= v
            shape = (shape[0], size)
        elif isinstance(op, Linear):
            shape = (shape[0], op.fout)
        out.append(shape)
    return out


# --- turning the correct program into a mistake -------------------------------------------------

def edit(program: Program, fn: Callable[[int, Op], Op | Iterable[Op] | None]) -> Program:
    """A new program: each op replaced by fn(index, op) (None drops it, a list inserts)."""
    out: list[Op] = []
    for i, op in enumerate(program):
        new = fn(i, op)
        if new is None:
            continue
        out.extend(new if isinstance(new, list | tuple) else [new])
    return tuple(out)


def _is_output(program: Program, i: int) -> bool:
    """Is op i after the last weighted layer (an output activation)?"""
    return not any(isinstance(op, Conv | Linear | Block) for op in program[i + 1:])


def without_bn(program: Program) -> Program:
    return edit(program, lambda i, op: None if isinstance(op, BN) else
                dataclasses.replace(op, bias=None) if isinstance(op, Conv) else op)


def without_relu(program: Program, where: Callable[[int], bool] = lambda i: True) -> Program:
    """Drop the hidden ReLUs (those at indices where ``where`` holds)."""
    return edit(program, lambda i, op: None if isinstance(op, Act) and op.kind == "relu"
                and not _is_output(program, i) and where(i) else op)


def relu_before_bn(program: Program) -> Program:
    """conv → BN → ReLU becomes conv → ReLU → BN."""
    ops = list(program)
    for i in range(len(ops) - 1):
        if isinstance(ops[i], BN) and isinstance(ops[i + 1], Act) and ops[i + 1].kind == "relu":
            ops[i], ops[i + 1] = ops[i + 1], ops[i]
    return tuple(ops)


def with_output(program: Program, kind: str) -> Program:
    return (*program, Act(kind))


def flatten_head(program: Program, in_shape: tuple[int, ...]) -> Program:
    """Global average pooling replaced by flattening the whole map into the Linear layer."""
    shape = shapes(program, in_shape)
    gap = next(i for i, op in enumerate(program) if isinstance(op, GAP))
    before = shape[gap - 1] if gap else tuple(in_shape)
    size = before[1] * before[2] * before[3]
    out = list(program)
    out[gap] = Flatten()
    k = next(i for i in range(gap + 1, len(out)) if isinstance(out[i], Linear))
    out[k] = dataclasses.replace(out[k], fin=size)
    return tuple(out)


def all_stride_one(program: Program) -> Program:
    return edit(program, lambda i, op: dataclasses.replace(op, stride=1)
                if isinstance(op, Conv | Block) else op)


def pool_instead_of_stride(program: Program, before: bool) -> Program:
    """Each stride-2 conv made stride 1, with a 2×2 max-pool before it or after its ReLU."""
    ops: list[Op] = []
    pending = False
    for op in program:
        if isinstance(op, Conv) and op.stride == 2:
            if before:
                ops.append(Pool("max", 2))
            ops.append(dataclasses.replace(op, stride=1))
            pending = not before
            continue
        ops.append(op)
        if pending and isinstance(op, Act):
            ops.append(Pool("max", 2))
            pending = False
    return tuple(ops)


# --- what the student's network does ------------------------------------------------------------


@dataclass
class Call:
    name: str           # the layer's name in the student's module ("" for the root)
    module: nn.Module
    input: Tensor | None
    output: Tensor | None

    @property
    def kind(self) -> str:
        m = self.module
        if isinstance(m, nn.Conv2d):
            return "conv"
        if isinstance(m, nn.Linear):
            return "linear"
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "bn"
        if isinstance(m, nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d |
                      nn.AdaptiveMaxPool2d):
            return "pool"
        return "other"

    def label(self) -> str:
        return f"`{self.name}`" if self.name else "the model itself"


def trace(model: nn.Module, x: Tensor) -> list[Call]:
    """Every leaf layer of ``model`` that runs during ``model(x)``, in order, with the tensor
    it received and the one it returned as meta tensors: their shapes, not their values (no
    gradients, the model's current mode)."""
    names = {id(m): name for name, m in model.named_modules()}
    leaves = {id(m) for m in model.modules() if not any(True for _ in m.children())}
    calls: list[Call] = []

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        if id(module) in leaves and id(module) in names:
            arg = args[0] if args else None
            calls.append(Call(names[id(module)], module,
                              torch.clone(arg) if type(arg) is Tensor else None,
                              torch.clone(output) if type(output) is Tensor else None))

    run_hooked(model, x, hook, shapes_only=True)
    return calls


def weighted(calls: list[Call]) -> list[Call]:
    """The conv and Linear layers among ``calls``, each once (its first call)."""
    seen: set[int] = set()
    out = []
    for c in calls:
        if c.kind in ("conv", "linear") and id(c.module) not in seen:
            seen.add(id(c.module))
            out.append(c)
    return out


def size_str(shape: tuple[int, ...] | torch.Size) -> str:
    """(2, 16, 32, 32) -> '16×32×32'; (2, 10) -> '10'."""
    return "×".join(str(int(v)) for v in tuple(shape)[1:])


# --- judging a network --------------------------------------------------------------------------


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"   # a {slot} field, filled with the student's layer name later


SHORT = {"no_bn": "no BatchNorm layers", "stem_no_bn": "no BatchNorm in the stem",
         "flatten_head": "the Linear layer takes the whole flattened map"}


def mistake(key: str, program: Program, **fields: object) -> Variant:
    """The catalogue's mistake ``key`` (``_mistakes.NET_MISTAKES``) as the program ``program``."""
    text, why = NET_MISTAKES[key]
    values = _Fields(fields)
    return variant(key, program, text.format_map(values), why.format_map(values),
                   SHORT.get(key, ""))


def compare_net(subject: Subject, accepted: list[Variant], mistakes: list[Variant],
                fixed: dict[str, Unit] | None = None, mistake_limit: int = 4) -> Verdict:
    """The first accepted variant the student's network equals, else the first known mistake
    (each tried on its most plausible weight assignments only), else none."""
    diffs: dict[str, float] = {}
    for i, v in enumerate(accepted):
        found = match(subject, v, seed=0, diffs=diffs if i == 0 else None,
                      limit=48 if i == 0 else mistake_limit, fixed=fixed)
        if found is not None:
            return Verdict(accepted[0], found, diffs)
    for v in mistakes:
        found = match(subject, v, seed=1, limit=mistake_limit, fixed=fixed)
        if found is not None:
            return Verdict(accepted[0], found, diffs)
    return Verdict(accepted[0], None, diffs)


def bias_note(found: Match) -> list[str]:
    """A note naming the student's conv layers that have a bias right before a BatchNorm."""
    by_slot = {s.name: i for i, s in enumerate(found.variant.slots)}
    names = sorted({f"`{found.assignment[by_slot[s.name]].name}`" for kind, s in found.notes
                    if kind == "extra_bias" and s.name in by_slot
                    and by_slot[s.name] in found.assignment}, key=_natural)
    if not names:
        return []
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    verb = "has" if len(names) == 1 else "have"
    return [f"note: {shown} {verb} a bias right before a BatchNorm. The BatchNorm subtracts the "
            "mean, which cancels the bias (its gradient is zero), so it only adds unused "
            "parameters; use bias=False there."]


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def shape_diff(calls: list[Call], program: Program, in_shape: tuple[int, ...]) -> str:
    """Where the student's conv/Linear layers first produce another shape than the program's
    (in the order both run them), in words; "" if they agree."""
    ops = [(op, shape) for op, shape in zip(program, shapes(program, in_shape), strict=True)
           if isinstance(op, Conv | Linear)]
    mine = [c for c in weighted(calls)]
    for i, ((op, want), call) in enumerate(zip(ops, mine, strict=False)):
        got = tuple(call.output.shape) if call.output is not None else None
        if got != tuple(want):
            kind = "conv" if isinstance(op, Conv) else "Linear"
            what = f"{size_str(got)}" if got is not None else "no tensor"
            return (f"Your {_ordinal(i + 1)} layer with weights, {call.label()}, outputs "
                    f"{what} per image; the specified network's {_ordinal(i + 1)} "
                    f"({op.label or kind}) outputs {size_str(want)}.")
    if len(mine) != len(ops):
        return (f"Your network runs {len(mine)} conv/Linear layers; the specified one has "
                f"{len(ops)}.")
    return ""


def _ordinal(k: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(k, f"{k}th")


def fail_net(subject: Subject, verdict: Verdict, item: str, name: str, expected: str,
             extra: str = "", count: bool = True) -> None:
    """Fail with the message for a network that is not the specified one (``count``: compare
    parameter counts, unless the reference was built from the student's own layers)."""
    program_params = sum(s.nparams for s in verdict.reference.slots) if count else \
        count_params(subject.module)
    message = failure_message(subject, verdict, f"the notebook's {name}",
                              f"the notebook's {name}", program_params, f"Expected: {expected}",
                              weights="the same random weights")
    if extra and verdict.match is None:
        lines = message.split("\n")
        lines.insert(1, extra)
        message = "\n".join(lines)
    fail(message, mistake=mistake_id(item, verdict))


def unused_layers(subject: Subject, found: Match, name: str, item: str) -> None:
    if found.unused:
        layers = ", ".join(f"`{u.name}` {u.layer_str()}" for u in found.unused)
        fail(f"{subject.call} computes the {name} the notebook specifies, but has layers its "
             f"forward never uses: {layers}. Remove them (they are counted as parameters and "
             "never learn).", mistake=f"{item}.unused_layers")


def check_logits(out: Tensor, subject: Subject, name: str, item: str, num_classes: int) -> None:
    """(batch, num_classes) logits; a network that ignores num_classes is named."""
    expected = (tuple(subject.x.shape)[0], num_classes)
    got = tuple(out.shape)
    if got == expected:
        return
    if num_classes != 10 and got == (expected[0], 10):
        fail(f"{subject.what} returned shape {shape_str(got)}: `num_classes` is ignored ({name}"
             f"(num_classes={num_classes}) still gives 10 scores per image).\nWhy it matters: "
             "the last Linear layer must have num_classes outputs (nn.Linear(features, "
             "num_classes)); the same class is built for other datasets with other numbers of "
             "classes.", mistake=f"{item}.num_classes_ignored")
    fail(f"{subject.what} returned shape {shape_str(got)}; expected {shape_str(expected)} "
         "(batch, num_classes): one logit per class for each image.",
         mistake=f"{item}.output_shape")


LOG_SOFTMAX_NOTE = ("note: forward returns log-probabilities (log_softmax). F.cross_entropy gives "
                    "the same loss on them as on logits, but return the last Linear layer's "
                    "output as the notebook asks: that is what 'logits' means, and what every "
                    "torchvision model returns.")


def output_note(found: Match) -> list[str]:
    return [LOG_SOFTMAX_NOTE] if found.variant.key.startswith("log_softmax") else []
