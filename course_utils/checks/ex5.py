"""Exercise 5 (lesson 04, architecture evolution): three nets and their learning curves.

The three designs are partly the student's own: the notebook says what is required and what is
free (``LENET_SPEC``, ``VGG_SPEC``, ``RESNET_STYLE_SPEC``). The required parts are judged by
behaviour: for LeNetStyle and VGGStyle the checker wires the student's own conv and Linear
layers (their widths, kernels, padding) the way the design requires — an activation and the
design's pooling after each conv, flatten, activations between the Linear layers, nothing
after the last — and compares outputs with the same weights; a known mistake (no activation
at all, none between two given layers, a softmax on the logits, average instead of max
pooling, ...) is named when it reproduces the output. What behaviour cannot decide is checked
structurally: the number of conv layers, VGG's 3×3 kernels and padding, no BatchNorm. ResNetStyle
is judged like CifarResNet with free widths and stem (``_resnet_like``).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..train import History
from . import _nets as nets
from . import _resnet_like as resnet_like
from . import _tensors
from ._behaviour import Subject, probe
from ._calls import call, call_str, describe, expect_class, expect_function, fail
from ._cheating import Watch, course_helper, reject_course_helper, reject_reference
from ._registry import grading, register
from ._structure import build, bypassed_conv, conv_layers

SHAPE = "3×32×32 images → num_classes logits"
LENET_SPEC = ("exactly 2 conv layers, each followed by a nonlinearity (ReLU, or tanh / sigmoid "
              "as in 1998) and a pooling layer that at least halves the map (max or average); "
              "then flatten and at least 2 fully connected layers with a nonlinearity between "
              "them, the last one nn.Linear(…, num_classes); no BatchNorm, no skip connection; "
              "forward returns the last layer's output (logits). Free: channels, kernel sizes, "
              "padding, the hidden layers' widths.")
VGG_SPEC = ("exactly 4 conv layers, all 3×3 with padding 1, each followed by a ReLU, in two "
            "blocks of two, each block followed by 2×2 max-pooling (32×32 → 16×16 → 8×8); then "
            "flatten and one or more fully connected layers (ReLU between them, dropout "
            "allowed), the last one nn.Linear(…, num_classes); no BatchNorm, no skip connection; "
            "forward returns the last layer's output (logits). Free: channels, the hidden "
            "layers' widths, dropout.")
RESNET_STYLE_SPEC = ("a stem of one conv → BatchNorm → ReLU (optionally followed by pooling); "
                     "then exactly 4 residual blocks that behave like §1's ResidualBlock (conv-BN-"
                     "ReLU, conv-BN, + the input or its 1×1 conv + BN projection, ReLU), at least "
                     "one with stride 2; then global average pooling and one nn.Linear(…, "
                     "num_classes); forward returns its output (logits). Free: channels, which "
                     "blocks downsample, the stem's kernel and pooling.")


@dataclasses.dataclass
class _Design:
    name: str
    item: str
    spec: str
    convs: int
    min_fc: int
    acts: tuple[str, ...]
    pools: tuple[str, ...]
    kernel3: bool = False


LENET = _Design("LeNetStyle", "ex5_lenet_style", LENET_SPEC, 2, 2, ("relu", "tanh", "sigmoid"),
                ("max", "avg"))
VGG = _Design("VGGStyle", "ex5_vgg_style", VGG_SPEC, 4, 1, ("relu",), ("max",), kernel3=True)


def _configs() -> list[tuple[dict, int, int]]:
    """(constructor kwargs, num_classes, batch): the default, another num_classes (and, when
    grading, a third with another batch size)."""
    configs = [({}, 10, 2), ({"num_classes": 5}, 5, 2)]
    return configs + ([({"num_classes": 7}, 7, 3)] if grading() else [])


def _ctor(name: str, kwargs: dict) -> str:
    return call_str(name, **kwargs)


def _structure(model: nn.Module, ctor: str, design: _Design) -> None:
    layers = conv_layers(model)
    if len(layers) != design.convs:
        fail(f"{ctor} has {len(layers)} nn.Conv2d layers; the exercise's {design.name} has "
             f"{design.convs}.\nExpected: {design.spec}", mistake=f"{design.item}.conv_count")
    if design.kernel3:
        odd = [(n, m.kernel_size) for n, m in layers if tuple(m.kernel_size) != (3, 3)]
        if odd:
            fail(f"{design.name}: conv layer `{odd[0][0]}` has a {odd[0][1][0]}×{odd[0][1][1]} "
                 "kernel; VGG-style networks use only 3×3 convolutions.\nWhy it matters: two "
                 "stacked 3×3 convs see as far as one 5×5 with fewer parameters (2·9 vs 25 per "
                 "channel pair) and an extra nonlinearity — VGG's central idea.",
                 mistake=f"{design.item}.kernel_size")
        unpadded = [n for n, m in layers if m.padding not in ((1, 1), "same")]
        if unpadded:
            fail(f"{design.name}: conv layer `{unpadded[0]}` has no padding of 1 (padding="
                 f"{dict(layers)[unpadded[0]].padding}); VGG's 3×3 convs use padding=1.\nWhy it "
                 "matters: padding 1 keeps the map's size, so only the pooling layers shrink it "
                 "(32 → 16 → 8) and border pixels are seen as often as the others.",
                 mistake=f"{design.item}.padding")
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        fail(f"{ctor} has BatchNorm layers ({', '.join(f'`{n}`' for n in norms[:4])}); the "
             f"{design.name} step of the evolution has none.\nWhy it matters: BatchNorm came "
             "after LeNet and VGG (2015); this step shows what depth alone gives, and the "
             "comparison with the ResNet-style net (which has BatchNorm) depends on it.",
             mistake=f"{design.item}.batchnorm")


def _side(call_: nets.Call) -> int | None:
    shape = tuple(call_.input.shape) if call_.input is not None else ()
    return shape[2] if len(shape) == 4 else None


def _target(weighted: list[nets.Call], i: int) -> int | None:
    """The side of the map the layer after conv ``i`` receives (for a Linear layer: the side of
    the square map it flattens), or None if it is not square."""
    nxt = weighted[i + 1]
    if nxt.kind == "conv":
        return _side(nxt)
    channels = weighted[i].module.out_channels
    per_channel = nxt.module.in_features // channels
    side = round(per_channel ** 0.5)
    return side if side * side * channels == nxt.module.in_features else None


def _program(design: _Design, weighted: list[nets.Call], act: str, pool: str, act_first: bool,
             head: str = "avg", skip_act: frozenset[int] | set[int] = frozenset(),
             out: str | None = None) -> nets.Program:
    """The student's conv and Linear layers (their own shapes, strides, padding) wired as the
    design asks: an activation and the design's pooling after each conv (VGG: 2×2 after each
    block of two; LeNet: whatever halving the shapes show), flatten (after pooling the map
    further with ``head`` if the classifier takes a smaller map), Linear layers with an
    activation between them. ``skip_act``: indices of layers without their activation."""
    ops: list = []
    for i, c in enumerate(weighted):
        m = c.module
        last = i == len(weighted) - 1
        act_ops = [] if last or i in skip_act else [nets.Act(act)]
        if c.kind == "linear":
            ops += [nets.Linear(f"w{i}", m.in_features, m.out_features, None,
                                f"Linear layer {i + 1}"), *act_ops]
            continue
        pad = m.padding if isinstance(m.padding, str) else tuple(m.padding)
        ops.append(nets.Conv(f"w{i}", m.in_channels, m.out_channels, tuple(m.kernel_size),
                             tuple(m.stride), pad, None, f"conv layer {i + 1}",
                             tuple(m.dilation), m.groups))
        h = tuple(c.output.shape)[2] if c.output is not None else 0
        target = _target(weighted, i)
        pool_ops: list = []
        if design is VGG:
            if i % 2 == 1:
                pool_ops, h = [nets.Pool(pool, 2)], h // 2
        elif target and target < h and h % target == 0:
            pool_ops, h = [nets.Pool(pool, h // target)], target
        if weighted[i + 1].kind == "linear":
            if target and target < h:
                pool_ops.append(nets.Pool("adaptive" if head == "avg" else "adaptive_max",
                                          target))
            pool_ops.append(nets.Flatten())
        ops += (act_ops + pool_ops) if act_first else (pool_ops + act_ops)
    return (*ops, nets.Act(out)) if out else tuple(ops)


def _variants(design: _Design, weighted: list[nets.Call]) -> tuple[list, list]:
    accepted, mistakes = [], []
    convs = [i for i, c in enumerate(weighted) if c.kind == "conv"]
    fcs = [i for i, c in enumerate(weighted) if c.kind == "linear"]
    seen: set[nets.Program] = set()
    for act in design.acts:
        for pool in design.pools:
            for act_first in (True, False):
                for head in ("avg", "max"):
                    program = _program(design, weighted, act, pool, act_first, head)
                    if program in seen:  # e.g. no head pooling: the head's kind changes nothing
                        continue
                    seen.add(program)
                    key = f"{act}_{pool}_{'act_first' if act_first else 'pool_first'}_{head}"
                    accepted.append(nets.variant(key, program))
                    accepted.append(nets.variant("log_softmax_" + key,
                                                 nets.with_output(program, "log_softmax")))
    for pool in design.pools:
        def wired(**kw: object) -> nets.Program:
            return _program(design, weighted, "relu", pool, True, **kw)  # noqa: B023

        mistakes += [
            nets.mistake("softmax_output", wired(out="softmax")),
            nets.mistake("relu_on_logits", wired(out="relu")),
            nets.mistake("no_relu_pooled", wired(skip_act=set(range(len(weighted))))),
            nets.mistake("no_conv_relu", wired(skip_act=set(convs))),
        ]
        if len(fcs) > 1:
            mistakes.append(nets.mistake("no_fc_relu", wired(skip_act=set(fcs))))
        for i in range(len(weighted) - 1):
            mistakes.append(nets.mistake("missing_relu", wired(skip_act={i}), a=f"{{w{i}}}",
                                         b=f"{{w{i + 1}}}"))
    if design.pools == ("max",):
        mistakes.append(nets.variant(
            "avg_pooling", _program(design, weighted, "relu", "avg", True),
            "it pools with average pooling instead of max-pooling", "VGG's blocks end with "
            "2×2 max-pooling, which keeps the strongest response of each window."))
    return accepted, mistakes


def _layout(design: _Design, weighted: list[nets.Call], ctor: str) -> None:
    kinds = [c.kind for c in weighted]
    if "linear" not in kinds or kinds.index("linear") != design.convs or kinds[-1] != "linear":
        fail(f"{ctor} runs its layers in the order {', '.join(c.label() for c in weighted)}: "
             "the conv layers must come first, then the fully connected classifier.\n"
             f"Expected: {design.spec}", mistake=f"{design.item}.layer_order")
    fcs = kinds.count("linear")
    if fcs < design.min_fc:
        fail(f"{ctor} has {fcs} fully connected layer; LeNet's classifier has several (LeNet-5: "
             "120 → 84 → 10 units) with a nonlinearity between them.\n"
             f"Expected: {design.spec}", mistake=f"{design.item}.fc_layers")
    sides = [_side(c) for c in weighted if c.kind == "conv"]
    outs = [tuple(c.output.shape)[2] for c in weighted if c.kind == "conv"]
    first_fc = weighted[design.convs].module
    area = first_fc.in_features // weighted[design.convs - 1].module.out_channels
    after = [sides[i + 1] for i in range(len(sides) - 1)] + [round(area ** 0.5)]
    if design is VGG:
        if sides[:4] != [32, 32, 16, 16] or after[-1] not in (8, 4, 2, 1) or after[1] != 16:
            seen = ", ".join(f"{s}×{s}" for s in sides)
            fail(f"{ctor}'s conv layers receive maps of {seen}; VGG-style blocks are two 3×3 "
                 "convs followed by 2×2 max-pooling, so they receive 32×32, 32×32, 16×16, 16×16 "
                 "and the classifier an 8×8 map.\nWhy it matters: pooling after each block of "
                 "two (not after every conv, not only at the end) is VGG's recipe: the convs of "
                 "a block work at one resolution, then the map halves and the next block "
                 f"sees twice as far.\nExpected: {design.spec}",
                 mistake=f"{design.item}.pooling")
        return
    for i, (h_out, h_next) in enumerate(zip(outs, after, strict=True)):
        if h_next >= h_out:
            fail(f"{ctor}'s conv layer {weighted[i].label()} is not followed by pooling: it "
                 f"outputs {h_out}×{h_out} and the next layer receives {h_next}×{h_next}.\n"
                 "Why it matters: LeNet subsamples after each convolution (a 2×2 pooling "
                 "halves the map), so the next layer sees a larger part of the image and the "
                 f"classifier gets a small map.\nExpected: {design.spec}",
                 mistake=f"{design.item}.no_pooling")


def _verify_design(obj: object, design: _Design, kwargs: dict, classes: int, batch: int,
                   seed: int) -> list[str]:
    signature = f"class {design.name}(nn.Module) with __init__(self, num_classes=10), {SHAPE}"
    ctor = _ctor(design.name, kwargs)
    model = build(obj, design.name, hint=f"Expected: {signature}.", **kwargs)
    reject_reference(model, design.name)
    _structure(model, ctor, design)
    x = torch.randn((batch, 3, 32, 32), generator=_tensors.generator(seed))
    subject = Subject(model, x, f"{ctor}(x)")
    out = probe(subject, None, cheat_name=design.name)
    nets.check_logits(out, subject, design.name, design.item, classes)
    skipped = bypassed_conv(model, x)
    if skipped is not None:
        fail(f"{ctor} has a skip connection around `{skipped}`: with that layer zeroed the "
             "output still depends on the input.\nWhy it matters: skip connections are the "
             "ResNet step of the evolution; the LeNet and VGG steps have none, so that the "
             "comparison shows what they add.", mistake=f"{design.item}.skip_connection")
    weighted = nets.weighted(nets.trace(model.eval(), x))
    _layout(design, weighted, ctor)
    accepted, mistakes = _variants(design, weighted)
    subject.x = torch.clone(x)
    verdict = nets.compare_net(subject, accepted, mistakes)
    if verdict.match is None or verdict.match.variant.key not in {v.key for v in accepted}:
        nets.fail_net(subject, verdict, design.item, design.name, design.spec, count=False)
    nets.unused_layers(subject, verdict.match, design.name, design.item)
    return nets.output_note(verdict.match)


def _design_check(obj: object, design: _Design) -> str:
    signature = f"class {design.name}(nn.Module) with __init__(self, num_classes=10), {SHAPE}"
    expect_class(obj, design.name, signature)
    reject_reference(obj, design.name)
    notes: list[str] = []
    for seed, (kwargs, classes, batch) in enumerate(_configs()):
        notes = notes or _verify_design(obj, design, kwargs, classes, batch, seed)
    what = {"LeNetStyle": "2 conv layers each followed by a nonlinearity and pooling, then "
                          "fully connected layers with nonlinearities between them",
            "VGGStyle": "two blocks of two 3×3 conv + ReLU layers, each followed by 2×2 "
                        "max-pooling, then the fully connected classifier"}[design.name]
    return "\n".join([f"✓ {design.name}: {what} → logits (checked with num_classes 10 and 5, "
                      "in train and eval mode); no BatchNorm, no skip connection.", *notes])


@register("ex5_lenet_style", "LeNetStyle(num_classes=10)")
def check_lenet(obj: object) -> str:
    return _design_check(obj, LENET)


@register("ex5_vgg_style", "VGGStyle(num_classes=10)")
def check_vgg(obj: object) -> str:
    return _design_check(obj, VGG)


def resnet_style_spec(classes: int) -> resnet_like.Spec:
    return resnet_like.Spec(
        "ResNetStyle", "ex5_resnet_style", 3, 32, classes, 4, None, RESNET_STYLE_SPEC,
        count_hint=(" The exercise's ResNet-style net has 4, each its own module with a skip "
                    "connection (e.g. §1's ResidualBlock)."), free_stem=True)


@register("ex5_resnet_style", "ResNetStyle(num_classes=10)")
def check_resnet(obj: object) -> str:
    signature = f"class ResNetStyle(nn.Module) with __init__(self, num_classes=10), {SHAPE}"
    expect_class(obj, "ResNetStyle", signature)
    reject_reference(obj, "ResNetStyle")
    notes: list[str] = []
    for seed, (kwargs, classes, batch) in enumerate(_configs()):
        model = build(obj, "ResNetStyle", hint=f"Expected: {signature}.", **kwargs)
        reject_reference(model, "ResNetStyle")
        x = torch.randn((batch, 3, 32, 32), generator=_tensors.generator(seed))
        notes = notes or resnet_like.verify(model, x, _ctor("ResNetStyle", kwargs),
                                            resnet_style_spec(classes))
    return "\n".join(["✓ ResNetStyle: conv-BN-ReLU stem, 4 residual blocks that behave like "
                      "§1's ResidualBlock (with downsampling), global average pooling and one "
                      "Linear layer → logits (checked with num_classes 10 and 5, in train and "
                      "eval mode).", *notes])


# --- plot_learning_curves -----------------------------------------------------------------------

PLOT = "def plot_learning_curves(histories) -> matplotlib.figure.Figure"
# Only when grading: two models (at least 4 lines), names the notebook never uses.
_HIDDEN_CURVES = {"A": ([1.0, 0.5], [0.3, 0.6]), "B": ([2.0, 1.5, 1.0], [0.1, 0.2, 0.4])}
_CURVES = {  # different lengths and values per model, so nothing can be hard-coded
    "LeNetStyle": ([2.10, 1.80, 1.62], [0.31, 0.38, 0.41]),
    "VGGStyle": ([2.20, 1.70, 1.40, 1.22], [0.29, 0.44, 0.52, 0.57]),
    "ResNetStyle": ([2.00, 1.50, 1.10, 0.90, 0.75], [0.40, 0.55, 0.63, 0.68, 0.71]),
}


def _history(name: str, loss: list[float], acc: list[float]) -> History:
    return History(name=name, train_loss=list(loss), test_acc=list(acc),
                   train_acc=[a - 0.02 for a in acc], test_loss=[v + 0.1 for v in loss],
                   seconds=[1.0] * len(loss))


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


def _is_axes(obj: object, figure_type: type) -> bool:
    """A matplotlib Axes, or (when grading) the kernel's description of one."""
    if hasattr(obj, "figure") and isinstance(obj.figure, figure_type):
        return True
    return str(getattr(obj, "type_name", "")).endswith(("Axes", "AxesSubplot"))


def _check_figure(fig: object, figure_type: type, curves: dict = _CURVES) -> str:
    what = "plot_learning_curves(histories)"
    if not isinstance(fig, figure_type):
        extra = ""
        if fig is None:
            extra = " Did you forget `return fig`?"
        elif _is_axes(fig, figure_type):
            extra = (" Return the Figure (e.g. `fig, axes = plt.subplots(1, 2)` ... `return fig`),"
                     " not an Axes.")
        fail(f"{what} returned {describe(fig)}; expected a matplotlib Figure.{extra}",
             mistake="ex5_plot.not_a_figure")
    lines = [(ax, line) for ax in fig.axes for line in ax.get_lines()]
    if not lines:
        fail(f"{what} returned a Figure with no lines; plot one train-loss and one test-accuracy"
             " curve per model.", mistake="ex5_plot.no_lines")
    all_lines = [line for _, line in lines]
    axes_of = {id(line): ax for ax, line in lines}
    for name, (loss, acc) in curves.items():
        for kind, values, percent_ok, word in (("training loss", loss, False, "loss"),
                                               ("test accuracy", acc, True, "acc")):
            found = _find(all_lines, values, percent_ok)
            if not found:
                fail(f"{what}: no line shows {name}'s {kind} ({values}); plot "
                     f"history.{'train_loss' if word == 'loss' else 'test_acc'} for every model.",
                     mistake=f"ex5_plot.missing_{'loss' if word == 'loss' else 'accuracy'}")
            labelled = [line for line in found if name.lower() in str(line.get_label()).lower()]
            if not labelled:
                fail(f"{what}: the line with {name}'s {kind} is labelled "
                     f"{found[0].get_label()!r}; label every line with its model's name "
                     f"(plot(..., label=name)) so the legend tells them apart.",
                     mistake="ex5_plot.unlabelled")
            ax = axes_of[id(labelled[0])]
            if word not in _axes_text(ax):
                fail(f"{what}: the axes showing {kind} have no title or y-label mentioning "
                     f"'{word}' (e.g. ax.set_ylabel('{kind}')).", mistake="ex5_plot.no_axis_label")
            if ax.get_legend() is None and not fig.legends:
                fail(f"{what}: the axes showing {kind} have no legend; call ax.legend().",
                     mistake="ex5_plot.no_legend")
    return ("✓ plot_learning_curves: each model's training loss and test accuracy, equal to the "
            "histories and labelled by model name.")


