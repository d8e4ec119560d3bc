"""Lesson 02 practice: ``vgg_num_params`` and ``vgg_conv_macs``, VGG's costs from its config.

A config is a list of channel counts (3×3 convolutions with padding 1) and ``"M"`` (2×2 max
pooling), as torchvision's ``torchvision.models.vgg.cfgs`` and the lesson's ``CONFIGS``. The
references are computed here by arithmetic; tests/test_checks_practice.py confirms them
against torchvision's VGG (parameters) and ``profile_model(make_layers(cfg))`` (MACs).
"""

from __future__ import annotations

from torchvision.models.vgg import cfgs as TORCHVISION_CFGS

from ._calls import call, expect_function, fail, n
from ._functions import expect_number, number_mistake, reject_names, same_number
from ._registry import grading, register

NUM_PARAMS = "def vgg_num_params(cfg, batch_norm=False, num_classes=1000) -> int"
CONV_MACS = "def vgg_conv_macs(cfg, input_size=224) -> int"
CFGS = {key: list(TORCHVISION_CFGS[key]) for key in "ABDE"}
SMALL_CFG = [16, 16, "M", 32, 32, "M", 64, 64, "M"]
BUILDERS = ("Conv2d", "Linear", "BatchNorm2d", "make_layers", "VGG", "vgg11",
            "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
            "get_model", "count_parameters", "profile_model", "thop_profile")


def num_params(cfg: list, batch_norm: bool = False, num_classes: int = 1000, *,
               conv_bias: bool = True, bn_per_channel: int = 2, fan_in: int = 512 * 7 * 7,
               head: bool = True, head_bias: bool = True, chain: bool = True) -> int:
    """Parameters of VGG(make_layers(cfg, batch_norm), num_classes); the keywords make the
    usual mistakes (for naming them)."""
    total, cin = 0, 3
    for v in cfg:
        if v == "M":
            continue
        total += v * cin * 9 + (v if conv_bias else 0)
        if batch_norm:
            total += bn_per_channel * v
        if chain:
            cin = v
    if head:
        for a, b in ((fan_in, 4096), (4096, 4096), (4096, num_classes)):
            total += a * b + (b if head_bias else 0)
    return total


def conv_macs(cfg: list, size: int, *, pool=lambda s: s // 2, chain: bool = True,
              bias: bool = False, factor: int = 1) -> float:
    """MACs of make_layers(cfg)'s convolutions on a 3×size×size image (keywords: mistakes)."""
    total, cin = 0, 3
    for v in cfg:
        if v == "M":
            size = pool(size)
            continue
        total += size * size * v * cin * 9 + (size * size * v if bias else 0)
        if chain:
            cin = v
    return total * factor


def _cfg_name(cfg: list) -> str:
    for key, value in CFGS.items():
        if value == list(cfg):
            return f'CONFIGS["{key}"]'
    return repr(list(cfg))


# (config, batch_norm, num_classes)
PARAMS_VISIBLE = ((CFGS["D"], False, 1000),)
PARAMS_HIDDEN = tuple((CFGS[key], bn, 1000) for key in "ABDE" for bn in (False, True)) + (
    (CFGS["D"], False, 10), ([64, "M", 512, "M"], True, 7))


def _params_mistakes(cfg: list, bn: bool, k: int) -> list[tuple[int, str]]:
    mistakes = [
        (num_params(cfg, bn, k, conv_bias=False), "the convolutions' biases are missing (one "
         "per output channel of every 3×3 conv)"),
        (num_params(cfg, bn, k, head_bias=False), "the classifier's biases are missing (every "
         "nn.Linear has one per output)"),
        (num_params(cfg, bn, k, fan_in=512), "the first classifier layer takes 512·7·7 = "
         "25,088 inputs (the adaptive pooling makes 7×7 maps), not 512"),
        (num_params(cfg, bn, k, head=False), "the classifier (512·7·7 → 4096 → 4096 → "
         "num_classes) is missing"),
        (num_params(cfg, bn, 1000), "num_classes is ignored: the last layer has num_classes "
         "outputs"),
        (num_params(cfg, bn, k, chain=False), "every conv must take the previous conv's "
         "channels as input (3 only for the first one)"),
    ]
    if bn:
        mistakes += [
            (num_params(cfg, bn, k, bn_per_channel=4), "BatchNorm's running mean and variance "
             "are buffers, not parameters: BatchNorm2d has 2 parameters per channel"),
            (num_params(cfg, bn, k, bn_per_channel=0), "batch_norm=True adds a BatchNorm2d "
             "after every conv, with 2 parameters (weight and bias) per channel"),
        ]
    return mistakes


@register("practice_vgg_num_params", "vgg_num_params(cfg, batch_norm=False, num_classes=1000) "
                                     "-> int")
def check_vgg_num_params(obj: object) -> str:
    expect_function(obj, "vgg_num_params", NUM_PARAMS)
    reject_names(obj, "vgg_num_params", BUILDERS,
                 "count the parameters by arithmetic from cfg; building the network's modules "
                 "is not allowed.")
    for cfg, bn, k in PARAMS_VISIBLE + (PARAMS_HIDDEN if grading() else ()):
        kwargs = {}
        if bn:
            kwargs["batch_norm"] = True
        if k != 1000:
            kwargs["num_classes"] = k
        shown = ", ".join([_cfg_name(cfg), *(f"{a}={b!r}" for a, b in kwargs.items())])
        what = f"vgg_num_params({shown})"
        value = expect_number(call(what, obj, list(cfg), **kwargs), what, "an int")
        expected = num_params(cfg, bn, k)
        if not same_number(value, expected):
            reason = number_mistake(value, _params_mistakes(cfg, bn, k))
            fail(f"{what} returned {value!r}; expected {n(expected)}"
                 + (f": {reason}." if reason else "."))
    return ("✓ vgg_num_params(CONFIGS['D']) = 138,357,544, VGG16's parameter count, computed "
            "from the config alone.")


# --- vgg_conv_macs --------------------------------------------------------------------------

MACS_VISIBLE = ((CFGS["A"], 32),)
MACS_HIDDEN = ((CFGS["D"], 64), (CFGS["E"], 48), ([16, "M", 32, 32, "M", 8, "M"], 37),
               (SMALL_CFG, 32))


def _macs_mistakes(cfg: list, size: int) -> list[tuple[float, str]]:
    return [
        (conv_macs(cfg, size, factor=2), "that is FLOPs (2 per multiply–accumulate); count MACs"),
        (conv_macs(cfg, size, pool=lambda s: (s + 1) // 2), "a 2×2 max pool on an odd size "
         "rounds down (size // 2), it does not round up"),
        (conv_macs(cfg, size, pool=lambda s: s / 2), "a 2×2 max pool on an odd size rounds "
         "down: use size // 2, not size / 2"),
        (conv_macs(cfg, size, pool=lambda s: s), "the max pools are ignored: each \"M\" halves "
         "the feature map's side"),
        (conv_macs(cfg, size, chain=False), "every conv must take the previous conv's channels "
         "as input (3 only for the first one)"),
        (conv_macs(cfg, size, bias=True), "the bias additions are not counted as MACs "
         "(profile_model counts the multiply–accumulates of the weights only)"),
    ]


@register("practice_vgg_conv_macs", "vgg_conv_macs(cfg, input_size=224) -> int")
def check_vgg_conv_macs(obj: object) -> str:
    expect_function(obj, "vgg_conv_macs", CONV_MACS)
    for cfg, size in MACS_VISIBLE + (MACS_HIDDEN if grading() else ()):
        what = f"vgg_conv_macs({_cfg_name(cfg)}, input_size={size})"
        value = expect_number(call(what, obj, list(cfg), input_size=size), what, "an int")
        expected = conv_macs(cfg, size)
        if not same_number(value, expected):
            reason = number_mistake(value, _macs_mistakes(cfg, size))
            fail(f"{what} returned {value!r}; expected {n(expected)}, what "
                 f"profile_model(make_layers(cfg), input_size=(1, 3, {size}, {size})).macs "
                 "reports" + (f": {reason}." if reason else "."))
    return ("✓ vgg_conv_macs(CONFIGS['A'], input_size=32) equals profile_model's count for "
            "make_layers(CONFIGS['A']) (" + n(conv_macs(CFGS["A"], 32)) + " MACs).")
