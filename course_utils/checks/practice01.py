"""Lesson 01 practice: ``conv2d_im2col`` (a convolution from unfold + matmul) and ``conv_cost``.

References are computed here: ``F.conv2d`` for the convolution; for the cost, the output size
formula and the counts ``nn.Conv2d`` and ``course_utils.profile.profile_model`` give (MACs of a
convolution = output pixels · out_channels · in_channels / groups · k², bias adds not counted;
tests/test_checks_practice.py confirms both against the real layers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._calls import call, call_str, describe, expect_function, fail, n, shape_str
from ._functions import (
    close,
    expect_number,
    expect_tensor,
    expect_value_error,
    first_match,
    max_diff,
    number_mistake,
    reject_names,
    same_number,
)
from ._registry import grading, register

IM2COL = "def conv2d_im2col(x, weight, bias=None, stride=1, padding=0) -> tensor"
COST = ("def conv_cost(in_channels, out_channels, kernel_size, input_size, stride=1, "
        "padding=0, groups=1, bias=True) -> {'output_size': int, 'params': int, 'macs': int}")
CONV_NAMES = ("conv1d", "conv2d", "conv3d", "Conv1d", "Conv2d", "Conv3d", "convolution",
              "_convolution", "_conv_forward", "conv_transpose2d", "LazyConv2d")

# (x shape, weight shape, with bias, stride, padding)
IM2COL_VISIBLE = (((2, 3, 8, 8), (4, 3, 3, 3), True, 1, 1),)
IM2COL_HIDDEN = (((1, 1, 5, 5), (1, 1, 3, 3), False, 1, 0),
                 ((3, 2, 7, 10), (5, 2, 3, 3), True, 2, 1),
                 ((2, 3, 9, 6), (2, 3, 3, 5), True, 1, 2),
                 ((1, 4, 11, 11), (6, 4, 5, 5), False, 3, 0))


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def _shape_problem(got: tuple, xs: tuple, ws: tuple, stride: int, padding: int) -> str:
    n_, _, h, w = xs
    cout, _, kh, kw = ws
    want = (n_, cout, _out_size(h, kh, stride, padding), _out_size(w, kw, stride, padding))
    if len(got) != 4:
        return f"expected 4 dimensions (N, C_out, H_out, W_out) = {shape_str(want)}"
    if got[0] != n_:
        return "the first dimension must stay the batch (one output per input image)"
    if got[1] != cout:
        return "the second dimension must be C_out (one channel per kernel)"
    if stride != 1 and got[2:] == (_out_size(h, kh, 1, padding), _out_size(w, kw, 1, padding)):
        return "that is the size for stride 1: pass stride to F.unfold and use it in H_out, W_out"
    if padding and got[2:] == (_out_size(h, kh, stride, 0), _out_size(w, kw, stride, 0)):
        return ("that is the size without padding: pass padding to F.unfold and use it in "
                "H_out, W_out")
    if kh != kw and got[2:] in ((_out_size(h, kh, stride, padding), _out_size(w, kh, stride,
                                                                              padding)),
                                (_out_size(h, kw, stride, padding), _out_size(w, kw, stride,
                                                                              padding))):
        return "kernels need not be square: H_out uses kh, W_out uses kw"
    if got[2:] == want[3:1:-1]:
        return "height and width are swapped"
    return f"expected {shape_str(want)}: H_out = (H + 2·padding − kh) // stride + 1, W_out with kw"


def _im2col_case(fn: object, case: tuple, g: torch.Generator) -> None:
    xs, ws, has_bias, stride, padding = case
    x, weight = torch.randn(xs, generator=g), torch.randn(ws, generator=g)
    bias = torch.randn(ws[0], generator=g) if has_bias else None
    want = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    b = "bias" if has_bias else "None"
    what = (f"conv2d_im2col(x, weight, {b}, stride={stride}, padding={padding}) with x of shape "
            f"{shape_str(xs)} and weight of shape {shape_str(ws)}")
    x_in, w_in = x.clone(), weight.clone()
    got = call(what, fn, x_in, w_in, None if bias is None else bias.clone(), stride=stride,
               padding=padding,
               hint="Hint: F.unfold(x, (kh, kw), stride=stride, padding=padding) (kh and kw may "
                    "differ) gives (N, "
                    "C_in·kh·kw, L); weight.reshape(C_out, -1) @ that gives (N, C_out, L); "
                    "reshape it to (N, C_out, H_out, W_out).")
    got = expect_tensor(got, what)
    if not torch.equal(x_in, x) or not torch.equal(w_in, weight):
        fail(f"{what} changed its input x or weight in place; it must only read them.")
    if tuple(got.shape) != tuple(want.shape):
        fail(f"{what} returned shape {shape_str(got.shape)}; "
             f"{_shape_problem(tuple(got.shape), xs, ws, stride, padding)}.")
    if close(got, want):
        return
    candidates = [
        (lambda: F.conv2d(x, weight.flip(-2, -1), bias, stride=stride, padding=padding),
         "that is a true convolution (kernel flipped); PyTorch's conv2d is a cross-correlation: "
         "multiply each patch by the kernel as it is"),
        (lambda: F.conv2d(x, weight, None, stride=stride, padding=padding),
         "the bias is missing: add bias.view(1, C_out, 1) (one value per output channel)"),
    ]
    reason = first_match(got, candidates)
    if reason is None and torch.allclose(got.flatten().sort().values.double(),
                                         want.flatten().sort().values.double(), rtol=1e-4,
                                         atol=1e-4):
        reason = ("the right numbers are in the wrong places: the product is (N, C_out, L) with "
                  "L running over output rows, then columns; reshape it to (N, C_out, H_out, "
                  "W_out) without permuting")
    fail(f"{what} differs from F.conv2d(x, weight, {b}, stride={stride}, padding={padding}) "
         f"(largest difference {max_diff(got, want):.3g})"
         + (f": {reason}." if reason else "."))


@register("practice_conv2d_im2col", "conv2d_im2col(x, weight, bias=None, stride=1, padding=0)")
def check_conv2d_im2col(obj: object) -> str:
    expect_function(obj, "conv2d_im2col", IM2COL)
    reject_names(obj, "conv2d_im2col", CONV_NAMES,
                 "the exercise is to build the convolution from F.unfold and a matrix product, "
                 "without F.conv2d, torch.conv2d or nn.Conv2d.")
    g = torch.Generator().manual_seed(1)
    cases = IM2COL_VISIBLE + (IM2COL_HIDDEN if grading() else ())
    for case in cases:
        _im2col_case(obj, case, g)
    return ("✓ conv2d_im2col equals F.conv2d (batch of 2, 3 → 4 channels, bias, padding 1), "
            "built without F.conv2d / nn.Conv2d.")


# --- conv_cost ------------------------------------------------------------------------------

# (in, out, kernel, input size, stride, padding, groups, bias)
COST_VISIBLE = ((3, 64, 11, 224, 4, 2, 1, True),)
COST_HIDDEN = ((64, 64, 3, 56, 1, 1, 1, True), (96, 256, 5, 27, 1, 2, 2, True),
               (32, 32, 3, 112, 2, 1, 32, False), (3, 64, 7, 224, 2, 3, 1, False),
               (16, 8, 1, 15, 2, 0, 4, True))
COST_INVALID = (
    (dict(in_channels=6, out_channels=8, kernel_size=3, input_size=8, groups=4),
     "6 input channels cannot be split into 4 groups (nn.Conv2d raises ValueError too)"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, input_size=8, groups=4),
     "6 output channels cannot be split into 4 groups (nn.Conv2d raises ValueError too)"),
    (dict(in_channels=3, out_channels=8, kernel_size=7, input_size=4),
     "a 7×7 kernel does not fit into a 4×4 input without padding"),
)


def cost(cin: int, cout: int, k: int, size: int, stride: int = 1, padding: int = 0,
         groups: int = 1, bias: bool = True) -> dict[str, int]:
    """What nn.Conv2d and profile_model give for one square image (the reference)."""
    out = _out_size(size, k, stride, padding)
    per_output = cin // groups * k * k
    return {"output_size": out, "params": cout * per_output + (cout if bias else 0),
            "macs": out * out * cout * per_output}


def _cost_mistakes(key: str, cin: int, cout: int, k: int, size: int, stride: int, padding: int,
                   groups: int, bias: bool) -> list[tuple[object, str]]:
    right = cost(cin, cout, k, size, stride, padding, groups, bias)
    out, per_output = right["output_size"], cin // groups * k * k
    if key == "output_size":
        return [((size + 2 * padding - k) / stride + 1,
                 "use floor division: (input_size + 2·padding − kernel_size) // stride + 1"),
                (_out_size(size, k, 1, padding), "the stride is missing from the formula"),
                (_out_size(size, k, stride, 0), "the padding is missing from the formula"),
                (_out_size(size, k, stride, padding) - 1, "it misses the + 1 of the formula"),
                ((size + padding - k) // stride + 1, "the padding is added on both sides (2·padding)")]
    if key == "params":
        full = cout * cin * k * k
        return [(full + (cout if bias else 0), "each kernel sees only in_channels / groups "
                 "input channels: divide in_channels by groups"),
                (cout * per_output + cout, "bias=False means the layer has no bias"),
                (cout * per_output, "with bias=True each output channel has one bias"),
                (cout * cin // groups * k + (cout if bias else 0),
                 "a kernel has kernel_size² weights per input channel, not kernel_size")]
    return [(2 * right["macs"], "that is FLOPs (2 per multiply–accumulate); count MACs"),
            (out * out * cout * cin * k * k, "each output sees only in_channels / groups input "
             "channels: divide in_channels by groups"),
            (right["macs"] + (out * out * cout if bias else 0),
             "the bias additions are not counted as MACs (profile_model counts the "
             "multiply–accumulates of the weights only)"),
            (size * size * cout * per_output, "use the output size, not the input size: one "
             "dot product per output pixel"),
            (cout * per_output, "that is the number of weights; every output pixel repeats "
             "those multiply–accumulates (multiply by output_size²)")]


def _cost_case(fn: object, case: tuple) -> None:
    cin, cout, k, size, stride, padding, groups, bias = case
    kwargs = {"stride": stride, "padding": padding}
    if groups != 1:
        kwargs["groups"] = groups
    if not bias:
        kwargs["bias"] = False
    what = call_str("conv_cost", cin, cout, k, size, **kwargs)
    value = call(what, fn, cin, cout, k, size, **kwargs)
    want = cost(cin, cout, k, size, stride, padding, groups, bias)
    if not isinstance(value, dict):
        fail(f"{what} returned {describe(value)}; return a dict "
             "{'output_size': ..., 'params': ..., 'macs': ...}.")
    missing = [key for key in want if key not in value]
    if missing:
        fail(f"{what} returned a dict without the key(s) {', '.join(map(repr, missing))}; "
             f"expected the keys 'output_size', 'params' and 'macs'.")
    for key, expected in want.items():
        got = expect_number(value[key], f"{what}['{key}']", "an int")
        if not same_number(got, expected):
            reason = number_mistake(got, _cost_mistakes(key, cin, cout, k, size, stride, padding,
                                                        groups, bias))
            fail(f"{what}['{key}'] is {got!r}; expected {n(expected)}"
                 + (f": {reason}." if reason else "."))


@register("practice_conv_cost", "conv_cost(in_channels, out_channels, kernel_size, input_size, "
                                "stride=1, padding=0, groups=1, bias=True) -> dict")
def check_conv_cost(obj: object) -> str:
    expect_function(obj, "conv_cost", COST)
    for case in COST_VISIBLE + (COST_HIDDEN if grading() else ()):
        _cost_case(obj, case)
    if grading():
        for kwargs, why in COST_INVALID:
            expect_value_error(call_str("conv_cost", **kwargs), obj, why=why, **kwargs)
    return ("✓ conv_cost(3, 64, 11, 224, stride=4, padding=2) gives AlexNet's first layer: "
            "output 55, 23,296 parameters, 70,276,800 MACs (as nn.Conv2d and profile_model).")
