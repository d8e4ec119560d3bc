"""Exercise 2 (lesson 03, custom BasicBlock): SmallResNet and count_parameters."""

from __future__ import annotations

import copy
import inspect
import numbers

import torch
from torch import nn

from . import _tensors
from ._behaviour import Subject
from ._calls import call, expect_class, expect_function, fail, n
from ._cheating import Watch, course_helper, reject_course_helper, reject_reference
from ._registry import grading, register
from ._structure import build, check_all_used, residual_blocks, run_classifier
from .basic_block import verify_block

SMALL = ("class SmallResNet(nn.Module) with __init__(self, in_channels=1, num_classes=10): "
         "4 BasicBlocks, 1×28×28 images → num_classes logits")
COUNT = "def count_parameters(model) -> int"


def _stride(h_in: int, h_out: int) -> int | None:
    return next((s for s in (1, 2, 3, 4) if (h_in - 1) // s + 1 == h_out), None)


@register("ex2_small_resnet", "SmallResNet(in_channels=1, num_classes=10)")
def check_small_resnet(obj: object) -> str:
    expect_class(obj, "SmallResNet", SMALL)
    reject_reference(obj, "SmallResNet")
    g = _tensors.generator(0)
    for kwargs, channels, classes in (({}, 1, 10), ({"in_channels": 3, "num_classes": 5}, 3, 5)):
        model = build(obj, "SmallResNet", hint=f"Expected: {SMALL}.", **kwargs)
        reject_reference(model, "SmallResNet")
        ctor = "SmallResNet(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
        x = torch.randn((2, channels, 28, 28), generator=g)
        what = f"{ctor}(x) with x of shape (2, {channels}, 28, 28)"
        run_classifier(model, x, classes, what, "SmallResNet")
        blocks = residual_blocks(model, x)
        if len(blocks) != 4:
            found = ", ".join(f"`{b.name}`" for b in blocks) or "none"
            fail(f"{ctor} has {len(blocks)} residual blocks ({found}); Exercise 2 stacks exactly "
                 "4 BasicBlocks (each its own module, with a skip connection).")
        for block in blocks:
            b, cin, h, _ = tuple(block.x.shape)
            cout, h_out = block.out_shape[1], block.out_shape[2]
            stride = _stride(h, h_out)
            label = f"{ctor}'s block `{block.name}` ({cin} → {cout} channels, {h}×{h} → {h_out}×{h_out})"
            if stride is None or len(block.out_shape) != 4:
                fail(f"{label} doesn't keep or downsample the map like a BasicBlock.")
            subject = Subject(copy.deepcopy(block.module), block.x, f"{label}(x)")
            verify_block(subject, cin, cout, stride)
        if not kwargs:
            check_all_used(model, x, what)
    if grading():  # another channel count and number of classes, another batch size
        model = build(obj, "SmallResNet", hint=f"Expected: {SMALL}.", in_channels=3,
                      num_classes=7)
        x = torch.randn(5, 3, 28, 28, generator=torch.Generator().manual_seed(1))
        run_classifier(model, x, 7,
                       "SmallResNet(in_channels=3, num_classes=7)(x) with x of shape "
                       "(5, 3, 28, 28)", "SmallResNet")
    return ("✓ SmallResNet: 1×28×28 → (batch, 10) (and 3×28×28 → 5 classes) with exactly 4 "
            "residual blocks, each behaving like torchvision's BasicBlock.")


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


def _diagnose(model: nn.Module, value: int) -> str:
    all_params = _count(model, trainable_only=False)
    buffers = sum(torch.numel(b) for b in model.buffers())
    duplicated = sum(torch.numel(p) for _, p in model.named_parameters(remove_duplicate=False))
    tensors = sum(1 for p in model.parameters() if p.requires_grad)
    if value == all_params:
        return ("it counts frozen parameters too; count only trainable ones "
                "(`if p.requires_grad`)")
    if value in (all_params + buffers, _count(model) + buffers):
        return ("it counts buffers (BatchNorm's running statistics), which are not parameters "
                "— use model.parameters(), not state_dict()")
    if value == duplicated:
        return "it counts a shared weight twice; model.parameters() lists each tensor once"
    if value == tensors:
        return "it counts parameter tensors, not their elements (use p.numel())"
    return ""


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
                 "(e.g. sum(p.numel() for p in ...)).")
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            fail(f"count_parameters(model) for {label} returned {value!r}; expected an int.")
        if int(value) != expected:
            reason = _diagnose(model, int(value))
            fail(f"count_parameters(model) for {label} returned {n(int(value))}; expected "
                 f"{n(expected)} trainable parameters" + (f": {reason}." if reason else "."))
        if has_flag:
            expected_all = _count(model, trainable_only=False)
            value = call(f"count_parameters(model, trainable_only=False) for {label}", obj,
                         model, trainable_only=False)
            if value != expected_all:
                fail(f"count_parameters(model, trainable_only=False) for {label} returned "
                     f"{value!r}; expected {n(expected_all)} (all parameters, frozen ones too).")
    return ("✓ count_parameters is right on 4 models (frozen layers, buffers, shared weights)"
            + ("; trainable_only=False counts all." if has_flag else "."))
