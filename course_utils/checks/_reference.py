"""Functional references (and their known-wrong cousins), computed with plain torch.

Each function takes a params dict (see ``_weights.Params``), an input and the mode, plus
keyword switches that turn the correct computation into a common mistake. With the default
switches they equal, to float precision, torchvision's ``resnet.BasicBlock`` with a 1×1 conv
+ BatchNorm projection, ``ops.SqueezeExcitation`` and ``course_utils.models.CIFAR10Net``
(tests/test_checks_reference.py proves it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._weights import Params

BN_EPS = 1e-5


def conv(p: dict[str, Tensor], x: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    return torch.conv2d(x, p["weight"], p.get("bias"), (stride, stride), (padding, padding),
                       (1, 1), 1)


def bn(p: dict[str, Tensor], x: Tensor, training: bool) -> Tensor:
    # Clones: batch_norm updates running statistics in place in train mode.
    return torch.batch_norm(x, p["weight"], p["bias"], torch.clone(p["running_mean"]),
                           torch.clone(p["running_var"]), training, 0.1, BN_EPS, False)


def basic_block(p: Params, x: Tensor, training: bool, *, stride: int, shortcut: str | None,
                identity: str = "x", relu_before_add: bool = False, final_relu: bool = True,
                inner_relu: bool = True, stride_on_conv2: bool = False,
                relu_before_bn: bool = False, use_bn: bool = True) -> Tensor:
    """torchvision's BasicBlock; ``shortcut`` is None (identity), "bn" (1×1 conv + BN, the
    correct projection), "nobn" (1×1 conv only) or "3x3" (3×3 conv + BN); ``identity`` is
    "x" (correct), "conv1"/"bn1"/"relu1" (taken after that layer) or "none" (no skip)."""
    s1, s2 = (1, stride) if stride_on_conv2 else (stride, 1)
    norm = (lambda key, t: bn(p[key], t, training)) if use_bn else (lambda key, t: t)
    h = conv(p["conv1"], x, s1, 1)
    after_conv1 = h
    h = norm("bn1", torch.relu(h)) if relu_before_bn else norm("bn1", h)
    after_bn1 = h
    if inner_relu and not relu_before_bn:
        h = torch.relu(h)
    out = norm("bn2", conv(p["conv2"], h, s2, 1))
    if relu_before_add:
        out = torch.relu(out)
    if identity == "x":
        skip = x
        if shortcut in ("bn", "nobn"):
            skip = conv(p["down_conv"], x, stride, 0)
        elif shortcut == "3x3":
            skip = conv(p["down_conv"], x, stride, 1)
        if shortcut in ("bn", "3x3"):
            skip = bn(p["down_bn"], skip, training)
        out = torch.add(out, skip)
    elif identity != "none":
        out = torch.add(out, {"conv1": after_conv1, "bn1": after_bn1, "relu1": h}[identity])
    return torch.relu(out) if final_relu else out


def squeeze_excitation(p: Params, x: Tensor, training: bool = False, *, pool: str = "avg",
                       hidden_relu: bool = True, gate: str = "sigmoid",
                       combine: str = "mul") -> Tensor:
    """torchvision's SqueezeExcitation (fc1/fc2 are 1×1 convs with bias) and its mistakes."""
    b, c, h, w = tuple(x.shape)
    if pool == "avg":
        z = torch.mean(x, (2, 3), True)
    elif pool == "max":
        z = torch.amax(x, (2, 3), True)
    elif pool == "channels":  # averaged over channels, the h*w values used as "channels"
        z = torch.reshape(torch.mean(x, (1,), False), (b, h * w, 1, 1))
    elif pool == "batch":  # statistics shared by every image of the batch
        z = torch.Tensor.expand(torch.mean(x, (0, 2, 3), True), (b, c, 1, 1))
    else:
        raise ValueError(pool)
    s = conv(p["fc1"], z)
    if hidden_relu:
        s = torch.relu(s)
    s = conv(p["fc2"], s)
    if gate == "sigmoid":
        s = torch.sigmoid(s)
    elif gate == "softmax":
        s = torch.softmax(s, 1, None)
    elif gate == "tanh":
        s = torch.tanh(s)
    elif gate == "relu":
        s = torch.relu(s)
    elif gate == "hardsigmoid":
        s = F.hardsigmoid(s)
    elif gate != "none":
        raise ValueError(gate)
    if combine == "mul":
        return torch.mul(x, s)
    if combine == "add":
        return torch.add(x, s)
    if combine == "residual":  # x + x * s: a "residual" SE
        return torch.add(x, torch.mul(x, s))
    return s  # "gates"


def cifar10net(p: Params, x: Tensor, training: bool = False, *, se_at: str | None = None,
               se: dict | None = None) -> Tensor:
    """course_utils.models.CIFAR10Net (dropout off) with an SE block inserted at ``se_at``:
    "{layer}.{place}" with layer 1..3 and place "conv" (right after the conv), "bn" (after BN,
    before ReLU), "relu" (after BN+ReLU, before pooling) or "pool" (after pooling); None = no
    SE block."""
    def maybe_se(tag: str, t: Tensor) -> Tensor:
        if se_at == tag:
            return squeeze_excitation({"fc1": p["se_fc1"], "fc2": p["se_fc2"]}, t, training,
                                      **(se or {}))
        return t

    for layer in (1, 2, 3):
        x = maybe_se(f"{layer}.conv", conv(p[f"conv{layer}"], x, 1, 1))
        x = maybe_se(f"{layer}.bn", bn(p[f"bn{layer}"], x, training))
        x = maybe_se(f"{layer}.relu", torch.relu(x))
        x = maybe_se(f"{layer}.pool", torch.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False))
    x = torch.flatten(x, 1, -1)
    x = torch.relu(F.linear(x, p["fc1"]["weight"], p["fc1"]["bias"]))
    return F.linear(x, p["fc2"]["weight"], p["fc2"]["bias"])
