"""The course's proof that a network we wrote is the same function as a reference network.

Lesson 02 teaches it, every later lesson uses it. Three steps, one helper each:

1. ``randomize_(theirs)``: a freshly built network hides mistakes behind constants. A new
   BatchNorm (mean 0, variance 1, γ 1, β 0) is the identity in eval mode, so a missing or
   misplaced BN changes nothing; a zero bias or a zero classifier head makes every mistake in
   what feeds it invisible; a layer scale of 1e-6 silences a whole branch. Every floating
   tensor whose entries are all equal gets random values: zeros become N(0, 0.2²), any other
   constant (scales, variances, layer scales) becomes U(0.5, 1.5), so variances stay positive.
   Given an input shape, BatchNorm running statistics are then measured on a random batch,
   as training would set them, so activations keep their scale through a deep network.
2. ``copy_weights_(ours, theirs)``: every parameter and buffer of ``theirs`` goes into
   ``ours``, paired by name when both use the same names, else by position (our names need
   not be torchvision's); each pair must have the same shape, and every tensor is used once.
3. ``assert_same_outputs(ours, theirs, x)``: both run on the same input and must agree.

``assert_same_network(ours, theirs, x)`` checks equal parameter counts and runs all three.
Any failure raises :class:`NetworkMismatch` with a one-line message naming what differs.

Tolerance, one policy for the whole course::

    max |ours − theirs|  ≤  RTOL · max(1, max |theirs|),   RTOL = 1e-5

Two networks that run the same operations in the same order give bit-identical float32
outputs (difference 0), the usual case when we rebuild torchvision's layers. A network that
computes the same function another way (query/key/value as three projections instead of one,
a fused attention kernel, another summation order) differs by rounding: float32 keeps about
seven significant digits and rounding errors grow with depth to about 1e-6 of the output's
scale. A real mistake (a missing ReLU, a wrong stride, average instead of max pooling) moves
outputs by a percent or more. 1e-5 of the output's scale lies orders of magnitude from both.
The returned :class:`Comparison` records the difference, so a lesson can say "bit-identical"
when it is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .eval_mode import train_mode

RTOL = 1e-5

StateDict = Mapping[str, torch.Tensor]


class NetworkMismatch(AssertionError):
    """The two networks differ; the message says where. IPython shows the message alone."""

    def _render_traceback_(self) -> list[str]:
        return ["\x1b[31m✗\x1b[0m NetworkMismatch: " + str(self)]


@dataclass(frozen=True)
class Comparison:
    """What a passed comparison measured."""

    max_abs_diff: float  # max |ours − theirs| over all outputs
    scale: float  # max |theirs|: the size of the outputs the difference is judged against
    outputs: torch.Tensor | tuple  # ours's outputs
    parameters: int | None = None  # the (equal) parameter count, from assert_same_network

    @property
    def identical(self) -> bool:
        """True when the outputs are bit-identical."""
        return self.max_abs_diff == 0.0


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def constant_tensors(model: nn.Module) -> list[str]:
    """Names of the floating parameters and buffers whose entries are all equal."""
    names = []
    for name, t in model.state_dict(keep_vars=True).items():
        if not t.is_floating_point() or t.numel() == 0:
            continue
        if t.is_meta:
            raise ValueError(f"{name} is on the meta device: build the network with real "
                             "tensors before randomising it")
        if bool((t == t.reshape(-1)[0]).all()):
            names.append(name)
    return names


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0,
               input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """Give every constant floating tensor of `model` random values, in place; return `model`.

    Zeros (biases, running means, a zero head) become N(0, 0.2²); any other constant (BN and
    LayerNorm scales, running variances, layer scales) becomes U(0.5, 1.5). Tensors that are
    already random are left alone. The same seed gives the same values.

    With `input_shape`, BatchNorm running statistics are then measured on one seeded random
    batch of that shape, as training would set them. Use it for deep networks: with made-up
    statistics nothing normalises the activations in eval mode and they can grow layer after
    layer (a fresh ResNet-152's logits reach 1e9).
    """
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict(keep_vars=True)
    for name in constant_tensors(model):
        t = state[name]
        values = torch.empty(t.shape, dtype=t.dtype)
        if bool((t == 0).all()):
            values.normal_(0.0, 0.2, generator=g)
        else:
            values.uniform_(0.5, 1.5, generator=g)
        t.copy_(values)
    if input_shape is not None:
        _measure_batchnorm(model, tuple(input_shape), g)
    return model


def _measure_batchnorm(model: nn.Module, input_shape: tuple[int, ...], g: torch.Generator):
    """Set every BatchNorm's running statistics from one random batch (at least 4 samples)."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics exactly
    device = next(iter(model.state_dict().values())).device
    batch = torch.randn((max(4, input_shape[0]), *input_shape[1:]), generator=g).to(device)
    try:
        with train_mode(model):
            model(batch)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


def _pair(ours: StateDict, theirs: StateDict) -> dict[str, torch.Tensor]:
    """theirs's tensors under ours's names: by name if the names agree, else by position."""
    by_name = set(ours) == set(theirs)
    pairs = [(k, k) for k in ours] if by_name else list(zip(ours, theirs, strict=False))
    for i, (a, b) in enumerate(pairs):
        if ours[a].shape != theirs[b].shape:
            raise NetworkMismatch(
                f"tensor {i} does not line up: ours {a} {_shape(ours[a])} vs theirs "
                f"{b} {_shape(theirs[b])}")
    if len(ours) != len(theirs):
        n = len(pairs)
        extra = (f"ours {list(ours)[n]} {_shape(ours[list(ours)[n]])} has no partner"
                 if len(ours) > n else
                 f"theirs {list(theirs)[n]} {_shape(theirs[list(theirs)[n]])} has no partner")
        raise NetworkMismatch(f"ours has {len(ours)} tensors, theirs {len(theirs)}: the first "
                              f"{n} line up, then {extra}")
    return {a: theirs[b] for a, b in pairs}


@torch.no_grad()
def copy_weights_(ours: nn.Module, theirs: nn.Module,
                  convert: Callable[[StateDict], StateDict] | None = None) -> nn.Module:
    """Copy every parameter and buffer of `theirs` into `ours`; return `ours`.

    Tensors are paired by name when both state_dicts use the same names, else by position;
    every pair must have the same shape. `convert`, if given, maps theirs's state_dict to
    ours's names first (for a network that splits or merges tensors, e.g. one fused attention
    projection into three). If `ours` was built on the meta device (structure only, no memory)
    it takes theirs's tensors themselves instead of copies.
    """
    source = theirs.state_dict()
    if convert is not None:
        source = convert(source)
    target = ours.state_dict()
    renamed = _pair(target, source)
    on_meta = any(t.is_meta for t in target.values())
    ours.load_state_dict(renamed, strict=True, assign=on_meta)
    return ours


def _flatten(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _flatten(item)]
    raise TypeError(f"can only compare tensors or tuples of tensors, not {type(out).__name__}")


def _run(model: nn.Module, x: torch.Tensor, training: bool, seed: int):
    with train_mode(model, training):
        torch.manual_seed(seed)  # dropout / drop-path draw the same numbers in both networks
        return model(x)


@torch.no_grad()
def assert_same_outputs(ours: nn.Module, theirs: nn.Module, x: torch.Tensor, *,
                        training: bool = False, seed: int = 0) -> Comparison:
    """Run both networks on `x` (eval mode unless `training`) and require equal outputs.

    Equal means within the module's tolerance: max |ours − theirs| ≤ RTOL · max(1, max
    |theirs|). In training mode the random generator is reseeded with `seed` before each
    forward pass, so dropout and stochastic depth drop the same units in both networks; the
    networks' train/eval flags are restored afterwards.
    """
    mine, reference = _run(ours, x, training, seed), _run(theirs, x, training, seed)
    a, b = _flatten(mine), _flatten(reference)
    if len(a) != len(b):
        raise NetworkMismatch(f"ours returns {len(a)} tensors, theirs {len(b)}")
    worst, scale = 0.0, 0.0
    for i, (p, q) in enumerate(zip(a, b, strict=True)):
        if p.shape != q.shape:
            where = f" (output {i})" if len(a) > 1 else ""
            raise NetworkMismatch(f"output shapes differ{where}: ours {_shape(p)} vs theirs "
                                  f"{_shape(q)}")
        if q.numel():
            worst = max(worst, (p.float() - q.float()).abs().max().item())
            scale = max(scale, q.float().abs().max().item())
    allowed = RTOL * max(1.0, scale)
    if not worst <= allowed:  # also catches NaN
        raise NetworkMismatch(f"outputs differ: max |ours − theirs| = {worst:.3g}, allowed "
                              f"{allowed:.3g} = {RTOL:g} × max(1, max |theirs| = {scale:.3g})")
    return Comparison(worst, scale, mine)


def assert_same_network(ours: nn.Module, theirs: nn.Module, x: torch.Tensor | tuple[int, ...],
                        *, seed: int = 0,
                        convert: Callable[[StateDict], StateDict] | None = None) -> Comparison:
    """The full proof: equal parameter counts, randomize_(theirs), copy_weights_(ours, theirs),
    equal eval-mode outputs on `x` (a tensor, or a shape for a seeded random input).

    `theirs` is modified (its constants randomised); `ours` ends up holding theirs's weights.
    """
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    if n_ours != n_theirs:
        raise NetworkMismatch(f"parameter counts differ: ours {n_ours:,} vs theirs "
                              f"{n_theirs:,} ({n_ours - n_theirs:+,})")
    if not isinstance(x, torch.Tensor):
        x = torch.randn(tuple(x), generator=torch.Generator().manual_seed(seed))
    randomize_(theirs, seed, input_shape=tuple(x.shape))
    copy_weights_(ours, theirs, convert)
    result = assert_same_outputs(ours, theirs, x, seed=seed)
    return Comparison(result.max_abs_diff, result.scale, result.outputs, n_ours)
