"""Exercise 3 (lesson 04): CIFAR10NetSE = CIFAR10Net with an SE block on its second conv layer.

Judged by behaviour against the functional CIFAR10Net of ``_reference`` (equal to
``course_utils.models.CIFAR10Net``) with ``SqueezeExcitation(64, 4)`` inserted. Three
placements are accepted, all on the second conv layer's output once it is normalised: after
its BatchNorm (before the ReLU, as SE-ResNet does), after BN + ReLU, and after its pooling.
Right after the conv (before BatchNorm) or on another layer is named as a mistake.
"""

from __future__ import annotations

import functools

import torch

from . import _nets as nets
from . import _reference as ref
from . import _tensors
from ._behaviour import (
    TOLERANCE,
    Subject,
    Variant,
    Verdict,
    bias_notes,
    failure_message,
    match,
    mistake_id,
    probe,
)
from ._calls import expect_class, fail, n, shape_str
from ._cheating import reject_reference
from ._mistakes import NET_MISTAKES, SE_MISTAKES
from ._registry import grading, register
from ._structure import build, run_classifier
from ._weights import Slot, count_params, units_of

SIGNATURE = ("class CIFAR10NetSE(nn.Module): course_utils.models.CIFAR10Net with SEBlock(64) "
             "applied to the output of its second conv layer")
WIDTHS = {1: 32, 2: 64, 3: 128}
ORDINAL = {1: "first", 2: "second", 3: "third"}
REDUCTION = 16


def _slots(se_layer: int | None) -> tuple[Slot, ...]:
    slots = [
        Slot("conv1", "conv", (32, 3, 3, 3), None, "conv1"), Slot("bn1", "bn", (32,)),
        Slot("conv2", "conv", (64, 32, 3, 3), None, "conv2"), Slot("bn2", "bn", (64,)),
        Slot("conv3", "conv", (128, 64, 3, 3), None, "conv3"), Slot("bn3", "bn", (128,)),
        Slot("fc1", "linear", (256, 128 * 4 * 4), True, "the first Linear layer"),
        Slot("fc2", "linear", (10, 256), True, "the output layer"),
    ]
    if se_layer is not None:
        c = WIDTHS[se_layer]
        h = c // REDUCTION
        slots += [Slot("se_fc1", "conv", (h, c, 1, 1), True, f"the SE block's {c} → {h} layer"),
                  Slot("se_fc2", "conv", (c, h, 1, 1), True, f"the SE block's {h} → {c} layer")]
    return tuple(slots)


def _variant(key: str, se_at: str | None, mistake: str = "", why: str = "",
             se: dict | None = None, output: str | None = None) -> Variant:
    layer = int(se_at[0]) if se_at else None
    forward = functools.partial(ref.cifar10net, se_at=se_at, se=se)
    if output is not None:
        act = torch.softmax if output == "softmax_output" else None
        forward = functools.partial(_with_output, forward, act)
    return Variant(key, _slots(layer), forward, mistake, why)


def _with_output(forward, act, params, x, training):  # noqa: ANN001
    out = forward(params, x, training)
    return torch.relu(out) if act is None else torch.softmax(out, 1, None)


PLACES = {"after_relu": "2.relu", "after_pool": "2.pool", "after_bn": "2.bn"}


def variants(units: list) -> tuple[list[Variant], list[Variant]]:
    """(accepted placements, known mistakes)."""
    accepted = [_variant(key, tag) for key, tag in PLACES.items()]
    where = ("Exercise 3 puts it on the second conv layer's output (64 channels), after its "
             "BatchNorm (before or after the ReLU and the pooling).")
    mistakes = [_variant("before_bn", "2.conv", "the SE block sits between the second conv and "
                         "its BatchNorm", "the BatchNorm right after it re-normalises every "
                         "channel, partly undoing the SE scaling. " + where)]
    for layer in (1, 3):
        for place in ("relu", "pool", "bn", "conv"):
            mistakes.append(_variant(
                f"layer{layer}_{place}", f"{layer}.{place}",
                f"the SE block is on the {ORDINAL[layer]} conv layer's output "
                f"({WIDTHS[layer]} channels)", where))
    se_shaped = any(u.matrix[1:] == (64, 1, 1) for u in units if u.kind in ("conv", "linear"))
    mistakes.append(_variant(
        "no_se", None, "your SE block is never applied in forward" if se_shaped else
        "there is no SE block (no 64 → 4 → 64 excitation layers)", where))
    # The SE block's own mistakes (the se_block catalogue), at every accepted placement.
    for key, mistake, why, switches in SE_MISTAKES:
        for tag in PLACES.values():
            mistakes.append(_variant(f"se_{key}", tag, f"your SE block is wrong: {mistake}", why,
                                     switches))
    for key in ("softmax_output", "relu_on_logits"):
        text, why = NET_MISTAKES[key]
        for tag in PLACES.values():
            mistakes.append(_variant(key, tag, text, why, output=key))
    return accepted, mistakes


def _expected_params(units: list) -> int:
    """CIFAR10Net + SEBlock(64): conv biases (optional before BatchNorm) as the student chose."""
    slots = _slots(2)
    total = sum(s.nparams for s in slots)
    for slot in slots:
        if slot.kind == "conv" and slot.bias is None and any(
                u.kind == "conv" and u.shape == slot.shape and u.has_bias for u in units):
            total += slot.shape[0]
    return total


def _num_classes(obj: object, classes: int, batch: int) -> None:
    """CIFAR10NetSE(num_classes=k) gives k logits, like CIFAR10Net(num_classes=k)."""
    model = build(obj, "CIFAR10NetSE", num_classes=classes,
                  hint="Expected: CIFAR10NetSE(num_classes=10), like CIFAR10Net.").eval()
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ctor = f"CIFAR10NetSE(num_classes={classes})"
    out = run_classifier(model, x, None, f"{ctor}(x) in eval mode with x of shape "
                         f"{shape_str(tuple(x.shape))}", "CIFAR10NetSE")
    nets.check_logits(out, Subject(model, x, f"{ctor}(x)"), "CIFAR10NetSE", "ex3_se_net",
                      classes)


@register("ex3_se_net", "CIFAR10NetSE()")
def check_se_net(obj: object) -> str:
    expect_class(obj, "CIFAR10NetSE", SIGNATURE)
    reject_reference(obj, "CIFAR10NetSE")
    model = build(obj, "CIFAR10NetSE", hint=f"Expected: {SIGNATURE}.")
    reject_reference(model, "CIFAR10NetSE (its SE block)")
    x = torch.randn((4, 3, 32, 32), generator=_tensors.generator(0))
    subject = Subject(model, x, "CIFAR10NetSE()(x)")
    probe(subject, (4, 10), cheat_name="CIFAR10NetSE (its SE block)",
          shape_hint=lambda got, want: "One logit per class for each image.")
    accepted, mistakes = variants(units_of(model))
    diffs: dict[str, float] = {}
    found = None
    for i, variant in enumerate(accepted):
        found = match(subject, variant, seed=0, diffs=diffs if i == 0 else None)
        if found is not None:
            break
    expected = _expected_params(units_of(model))
    reference = "CIFAR10Net + SEBlock(64, reduction=16)"
    if found is None:
        for variant in mistakes:
            found = match(subject, variant, seed=1)
            if found is not None:
                break
        verdict = Verdict(accepted[0], found, {k: v for k, v in diffs.items() if v > TOLERANCE}
                          or diffs)
        fail(failure_message(subject, verdict, "CIFAR10Net with SE on its second conv layer",
                             reference, expected,
                             f"Expected: {SIGNATURE}; everything else exactly as CIFAR10Net.",
                             weights="the same random weights"),
             mistake=mistake_id("ex3_se_net", verdict))
    if found.unused:
        layers = ", ".join(f"`{u.name}` {u.layer_str()}" for u in found.unused)
        fail(f"CIFAR10NetSE behaves like CIFAR10Net + SE, but has layers its forward never uses: "
             f"{layers}. Expected {n(expected)} parameters like {reference}; yours has "
             f"{n(count_params(model))}.")
    _num_classes(obj, 5, 2)
    if grading():  # another number of classes and batch size
        _num_classes(obj, 7, 3)
    place = {"after_relu": "after BN + ReLU", "after_pool": "after pooling",
             "after_bn": "after BN, before ReLU"}[found.variant.key]
    notes = bias_notes(found.notes, "torchvision's SqueezeExcitation")
    return "\n".join([f"✓ CIFAR10NetSE behaves like CIFAR10Net + SEBlock(64) on the second conv "
                      f"layer's output ({place}), train and eval mode.", *notes])
