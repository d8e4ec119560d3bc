"""Cheating and monkeypatching: torchvision's own blocks are refused, patches change nothing."""

import importlib
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from checks_corpus import BasicBlock, ResNetStyle, SEBlock
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.models.resnet import BasicBlock as TVBasicBlock
from torchvision.ops import SqueezeExcitation

import course_utils.checks
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


def test_comparison_patches_change_nothing(monkeypatch, capsys):
    always_true = lambda *a, **k: True  # noqa: E731
    zero = lambda a, *rest, **k: torch.zeros_like(a) if isinstance(a, torch.Tensor) else 0.0  # noqa: E731
    monkeypatch.setattr(torch, "allclose", always_true)
    monkeypatch.setattr(torch, "equal", always_true)
    monkeypatch.setattr(torch, "isclose", always_true)
    monkeypatch.setattr(torch.Tensor, "__eq__", always_true)
    monkeypatch.setattr(torch.Tensor, "__sub__", zero)
    monkeypatch.setattr(torch.Tensor, "abs", zero)
    monkeypatch.setattr(torch.Tensor, "max", zero)
    monkeypatch.setattr(torch.Tensor, "item", lambda self: 0.0)
    monkeypatch.setattr(torch, "abs", zero)
    monkeypatch.setattr(torch, "max", zero)
    assert "does not behave like torchvision's BasicBlock" in message("basic_block", Wrong)
    check("basic_block", BasicBlock)  # a correct block still passes
    check("se_block", SEBlock)
    assert capsys.readouterr().out.count("✓") == 2


def test_patched_layers_are_graded_as_what_the_code_does(monkeypatch):
    monkeypatch.setattr(F, "relu", lambda x, inplace=False: x)
    assert "does not behave like torchvision's BasicBlock" in message("basic_block", BasicBlock)
    monkeypatch.undo()
    monkeypatch.setattr(nn.Conv2d, "forward", lambda self, x: torch.zeros(
        x.shape[0], self.out_channels, x.shape[2] // self.stride[0], x.shape[3] // self.stride[1]))
    assert "does not behave like torchvision's BasicBlock" in message("basic_block", BasicBlock)


def test_check_itself_cannot_be_replaced():
    with pytest.raises(AttributeError, match="can't be replaced"):
        course_utils.checks.check = lambda *a, **k: None
    with pytest.raises(AttributeError, match="can't be deleted"):
        del course_utils.checks.check
    with pytest.raises(AttributeError, match="can't be replaced"):
        course_utils.checks._ops.close = lambda *a, **k: True
    with pytest.raises(AttributeError, match="can't be replaced"):
        course_utils.checks._behaviour.compare_module = lambda *a, **k: None
    from course_utils.checks import check as reimported

    assert reimported is check
    assert "does not behave like" in message("basic_block", Wrong)


def test_reimport_after_removing_the_module_gives_a_working_check(monkeypatch):
    monkeypatch.setattr(course_utils, "checks", course_utils.checks)  # restored afterwards
    for name in [m for m in sys.modules if m.startswith("course_utils.checks")]:
        monkeypatch.delitem(sys.modules, name)
    fresh = importlib.import_module("course_utils.checks")
    with pytest.raises(AssertionError):
        fresh.check("basic_block", Wrong)


class Lies(TorchDispatchMode):
    """Makes every subtraction return zeros."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if "sub" in str(func) and isinstance(out, torch.Tensor):
            return torch.zeros_like(out)
        return out


def test_active_dispatch_mode_is_refused():
    with Lies():
        text = message("basic_block", Wrong)
    assert "can't trust torch in this kernel" in text and "restart the kernel" in text


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
