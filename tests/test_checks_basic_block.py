"""Corpus for check("basic_block"): correct variants pass, each known mistake is named."""

import pytest
import torch
import torch.nn.functional as F
from checks_corpus import BasicBlock
from torch import nn

from course_utils.checks import check, judge


def needs_projection(cin, cout, stride):
    return stride != 1 or cin != cout


# --- correct variants (naming, order, containers, activations, addition style) ----------------


class SequentialBlock(nn.Module):
    """nn.Sequential main path, nn.ReLU(inplace=True), `out = out + identity`."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Identity()
        if needs_projection(in_channels, out_channels, stride):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.residual(x)
        out = out + self.shortcut(x)
        return self.relu(out)


class ShortcutFirstBlock(nn.Module):
    """Registers the shortcut and the BatchNorms before the convs; shortcut runs first."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.proj = None
        if needs_projection(in_channels, out_channels, stride):
            self.proj_bn = nn.BatchNorm2d(out_channels)
            self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride,
                                  bias=False)
        self.norm_b = nn.BatchNorm2d(out_channels)
        self.norm_a = nn.BatchNorm2d(out_channels)
        self.second = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.first = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                               bias=False)

    def forward(self, x):
        skip = x if self.proj is None else self.proj_bn(self.proj(x))
        h = torch.relu(self.norm_a(self.first(x)))
        h = self.norm_b(self.second(h))
        return torch.relu(torch.add(h, skip))


class ModuleListBlock(nn.Module):
    """Layers in ModuleLists with terse names, `.relu()` methods."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.c = nn.ModuleList([
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)])
        self.n = nn.ModuleList([nn.BatchNorm2d(out_channels), nn.BatchNorm2d(out_channels)])
        self.s = nn.ModuleList()
        if needs_projection(in_channels, out_channels, stride):
            self.s.append(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False))
            self.s.append(nn.BatchNorm2d(out_channels))

    def forward(self, x):
        y = self.n[0](self.c[0](x)).relu()
        y = self.n[1](self.c[1](y))
        for layer in self.s:
            x = layer(x)
        return (y + x).relu()


class BiasBlock(BasicBlock):
    """Conv biases before BatchNorm: redundant, accepted with a note."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)


class FunctionalBlock(nn.Module):
    """F.conv2d-free but functional style: F.relu(inplace=True) on an intermediate tensor."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(out_channels), nn.BatchNorm2d(out_channels)
        self.down = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
                     if needs_projection(in_channels, out_channels, stride) else None)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.down(x) if self.down is not None else x
        return F.relu(out, inplace=True)


CORRECT = [BasicBlock, SequentialBlock, ShortcutFirstBlock, ModuleListBlock, BiasBlock,
           FunctionalBlock]


@pytest.mark.parametrize("block", CORRECT, ids=lambda c: c.__name__)
def test_correct_variants_pass(block, capsys):
    check("basic_block", block)
    out = capsys.readouterr().out
    assert out.startswith("✓ BasicBlock matches torchvision's BasicBlock")
    assert "4 configurations" in out


def test_bias_before_batchnorm_is_a_note_not_a_failure(capsys):
    check("basic_block", BiasBlock)
    out = capsys.readouterr().out
    assert "note:" in out and "bias right before a BatchNorm" in out and "bias=False" in out


def test_custom_configurations_option(capsys):
    check("basic_block", BasicBlock, configs=[(3, 8, 2), (8, 8, 1)])
    assert "2 configurations" in capsys.readouterr().out


# --- buggy variants ---------------------------------------------------------------------------


def make_block(*, skip=True, relu_before_add=False, final_relu=True, inner_relu=True,
               stride_on_conv2=False, shortcut_bn=True, shortcut_kernel=1, identity="x",
               always_project=False, relu_before_bn=False, eps=1e-5):
    class Buggy(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            s1, s2 = (1, stride) if stride_on_conv2 else (stride, 1)
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, s1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels, eps=eps)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, s2, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels, eps=eps)
            self.shortcut = None
            if always_project or needs_projection(in_channels, out_channels, stride):
                k = shortcut_kernel
                layers = [nn.Conv2d(in_channels, out_channels, k, stride, k // 2, bias=False)]
                if shortcut_bn:
                    layers.append(nn.BatchNorm2d(out_channels))
                self.shortcut = nn.Sequential(*layers)

        def forward(self, x):
            c1 = self.conv1(x)
            if relu_before_bn:
                out = self.bn1(F.relu(c1))
            else:
                out = self.bn1(c1)
                b1 = out
                if inner_relu:
                    out = F.relu(out)
            r1 = out
            out = self.bn2(self.conv2(out))
            if relu_before_add:
                out = F.relu(out)
            if skip:
                if identity == "x":
                    out = out + (x if self.shortcut is None else self.shortcut(x))
                else:
                    out = out + {"conv1": c1, "bn1": b1, "relu1": r1}[identity]
            return F.relu(out) if final_relu else out

    return Buggy


BUGGY = {
    "no_skip": (make_block(skip=False), ["no skip connection"]),
    "relu_before_add": (make_block(relu_before_add=True, final_relu=False),
                        ["ReLU comes before the addition"]),
    "relu_before_and_after": (make_block(relu_before_add=True), ["extra ReLU before the addition"]),
    "no_final_relu": (make_block(final_relu=False), ["ReLU after the addition is missing"]),
    "no_inner_relu": (make_block(inner_relu=False), ["ReLU between the two convolutions"]),
    "stride_on_conv2": (make_block(stride_on_conv2=True), ["stride is on the second conv"]),
    "shortcut_without_bn": (make_block(shortcut_bn=False),
                            ["the shortcut has no BatchNorm", "expected 230,144 like torchvision's "
                             "BasicBlock with a 1×1 projection shortcut; yours has 229,888: the "
                             "shortcut has no BatchNorm"]),
    "shortcut_3x3": (make_block(shortcut_kernel=3), ["3×3 conv instead of a 1×1", "295,680"]),
    "identity_after_conv1": (make_block(identity="conv1"), ["output of the first conv"]),
    "identity_after_relu1": (make_block(identity="relu1"), ["first conv-BN-ReLU"]),
    "always_project": (make_block(always_project=True),
                       ["projection shortcut (conv + BN) even though the shapes match", "73,984"]),
    "relu_before_bn": (make_block(relu_before_bn=True), ["ReLU before BatchNorm"]),
    "other_bn_eps": (make_block(eps=1e-3), ["match none of the common mistakes", "eps=0.001"]),
}


@pytest.mark.parametrize("key", BUGGY)
def test_buggy_variants_are_named(key):
    block, phrases = BUGGY[key]
    with pytest.raises(AssertionError) as err:
        check("basic_block", block)
    message = str(err.value)
    for phrase in phrases:
        assert phrase in message, message
    assert "Why it matters" in message or "common mistakes" in message


# The stable id each BUGGY block's message records (the class report counts them).
IDS = {"relu_before_and_after": "relu_before_and_after_add", "shortcut_without_bn": "shortcut_no_bn",
       "other_bn_eps": "behaves_differently"}


@pytest.mark.parametrize("key", BUGGY)
def test_buggy_variants_have_stable_ids(key):
    result = judge("basic_block", BUGGY[key][0])
    assert result.mistake == f"basic_block.{IDS.get(key, key)}", result.text


class NoBatchNorm(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.proj = (nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
                     if needs_projection(in_channels, out_channels, stride) else nn.Identity())

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.proj(x))


def test_no_batchnorm_named():
    with pytest.raises(AssertionError, match="no BatchNorm layers"):
        check("basic_block", NoBatchNorm)


class UnusedShortcut(BasicBlock):
    """Always builds a projection but only uses it when needed: unused parameters."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.spare = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                   nn.BatchNorm2d(out_channels))


def test_unused_layers_explain_the_parameter_count():
    with pytest.raises(AssertionError) as err:
        check("basic_block", UnusedShortcut)
    message = str(err.value)
    assert "never uses" in message and "`spare.0` Conv2d(64, 64, 1×1)" in message
    assert "Expected 73,984 parameters" in message and "yours has 78,208" in message


class NoProjection(nn.Module):
    """The seed's block used without a downsample: shapes can't be added."""

    def __init__(self, in_channels, out_channels, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return F.relu(out)


def test_missing_projection_shows_the_students_line_and_a_hint():
    with pytest.raises(AssertionError) as err:
        check("basic_block", NoProjection)
    message = str(err.value)
    assert message.startswith("BasicBlock(64, 128, stride=1)(x) with x of shape (2, 64, 8, 8) "
                              "failed with RuntimeError: The size of tensor a (128)")
    assert "your line" in message and "out += identity" in message
    assert "projection shortcut" in message


class IgnoresStride(BasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, 1)


def test_ignored_stride_is_a_shape_message():
    with pytest.raises(AssertionError, match=r"stride=2\)\(x\) with x of shape \(2, 64, 8, 8\) "
                       r"returned shape \(2, 128, 8, 8\); expected \(2, 128, 4, 4\)\. The "
                       r"stride isn't applied"):
        check("basic_block", IgnoresStride)
