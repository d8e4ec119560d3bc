"""Copy a reference's parameters into a student's module by matching shapes.

A reference is described by :class:`Slot` s (one per conv/linear/BatchNorm layer, in the
order the reference runs them). The student's module is split into :class:`Unit` s (every
submodule that directly holds parameters or buffers). :func:`assignments` yields the ways of
giving each slot a distinct unit of a compatible kind and shape, most plausible first (units
in the order the student's forward runs them); when shapes are ambiguous (conv1/conv2 of equal
shape, three BatchNorms of equal width) the caller tries them in turn. Linear and 1×1 conv
weights are interchangeable (reshaped on copy), so ``nn.Linear`` or ``nn.Conv2d(1×1)`` both fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from . import _tensors

Params = dict[str, dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Slot:
    name: str                 # key in the params dict, e.g. "conv1"
    kind: str                 # "conv" | "linear" | "bn"
    shape: tuple[int, ...]    # conv (out, in, kh, kw), linear (out, in), bn (channels,)
    bias: bool | None = False  # conv/linear: the reference has a bias; None: either is fine
    label: str = ""           # words for messages, e.g. "the shortcut's BatchNorm"

    @property
    def nparams(self) -> int:
        count = math.prod(self.shape)
        if self.kind == "bn":
            return 2 * count
        return count + (self.shape[0] if self.bias else 0)

    def layer_str(self) -> str:
        if self.kind == "bn":
            return f"BatchNorm2d({self.shape[0]})"
        if self.kind == "linear":
            return f"Linear({self.shape[1]}, {self.shape[0]})"
        o, i, kh, kw = self.shape
        return f"Conv2d({i}, {o}, {kh}×{kw})"


@dataclass
class Unit:
    name: str
    module: nn.Module
    kind: str                 # "conv" | "linear" | "bn" | "other"
    shape: tuple[int, ...]    # weight shape (bn: (num_features,))
    has_bias: bool

    @property
    def matrix(self) -> tuple[int, ...]:
        """Weight shape with a Linear seen as a 1×1 conv."""
        return self.shape + (1, 1) if self.kind == "linear" else self.shape

    def layer_str(self) -> str:
        m = self.module
        if self.kind == "bn":
            return f"{type(m).__name__}({self.shape[0]})"
        if self.kind == "linear":
            return f"Linear({self.shape[1]}, {self.shape[0]}{'' if self.has_bias else ', bias=False'})"
        if self.kind == "conv":
            o, i, kh, kw = self.shape
            return f"Conv2d({i * m.groups}, {o}, {kh}×{kw})"
        return type(m).__name__


def _direct_tensors(module: nn.Module) -> list[str]:
    return [k for k, v in module._parameters.items() if v is not None] + [
        k for k, v in module._buffers.items() if v is not None
    ]


def units_of(module: nn.Module) -> list[Unit]:
    """Every submodule holding parameters/buffers itself, in registration order."""
    units = []
    seen: set[int] = set()
    for name, m in module.named_modules():
        if id(m) in seen or not _direct_tensors(m):
            continue
        seen.add(id(m))
        if isinstance(m, nn.Conv2d) and m.weight is not None:
            units.append(Unit(name, m, "conv", tuple(m.weight.shape), m.bias is not None))
        elif isinstance(m, nn.Linear):
            units.append(Unit(name, m, "linear", tuple(m.weight.shape), m.bias is not None))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.track_running_stats:
            units.append(Unit(name, m, "bn", (m.num_features,), True))
        else:
            shape = tuple(next(iter(m.parameters(recurse=False)), torch.empty(0)).shape)
            units.append(Unit(name, m, "other", shape, False))
    return units


def compatible(unit: Unit, slot: Slot) -> bool:
    if slot.kind == "bn":
        return unit.kind == "bn" and unit.shape == slot.shape
    if unit.kind not in ("conv", "linear"):
        return False
    want = slot.shape + (1, 1) if slot.kind == "linear" else slot.shape
    return unit.matrix == want


def assignments(slots: list[Slot], units: list[Unit], order: list[int] | None = None,
                limit: int = 48, fixed: dict[str, Unit] | None = None
                ) -> Iterator[dict[int, Unit]]:
    """Yield {slot index: unit} bijections onto compatible units, most plausible first.

    ``order`` ranks units (e.g. by when the student's forward first ran them); the first
    assignment pairs slots and units in that order, later ones permute ambiguous choices.
    ``fixed`` ({slot name: unit}) pins slots already matched, e.g. the layers of a residual
    block verified on its own; the other slots never take those units.
    """
    rank = {id(u): (order[i] if order else i) for i, u in enumerate(units)}
    fixed = fixed or {}
    pinned = {id(u.module) for u in fixed.values()}
    options = []
    for s in slots:
        if s.name in fixed:
            options.append([fixed[s.name]] if compatible(fixed[s.name], s) else [])
        else:
            options.append(sorted((u for u in units
                                   if compatible(u, s) and id(u.module) not in pinned),
                                  key=lambda u: rank[id(u)]))
    if any(not o for o in options):
        return
    produced = 0
    chosen: dict[int, Unit] = {}
    used: set[int] = set()

    def _plausible_first(i: int, units: list[Unit]) -> list[Unit]:
        # A BatchNorm slot right after a conv slot first tries the unit that runs right
        # after the conv chosen for it: a block whose shortcut runs first (its BN ranks
        # before bn1) then matches at the first try instead of the fourth.
        before = chosen.get(i - 1)
        if (slots[i].kind != "bn" or before is None or slots[i - 1].kind == "bn"
                or id(before) not in rank or any(id(u) not in rank for u in units)):
            return units  # (pinned units have no rank)
        start = rank[id(before)]
        return sorted(units, key=lambda u: (rank[id(u)] < start, rank[id(u)] - start))

    def walk(i: int) -> Iterator[dict[int, Unit]]:
        nonlocal produced
        if produced >= limit:
            return
        if i == len(slots):
            produced += 1
            yield dict(chosen)
            return
        for u in _plausible_first(i, options[i]):
            if id(u.module) in used:
                continue
            chosen[i] = u
            used.add(id(u.module))
            yield from walk(i + 1)
            used.discard(id(u.module))
            del chosen[i]

    yield from walk(0)


def random_params(slots: list[Slot], seed: int) -> Params:
    """Non-trivial values: random weights, biases, BatchNorm affine and running statistics."""
    g = _tensors.generator(seed)
    params: Params = {}
    for s in slots:
        if s.kind == "bn":
            (c,) = s.shape
            params[s.name] = {
                "weight": torch.add(torch.mul(torch.randn((c,), generator=g), 0.3), 1.0),
                "bias": torch.mul(torch.randn((c,), generator=g), 0.5),
                "running_mean": torch.mul(torch.randn((c,), generator=g), 0.3),
                "running_var": torch.add(torch.rand((c,), generator=g), 0.5),
            }
            continue
        fan_in = math.prod(s.shape[1:])
        entry = {"weight": torch.mul(torch.randn(s.shape, generator=g), 1.0 / math.sqrt(fan_in))}
        if s.bias is not False:
            entry["bias"] = torch.mul(torch.randn((s.shape[0],), generator=g), 0.5)
        params[s.name] = entry
    return params


def load(slots: list[Slot], assignment: dict[int, Unit], params: Params) -> tuple[Params, list[str]]:
    """Copy ``params`` into the assigned units.

    Returns the parameters the reference must use for this assignment (a bias the student's
    layer lacks is zero in the reference too) and notes about bias mismatches:
    ``("extra_bias", slot)`` for a bias the reference doesn't have (set to zero in the
    student's layer) and ``("missing_bias", slot)`` for one the student's layer lacks.
    """
    effective: Params = {k: dict(v) for k, v in params.items()}
    notes = []
    with torch.no_grad():
        for i, unit in assignment.items():
            slot, p, m = slots[i], params[slots[i].name], unit.module
            if slot.kind == "bn":
                for key in ("weight", "bias", "running_mean", "running_var"):
                    torch.Tensor.copy_(getattr(m, key), p[key])
                if getattr(m, "num_batches_tracked", None) is not None:
                    m.num_batches_tracked.zero_()
                continue
            m.weight.copy_(torch.reshape(p["weight"], tuple(m.weight.shape)))
            if unit.has_bias:
                if "bias" in p:
                    m.bias.copy_(p["bias"])
                else:
                    m.bias.zero_()
                    if slot.bias is False:
                        notes.append(("extra_bias", slot))
            elif "bias" in p:
                effective[slot.name]["bias"] = torch.zeros_like(p["bias"])
                if slot.bias:
                    notes.append(("missing_bias", slot))
    return effective, notes


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
