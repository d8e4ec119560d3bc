"""Functional references (and their known-wrong cousins), computed with the captured ops.

Each function takes a params dict (see ``_weights.Params``), an input and the mode, plus
keyword switches that turn the correct computation into a common mistake. With the default
switches they equal, to float precision, torchvision's ``resnet.BasicBlock`` with a 1×1 conv
+ BatchNorm projection, ``ops.SqueezeExcitation`` and ``course_utils.models.CIFAR10Net``
(tests/test_checks_reference.py proves it). They use ``_ops`` only, so nothing a notebook
rebinds in ``torch``/``torch.nn.functional`` changes them.
"""

from __future__ import annotations

from torch import Tensor

from . import _ops
from ._weights import Params

BN_EPS = 1e-5


def conv(p: dict[str, Tensor], x: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    return _ops.conv2d(x, p["weight"], p.get("bias"), (stride, stride), (padding, padding),
                       (1, 1), 1)


def bn(p: dict[str, Tensor], x: Tensor, training: bool) -> Tensor:
    # Clones: batch_norm updates running statistics in place in train mode.
    return _ops.batch_norm(x, p["weight"], p["bias"], _ops.clone(p["running_mean"]),
                           _ops.clone(p["running_var"]), training, 0.1, BN_EPS, False)


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
    h = norm("bn1", _ops.relu(h)) if relu_before_bn else norm("bn1", h)
    after_bn1 = h
    if inner_relu and not relu_before_bn:
        h = _ops.relu(h)
    out = norm("bn2", conv(p["conv2"], h, s2, 1))
    if relu_before_add:
        out = _ops.relu(out)
    if identity == "x":
        skip = x
        if shortcut in ("bn", "nobn"):
            skip = conv(p["down_conv"], x, stride, 0)
        elif shortcut == "3x3":
            skip = conv(p["down_conv"], x, stride, 1)
        if shortcut in ("bn", "3x3"):
            skip = bn(p["down_bn"], skip, training)
        out = _ops.add(out, skip)
    elif identity != "none":
        out = _ops.add(out, {"conv1": after_conv1, "bn1": after_bn1, "relu1": h}[identity])
    return _ops.relu(out) if final_relu else out


def squeeze_excitation(p: Params, x: Tensor, training: bool = False, *, pool: str = "avg",
                       hidden_relu: bool = True, gate: str = "sigmoid",
                       combine: str = "mul") -> Tensor:
    """torchvision's SqueezeExcitation (fc1/fc2 are 1×1 convs with bias) and its mistakes."""
    b, c, h, w = _ops.shape(x)
    if pool == "avg":
        z = _ops.mean(x, (2, 3), True)
    elif pool == "max":
        z = _ops.amax(x, (2, 3), True)
    elif pool == "channels":  # averaged over channels, the h*w values used as "channels"
        z = _ops.reshape(_ops.mean(x, (1,), False), (b, h * w, 1, 1))
    elif pool == "batch":  # statistics shared by every image of the batch
        z = _ops.expand(_ops.mean(x, (0, 2, 3), True), (b, c, 1, 1))
    else:
        raise ValueError(pool)
    s = conv(p["fc1"], z)
    if hidden_relu:
        s = _ops.relu(s)
    s = conv(p["fc2"], s)
    if gate == "sigmoid":
        s = _ops.sigmoid(s)
    elif gate == "softmax":
        s = _ops.softmax(s, 1, None)
    elif gate == "tanh":
        s = _ops.tanh(s)
    elif gate == "relu":
        s = _ops.relu(s)
    elif gate == "hardsigmoid":
        s = _ops.hardsigmoid(s)
    elif gate != "none":
        raise ValueError(gate)
    if combine == "mul":
        return _ops.mul(x, s)
    if combine == "add":
        return _ops.add(x, s)
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
        x = maybe_se(f"{layer}.relu", _ops.relu(x))
        x = maybe_se(f"{layer}.pool", _ops.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False))
    x = _ops.flatten(x, 1, -1)
    x = _ops.relu(_ops.linear(x, p["fc1"]["weight"], p["fc1"]["bias"]))
    return _ops.linear(x, p["fc2"]["weight"], p["fc2"]["bias"])
