"""Corpus for check("se_block"): correct variants pass, each known mistake is named."""

import pytest
import torch
import torch.nn.functional as F
from checks_corpus import SEBlock
from torch import nn

from course_utils.checks import check, judge

# --- correct variants -------------------------------------------------------------------------


class ConvSE(nn.Module):
    """1×1 convs on a pooled map (torchvision's layout), separate modules."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(channels // reduction, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class FunctionalSE(nn.Module):
    """Mean over space by hand, F.relu/torch.sigmoid; fc2 registered before fc1."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc2 = nn.Linear(channels // reduction, channels)
        self.fc1 = nn.Linear(channels, channels // reduction)

    def forward(self, x):
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class NoBiasSE(nn.Module):
    """Bias-free excitation (the SE paper's equations): accepted with a note."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = channels // reduction
        self.w1 = nn.Linear(channels, hidden, bias=False)
        self.w2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, x):
        s = torch.sigmoid(self.w2(torch.relu(self.w1(F.adaptive_avg_pool2d(x, 1).flatten(1)))))
        return x * s.unsqueeze(-1).unsqueeze(-1).expand_as(x)


class MulInPlaceSE(SEBlock):
    """Scales a copy in place (`out = x.clone(); out *= s`)."""

    def forward(self, x):
        b, c, _, _ = x.shape
        s = self.excitation(self.squeeze(x).flatten(1)).view(b, c, 1, 1)
        out = x.clone()
        out *= s
        return out


class SequentialSE(nn.Module):
    """The whole excitation as one nn.Sequential, ending in Unflatten."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True), nn.Linear(channels // reduction, channels), nn.Sigmoid(),
            nn.Unflatten(1, (channels, 1, 1)))

    def forward(self, x):
        return x * self.gate(x)


CORRECT = [SEBlock, ConvSE, FunctionalSE, NoBiasSE, MulInPlaceSE, SequentialSE]


@pytest.mark.parametrize("block", CORRECT, ids=lambda c: c.__name__)
def test_correct_variants_pass(block, capsys):
    check("se_block", block)
    assert capsys.readouterr().out.startswith("✓ SEBlock matches torchvision's SqueezeExcitation")


def test_missing_bias_is_a_note(capsys):
    check("se_block", NoBiasSE)
    out = capsys.readouterr().out
    assert "note:" in out and "no bias" in out


# --- buggy variants ---------------------------------------------------------------------------


def make_se(*, gate=torch.sigmoid, hidden_relu=True, pool="avg", combine="mul", width=None):
    class Buggy(nn.Module):
        def __init__(self, channels, reduction=16):
            super().__init__()
            hidden = width(channels, reduction) if width else channels // reduction
            self.fc1 = nn.Linear(channels, hidden)
            self.fc2 = nn.Linear(hidden, channels)

        def forward(self, x):
            b, c, h, w = x.shape
            if pool == "avg":
                s = x.mean((2, 3))
            elif pool == "max":
                s = x.amax((2, 3))
            elif pool == "channels":
                s = x.mean(1).reshape(b, h * w)
            else:
                s = x.mean((0, 2, 3)).expand(b, c)
            s = self.fc1(s)
            if hidden_relu:
                s = F.relu(s)
            s = gate(self.fc2(s))
            if combine == "gates":
                return s
            s = s.view(b, c, 1, 1)
            if combine == "residual":
                return x + x * s
            return x + s if combine == "add" else x * s

    return Buggy


BUGGY = {
    "softmax_gate": (make_se(gate=lambda t: F.softmax(t, dim=1)), "softmax over the channels"),
    "no_gate": (make_se(gate=lambda t: t), "there is no sigmoid gate"),
    "tanh_gate": (make_se(gate=torch.tanh), "the gate is tanh instead of sigmoid"),
    "no_hidden_relu": (make_se(hidden_relu=False), "no ReLU between the two excitation layers"),
    "max_pool": (make_se(pool="max"), "max pooling instead of global average pooling"),
    "returns_gates": (make_se(combine="gates"), "returns the gates"),
    "adds_gates": (make_se(combine="add"), "added to the input instead of multiplying"),
    "residual": (make_se(combine="residual"), "it returns x + x * s (a residual SE) instead of "
                                              "x * s"),
    "pool_over_channels": (make_se(pool="channels"), "averages over the channels instead of "
                                                     "over space"),
    "batch_statistics": (make_se(pool="batch"), "every image gets the same gates"),
    "hidden_width": (make_se(width=lambda c, r: r), "the hidden layer has 16 units; it should "
                                                    "have channels // reduction = 64 // 16 = 4"),
}


@pytest.mark.parametrize("key", BUGGY)
def test_buggy_variants_are_named(key):
    block, phrase = BUGGY[key]
    with pytest.raises(AssertionError) as err:
        check("se_block", block)
    message = str(err.value)
    assert phrase in message, message
    assert "Why it matters" in message, message
    assert judge("se_block", block).mistake == f"se_block.{key}"


def test_wrong_width_explains_parameter_count():
    with pytest.raises(AssertionError) as err:
        check("se_block", BUGGY["hidden_width"][0])
    assert ("Parameters: expected 580 like torchvision's SqueezeExcitation(64, 4); yours has "
            "2,128") in str(err.value)


class ReturnsGateVector(SEBlock):
    def forward(self, x):
        return self.excitation(self.squeeze(x).flatten(1))


def test_returning_gates_of_another_shape_is_still_named():
    with pytest.raises(AssertionError, match="returns the gates"):
        check("se_block", ReturnsGateVector)


class WrongDefault(SEBlock):
    def __init__(self, channels, reduction=8):
        super().__init__(channels, reduction)


def test_default_reduction_is_checked():
    with pytest.raises(AssertionError) as err:
        check("se_block", WrongDefault)
    assert "SEBlock(96)(x)" in str(err.value) and "96 // 16 = 6" in str(err.value)
