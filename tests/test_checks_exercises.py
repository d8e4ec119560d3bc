"""The exercise checks of lessons 03-05 against the corpus (tests/checks_corpus.py).

Every correct answer passes; every wrong one fails with its mistake's stable id and the
phrases its message must contain, a named mistake with one headline and "Why it matters"
(or the specification it breaks). Exercise 4 (slow: torchvision models) is in
tests/test_checks_ex4.py; the same corpus goes through a real kernel in
tests/test_judge_parity.py.
"""

import contextlib

import checks_corpus as corpus
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from checks_corpus import (
    BasicBlock,
    CifarResNet,
    LeNetStyle,
    PlainCNN,
    first_layer_grad_norm,
    plot_learning_curves,
    plot_three_named_models,
)
from torch import nn

from course_utils.checks import check, judge
from course_utils.checks._mistakes import NET_MISTAKES, SE_MISTAKES
from course_utils.checks._registry import GRADING

ITEMS = [item for item in corpus.CORRECT if not item.startswith("ex4")]
CORRECT = [(item, i) for item in ITEMS for i in range(len(corpus.CORRECT[item]))]
WRONG = [(item, name) for item in ITEMS for name in corpus.WRONG.get(item, {})]
# Mistakes whose message explains itself with a "Why it matters:" line.
EXPLAINED = set(NET_MISTAKES) | {f"se_{key}" for key, *_ in SE_MISTAKES} | {
    "imagenet_stem", "imagenet_widths", "stem_downsamples", "no_downsampling",
    "num_classes_ignored", "skip_connection", "batchnorm", "kernel_size", "padding", "pooling",
    "no_pooling", "avg_pooling", "modules_double_count", "weights_only", "frozen_counted",
    "buffers_counted", "shared_twice", "tensor_count", "before_bn", "no_se", "layer1_relu",
    "float_params", "thop_params"}


@contextlib.contextmanager
def grading():
    token = GRADING.set(True)
    try:
        yield
    finally:
        GRADING.reset(token)


GENERIC_IDS = {"torchvision_reference", "course_helper"}  # the same refusal for every item


def expected_id(item, key):
    return key if key is None or "." in key or key in GENERIC_IDS else f"{item}.{key}"


def fails(name, obj, *phrases):
    with pytest.raises(AssertionError) as err:
        check(name, obj)
    for phrase in phrases:
        assert phrase in str(err.value), str(err.value)
    return str(err.value)


@pytest.mark.parametrize("item,index", CORRECT,
                         ids=[f"{i}-{getattr(corpus.CORRECT[i][k], '__qualname__', k)}"
                              for i, k in CORRECT])
def test_correct_answers_pass(item, index):
    result = judge(item, corpus.CORRECT[item][index])
    assert result.passed, result.text
    assert result.text.startswith("✓")


@pytest.mark.parametrize("item,name", WRONG, ids=[f"{i}-{n}" for i, n in WRONG])
def test_wrong_answers_are_named(item, name):
    answer, key, phrases = corpus.WRONG[item][name]
    result = judge(item, answer)
    assert not result.passed, f"{item}: {name} passed"
    assert result.mistake == expected_id(item, key), result.text
    for phrase in phrases:
        assert phrase in result.text, result.text
    if key is not None and key.split(".")[-1] in EXPLAINED | {k for k, *_ in SE_MISTAKES}:
        assert "\nWhy it matters: " in result.text, result.text
    assert "torchvision's weights" not in result.text  # no reference the student doesn't have


def test_the_corpus_covers_every_exercise_item():
    items = {"ex1_plain_cnn", "ex1_cifar_resnet", "ex1_grad_norm", "ex2_small_resnet",
             "ex2_count_parameters", "ex3_se_net", "ex4_efficiency_table", "ex4_best",
             "ex5_lenet_style", "ex5_vgg_style", "ex5_resnet_style", "ex5_plot"}
    assert items <= set(corpus.CORRECT) and items <= set(corpus.WRONG)
    assert all(len(corpus.CORRECT[i]) >= 2 for i in items)


def test_every_named_mistake_has_its_own_id():
    """Different mistakes of one item never share an id (except one mistake written two ways)."""
    for item in ITEMS:
        keys = [expected_id(item, key) for _, key, _ in corpus.WRONG[item].values()]
        assert None not in keys or item == "ex3_se_net"


# --- notes on harmless deviations -----------------------------------------------------------------


def test_conv_bias_before_batchnorm_is_a_note_naming_the_layers():
    result = judge("ex1_plain_cnn", corpus.PlainModuleList)
    assert result.passed
    assert "note: `convs.0`, `convs.1`, `convs.2`, `convs.3` and 2 more have a bias right " \
           "before a BatchNorm" in result.text


def test_log_softmax_output_is_a_note():
    result = judge("ex1_plain_cnn", corpus.PlainLogSoftmax)
    assert result.passed and "note: forward returns log-probabilities" in result.text


# --- the same SE mistake in SEBlock and in CIFAR10NetSE -----------------------------------------


def test_residual_se_is_the_same_catalogue_entry_in_both_checks():
    sentence = next(m for k, m, *_ in SE_MISTAKES if k == "residual")
    block = judge("se_block", corpus.se_with(residual=True))
    net = judge("ex3_se_net", corpus.se_net("after_bn", se=corpus.se_with(residual=True)))
    assert block.mistake == "se_block.residual" and net.mistake == "ex3_se_net.se_residual"
    assert sentence in block.text and sentence in net.text
    why = next(w for k, _, w, _ in SE_MISTAKES if k == "residual")
    assert why in block.text and why in net.text


@pytest.mark.parametrize("place", ["after_bn", "after_relu", "after_pool"])
def test_se_mistakes_are_named_at_every_accepted_placement(place):
    result = judge("ex3_se_net", corpus.se_net(place, se=corpus.se_with(softmax=True)))
    assert result.mistake == "ex3_se_net.se_softmax_gate", result.text
    assert "with the same random weights" not in result.text


# --- the hidden configurations (grading only) ---------------------------------------------------


class PlainFixedHead(PlainCNN):
    """Linear(64, ...) whatever the depth: wrong only for depths that end at 16 or 32 channels."""

    def __init__(self, depth=6, num_classes=10):
        super().__init__(depth, num_classes)
        self.fc = nn.Linear(64, num_classes)


class CifarFixedHead(CifarResNet):
    def __init__(self, num_blocks=6, num_classes=10):
        super().__init__(num_blocks, num_classes)
        self.fc = nn.Linear(64, num_classes)


class LeNetBatchOfTwo(LeNetStyle):
    def forward(self, x):
        return self.classifier[1:](self.features(x).reshape(2, -1))


@pytest.mark.parametrize("item,answer,phrase", [
    ("ex1_plain_cnn", PlainFixedHead, "PlainCNN(depth=1)(x)"),
    ("ex1_cifar_resnet", CifarFixedHead, "CifarResNet(num_blocks=1)"),
    ("ex5_lenet_style", LeNetBatchOfTwo, "LeNetStyle(num_classes=7)"),
    ("ex5_plot", plot_three_named_models, "with 2 models failed with KeyError: 'LeNetStyle'"),
])
def test_hidden_configurations_catch_what_the_notebook_does_not(item, answer, phrase):
    assert judge(item, answer).passed, judge(item, answer).text
    with grading():
        result = judge(item, answer)
    assert not result.passed and phrase in result.text, result.text


# --- first_layer_grad_norm ------------------------------------------------------------------------


def test_grad_norm_correct(capsys):
    check("ex1_grad_norm", first_layer_grad_norm)
    assert "reference computation" in capsys.readouterr().out


def by_name(model, images, labels):
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return model.conv1.weight.grad.norm().item()


def test_grad_norm_crash_names_the_students_line():
    message = fails("ex1_grad_norm", by_name, "AttributeError", "model.conv1.weight")
    assert "isinstance(m, nn.Conv2d)" in message


# --- plot_learning_curves -------------------------------------------------------------------------


def test_plot_correct(capsys):
    before = plt.get_fignums()
    check("ex5_plot", plot_learning_curves)
    assert "labelled by model name" in capsys.readouterr().out
    assert plt.get_fignums() == before  # the checker closes the figures it made


# --- the notebook's own blocks in the networks ---------------------------------------------------


def test_a_wrong_block_inside_a_network_is_named_with_the_blocks_catalogue():
    result = judge("ex2_small_resnet", corpus.WRONG["ex2_small_resnet"]["bad_block"][0])
    assert result.mistake == "basic_block.no_final_relu"
    assert "SmallResNet()'s block `blocks.1` (16 → 32 channels, 28×28 → 14×14)" in result.text


def test_checks_leave_the_students_random_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    judge("ex1_cifar_resnet", corpus.CifarStages)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert BasicBlock  # the corpus block is the one the networks use
