"""The practice checks of lessons 01, 02, 06 and 07, and the hidden configurations of all checks.

Every graded test cell holds only ``check(...)`` lines (the judge runs them outside the
student's kernel); the extra cases that nbgrader's hidden tests used to hold now live in the
checks and run only when grading (``course_utils.checks._registry.grading()``). For each
practice check: the correct answer passes, realistic wrong answers fail with a message that
names the mistake (some only in the hidden cases), the references equal the real layers and
torchvision, and the same verdicts come back when the judge runs the check against a kernel.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys

import nbformat
import practice_corpus as ok
import pytest
import torch
import torch.nn.functional as F
import torchvision
from checks_corpus import SOLUTIONS as EXERCISES
from checks_corpus import plot_three_named_models
from notebook_tools import LESSONS, is_autograded_test, nbgrader_meta, solution_path
from torch import nn

from course_utils.checks import (
    REGISTRY,
    available_checks,
    check,
    judge,
    practice01,
    practice02,
    practice06,
    practice07,
)
from course_utils.checks._registry import GRADING
from course_utils.grading.judge import parse_checks
from course_utils.profile import count_parameters, profile_model


@contextlib.contextmanager
def grading():
    token = GRADING.set(True)
    try:
        yield
    finally:
        GRADING.reset(token)


def fails(name, obj, *phrases, hidden=False):
    """The check's message for ``obj`` (notebook, or grading when ``hidden``)."""
    with grading() if hidden else contextlib.nullcontext():
        passed, text, _ = judge(name, obj)
    assert not passed, f"{name} passed {obj}"
    for phrase in phrases:
        assert phrase in text, text
    return text


def passes_notebook_only(name, obj):
    """A mistake only the hidden cases catch: the notebook's check passes it."""
    assert judge(name, obj)[0], judge(name, obj)[1]


# --- every graded test cell is judgeable ------------------------------------------------------


def _graded_cells():
    for lesson in LESSONS:
        nb = nbformat.read(solution_path(lesson), as_version=4)
        for cell in nb.cells:
            if is_autograded_test(cell):
                yield lesson, nbgrader_meta(cell)["grade_id"], cell.source


GRADED = list(_graded_cells())


def test_every_lesson_has_graded_cells():
    assert {lesson for lesson, _, _ in GRADED} == set(LESSONS)
    assert len(GRADED) == 23


@pytest.mark.parametrize("lesson,grade_id,source", GRADED, ids=[g for _, g, _ in GRADED])
def test_graded_cell_holds_only_registered_checks(lesson, grade_id, source):
    calls = parse_checks(source)  # NotJudgeable if the cell holds anything else
    assert "HIDDEN TESTS" not in source
    for c in calls:
        assert c.item in REGISTRY, f"{grade_id}: check({c.item!r}, ...) is not registered"
        assert set(c.options) <= set(REGISTRY[c.item].options), c.options
        assert c.target is not None


def test_every_registered_check_is_used_by_a_notebook():
    used = {c.item for _, _, source in GRADED for c in parse_checks(source)}
    assert used == set(available_checks())


# --- correct answers, in the notebook and when grading ----------------------------------------


@pytest.mark.parametrize("name", sorted(ok.SOLUTIONS))
def test_correct_answer_passes(name, capsys):
    check(name, ok.SOLUTIONS[name])
    out = capsys.readouterr().out
    assert out.startswith("✓ ") and out.count("\n") == 1


SOLUTIONS = {**EXERCISES, **ok.SOLUTIONS}  # every check's correct answer


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_correct_answers_pass_the_hidden_cases_with_the_same_line(name):
    """The ✓ line does not depend on grading (the judge's verdict equals the notebook's)."""
    notebook = judge(name, SOLUTIONS[name])
    with grading():
        assert judge(name, SOLUTIONS[name]) == notebook
    assert notebook[0], notebook[1]


# --- lesson 01: conv2d_im2col -----------------------------------------------------------------


def im2col_calls_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Uses an unfold below (docstring words like F.conv2d do not count)."""
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


def im2col_flipped(x, weight, bias=None, stride=1, padding=0):
    return ok.conv2d_im2col(x, weight.flip(-2, -1), bias, stride, padding)


def im2col_no_bias(x, weight, bias=None, stride=1, padding=0):
    return ok.conv2d_im2col(x, weight, None, stride, padding)


def im2col_square_kernel(x, weight, bias=None, stride=1, padding=0):
    n, _, h, w = x.shape
    c_out, _, k, _ = weight.shape  # assumes kh == kw
    cols = F.unfold(x, (k, k), stride=stride, padding=padding)
    out = weight.reshape(c_out, -1) @ cols
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    size = (h + 2 * padding - k) // stride + 1
    return out.reshape(n, c_out, size, (w + 2 * padding - k) // stride + 1)


def im2col_no_stride(x, weight, bias=None, stride=1, padding=0):
    return ok.conv2d_im2col(x, weight, bias, 1, padding)


def test_im2col_mistakes():
    fails("practice_conv2d_im2col", im2col_calls_conv2d, "uses `conv2d`", "F.unfold")
    fails("practice_conv2d_im2col", im2col_flipped, "kernel flipped", "cross-correlation")
    fails("practice_conv2d_im2col", im2col_no_bias, "the bias is missing")
    passes_notebook_only("practice_conv2d_im2col", im2col_square_kernel)
    fails("practice_conv2d_im2col", im2col_square_kernel, "weight of shape (2, 3, 3, 5)",
          "failed with RuntimeError", "Hint", hidden=True)
    passes_notebook_only("practice_conv2d_im2col", im2col_no_stride)
    fails("practice_conv2d_im2col", im2col_no_stride, "that is the size for stride 1",
          hidden=True)


def test_im2col_static_rule_reads_code_not_docstrings():
    with contextlib.redirect_stdout(io.StringIO()):
        check("practice_conv2d_im2col", ok.conv2d_im2col)  # "conv" in its names, no conv2d

    def documented(x, weight, bias=None, stride=1, padding=0):
        """Equals F.conv2d(x, weight) but never calls conv2d."""
        return ok.conv2d_im2col(x, weight, bias, stride, padding)

    with contextlib.redirect_stdout(io.StringIO()):
        check("practice_conv2d_im2col", documented)


# --- lesson 01: conv_cost ---------------------------------------------------------------------


def cost_flops(*args, **kwargs):
    got = ok.conv_cost(*args, **kwargs)
    return dict(got, macs=2 * got["macs"])


def cost_true_division(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
                       groups=1, bias=True):
    got = ok.conv_cost(in_channels, out_channels, kernel_size, input_size, stride, padding,
                       groups, bias)
    return dict(got, output_size=(input_size + 2 * padding - kernel_size) / stride + 1)


def cost_ignores_groups(in_channels, out_channels, kernel_size, input_size, stride=1,
                        padding=0, groups=1, bias=True):
    return ok.conv_cost(in_channels, out_channels, kernel_size, input_size, stride, padding, 1,
                        bias)


def cost_never_raises(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
                      groups=1, bias=True):
    out = (input_size + 2 * padding - kernel_size) // stride + 1
    per_output = in_channels // groups * kernel_size ** 2
    return {"output_size": out, "params": out_channels * per_output + out_channels * bias,
            "macs": out * out * out_channels * per_output}


def test_conv_cost_mistakes():
    fails("practice_conv_cost", cost_flops, "['macs']", "that is FLOPs")
    fails("practice_conv_cost", cost_true_division, "['output_size'] is 55.25", "floor division")
    fails("practice_conv_cost", lambda *a, **k: (55, 23296, 70276800), "return a dict")
    passes_notebook_only("practice_conv_cost", cost_ignores_groups)
    fails("practice_conv_cost", cost_ignores_groups, "groups=2", "divide in_channels by groups",
          hidden=True)
    passes_notebook_only("practice_conv_cost", cost_never_raises)
    fails("practice_conv_cost", cost_never_raises, "should raise a ValueError",
          "cannot be split into 4 groups", hidden=True)


@pytest.mark.parametrize("case", practice01.COST_VISIBLE + practice01.COST_HIDDEN)
def test_conv_cost_reference_equals_the_real_layer(case):
    cin, cout, k, size, stride, padding, groups, bias = case
    layer = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, bias=bias)
    want = {"output_size": layer(torch.zeros(1, cin, size, size)).shape[-1],
            "params": count_parameters(layer),
            "macs": profile_model(layer, input_size=(1, cin, size, size)).macs}
    assert practice01.cost(*case) == want


# --- lesson 02: vgg_num_params and vgg_conv_macs ----------------------------------------------


def vgg_builds_it(cfg, batch_norm=False, num_classes=1000):
    vgg = torchvision.models.vgg
    model = vgg.VGG(vgg.make_layers(cfg, batch_norm), num_classes=num_classes, init_weights=False)
    return sum(p.numel() for p in model.parameters())


def vgg_no_conv_bias(cfg, batch_norm=False, num_classes=1000):
    return ok.vgg_num_params(cfg, batch_norm, num_classes) - sum(v for v in cfg if v != "M")


def vgg_small_fan_in(cfg, batch_norm=False, num_classes=1000):
    return ok.vgg_num_params(cfg, batch_norm, num_classes) - (512 * 49 - 512) * 4096


def vgg_counts_running_stats(cfg, batch_norm=False, num_classes=1000):
    extra = 2 * sum(v for v in cfg if v != "M") if batch_norm else 0
    return ok.vgg_num_params(cfg, batch_norm, num_classes) + extra


def vgg_1000_classes(cfg, batch_norm=False, num_classes=1000):
    return ok.vgg_num_params(cfg, batch_norm, 1000)


def test_vgg_num_params_mistakes():
    fails("practice_vgg_num_params", vgg_builds_it, "uses `VGG`", "by arithmetic")
    fails("practice_vgg_num_params", vgg_no_conv_bias, "convolutions' biases are missing")
    fails("practice_vgg_num_params", vgg_small_fan_in, "512·7·7 = 25,088 inputs")
    fails("practice_vgg_num_params", lambda cfg, batch_norm=False, num_classes=1000: 138357544.5,
          "expected 138,357,544")
    passes_notebook_only("practice_vgg_num_params", vgg_counts_running_stats)
    fails("practice_vgg_num_params", vgg_counts_running_stats, "batch_norm=True",
          "running mean and variance are buffers", hidden=True)
    passes_notebook_only("practice_vgg_num_params", vgg_1000_classes)
    fails("practice_vgg_num_params", vgg_1000_classes, "num_classes=10", "num_classes is ignored",
          hidden=True)


def test_vgg_num_params_reference_equals_torchvision():
    vgg = torchvision.models.vgg
    for cfg, bn, k in practice02.PARAMS_VISIBLE + practice02.PARAMS_HIDDEN:
        with torch.device("meta"):
            model = vgg.VGG(vgg.make_layers(cfg, bn), num_classes=k, init_weights=False)
        assert practice02.num_params(cfg, bn, k) == count_parameters(model)


def macs_flops(cfg, input_size=224):
    return 2 * ok.vgg_conv_macs(cfg, input_size)


def macs_rounds_up(cfg, input_size=224):
    macs, size, cin = 0, input_size, 3
    for v in cfg:
        if v == "M":
            size = math.ceil(size / 2)
        else:
            macs, cin = macs + size * size * v * cin * 9, v
    return macs


def macs_from_rgb(cfg, input_size=224):
    macs, size = 0, input_size
    for v in cfg:
        if v == "M":
            size //= 2
        else:
            macs += size * size * v * 3 * 9
    return macs


def test_vgg_conv_macs_mistakes():
    fails("practice_vgg_conv_macs", macs_flops, "that is FLOPs")
    fails("practice_vgg_conv_macs", macs_from_rgb, "previous conv's channels")
    passes_notebook_only("practice_vgg_conv_macs", macs_rounds_up)
    fails("practice_vgg_conv_macs", macs_rounds_up, "input_size=37", "rounds down", hidden=True)


def test_vgg_conv_macs_reference_equals_profile_model():
    vgg = torchvision.models.vgg
    for cfg, size in practice02.MACS_VISIBLE + practice02.MACS_HIDDEN:
        want = profile_model(vgg.make_layers(cfg), input_size=(1, 3, size, size)).macs
        assert practice02.conv_macs(cfg, size) == want


# --- lesson 06: interpolate_pos_embedding ------------------------------------------------------


def resize_with(mode="bicubic", align_corners=True, layout="rows"):
    def interpolate_pos_embedding(pos_embed, new_grid):
        return practice06.resize(pos_embed, new_grid, mode, align_corners, layout)
    return interpolate_pos_embedding


def resize_calls_torchvision(pos_embed, new_grid):
    from torchvision.models.vision_transformer import interpolate_embeddings

    state = {"encoder.pos_embedding": pos_embed}
    return interpolate_embeddings(new_grid * 16, 16, state)["encoder.pos_embedding"]


def resize_drops_class_token(pos_embed, new_grid):
    return ok.interpolate_pos_embedding(pos_embed, new_grid)[:, 1:]


def resize_never_raises(pos_embed, new_grid):
    g = int(math.sqrt(pos_embed.shape[1] - 1))
    patches = pos_embed[:, 1:1 + g * g]
    return ok.interpolate_pos_embedding(torch.cat([pos_embed[:, :1], patches], 1), new_grid)


def test_interpolate_mistakes():
    name = "practice_interpolate_pos_embedding"
    fails(name, resize_calls_torchvision, "uses `interpolate_embeddings`", "F.interpolate")
    fails(name, resize_with(mode="bilinear"), "bilinear interpolation")
    fails(name, resize_with(align_corners=False), "use align_corners=True")
    fails(name, resize_with(layout="cols"), "rows and columns are swapped")
    fails(name, resize_with(layout="raw"), "mixes positions and channels")
    fails(name, resize_drops_class_token, "returned shape (1, 144, 16)", "class token's entry is "
          "missing")
    passes_notebook_only(name, resize_never_raises)
    fails(name, resize_never_raises, "should raise a ValueError", "do not form a square grid",
          hidden=True)


def test_resize_reference_equals_torchvision():
    from torchvision.models.vision_transformer import interpolate_embeddings

    for g, new, d in ((14, 24, 768), (8, 12, 16), (8, 4, 16), (5, 7, 3), (8, 8, 16)):
        table = torch.randn(1, 1 + g * g, d)
        want = interpolate_embeddings(new * 16, 16, {"encoder.pos_embedding": table.clone()})
        torch.testing.assert_close(practice06.resize(table, new), want["encoder.pos_embedding"])


# --- lesson 06: mean_attention_distance --------------------------------------------------------


def distance_with(**mistake):
    def mean_attention_distance(weights, grid_size, patch_size):
        return practice06.distance(weights, grid_size, patch_size, **mistake).float()
    return mean_attention_distance


def distance_one_number(weights, grid_size, patch_size):
    return ok.mean_attention_distance(weights, grid_size, patch_size).mean()


def test_attention_distance_mistakes():
    name = "practice_attention_distance"
    fails(name, distance_with(renormalise=False), "renormalise each query's weights")
    fails(name, distance_with(pixels=False), "in patches, not pixels")
    fails(name, distance_with(metric="manhattan"), "Manhattan distance")
    fails(name, distance_with(over_queries="sum"), "sums over the query patches")
    fails(name, distance_one_number, "weights of shape (1, 5, 5)", "returned shape ()",
          "one value per image and head")


def test_attention_distance_reference():
    # the old visible examples, from the lesson's definition
    uniform = practice06.distance(torch.full((1, 5, 5), 1 / 5), 2, 16)
    torch.testing.assert_close(uniform.float(), torch.tensor([(16 + 16 + 16 * math.sqrt(2)) / 4]))
    wrap = practice06.distance(practice06._wrap_right(3), 3, 10)
    torch.testing.assert_close(wrap.float(), torch.tensor([(10 + 10 + 20) / 3]))


# --- lesson 07: box formats -------------------------------------------------------------------


def to_xyxy_full_width(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w, cy - h, cx + w, cy + h], -1)


def to_xyxy_in_place(boxes):
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def to_xyxy_float32(boxes):
    return ok.cxcywh_to_xyxy(boxes).float()


def to_cxcywh_negative_size(boxes):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x1 - x2, y1 - y2], -1)


def to_cxcywh_rows(boxes):
    return torch.stack([ok.xyxy_to_cxcywh(b[None])[0] for b in boxes])


def to_cxcywh_transposed(boxes):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def test_box_mistakes():
    fails("box_cxcywh_to_xyxy", to_xyxy_full_width, "half the width and height")
    fails("box_cxcywh_to_xyxy", to_xyxy_in_place, "changed boxes in place")
    passes_notebook_only("box_cxcywh_to_xyxy", to_xyxy_float32)
    fails("box_cxcywh_to_xyxy", to_xyxy_float32, "returned torch.float32",
          "keep the input's dtype (torch.float64)", hidden=True)
    fails("box_xyxy_to_cxcywh", to_cxcywh_negative_size, "x2 − x1")
    fails("box_xyxy_to_cxcywh", to_cxcywh_transposed, "returned shape (4, 1)", "dim=-1")
    passes_notebook_only("box_xyxy_to_cxcywh", to_cxcywh_rows)
    fails("box_xyxy_to_cxcywh", to_cxcywh_rows, "no boxes (shape (0, 4))", "failed with",
          hidden=True)


# --- lesson 07: param_groups ------------------------------------------------------------------


def groups_first_match(model, lrs):
    members = {prefix: [] for prefix in lrs}
    for name, param in model.named_parameters():
        if param.requires_grad:
            match = next(p for p in lrs if name == p or name.startswith(p + "."))
            members[match].append(param)
    return [{"params": members[p], "lr": lr} for p, lr in lrs.items() if members[p]]


def groups_with_frozen(model, lrs):
    """Forgets `if not param.requires_grad: continue`."""
    members = {prefix: [] for prefix in lrs}
    for name, param in model.named_parameters():
        matches = [p for p in lrs if name == p or name.startswith(p + ".")]
        if not matches:
            raise ValueError(f"trainable parameter {name!r} matches none of {list(lrs)}")
        members[max(matches, key=len)].append(param)
    return [{"params": members[p], "lr": lr} for p, lr in lrs.items() if members[p]]


def ok_but_frozen_included(model, lrs):
    """Skips unmatched parameters instead of raising, and keeps frozen ones."""
    members = {prefix: [] for prefix in lrs}
    for name, param in model.named_parameters():
        matches = [p for p in lrs if name == p or name.startswith(p + ".")]
        if matches:
            members[max(matches, key=len)].append(param)
    return [{"params": members[p], "lr": lr} for p, lr in lrs.items() if members[p]]


def groups_loose_prefix(model, lrs):
    members = {prefix: [] for prefix in lrs}
    for name, param in model.named_parameters():
        if param.requires_grad:
            matches = [p for p in lrs if name.startswith(p)]
            if not matches:
                raise ValueError(f"{name} matches no prefix")
            members[max(matches, key=len)].append(param)
    return [{"params": members[p], "lr": lr} for p, lr in lrs.items() if members[p]]


def groups_keep_empty(model, lrs):
    groups = ok.param_groups(model, {p: lr for p, lr in lrs.items() if p != "unused"})
    return groups + [{"params": [], "lr": lr} for p, lr in lrs.items() if p == "unused"]


def groups_of_names(model, lrs):
    groups = []
    for g in ok.param_groups(model, lrs):
        members = {id(p) for p in g["params"]}
        groups.append({"params": [n for n, p in model.named_parameters() if id(p) in members],
                       "lr": g["lr"]})
    return groups


def groups_generators(model, lrs):
    return [{"params": (p for p in g["params"]), "lr": g["lr"]}
            for g in ok.param_groups(model, lrs)]


def test_param_groups_mistakes():
    fails("param_groups", groups_with_frozen, "failed with ValueError", "`conv1.weight` is frozen",
          "leave frozen parameters out")
    fails("param_groups", ok_but_frozen_included, "which is frozen (requires_grad=False)",
          hidden=True)
    fails("param_groups", groups_of_names, "it must hold the model's parameter tensors")
    fails("param_groups", groups_generators, "make it a list")
    passes_notebook_only("param_groups", groups_first_match)
    fails("param_groups", groups_first_match, "`layer4.1.conv1.weight` is in the group of "
          "'layer4'", "longest matching prefix, 'layer4.1'", hidden=True)
    passes_notebook_only("param_groups", groups_loose_prefix)
    fails("param_groups", groups_loose_prefix, "layer10.weight", "continues with a dot",
          hidden=True)
    passes_notebook_only("param_groups", groups_keep_empty)
    fails("param_groups", groups_keep_empty, "prefix 'unused' matches no trainable parameter",
          hidden=True)


def test_param_groups_models_are_read_by_value():
    model = practice07._marked(practice07.TinyResNet())
    values = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert values.unique().numel() == values.numel()  # no two elements alike
    assert [n for n, _ in model.named_parameters()][:3] == ["conv1.weight", "bn1.weight",
                                                            "bn1.bias"]
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {
        "conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}


# --- the hidden configurations of lessons 03-05 -------------------------------------------------


def test_hidden_configurations_of_the_lesson_03_to_05_checks():
    passes_notebook_only("ex5_plot", plot_three_named_models)
    fails("ex5_plot", plot_three_named_models, "with 2 models failed with KeyError: 'LeNetStyle'",
          hidden=True)
    # The network exercises' hidden cases: tests/test_checks_exercises.py (most mistakes once
    # caught only when grading are now caught in the notebook too).


# --- through the judge: the student's objects live in a kernel -------------------------------


WRONG = [
    ("practice_conv2d_im2col", "im2col_flipped"), ("practice_conv2d_im2col", "im2col_no_stride"),
    ("practice_conv_cost", "cost_never_raises"), ("practice_conv_cost", "cost_ignores_groups"),
    ("practice_vgg_num_params", "vgg_builds_it"),
    ("practice_vgg_num_params", "vgg_counts_running_stats"),
    ("practice_vgg_conv_macs", "macs_rounds_up"),
    ("practice_interpolate_pos_embedding", "resize_never_raises"),
    ("practice_interpolate_pos_embedding", "resize_calls_torchvision"),
    ("practice_attention_distance", "distance_one_number"),
    ("box_cxcywh_to_xyxy", "to_xyxy_in_place"), ("box_cxcywh_to_xyxy", "to_xyxy_float32"),
    ("box_xyxy_to_cxcywh", "to_cxcywh_rows"),
    ("param_groups", "groups_with_frozen"), ("param_groups", "groups_first_match"),
    ("param_groups", "groups_loose_prefix"), ("param_groups", "groups_keep_empty"),
    # stale .grad of the judge's models must reach the kernel, or this would pass there
    ("ex1_grad_norm", "no_zero_grad"),
]


def no_zero_grad(model, images, labels):
    F.cross_entropy(model(images), labels).backward()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return first.weight.grad.norm().item()


@pytest.fixture(scope="module")
def practice_kernel(kernel):
    """conftest's kernel (started in tests/) with this module's wrong answers importable."""
    kernel.run("import practice_corpus, test_checks_practice")
    return kernel.client


def _judged(kc, item, expression, source):
    from course_utils.grading.judge import KernelChannel, judge_cell

    reply = kc.execute_interactive(f"SUBJECT = {expression}", timeout=60)
    assert reply["content"]["status"] == "ok"
    cells = [nbformat.v4.new_code_cell(source), nbformat.v4.new_code_cell(
        f"check({item!r}, SUBJECT)")]
    (verdict,) = judge_cell(cells, 1, KernelChannel(kc, timeout=60))
    return verdict.passed, verdict.text, verdict.mistake


CASES = [(item, f"practice_corpus.SOLUTIONS[{item!r}]", ok.SOLUTIONS[item])
         for item in sorted(ok.SOLUTIONS)]
CASES += [(item, f"test_checks_practice.{name}", getattr(sys.modules[__name__], name))
          for item, name in WRONG]


@pytest.mark.parametrize("item,expression,obj", CASES, ids=[c[1] for c in CASES])
def test_judge_in_a_kernel_equals_the_check_when_grading(practice_kernel, item, expression,
                                                       obj):
    import inspect

    # the judge reads the student's code from the cell that defines SUBJECT
    source = "SUBJECT = ...\n" + inspect.getsource(obj)
    with grading():
        local = judge(item, obj)
    assert _judged(practice_kernel, item, expression, source) == local
