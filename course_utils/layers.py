"""Small layers that several lessons build networks from, written once.

Each is taught in the lesson that introduces it and imported afterwards. Graded exercises are
not here (a student could import the answer): the squeeze-and-excitation block (lesson 04) and
the residual BasicBlock (lesson 03) stay in the lessons; after lesson 04 the course uses
torchvision.ops.SqueezeExcitation, which is the same layer.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """k×k convolution (no bias: the BatchNorm after it has its own shift) → norm → activation.

    Same layers, order and padding as torchvision.ops.Conv2dNormActivation, so state_dicts
    line up: 0 conv, 1 norm, 2 activation. `act=None` leaves the activation out (a linear
    bottleneck).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU,
                 norm: type[nn.Module] = nn.BatchNorm2d):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                            padding=(kernel_size - 1) // 2, groups=groups, bias=False),
                  norm(out_channels)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch for a random subset of samples.

    In training each sample's branch is kept with probability 1 − p and then scaled by
    1 / (1 − p), so its expected value is unchanged; in eval mode the branch passes as it is.
    Draws the same random numbers as torchvision.ops.stochastic_depth(x, p, "row", training).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask


class StochasticDepth(nn.Module):
    """drop_path as a layer: StochasticDepth(p)(branch) in training, the identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
