"""Exercise 2 (lesson 03, custom BasicBlock): SmallResNet and count_parameters.

SmallResNet is the notebook's exact network (``SMALL_SPEC``), judged like CifarResNet
(``_resnet_like``: every block against the BasicBlock reference, the layout from the shapes,
the whole network against the specification with the same random weights). count_parameters
is compared with the true count on small models built to tell the common wrong counts apart
(frozen layers, buffers, a shared weight, nesting for a sum over ``model.modules()``,
biases for a weights-only count); the wrong count a student's function reproduces is named.
"""

from __future__ import annotations

import copy
import inspect
import numbers

import torch
from torch import nn

from . import _resnet_like as resnet_like
from . import _tensors
from ._calls import call, call_str, expect_class, expect_function, fail, n
from ._cheating import Watch, course_helper, reject_course_helper, reject_reference
from ._registry import grading, register
from ._structure import build

SMALL = ("class SmallResNet(nn.Module) with __init__(self, in_channels=1, num_classes=10): "
         "4 BasicBlocks, 1×28×28 images → num_classes logits")
COUNT = "def count_parameters(model) -> int"
SMALL_SPEC = ("a stem of one 3×3 conv in_channels → 16 (stride 1, padding 1, no bias) → "
              "BatchNorm → ReLU, no pooling; then exactly four of your BasicBlocks: 16 → 16, "
              "16 → 32 with stride 2, 32 → 64 with stride 2, 64 → 64 (28×28 → 14×14 → 7×7); then "
              "global average pooling and nn.Linear(64, num_classes); forward returns these "
              "logits.")
BLOCKS = [(16, 16, 1), (16, 32, 2), (32, 64, 2), (64, 64, 1)]


def small_spec(in_channels: int, num_classes: int) -> resnet_like.Spec:
    return resnet_like.Spec("SmallResNet", "ex2_small_resnet", in_channels, 28, num_classes, 4,
                            BLOCKS, SMALL_SPEC,
                            count_hint=" (Exercise 2 stacks exactly 4 BasicBlocks, each its own "
                                       "module with a skip connection)")


@register("ex2_small_resnet", "SmallResNet(in_channels=1, num_classes=10)")
def check_small_resnet(obj: object) -> str:
    expect_class(obj, "SmallResNet", SMALL)
    reject_reference(obj, "SmallResNet")
    configs = [({}, 1, 10, 2), ({"in_channels": 3, "num_classes": 5}, 3, 5, 2)]
    if grading():  # another channel count and number of classes, another batch size
        configs.append(({"in_channels": 3, "num_classes": 7}, 3, 7, 5))
    notes: list[str] = []
    g = _tensors.generator(0)
    for kwargs, channels, classes, batch in configs:
        model = build(obj, "SmallResNet", hint=f"Expected: {SMALL}.", **kwargs)
        reject_reference(model, "SmallResNet")
        ctor = call_str("SmallResNet", **kwargs)
        x = torch.randn((batch, channels, 28, 28), generator=g)
        notes = notes or resnet_like.verify(model, x, ctor, small_spec(channels, classes))
    line = ("✓ SmallResNet is the specified network (3×3 stem to 16 channels, BasicBlocks 16, "
            "32↓, 64↓, 64, global average pooling, Linear → logits) for 1×28×28 → 10 classes and "
            "3×28×28 → 5 classes, in train and eval mode; every block behaves like "
            "torchvision's BasicBlock.")
    return "\n".join([line, *notes])


# --- count_parameters -------------------------------------------------------------------------


class _Tied(nn.Module):
    """Two layers sharing one weight: parameters() lists it once."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(12, 12)
        self.decode = nn.Linear(12, 12)
        self.decode.weight = self.encode.weight


def _models() -> list[tuple[str, nn.Module]]:
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
                        nn.Linear(16 * 30 * 30, 10))
    frozen = copy.deepcopy(cnn)
    for p in frozen[0].parameters():
        p.requires_grad_(False)
    models = [("a small CNN with BatchNorm", cnn),
              ("the same CNN with its conv layer frozen (requires_grad=False)", frozen),
              ("a model whose two Linear layers share one weight", _Tied()),
              ("nn.ReLU() (no parameters)", nn.ReLU())]
    if grading():
        tiny = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
        half = copy.deepcopy(tiny)
        half[0].requires_grad_(False)
        models += [("nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))", tiny),
                   ("the same model with its conv layer frozen", half)]
    return models


def _count(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(torch.numel(p) for p in model.parameters()
               if p.requires_grad or not trainable_only)


def _modules_sum(model: nn.Module) -> int:
    return sum(torch.numel(p) for m in model.modules() for p in m.parameters() if p.requires_grad)


def _weights_only(model: nn.Module) -> int:
    return sum(torch.numel(p) for name, p in model.named_parameters()
               if p.requires_grad and name.rsplit(".", 1)[-1] == "weight")


DIAGNOSES = {
    "modules_double_count": (
        "it counts parameters more than once: model.modules() yields the model itself and "
        "every submodule inside it, and m.parameters() already includes the parameters of the "
        "submodules, so each parameter is counted once for every module that contains it",
        "the count then depends on how deeply the layers are nested, not on the model: "
        "model.parameters() already walks every submodule and "
        "lists every parameter exactly once."),
    "weights_only": (
        "it counts only the weights: biases and BatchNorm's shifts (the parameters named "
        "`bias`) are trainable parameters too",
        "the optimizer updates every tensor of model.parameters() that requires a gradient, "
        "biases included; they are part of every parameter count in the course's tables."),
    "frozen_counted": (
        "it counts frozen parameters too; count only trainable ones (`if p.requires_grad`)",
        "fine-tuning (lesson 07) freezes layers, and the number that matters there is how many "
        "parameters the optimizer trains."),
    "buffers_counted": (
        "it counts buffers (BatchNorm's running statistics), which are not parameters: use "
        "model.parameters(), not state_dict()",
        "buffers are statistics the model keeps, not weights it learns; no optimizer updates "
        "them."),
    "shared_twice": (
        "it counts a shared weight twice; model.parameters() lists each tensor once",
        "two layers that share one weight tensor train one set of numbers."),
    "tensor_count": (
        "it counts parameter tensors, not their elements (use p.numel())",
        "a Conv2d's weight is one tensor of many numbers; the parameter count is the number "
        "of numbers."),
}


def _diagnose(model: nn.Module, value: int) -> str | None:
    """The key of the known mistake that gives ``value`` for ``model``, if one does."""
    all_params = _count(model, trainable_only=False)
    buffers = sum(torch.numel(b) for b in model.buffers())
    candidates = [
        ("frozen_counted", all_params),
        ("buffers_counted", all_params + buffers), ("buffers_counted", _count(model) + buffers),
        ("shared_twice", sum(torch.numel(p) for _, p in model.named_parameters(
            remove_duplicate=False) if p.requires_grad)),
        ("modules_double_count", _modules_sum(model)),
        ("modules_double_count", sum(torch.numel(p) for m in model.modules()
                                     for p in m.parameters())),
        ("weights_only", _weights_only(model)),
        ("tensor_count", sum(1 for p in model.parameters() if p.requires_grad)),
    ]
    return next((key for key, count in candidates if count == value), None)


@register("ex2_count_parameters", "count_parameters(model) -> int")
def check_count_parameters(obj: object) -> str:
    expect_function(obj, "count_parameters", COUNT)
    reject_course_helper(obj, "count_parameters", "profile")
    try:
        has_flag = "trainable_only" in inspect.signature(obj).parameters
    except (TypeError, ValueError):
        has_flag = False
    for label, model in _models():
        expected = _count(model)
        with Watch(also_forbid=(course_helper("profile"),)) as watch:
            value = call(f"count_parameters(model) for {label}", obj, model)
        watch.reject("count_parameters")
        if isinstance(value, torch.Tensor):
            fail(f"count_parameters(model) for {label} returned a tensor; return a Python int "
                 "(e.g. sum(p.numel() for p in ...)).", mistake="ex2_count_parameters.not_int")
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            fail(f"count_parameters(model) for {label} returned {value!r}; expected an int.",
                 mistake="ex2_count_parameters.not_int")
        if int(value) != expected:
            key = _diagnose(model, int(value))
            head = (f"count_parameters(model) for {label} returned {n(int(value))}; expected "
                    f"{n(expected)} trainable parameters")
            if key is None:
                fail(head + ".", mistake="ex2_count_parameters.wrong_count")
            reason, why = DIAGNOSES[key]
            fail(f"{head}: {reason}.\nWhy it matters: {why}",
                 mistake=f"ex2_count_parameters.{key}")
        if has_flag:
            expected_all = _count(model, trainable_only=False)
            value = call(f"count_parameters(model, trainable_only=False) for {label}", obj,
                         model, trainable_only=False)
            if value != expected_all:
                fail(f"count_parameters(model, trainable_only=False) for {label} returned "
                     f"{value!r}; expected {n(expected_all)} (all parameters, frozen ones too).",
                     mistake="ex2_count_parameters.trainable_only_flag")
    return ("✓ count_parameters is right on 4 models (frozen layers, buffers, shared weights)"
            + ("; trainable_only=False counts all." if has_flag else "."))
