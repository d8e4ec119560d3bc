"""The check() contract: ✓ line, AssertionError messages, crashes, None, NotImplementedError."""

import pytest
import torch
import torch.nn.functional as F
from checks_corpus import SOLUTIONS, BasicBlock, SEBlock
from practice_corpus import SOLUTIONS as PRACTICE
from torch import nn

from course_utils.checks import available_checks, check

API_NAMES = {"basic_block", "se_block", "ex1_plain_cnn", "ex1_cifar_resnet", "ex1_grad_norm",
             "ex2_small_resnet", "ex2_count_parameters", "ex3_se_net", "ex4_efficiency_table",
             "ex4_best", "ex5_lenet_style", "ex5_vgg_style", "ex5_resnet_style", "ex5_plot",
             "practice_conv2d_im2col", "practice_conv_cost", "practice_vgg_num_params",
             "practice_vgg_conv_macs", "practice_interpolate_pos_embedding",
             "practice_attention_distance", "box_cxcywh_to_xyxy", "box_xyxy_to_cxcywh",
             "param_groups", "practice_grad_cam"}


def message(name, obj, **options):
    with pytest.raises(AssertionError) as err:
        check(name, obj, **options)
    return str(err.value)


def test_every_graded_item_of_the_contract_has_a_check():
    assert set(available_checks()) == API_NAMES == set(SOLUTIONS) | set(PRACTICE)


def test_success_prints_one_line_and_returns_none(capsys):
    assert check("se_block", SEBlock) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✓ ")


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="no item named 'basicblock'; valid names: basic_block"):
        check("basicblock", BasicBlock)


def test_unknown_option_and_missing_object():
    with pytest.raises(TypeError, match="unknown option.*depth.*accepts: configs"):
        check("basic_block", BasicBlock, depth=3)
    with pytest.raises(TypeError, match="pass the object to check"):
        check("basic_block")
    with pytest.raises(ValueError, match="in_channels, out_channels, stride"):
        check("basic_block", BasicBlock, configs=[(3, 8)])
    with pytest.raises(ValueError, match="channels, reduction"):
        check("se_block", SEBlock, configs=[(8, 16)])


@pytest.mark.parametrize("name", sorted(API_NAMES))
def test_none_is_not_implemented_yet(name):
    assert "not implemented yet" in message(name, None).lower()


class SkeletonBlock(nn.Module):
    """What the nbgrader student copy contains."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # YOUR CODE HERE
        raise NotImplementedError()


class ForwardSkeleton(BasicBlock):
    def forward(self, x):
        raise NotImplementedError()


def skeleton_function(model):
    # YOUR CODE HERE
    raise NotImplementedError()


def test_not_implemented_bodies():
    text = message("basic_block", SkeletonBlock)
    assert "Not implemented yet" in text and "`SkeletonBlock.__init__`" in text
    text = message("basic_block", ForwardSkeleton)
    assert "Not implemented yet" in text and "`ForwardSkeleton.forward`" in text
    text = message("ex2_count_parameters", skeleton_function)
    assert "Not implemented yet" in text and "`skeleton_function`" in text


def test_wrong_kind_of_object():
    assert "Pass the class BasicBlock itself, not an instance" in message(
        "basic_block", BasicBlock(8, 8))
    assert "must subclass torch.nn.Module" in message("basic_block", int)
    assert "Expected the class BasicBlock" in message("basic_block", lambda c, o, stride=1: None)
    assert "Expected the function count_parameters" in message("ex2_count_parameters", BasicBlock)
    assert "Expected the function plot_learning_curves" in message("ex5_plot", 42)


class Crashes(BasicBlock):
    def forward(self, x):
        scale = {"a": 1.0}
        return super().forward(x) * scale["b"]


def test_student_exception_is_reported_with_their_line():
    with pytest.raises(AssertionError) as err:
        check("basic_block", Crashes)
    text = str(err.value)
    assert text.startswith("BasicBlock(64, 64, stride=1)(x) with x of shape (2, 64, 8, 8) failed "
                           "with KeyError: 'b'")
    assert "your line" in text and "Crashes.forward" in text
    assert "return super().forward(x) * scale[\"b\"]" in text
    # No raw student traceback chained to the AssertionError.
    assert err.value.__cause__ is None and err.value.__context__ is None


class BadInit(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        self.conv = nn.Conv2d(in_channels, out_channels, 3)  # before super().__init__()


def test_constructor_exception_names_the_constructor_call():
    text = message("basic_block", BadInit)
    assert text.startswith("BasicBlock(64, 64, stride=1) failed with AttributeError")
    assert "self.conv = nn.Conv2d(in_channels, out_channels, 3)" in text


class WrongSignature(BasicBlock):
    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels)


def test_wrong_signature_shows_the_expected_one():
    text = message("basic_block", WrongSignature)
    assert "unexpected keyword argument 'stride'" in text
    assert "Expected: class BasicBlock(nn.Module) with __init__(self, in_channels, " in text


class ExitsKernel(BasicBlock):
    def forward(self, x):
        raise SystemExit(0)


def test_system_exit_in_student_code_is_a_failure_not_an_exit():
    assert "failed with SystemExit" in message("basic_block", ExitsKernel)


class ReturnsTuple(BasicBlock):
    def forward(self, x):
        return super().forward(x), x


class ReturnsNothing(BasicBlock):
    def forward(self, x):
        super().forward(x)


class ModifiesInput(BasicBlock):
    def forward(self, x):
        out = super().forward(x)
        x += 1
        return out


class Detaches(BasicBlock):
    def forward(self, x):
        return super().forward(x.detach())


class NumpyRoundTrip(BasicBlock):
    def forward(self, x):
        return super().forward(torch.tensor(x.detach().numpy()))


def test_output_contract():
    assert "must return a single tensor" in message("basic_block", ReturnsTuple)
    assert "forget `return out`" in message("basic_block", ReturnsNothing)
    assert "changed its input x in place" in message("basic_block", ModifiesInput)
    assert "no gradient reaches" in message("basic_block", Detaches)
    assert "no gradient reaches" in message("basic_block", NumpyRoundTrip)


def test_check_leaves_random_state_dtype_and_grad_mode_alone():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    with torch.no_grad():
        check("basic_block", BasicBlock)
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.set_default_dtype(torch.float64)
    try:
        check("se_block", SEBlock)  # float64 default must not break the comparison
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)


def test_failed_check_also_restores_state():
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    message("basic_block", Detaches)
    assert torch.equal(torch.random.get_rng_state(), state)


class UsesFunctional(nn.Module):
    """Raw parameters + F.conv2d: can't be matched to layers, and the message says so."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.w = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.stride = stride

    def forward(self, x):
        return F.relu(F.conv2d(x, self.w, stride=self.stride, padding=1))


def test_unmappable_parameters_are_explained():
    text = message("basic_block", UsesFunctional)
    assert "parameters the checker can't map to a layer: `w`" in text


def test_check_runs_under_a_profiler_and_gives_it_back(capsys):
    import cProfile
    import sys

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        check("basic_block", BasicBlock)
        still_profiling = sys.getprofile() is not None
    finally:
        profiler.disable()
    assert still_profiling
    assert capsys.readouterr().out.startswith("✓")


def test_a_bug_in_the_checker_is_reported_as_such():
    from course_utils.checks._registry import REGISTRY, register

    @register("_broken_for_test", "anything")
    def broken(obj):
        return {}["missing"]

    try:
        text = message("_broken_for_test", object())
    finally:
        del REGISTRY["_broken_for_test"]
    assert "could not judge '_broken_for_test'" in text and "KeyError: 'missing'" in text
    assert "bug in the checker" in text
