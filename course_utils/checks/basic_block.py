"""``check("basic_block", BasicBlock)``: the lesson-03 residual block.

Expected: ``class BasicBlock(nn.Module)`` with ``__init__(self, in_channels, out_channels,
stride=1)`` (an extra ``downsample=None`` argument is fine) that builds its own projection
shortcut (1×1 conv with the stride + BatchNorm) when the stride or the channel count
changes. Judged against ``torchvision.models.resnet.BasicBlock`` with such a projection.
"""

from __future__ import annotations

import torch

from . import _tensors
from ._behaviour import (
    Match,
    Subject,
    bias_notes,
    check_gradient,
    compare_module,
    failure_message,
    mistake_id,
    probe,
)
from ._calls import UsageError, call, call_str, expect_class, fail, instance_of, n
from ._cheating import reject_reference
from ._mistakes import basic_block_params, basic_block_variants
from ._registry import grading, register
from ._weights import count_params

# (in_channels, out_channels, stride): same shape; more channels; both; stride only.
CONFIGS = ((64, 64, 1), (64, 128, 1), (64, 128, 2), (64, 64, 2))
BATCH, SIZE = 2, 8
# Only when grading, with (in, out, stride, size): odd sizes, whose strided output rounds up
# like a strided conv (7×7 → 4×4), and a small block that keeps its shape (identity shortcut).
HIDDEN = ((8, 16, 2, 7), (16, 16, 1, 5))
SIGNATURE = "class BasicBlock(nn.Module) with __init__(self, in_channels, out_channels, stride=1)"
FORWARD = ("out = relu(bn1(conv1(x))) with conv1 a 3×3 conv with the stride; out = "
           "bn2(conv2(out)) with a 3×3 conv; identity = x, or a 1×1 conv with the stride + "
           "BatchNorm applied to x when the stride or the channel count changes; "
           "return relu(out + identity).")


def reference_name(cin: int, cout: int, stride: int) -> str:
    if stride != 1 or cin != cout:
        return "torchvision's BasicBlock with a 1×1 projection shortcut"
    return f"torchvision's BasicBlock({cin}, {cout}) (identity shortcut)"


def _shape_hint(cout: int, stride: int, size: int):
    def hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
        if len(got) != 4:
            return ""
        if got[1] != cout:
            return "The block must output out_channels channels."
        if stride != 1 and got[2] == size:
            return "The stride isn't applied: the first 3×3 conv must use stride=stride."
        if stride != 1 and got[2] * stride == expected[2]:
            return "The stride is applied twice (only the first conv and the shortcut use it)."
        return ""
    return hint


def _crash_hint(cin: int, cout: int, stride: int):
    def hint(exc: BaseException) -> str:
        if (stride != 1 or cin != cout) and "must match the size" in str(exc):
            return ("Hint: the stride or the channel count changes here, so x must go through "
                    "the projection shortcut (1×1 conv with the stride + BatchNorm) before the "
                    "addition; build it in __init__ when stride != 1 or in_channels != "
                    "out_channels (even when no downsample is passed in).")
        if isinstance(exc, TypeError) and "argument" in str(exc):
            return f"Expected: {SIGNATURE}."
        return ""
    return hint


def verify_block(subject: Subject, cin: int, cout: int, stride: int, seed: int = 0) -> list[str]:
    """Fail unless ``subject`` behaves like torchvision's BasicBlock(cin, cout, stride); the
    notes (e.g. a redundant conv bias) otherwise."""
    return bias_notes(block_match(subject, cin, cout, stride, seed).notes,
                      "torchvision's BasicBlock")


def block_match(subject: Subject, cin: int, cout: int, stride: int, seed: int = 0) -> Match:
    """Fail unless ``subject`` behaves like torchvision's BasicBlock(cin, cout, stride); the
    match otherwise (which of the student's layers took which of the block's slots)."""
    b, _, h, w = tuple(subject.x.shape)
    expected = (b, cout, (h - 1) // stride + 1, (w - 1) // stride + 1)
    probe(subject, expected, _shape_hint(cout, stride, h), cheat_name="BasicBlock",
          crash_hint=_crash_hint(cin, cout, stride))
    verdict = compare_module(subject, basic_block_variants(cin, cout, stride), seed)
    reference = reference_name(cin, cout, stride)
    expected_params = basic_block_params(cin, cout, stride)
    found = verdict.match
    if found is None or found.variant.key != "correct":
        fail(failure_message(subject, verdict, "torchvision's BasicBlock", reference,
                             expected_params, f"Expected: {FORWARD}"),
             mistake=mistake_id("basic_block", verdict))
    if found.unused:
        layers = ", ".join(f"`{u.name}` {u.layer_str()}" for u in found.unused)
        hint = ""
        if stride == 1 and cin == cout:
            hint = (" Create the projection only when stride != 1 or in_channels != "
                    "out_channels; otherwise the shortcut is x itself.")
        fail(f"{subject.call} computes what torchvision's BasicBlock computes, but has layers "
             f"its forward never uses: {layers}. Expected {n(expected_params)} parameters like "
             f"{reference}; yours has {n(count_params(subject.module))}.{hint}")
    return found


@register("basic_block", "BasicBlock(in_channels, out_channels, stride=1)", ("configs",))
def check_basic_block(obj: object, configs: tuple[tuple[int, int, int], ...] = CONFIGS) -> str:
    if not configs or not all(isinstance(c, tuple | list) and len(c) == 3 and
                              all(isinstance(v, int) and v > 0 for v in c) for c in configs):
        raise UsageError("configs must be a list of (in_channels, out_channels, stride) tuples "
                         f"of positive ints, got {configs!r}")
    expect_class(obj, "BasicBlock", SIGNATURE)
    reject_reference(obj, "BasicBlock")
    g = _tensors.generator(0)
    notes: list[str] = []
    cases = [(*config, SIZE) for config in configs] + list(HIDDEN if grading() else ())
    for cin, cout, stride, size in cases:
        ctor = call_str("BasicBlock", cin, cout, stride=stride)
        module = call(ctor, obj, cin, cout, stride=stride, hint=_crash_hint(cin, cout, stride))
        instance_of(module, ctor)
        reject_reference(module, "BasicBlock")
        x = torch.randn((BATCH, cin, size, size), generator=g)
        subject = Subject(module, x, f"{ctor}(x)")
        subject_notes = verify_block(subject, cin, cout, stride)
        notes = notes or subject_notes  # the same remark in every configuration: say it once
        check_gradient(subject)
    line = (f"✓ BasicBlock matches torchvision's BasicBlock (1×1 conv + BN projection) in "
            f"{len(configs)} configurations, train and eval mode; gradients reach the input.")
    return "\n".join([line, *notes])

