"""``check("se_block", SEBlock)``: the lesson-04 Squeeze-and-Excitation block.

Expected: ``class SEBlock(nn.Module)`` with ``__init__(self, channels, reduction=16)``:
global average pool, channels → channels // reduction → channels with a ReLU between and a
sigmoid gate, then the input scaled per channel. Judged against
``torchvision.ops.SqueezeExcitation(channels, channels // reduction)`` (ReLU, Sigmoid);
``nn.Linear`` or 1×1 ``nn.Conv2d`` excitation layers both fit.
"""

from __future__ import annotations

import torch

from . import _tensors
from ._behaviour import (
    Subject,
    bias_notes,
    check_gradient,
    compare_module,
    failure_message,
    mistake_id,
    probe,
)
from ._calls import UsageError, call, call_str, expect_class, fail, instance_of, n, shape_str
from ._cheating import reject_reference
from ._mistakes import se_params, se_variants
from ._registry import grading, register
from ._weights import count_params, units_of

# (channels, reduction, spatial size); reduction None = the default (16). 64 channels on 8×8
# lets "pooling over channels" (64 = 8·8 values) run and be recognised.
CONFIGS = ((64, 16, 8), (32, 4, 6), (48, 16, 5), (96, None, 4))
HIDDEN = ((32, 8, 5), (24, 4, 7))  # only when grading
BATCH = 3
SIGNATURE = "class SEBlock(nn.Module) with __init__(self, channels, reduction=16)"
FORWARD = ("s = mean of x over height and width (one value per channel); s = sigmoid(fc2(relu("
           "fc1(s)))) with fc1: channels → channels // reduction and fc2 back to channels; "
           "return x * s (s reshaped to (batch, channels, 1, 1)).")
REFERENCE = "torchvision's SqueezeExcitation"


def verify_se(subject: Subject, channels: int, reduction: int, seed: int = 0) -> list[str]:
    x_shape = tuple(subject.x.shape)
    out = probe(subject, None, cheat_name="SEBlock")
    variants = se_variants(channels, reduction, units_of(subject.module))
    verdict = compare_module(subject, variants, seed)
    found = verdict.match
    detail = f"{REFERENCE}({channels}, {channels // reduction})"
    expected_params = se_params(channels, reduction)
    if found is not None and found.variant.key == "correct" and tuple(out.shape) != x_shape:
        found = None
    if found is None and tuple(out.shape) != x_shape:
        fail(f"{subject.what} returned shape {shape_str(tuple(out.shape))}; expected "
             f"{shape_str(x_shape)} (the input's shape: SE rescales channels, it doesn't "
             "change the shape).")
    if found is None or found.variant.key != "correct":
        fail(failure_message(subject, verdict, REFERENCE, detail, expected_params,
                             f"Expected: {FORWARD}"),
             mistake=mistake_id("se_block", verdict))
    if found.unused:
        layers = ", ".join(f"`{u.name}` {u.layer_str()}" for u in found.unused)
        fail(f"{subject.call} computes what {REFERENCE} computes, but has layers its forward "
             f"never uses: {layers}. Expected {n(expected_params)} parameters like {detail}; "
             f"yours has {n(count_params(subject.module))}.")
    return bias_notes(found.notes, REFERENCE)


@register("se_block", "SEBlock(channels, reduction=16)", ("configs",))
def check_se_block(obj: object, configs: tuple = CONFIGS) -> str:
    if not configs or not all(
            isinstance(c, tuple | list) and len(c) in (2, 3) and isinstance(c[0], int)
            and (c[1] is None or (isinstance(c[1], int) and 0 < c[1] <= c[0])) for c in configs):
        raise UsageError("configs must be a list of (channels, reduction) or (channels, "
                         "reduction, size) tuples with reduction <= channels (None: the default),"
                         f" got {configs!r}")
    expect_class(obj, "SEBlock", SIGNATURE)
    reject_reference(obj, "SEBlock")
    g = _tensors.generator(0)
    notes: list[str] = []
    for config in tuple(configs) + (HIDDEN if grading() else ()):
        channels, reduction = config[0], config[1]
        size = config[2] if len(config) > 2 else 6
        args = (channels,) if reduction is None else (channels, reduction)
        ctor = call_str("SEBlock", *args)
        hint = f"Expected: {SIGNATURE}."
        module = call(ctor, obj, *args,
                      hint=lambda e, h=hint: h if isinstance(e, TypeError) else "")
        instance_of(module, ctor)
        reject_reference(module, "SEBlock")
        x = torch.randn((BATCH, channels, size, size), generator=g)
        subject = Subject(module, x, f"{ctor}(x)")
        subject_notes = verify_se(subject, channels, 16 if reduction is None else reduction)
        notes = notes or subject_notes  # the same remark in every configuration: say it once
        check_gradient(subject)
    line = (f"✓ SEBlock matches {REFERENCE} in {len(configs)} configurations (incl. the default "
            "reduction=16); gradients reach the input.")
    return "\n".join([line, *notes])
