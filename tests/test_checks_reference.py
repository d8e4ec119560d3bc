"""The checker's functional references equal torchvision's modules (the trusted references)."""

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock as TVBasicBlock
from torchvision.ops import SqueezeExcitation

from course_utils.checks import _reference as ref
from course_utils.checks._mistakes import basic_block_params, se_params
from course_utils.compare import randomize_
from course_utils.models import CIFAR10Net


def _bn(m: nn.BatchNorm2d) -> dict:
    return {"weight": m.weight.detach(), "bias": m.bias.detach(),
            "running_mean": m.running_mean.clone(), "running_var": m.running_var.clone()}


@pytest.mark.parametrize("cin,cout,stride", [(16, 16, 1), (16, 32, 1), (16, 32, 2), (16, 16, 2)])
@pytest.mark.parametrize("training", [False, True])
def test_basic_block_reference_equals_torchvision(cin, cout, stride, training):
    downsample = None
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout))
    block = TVBasicBlock(cin, cout, stride, downsample)
    randomize_(block)
    params = {"conv1": {"weight": block.conv1.weight.detach()}, "bn1": _bn(block.bn1),
              "conv2": {"weight": block.conv2.weight.detach()}, "bn2": _bn(block.bn2)}
    shortcut = None
    if downsample is not None:
        shortcut = "bn"
        params["down_conv"] = {"weight": downsample[0].weight.detach()}
        params["down_bn"] = _bn(downsample[1])
    x = torch.randn(3, cin, 8, 8)
    expected = block.train(training)(x)
    got = ref.basic_block(params, x, training, stride=stride, shortcut=shortcut)
    assert torch.allclose(got, expected, atol=1e-5)
    assert basic_block_params(cin, cout, stride) == sum(p.numel() for p in block.parameters())


def test_parameter_count_of_the_message_example():
    assert basic_block_params(64, 128, 2) == 230_144


@pytest.mark.parametrize("channels,reduction", [(64, 16), (32, 4), (48, 16)])
def test_se_reference_equals_torchvision(channels, reduction):
    se = SqueezeExcitation(channels, channels // reduction)
    randomize_(se)
    params = {"fc1": {"weight": se.fc1.weight.detach(), "bias": se.fc1.bias.detach()},
              "fc2": {"weight": se.fc2.weight.detach(), "bias": se.fc2.bias.detach()}}
    x = torch.randn(3, channels, 5, 5)
    assert torch.allclose(ref.squeeze_excitation(params, x), se(x), atol=1e-6)
    assert se_params(channels, reduction) == sum(p.numel() for p in se.parameters())


def test_cifar10net_reference_equals_course_model():
    net = CIFAR10Net().eval()
    randomize_(net)
    p = {}
    for i in (1, 2, 3):
        conv = getattr(net, f"conv{i}")
        p[f"conv{i}"] = {"weight": conv.weight.detach()}
        if conv.bias is not None:
            p[f"conv{i}"]["bias"] = conv.bias.detach()
        p[f"bn{i}"] = _bn(getattr(net, f"bn{i}"))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    p["fc1"] = {"weight": linears[0].weight.detach(), "bias": linears[0].bias.detach()}
    p["fc2"] = {"weight": linears[1].weight.detach(), "bias": linears[1].bias.detach()}
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(ref.cifar10net(p, x), net(x), atol=1e-5)
