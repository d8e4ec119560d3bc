"""Judge a student's module by behaviour: same outputs as a reference after copying weights.

:func:`compare_module` is the engine behind ``basic_block``, ``se_block``, ``ex3_se_net`` and
the per-block test of ``ex2_small_resnet``. Given a student module, an input and a list of
:class:`Variant` s (the correct reference first, then known mistakes), it

1. runs the student's forward once (recording the order its layers run, refusing
   torchvision's code, checking it returns one plain tensor of the right shape and leaves
   its input alone);
2. copies the reference's random, non-trivial parameters and BatchNorm statistics into the
   student's layers (every shape-compatible assignment in turn) and compares outputs in eval
   and in train mode;
3. if no assignment reproduces the reference, tries the known mistakes the same way and
   names the first one that reproduces the student's output, with why it matters and how the
   parameter count differs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import _tensors
from ._calls import call, describe, fail, n, shape_str
from ._cheating import Watch
from ._weights import Params, Slot, Unit, assignments, count_params, load, random_params, units_of

TOLERANCE = 1e-5


@dataclass(frozen=True)
class Variant:
    key: str
    slots: tuple[Slot, ...]
    forward: Callable[[Params, Tensor, bool], Tensor]
    mistake: str = ""      # what is wrong, in the student's terms; "" for the reference
    why: str = ""          # why it matters
    short: str = ""        # the mistake in a few words, for the parameter-count line

    @property
    def nparams(self) -> int:
        return sum(s.nparams for s in self.slots)


@dataclass
class Match:
    variant: Variant
    assignment: dict[int, Unit]
    notes: list[tuple[str, Slot]]
    unused: list[Unit]


@dataclass
class Subject:
    """One student module, the input to test it on, and how to name the call in messages."""
    module: nn.Module
    x: Tensor
    call: str                       # e.g. "BasicBlock(64, 128, stride=2)(x)"
    order: list[int] = field(default_factory=list)

    @property
    def what(self) -> str:
        return f"{self.call} with x of shape {shape_str(self.x.size())}"


def set_mode(module: nn.Module, training: bool) -> None:
    """train()/eval(), with dropout switched off so train-mode outputs are deterministic."""
    module.train(training)
    for m in module.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0


def forward(subject: Subject, x: Tensor | None = None) -> Tensor:
    """Run the student's module on a copy of the input; fail unless it returns one tensor."""
    x = torch.clone(subject.x if x is None else x)
    out = call(subject.what, subject.module, x)
    if type(out) is not Tensor:
        if isinstance(out, Tensor):
            fail(f"{subject.what} returned a {type(out).__qualname__} (a subclass of "
                 "torch.Tensor); forward must return a plain torch.Tensor.")
        if isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
            fail(f"{subject.what} returned {describe(out)}; forward must return a single tensor.")
        if out is None:
            fail(f"{subject.what} returned None: did you forget `return out` at the end of forward?")
        fail(f"{subject.what} returned {describe(out)}; forward must return a single torch.Tensor.")
    return out


def probe(subject: Subject, expected: tuple[int, ...] | None,
          shape_hint: Callable[..., str] | None = None, cheat_name: str | None = None,
          crash_hint: Callable[[BaseException], str] | str = "") -> Tensor:
    """First run: order of layers, no torchvision code, shape (unless ``expected`` is None),
    input untouched."""
    before = torch.clone(subject.x)
    with Watch(check_cheating=cheat_name is not None) as watch:
        out = call(subject.what, subject.module, subject.x, hint=crash_hint)
    if cheat_name is not None:
        watch.reject(cheat_name)
    if _tensors.max_abs_diff(before, subject.x) != 0.0:
        fail(
            f"{subject.what} changed its input x in place (e.g. `x += ...`, `x.relu_()` or an "
            "inplace=True layer applied to x). The caller's tensor must stay unchanged: the "
            "skip connection and autograd both still need the original x."
        )
    subject.x = before
    out = forward(subject) if type(out) is not Tensor else out
    got = tuple(out.shape)
    if expected is not None and got != tuple(expected):
        hint = shape_hint(got, tuple(expected)) if shape_hint else ""
        fail(f"{subject.what} returned shape {shape_str(got)}; expected {shape_str(expected)}."
             + (f" {hint}" if hint else ""))
    units = units_of(subject.module)
    late = len(watch.order) + len(units)
    subject.order = [watch.order.get(id(u.module), late + i) for i, u in enumerate(units)]
    return out


def check_gradient(subject: Subject) -> None:
    """Gradients must reach the input (nothing detached in forward)."""
    x = torch.Tensor.requires_grad_(torch.clone(subject.x), True)
    with torch.enable_grad():
        out = call(f"{subject.what} (with x.requires_grad=True)", subject.module, x)
        if type(out) is not Tensor or not out.requires_grad:
            fail(f"{subject.what}: no gradient reaches the output from x. Something in forward "
                 "detaches the tensor (.detach(), .data, .numpy(), torch.tensor(...)), so the "
                 "layers before this block could never learn.")
        (grad,) = call(f"backward through {subject.call}", torch.autograd.grad,
                       torch.sum(out), x, allow_unused=True)
    if grad is None or _tensors.max_abs(grad) == 0.0:
        fail(f"{subject.what}: no gradient reaches the input x. Something in forward detaches "
             "the tensor (.detach(), .data, .numpy(), torch.tensor(...)).")


def _outputs(subject: Subject, variant: Variant, params: Params, modes: tuple[bool, ...]
             ) -> dict[bool, tuple[Tensor | None, Tensor]] | None:
    """Student and reference outputs per mode (None if the reference doesn't apply here)."""
    result = {}
    for training in modes:
        try:
            with torch.no_grad():
                ref = variant.forward(params, torch.clone(subject.x), training)
        except RuntimeError:  # e.g. a mistake that only has a meaning for some shapes
            return None
        set_mode(subject.module, training)
        try:
            with torch.no_grad():
                out = subject.module(torch.clone(subject.x))
        except Exception:
            out = None
        result[training] = (out if type(out) is Tensor else None, ref)
    return result


def _same(out: Tensor | None, ref: Tensor) -> bool:
    if out is None:
        return False
    if tuple(out.shape) != tuple(ref.shape):
        if torch.numel(out) != torch.numel(ref):
            return False
        out = torch.reshape(out, tuple(ref.shape))  # e.g. gates returned as (b, c)
    return _tensors.close(out, ref, TOLERANCE)


def match(subject: Subject, variant: Variant, seed: int, modes: tuple[bool, ...] = (False, True),
          diffs: dict[str, float] | None = None, limit: int = 48,
          fixed: dict[str, Unit] | None = None) -> Match | None:
    """The first weight assignment under which the student's module equals ``variant``
    (at most ``limit`` assignments tried; ``fixed`` pins slots to units, see ``assignments``)."""
    slots = list(variant.slots)
    units = units_of(subject.module)
    params = random_params(slots, seed)
    for k, assignment in enumerate(assignments(slots, units, subject.order or None, limit,
                                               fixed)):
        effective, notes = load(slots, assignment, params)
        outputs = _outputs(subject, variant, effective, modes)
        if outputs is None:
            return None
        if diffs is not None and k == 0:
            for training, (out, ref) in outputs.items():
                mode = "train" if training else "eval"
                diffs[mode] = float("inf") if out is None else _tensors.max_abs_diff(out, ref)
        if all(_same(out, ref) for out, ref in outputs.values()):
            used = {id(u.module) for u in assignment.values()}
            return Match(variant, assignment, notes,
                         [u for u in units if id(u.module) not in used])
    return None


# --- explaining differences -------------------------------------------------------------------

def _key(kind: str, shape: tuple[int, ...]) -> tuple:
    if kind == "bn":
        return ("bn",) + shape
    if kind == "linear":
        return ("w",) + shape + (1, 1)
    return ("w",) + shape


def structure_diff(slots: tuple[Slot, ...], units: list[Unit]) -> str:
    """Which of the reference's layers the student lacks, and which extra ones they have."""
    want = Counter(_key(s.kind, s.shape) for s in slots)
    have = Counter(_key(u.kind, u.shape) for u in units if u.kind != "other")
    parts = []
    for key, count in want.items():
        missing = count - have.get(key, 0)
        if missing > 0:
            group = [s for s in slots if _key(s.kind, s.shape) == key]
            labels = ", ".join(s.label or s.name for s in group)
            what = group[0].layer_str()
            parts.append(f"{len(group)} × {what} ({labels}) where yours has {have.get(key, 0)}"
                         if len(group) > 1 else f"no {what} ({labels})")
    for key, count in have.items():
        extra = count - want.get(key, 0)
        if extra > 0:
            group = [u for u in units if u.kind != "other" and _key(u.kind, u.shape) == key]
            names = ", ".join(f"`{u.name}`" for u in group)
            parts.append(f"{extra} extra {group[0].layer_str()} ({names})")
    others = [f"`{u.name + '.' if u.name else ''}{key}`" for u in units if u.kind == "other"
              for key, value in u.module.named_parameters(recurse=False)]
    if others:
        parts.append("parameters the checker can't map to a layer: " + ", ".join(others)
                     + " — use nn.Conv2d / nn.BatchNorm2d / nn.Linear layers")
    return "; ".join(parts)


def layer_names(text: str, found: Match) -> str:
    """``text`` with each ``{slot name}`` replaced by the student's layer that took that slot,
    so that messages name the student's own layers (e.g. "{c0}" -> "`features.0`")."""
    for i, unit in found.assignment.items():
        text = text.replace("{" + found.variant.slots[i].name + "}", f"`{unit.name}`")
    return text


def params_line(expected: int, reference: str, module: nn.Module, reason: str = "") -> str:
    yours = count_params(module)
    if yours == expected:
        return ""
    line = f"Parameters: expected {n(expected)} like {reference}; yours has {n(yours)}"
    return line + (f": {reason}." if reason else ".")


def bias_notes(notes: list[tuple[str, Slot]], reference: str) -> list[str]:
    """Plain-words notes for bias mismatches that don't change the behaviour."""
    lines = []
    extra = sorted({s.label or s.name for kind, s in notes if kind == "extra_bias"})
    if extra:
        lines.append(
            f"note: {', '.join(extra)} {'has' if len(extra) == 1 else 'have'} a bias right before "
            "a BatchNorm. The BatchNorm subtracts the mean, which cancels the bias (its gradient "
            f"is zero), so it only adds unused parameters; {reference} uses bias=False there."
        )
    missing = sorted({s.label or s.name for kind, s in notes if kind == "missing_bias"})
    if missing:
        lines.append(f"note: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no "
                     f"bias; {reference} has one (it still works, with fewer parameters).")
    return lines


def bn_eps_hint(module: nn.Module) -> str:
    odd = [(name, m.eps) for name, m in module.named_modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.eps != 1e-5]
    if not odd:
        return ""
    name, eps = odd[0]
    return f" Your BatchNorm `{name}` uses eps={eps}; torchvision's default is 1e-05."


@dataclass
class Verdict:
    reference: Variant
    match: Match | None
    diffs: dict[str, float]


def compare_module(subject: Subject, variants: list[Variant], seed: int = 0,
                   modes: tuple[bool, ...] = (False, True)) -> Verdict:
    """Try the reference, then (only if it fails) each known mistake."""
    diffs: dict[str, float] = {}
    found = match(subject, variants[0], seed, modes, diffs)
    if found is not None:
        return Verdict(variants[0], found, diffs)
    for variant in variants[1:]:
        found = match(subject, variant, seed + 1, modes)
        if found is not None:
            return Verdict(variants[0], found, diffs)
    return Verdict(variants[0], None, diffs)


def mistake_id(item: str, verdict: Verdict) -> str:
    """The stable id of what ``failure_message`` names, e.g. ``basic_block.relu_before_add``."""
    if verdict.match is not None:
        return f"{item}.{verdict.match.variant.key}"
    return f"{item}.{'behaves_differently' if verdict.diffs else 'layers_differ'}"


def failure_message(subject: Subject, verdict: Verdict, reference: str, reference_detail: str,
                    expected_params: int, generic_hint: str,
                    weights: str = "torchvision's weights") -> str:
    """The message for a module that does not behave like the reference (``weights`` names
    what was copied into the student's layers, e.g. "the same random weights")."""
    head = f"{subject.call} does not behave like {reference}"
    m = verdict.match
    if m is not None:
        lines = [f"{head}: {layer_names(m.variant.mistake, m)}."]
        if m.variant.why:
            lines.append(f"Why it matters: {m.variant.why}")
        reason = (m.variant.short or m.variant.mistake) if m.variant.nparams != expected_params \
            else ""
        line = params_line(expected_params, reference_detail, subject.module, reason)
        if line:
            lines.append(line)
        return "\n".join(lines)
    diffs = verdict.diffs
    if diffs:
        worst = ", ".join(f"{d:.3g} in {mode} mode" for mode, d in diffs.items()
                          if d > TOLERANCE)
        if len(diffs) > 1 and diffs.get("train", 1) <= TOLERANCE < diffs.get("eval", 0):
            detail = (" It matches in train mode but not in eval mode: in eval mode BatchNorm "
                      "must use its running statistics (are you computing statistics yourself,"
                      " or calling F.batch_norm with training=True?).")
        elif len(diffs) > 1 and diffs.get("eval", 1) <= TOLERANCE < diffs.get("train", 0):
            detail = (" It matches in eval mode but not in train mode: check how BatchNorm and"
                      " Dropout behave when training (nn.BatchNorm2d, not a fixed normalisation).")
        else:
            detail = ""
        lines = [f"{head}: with {weights} copied into your layers the outputs differ"
                 f" (largest difference {worst}), and they match none of the common mistakes the"
                 f" checker knows.{detail}{bn_eps_hint(subject.module)}", generic_hint]
    else:
        diff = structure_diff(verdict.reference.slots, units_of(subject.module))
        lines = [f"{head}: its layers don't correspond to {reference}'s"
                 + (f" ({diff})." if diff else "."), generic_hint]
    line = params_line(expected_params, reference_detail, subject.module)
    if line:
        lines.append(line)
    return "\n".join(lines)
