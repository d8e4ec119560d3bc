"""Model size and cost: parameters, multiply-accumulates (MACs) and FLOPs (= 2 x MACs).

profile_model() counts exactly what the model computes, attention included: it runs one
forward pass under torch's FlopCounterMode with the fused attention fast paths switched off
(they hide their matrix products from the counter). thop, which the lessons also teach,
misses nn.MultiheadAttention entirely; thop_profile() runs it on a copy of the model so its
leftover buffers never reach yours.

Both work on models built on the meta device (`with torch.device("meta"): m = resnet152()`),
which holds shapes but no data: counting EfficientNet-B7 at 600 px then takes a second.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field

import torch
from torch import nn

from .eval_mode import eval_mode


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (only those with requires_grad, unless trainable_only=False)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module, not {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass(frozen=True)
class ModelProfile:
    params: int
    macs: int
    flops: int
    macs_by_module: dict[str, int] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return (f"{self.params / 1e6:,.2f} M params · {self.macs / 1e9:,.3f} GMACs "
                f"({self.flops / 1e9:,.3f} GFLOPs)")


def _input(model: nn.Module, input_size) -> torch.Tensor:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (1, 3, input_size, input_size)
    if isinstance(input_size, torch.Size):
        input_size = tuple(input_size)
    if (not isinstance(input_size, (tuple, list)) or len(input_size) not in (3, 4)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                       for d in input_size)):
        raise ValueError(f"input_size must be an int (square RGB image), (C, H, W) or "
                         f"(N, C, H, W) of positive ints, not {input_size!r}")
    if len(input_size) == 3:
        input_size = (1, *input_size)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return torch.randn(*input_size, device=device)


def profile_model(model: nn.Module, input_size=(1, 3, 224, 224)) -> ModelProfile:
    """Exact parameters, MACs and FLOPs of one forward pass at `input_size` (batch included).

    `input_size` may also be an int (square RGB image) or (C, H, W). MACs are per batch.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = _input(model, input_size)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    counter = FlopCounterMode(display=False)
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        with eval_mode(model), torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            model(x)
    except Exception as exc:
        raise RuntimeError(f"profile_model: the forward pass at input size {tuple(x.shape)} "
                           f"failed: {type(exc).__name__}: {exc}") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    flops = counter.get_total_flops()
    root = type(model).__name__
    by_module = {}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == root:  # direct children of the model
            by_module[parts[1]] = sum(ops.values()) // 2
    return ModelProfile(count_parameters(model, trainable_only=False), flops // 2, flops,
                        by_module)


def thop_profile(model: nn.Module, input_size=(1, 3, 224, 224)) -> tuple[int, int]:
    """(MACs, params) as thop.profile reports them, measured on a deep copy of `model`."""
    from thop import profile as thop_count

    clone = copy.deepcopy(model).eval()
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, params = thop_count(clone, inputs=(_input(clone, input_size),), verbose=False)
    return int(macs), int(params)


def compare_counters(model: nn.Module, input_size=(1, 3, 224, 224)) -> dict[str, int]:
    """The exact count next to thop's, for tables that show where thop goes wrong."""
    exact = profile_model(model, input_size)
    thop_macs, thop_params = thop_profile(model, input_size)
    return {"params": exact.params, "macs": exact.macs, "thop_params": thop_params,
            "thop_macs": thop_macs}
