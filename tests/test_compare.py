"""course_utils.compare proves a hand-built network equals torchvision's, and names what differs."""

import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import Conv2dNormActivation, stochastic_depth

from course_utils.compare import (
    RTOL,
    NetworkMismatch,
    assert_same_network,
    assert_same_outputs,
    constant_tensors,
    copy_weights_,
    randomize_,
)
from course_utils.layers import ConvBNAct, StochasticDepth, drop_path


class Block(nn.Module):
    """ResNet basic block under names of our own (torchvision: conv1/bn1/conv2/bn2/downsample)."""

    def __init__(self, c_in, c_out, stride=1, relu_before_bn=False):
        super().__init__()
        self.a = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.a_norm = nn.BatchNorm2d(c_out)
        self.b = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.b_norm = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out))
        self.relu_before_bn = relu_before_bn

    def forward(self, x):
        out = self.a(x)
        out = self.a_norm(torch.relu(out)) if self.relu_before_bn else torch.relu(self.a_norm(out))
        return torch.relu(self.b_norm(self.b(out)) + self.skip(x))


class ResNet18(nn.Module):
    def __init__(self, pool=nn.MaxPool2d, relu_before_bn=False, num_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(), pool(3, 2, 1))
        blocks, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [Block(c_in, c_out, stride, relu_before_bn), Block(c_out, c_out)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


SHAPE = (2, 3, 64, 64)


def test_hand_built_resnet18_equals_torchvision():
    result = assert_same_network(ResNet18(), torchvision.models.resnet18(weights=None), SHAPE)
    assert result.parameters == 11_689_512
    assert result.identical  # same operations in the same order: bit-identical
    assert result.outputs.shape == (2, 1000) and 0.5 < result.scale < 1e3


def test_ours_built_on_the_meta_device_takes_the_weights():
    with torch.device("meta"):
        ours = ResNet18()
    result = assert_same_network(ours, torchvision.models.resnet18(weights=None), SHAPE)
    assert result.identical and not any(p.is_meta for p in ours.parameters())


def test_wrong_pooling_fails_on_the_outputs():
    # Same tensors, same shapes: only the outputs can tell average pooling from max pooling.
    with pytest.raises(NetworkMismatch, match=r"^outputs differ: max \|ours − theirs\| = "):
        assert_same_network(ResNet18(pool=nn.AvgPool2d), torchvision.models.resnet18(), SHAPE)


def test_a_wrong_shape_names_the_first_mismatching_tensor():
    theirs = torchvision.models.resnet18()
    with pytest.raises(NetworkMismatch) as info:
        copy_weights_(ResNet18(num_classes=10), theirs)
    assert str(info.value) == ("tensor 120 does not line up: ours head.weight (10, 512) vs "
                               "theirs fc.weight (1000, 512)")
    assert "\n" not in str(info.value)


def test_a_missing_tensor_is_named():
    ours = ResNet18()
    ours.head = nn.Sequential()  # no classifier: two tensors fewer
    with pytest.raises(NetworkMismatch, match=r"^ours has 120 tensors, theirs 122: the first 120 "
                                              r"line up, then theirs fc.weight \(1000, 512\) has "
                                              "no partner$"):
        copy_weights_(ours, torchvision.models.resnet18())


def test_different_parameter_counts_fail_first():
    with pytest.raises(NetworkMismatch, match=r"^parameter counts differ: ours 11,181,642 vs "
                                              r"theirs 11,689,512 \(-507,870\)$"):
        assert_same_network(ResNet18(num_classes=10), torchvision.models.resnet18(), SHAPE)


def test_randomising_batchnorm_exposes_a_misplaced_one():
    """ReLU before BN instead of after: with fresh BNs (the identity in eval mode) the two
    networks agree; once BN does something, they do not. This is why the proof randomises."""
    theirs = torchvision.models.resnet18().eval()
    ours = copy_weights_(ResNet18(relu_before_bn=True), theirs)
    x = torch.randn(SHAPE)
    assert assert_same_outputs(ours, theirs, x).max_abs_diff <= RTOL
    with pytest.raises(NetworkMismatch, match="^outputs differ"):
        assert_same_network(ResNet18(relu_before_bn=True), theirs, x)


def test_randomize_changes_constants_only_and_repeats_with_the_seed():
    a, b = torchvision.models.resnet18(), torchvision.models.resnet18()
    b.load_state_dict(a.state_dict())
    conv_before = a.conv1.weight.clone()
    assert "bn1.running_var" in constant_tensors(a) and "layer4.1.bn2.bias" in constant_tensors(a)
    randomize_(a, seed=3), randomize_(b, seed=3)
    assert constant_tensors(a) == []
    assert torch.equal(a.conv1.weight, conv_before)  # already random: left alone
    assert (a.bn1.running_var >= 0.5).all() and (a.bn1.running_var <= 1.5).all()
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_measured_statistics_keep_a_deep_network_at_scale():
    made_up = randomize_(torchvision.models.resnet50(), seed=0).eval()
    measured = randomize_(torchvision.models.resnet50(), seed=0, input_shape=SHAPE).eval()
    x = torch.randn(SHAPE)
    with torch.no_grad():
        assert made_up(x).abs().max() > 20 * measured(x).abs().max()
    assert measured.bn1.num_batches_tracked == 1  # one measured batch, not made-up values
    assert not torch.equal(measured.bn1.running_var, made_up.bn1.running_var)
    assert measured.training is False and measured.bn1.momentum == 0.1


def test_randomize_needs_real_tensors():
    with torch.device("meta"):
        net = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="meta device"):
        randomize_(net)


def test_training_mode_compares_with_the_same_random_draws():
    theirs = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    ours = copy_weights_(copy.deepcopy(theirs), theirs)
    result = assert_same_outputs(ours, theirs.eval(), torch.randn(4, 8), training=True, seed=1)
    assert result.identical and not theirs.training  # flags restored


def test_convert_maps_names_and_merged_tensors():
    theirs = nn.Linear(4, 6)
    ours = nn.ModuleDict({"q": nn.Linear(4, 3), "k": nn.Linear(4, 3)})

    def split(state):
        w, b = state["weight"].chunk(2), state["bias"].chunk(2)
        return {"q.weight": w[0], "q.bias": b[0], "k.weight": w[1], "k.bias": b[1]}

    copy_weights_(ours, theirs, convert=split)
    x = torch.randn(2, 4)
    torch.testing.assert_close(torch.cat([ours["q"](x), ours["k"](x)], 1), theirs(x))


def test_output_shape_mismatch_is_one_line():
    with pytest.raises(NetworkMismatch, match=r"^output shapes differ: ours \(2, 3\) vs theirs "
                                              r"\(2, 4\)$"):
        assert_same_outputs(nn.Linear(5, 3), nn.Linear(5, 4), torch.randn(2, 5))


def test_conv_bn_act_lines_up_with_torchvision():
    theirs = Conv2dNormActivation(8, 16, 3, stride=2, groups=2)
    result = assert_same_network(ConvBNAct(8, 16, 3, stride=2, groups=2), theirs, (2, 8, 9, 9))
    assert result.identical and result.outputs.shape == (2, 16, 5, 5)
    assert len(ConvBNAct(8, 8, act=None)) == 2


def test_drop_path_draws_like_torchvision():
    x = torch.randn(64, 3, 4, 4)
    torch.manual_seed(0)
    ours = drop_path(x, 0.3, training=True)
    torch.manual_seed(0)
    assert torch.equal(ours, stochastic_depth(x, 0.3, "row", training=True))
    dropped = (ours.flatten(1) == 0).all(1)
    assert 0 < dropped.sum() < 64  # whole samples dropped, not single values
    torch.testing.assert_close(ours[~dropped], x[~dropped] / 0.7)
    assert torch.equal(StochasticDepth(0.3).eval()(x), x)


def test_drop_path_rejects_a_bad_probability():
    with pytest.raises(ValueError, match="between 0 and 1, got 1.5"):
        StochasticDepth(1.5)
