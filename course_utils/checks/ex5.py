"""Exercise 5 (lesson 04, architecture evolution): three nets and their learning curves."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from . import _tensors
from ._calls import call, describe, expect_class, expect_function, fail
from ._cheating import Watch, course_helper, reject_course_helper, reject_reference
from ._registry import grading, register
from ._structure import (
    build,
    bypassed_conv,
    check_all_used,
    conv_layers,
    residual_blocks,
    run_classifier,
)

SHAPE = "3×32×32 images → 10 logits"


def _plain_net(obj: object, name: str, convs: int, kernel3: bool) -> str:
    signature = f"class {name}(nn.Module) with __init__(self, num_classes=10), {SHAPE}"
    expect_class(obj, name, signature)
    reject_reference(obj, name)
    model = build(obj, name, hint=f"Expected: {signature}.")
    reject_reference(model, name)
    layers = conv_layers(model)
    if len(layers) != convs:
        fail(f"{name}() has {len(layers)} nn.Conv2d layers; the exercise's {name} has {convs}.")
    if kernel3:
        odd = [(n, m.kernel_size) for n, m in layers if tuple(m.kernel_size) != (3, 3)]
        if odd:
            fail(f"{name}: conv layer `{odd[0][0]}` has a {odd[0][1][0]}×{odd[0][1][1]} kernel; "
                 "VGG-style networks use only 3×3 convolutions (two 3×3 see as far as one "
                 "5×5 with fewer parameters).")
    x = torch.randn((2, 3, 32, 32), generator=_tensors.generator(0))
    what = f"{name}()(x) with x of shape (2, 3, 32, 32)"
    run_classifier(model, x, 10, what, name)
    skipped = bypassed_conv(model, x)
    if skipped is not None:
        fail(f"{name} has a skip connection around `{skipped}` (with that layer zeroed the "
             "output still depends on the input); this step of the evolution has none.")
    check_all_used(model, x, what)
    if grading():
        _hidden_num_classes(obj, name, signature)
        if kernel3 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
            fail(f"{name}() has nn.BatchNorm2d layers; the VGG-style step of the evolution has "
                 "none (BatchNorm came after VGG: this step shows what depth alone gives).")
    return f"✓ {name}: {SHAPE}, {convs} conv layers{' (all 3×3)' if kernel3 else ''}, no skip connection."


def _hidden_num_classes(obj: object, name: str, signature: str) -> None:
    """Grading only: another num_classes (7 for LeNetStyle, 5 for the others)."""
    classes = 7 if name == "LeNetStyle" else 5
    model = build(obj, name, num_classes=classes, hint=f"Expected: {signature}.")
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    run_classifier(model, x, classes, f"{name}(num_classes={classes})(x) with x of shape "
                   "(3, 3, 32, 32)", name)


@register("ex5_lenet_style", "LeNetStyle()")
def check_lenet(obj: object) -> str:
    return _plain_net(obj, "LeNetStyle", 2, kernel3=False)


@register("ex5_vgg_style", "VGGStyle()")
def check_vgg(obj: object) -> str:
    return _plain_net(obj, "VGGStyle", 4, kernel3=True)


@register("ex5_resnet_style", "ResNetStyle()")
def check_resnet(obj: object) -> str:
    signature = f"class ResNetStyle(nn.Module) with __init__(self, num_classes=10), {SHAPE}"
    expect_class(obj, "ResNetStyle", signature)
    reject_reference(obj, "ResNetStyle")
    model = build(obj, "ResNetStyle", hint=f"Expected: {signature}.")
    reject_reference(model, "ResNetStyle")
    x = torch.randn((2, 3, 32, 32), generator=_tensors.generator(0))
    what = "ResNetStyle()(x) with x of shape (2, 3, 32, 32)"
    run_classifier(model, x, 10, what, "ResNetStyle")
    blocks = residual_blocks(model, x)
    if len(blocks) != 4:
        found = ", ".join(f"`{b.name}`" for b in blocks) or "none"
        fail(f"ResNetStyle() has {len(blocks)} residual blocks ({found}); the exercise's "
             "ResNet-style net has 4 (each its own module with a skip connection, e.g. your "
             "BasicBlock).")
    check_all_used(model, x, what)
    if grading():
        _hidden_num_classes(obj, "ResNetStyle", signature)
    return f"✓ ResNetStyle: {SHAPE}, 4 residual blocks with skip connections."


# --- plot_learning_curves -----------------------------------------------------------------------

PLOT = "def plot_learning_curves(histories) -> matplotlib.figure.Figure"
# Only when grading: two models (at least 4 lines), names the notebook never uses.
_HIDDEN_CURVES = {"A": ([1.0, 0.5], [0.3, 0.6]), "B": ([2.0, 1.5, 1.0], [0.1, 0.2, 0.4])}
_CURVES = {  # different lengths and values per model, so nothing can be hard-coded
    "LeNetStyle": ([2.10, 1.80, 1.62], [0.31, 0.38, 0.41]),
    "VGGStyle": ([2.20, 1.70, 1.40, 1.22], [0.29, 0.44, 0.52, 0.57]),
    "ResNetStyle": ([2.00, 1.50, 1.10, 0.90, 0.75], [0.40, 0.55, 0.63, 0.68, 0.71]),
}


@dataclasses.dataclass
class _FallbackHistory:
    """Stand-in with course_utils.train.History's fields, if that module is unavailable."""
    name: str = ""
    train_loss: list = dataclasses.field(default_factory=list)
    train_acc: list = dataclasses.field(default_factory=list)
    test_loss: list = dataclasses.field(default_factory=list)
    test_acc: list = dataclasses.field(default_factory=list)
    seconds: list = dataclasses.field(default_factory=list)
    grad_norms: list = dataclasses.field(default_factory=list)


def _history(name: str, loss: list[float], acc: list[float]) -> object:
    try:
        from course_utils.train import History
    except ImportError:
        History = _FallbackHistory  # noqa: N806
    values = {"name": name, "train_loss": list(loss), "test_acc": list(acc),
              "train_acc": [a - 0.02 for a in acc], "test_loss": [v + 0.1 for v in loss],
              "seconds": [1.0] * len(loss), "grad_norms": []}
    if dataclasses.is_dataclass(History):
        values = {k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(History)}}
    return History(**values)


def _same(ys: list, expected: list[float], scale: float = 1.0) -> bool:
    try:
        return len(ys) == len(expected) and all(abs(float(y) - e * scale) <= 1e-6 * max(1, scale)
                                                for y, e in zip(ys, expected, strict=True))
    except (TypeError, ValueError):  # dates, strings, ...: not these curves
        return False


def _find(lines: list, expected: list[float], percent_ok: bool) -> list:
    scales = (1.0, 100.0) if percent_ok else (1.0,)
    return [line for line in lines for s in scales if _same(list(line.get_ydata()), expected, s)]


def _axes_text(ax) -> str:
    return " ".join([ax.get_title(), ax.get_ylabel(), ax.get_xlabel()]).lower()


@register("ex5_plot", "plot_learning_curves(histories) -> Figure")
def check_plot(obj: object) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    expect_function(obj, "plot_learning_curves", PLOT)
    reject_course_helper(obj, "plot_learning_curves", "plots")
    line = ""
    for curves in [_CURVES] + ([_HIDDEN_CURVES] if grading() else []):
        histories = {name: _history(name, *c) for name, c in curves.items()}
        before = set(plt.get_fignums())
        with Watch(also_forbid=(course_helper("plots"),)) as watch:
            fig = call(f"plot_learning_curves(histories) with {len(curves)} models", obj,
                       histories)
        try:
            watch.reject("plot_learning_curves")
            verdict = _check_figure(fig, Figure, curves)
            line = line or verdict  # the notebook's cases give the ✓ line
        finally:  # don't leave the checker's figures for the notebook to display
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
            if isinstance(fig, Figure):
                plt.close(fig)
    return line


def _check_figure(fig: object, figure_type: type, curves: dict = _CURVES) -> str:
    what = "plot_learning_curves(histories)"
    if not isinstance(fig, figure_type):
        extra = ""
        if fig is None:
            extra = " Did you forget `return fig`?"
        elif hasattr(fig, "figure") and isinstance(fig.figure, figure_type):
            extra = " Return the Figure (e.g. `fig, axes = plt.subplots(1, 2)` ... `return fig`), not an Axes."
        fail(f"{what} returned {describe(fig)}; expected a matplotlib Figure.{extra}")
    lines = [(ax, line) for ax in fig.axes for line in ax.get_lines()]
    if not lines:
        fail(f"{what} returned a Figure with no lines; plot one train-loss and one test-accuracy"
             " curve per model.")
    all_lines = [line for _, line in lines]
    axes_of = {id(line): ax for ax, line in lines}
    for name, (loss, acc) in curves.items():
        for kind, values, percent_ok, word in (("training loss", loss, False, "loss"),
                                               ("test accuracy", acc, True, "acc")):
            found = _find(all_lines, values, percent_ok)
            if not found:
                fail(f"{what}: no line shows {name}'s {kind} ({values}); plot "
                     f"history.{'train_loss' if word == 'loss' else 'test_acc'} for every model.")
            labelled = [line for line in found if name.lower() in str(line.get_label()).lower()]
            if not labelled:
                fail(f"{what}: the line with {name}'s {kind} is labelled "
                     f"{found[0].get_label()!r}; label every line with its model's name "
                     f"(plot(..., label=name)) so the legend tells them apart.")
            ax = axes_of[id(labelled[0])]
            if word not in _axes_text(ax):
                fail(f"{what}: the axes showing {kind} have no title or y-label mentioning "
                     f"'{word}' (e.g. ax.set_ylabel('{kind}')).")
            if ax.get_legend() is None and not fig.legends:
                fail(f"{what}: the axes showing {kind} have no legend; call ax.legend().")
    return ("✓ plot_learning_curves: each model's training loss and test accuracy, equal to the "
            "histories and labelled by model name.")


