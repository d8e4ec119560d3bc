"""Handing in torchvision's own blocks is refused; patched layers are graded as what they do.

(Attacks on the checker itself — rebinding check, patching torch or builtins, input
transformers — no longer matter for grades: the grader's judge decides outside the kernel.
tests/test_grading.py grades such submissions end to end.)
"""

import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from checks_corpus import BasicBlock, ResNetStyle
from torch import nn
from torchvision.models.resnet import BasicBlock as TVBasicBlock
from torchvision.ops import SqueezeExcitation

from course_utils.checks import check


def message(name, obj):
    with pytest.raises(AssertionError) as err:
        check(name, obj)
    return str(err.value)


def projection(cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


# --- passing off torchvision's reference as one's own --------------------------------------------


class Subclass(TVBasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride, projection(in_channels, out_channels,
                                                                       stride))


class Wrapper(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.inner = TVBasicBlock(in_channels, out_channels, stride,
                                  projection(in_channels, out_channels, stride))

    def forward(self, x):
        return self.inner(x)


class SameLayers(nn.Module):
    """torchvision's attribute names, so torchvision's forward would run on it."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = projection(in_channels, out_channels, stride)


class CopiedForward(SameLayers):
    forward = TVBasicBlock.forward


class CallsTorchvisionForward(SameLayers):
    def forward(self, x):
        return TVBasicBlock.forward(self, x)


class BuildsOneEachCall(SameLayers):
    """Copies its own weights into a fresh torchvision block at every call."""

    def forward(self, x):
        block = TVBasicBlock(self.conv1.in_channels, self.conv1.out_channels,
                             self.conv1.stride[0], self.downsample)
        block.load_state_dict(self.state_dict(), strict=False)
        return block(x)


@pytest.mark.parametrize("cls,phrase", [
    (Subclass, "subclasses torchvision.models.resnet.BasicBlock"),
    (Wrapper, "contains torchvision's BasicBlock (`inner`)"),
    (CopiedForward, "`forward` is torchvision's BasicBlock.forward"),
    (CallsTorchvisionForward, "forward pass runs torchvision's BasicBlock.forward"),
    (BuildsOneEachCall, "forward pass runs torchvision's BasicBlock"),
])
def test_torchvision_basic_block_is_refused(cls, phrase):
    text = message("basic_block", cls)
    assert phrase in text
    assert "proves nothing: write the layers and the forward pass yourself" in text


class SESubclass(SqueezeExcitation):
    def __init__(self, channels, reduction=16):
        super().__init__(channels, channels // reduction)


class SEReturnsReference(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.channels, self.hidden = channels, channels // reduction
        self.fc1 = nn.Conv2d(channels, self.hidden, 1)
        self.fc2 = nn.Conv2d(self.hidden, channels, 1)

    def forward(self, x):
        se = SqueezeExcitation(self.channels, self.hidden)
        se.load_state_dict(self.state_dict(), strict=False)
        return se(x)


@pytest.mark.parametrize("cls,phrase", [
    (SqueezeExcitation, "is torchvision.ops.misc.SqueezeExcitation"),
    (SESubclass, "subclasses torchvision.ops.misc.SqueezeExcitation"),
    (SEReturnsReference, "forward pass runs torchvision's SqueezeExcitation"),
])
def test_torchvision_se_is_refused(cls, phrase):
    assert phrase in message("se_block", cls)


class TorchvisionResNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = torchvision.models.resnet18(num_classes=num_classes)

    def forward(self, x):
        return self.net(x)


def test_torchvision_models_inside_exercise_nets_are_refused():
    assert "contains torchvision's ResNet" in message("ex5_resnet_style", TorchvisionResNet)


# --- monkeypatching in the notebook ---------------------------------------------------------------


class Wrong(nn.Module):
    """A single conv: nothing like a BasicBlock."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)

    def forward(self, x):
        return self.conv(x)


def test_patched_layers_are_graded_as_what_the_code_does(monkeypatch):
    monkeypatch.setattr(F, "relu", lambda x, inplace=False: x)
    assert "does not behave like torchvision's BasicBlock" in message("basic_block", BasicBlock)
    monkeypatch.undo()
    monkeypatch.setattr(nn.Conv2d, "forward", lambda self, x: torch.zeros(
        x.shape[0], self.out_channels, x.shape[2] // self.stride[0], x.shape[3] // self.stride[1]))
    assert "does not behave like torchvision's BasicBlock" in message("basic_block", BasicBlock)


class Sub(torch.Tensor):
    pass


class ReturnsSubclass(BasicBlock):
    def forward(self, x):
        return super().forward(x).as_subclass(Sub)


def test_tensor_subclass_output_is_refused():
    assert "a subclass of torch.Tensor" in message("basic_block", ReturnsSubclass)


class StopsProfiler(BasicBlock):
    def forward(self, x):
        sys.setprofile(None)
        return super().forward(x)


def test_disabling_the_watch_is_refused():
    assert "changed sys.setprofile" in message("basic_block", StopsProfiler)


def test_correct_resnet_style_is_not_mistaken_for_cheating(capsys):
    check("ex5_resnet_style", ResNetStyle)
    assert "✓ ResNetStyle" in capsys.readouterr().out


def test_course_helpers_passed_off_as_the_students_own_are_refused():
    from course_utils import plots, profile

    assert "is course_utils.plots.plot_learning_curves" in message(
        "ex5_plot", plots.plot_learning_curves)
    assert "calls course_utils.plots.plot_learning_curves" in message(
        "ex5_plot", lambda histories: plots.plot_learning_curves(histories))
    assert "is course_utils.profile.count_parameters" in message(
        "ex2_count_parameters", profile.count_parameters)
    assert "calls course_utils.profile.count_parameters" in message(
        "ex2_count_parameters", lambda model: profile.count_parameters(model))
