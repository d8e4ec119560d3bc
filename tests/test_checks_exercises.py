"""Corpus for the exercise checks of lessons 03-04 (Ex1, Ex2, Ex3, Ex5)."""

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from checks_corpus import (
    BasicBlock,
    CIFAR10NetSE,
    CifarResNet,
    LeNetStyle,
    PlainCNN,
    ResNetStyle,
    SEBlock,
    SmallResNet,
    VGGStyle,
    count_parameters,
    first_layer_grad_norm,
    plot_learning_curves,
)
from torch import nn

from course_utils.checks import check


def fails(name, obj, *phrases):
    with pytest.raises(AssertionError) as err:
        check(name, obj)
    for phrase in phrases:
        assert phrase in str(err.value), str(err.value)
    return str(err.value)


# --- Exercise 1 -------------------------------------------------------------------------------


class PlainNoBN(nn.Module):
    """Another correct plain net: no BatchNorm, conv biases, pooling every other layer."""

    def __init__(self, depth=6):
        super().__init__()
        layers, c = [], 3
        for i in range(depth):
            layers += [nn.Conv2d(c, 8, 3, padding=1), nn.ReLU()]
            if i % 4 == 3:
                layers.append(nn.MaxPool2d(2))
            c = 8
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("cls", [PlainCNN, PlainNoBN])
def test_plain_cnn_correct(cls, capsys):
    check("ex1_plain_cnn", cls)
    assert "no skip connection" in capsys.readouterr().out


class PlainWithSkip(PlainCNN):
    def forward(self, x):
        h = self.features[:3](x)
        h = h + self.features[3:6](h)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features[6:](h), 1), 1))


class FixedDepth(PlainCNN):
    def __init__(self, depth=6):
        super().__init__(6)


class UnusedLayer(PlainCNN):
    def __init__(self, depth=6):
        super().__init__(depth)
        self.extra = nn.Linear(10, 10)


def test_plain_cnn_mistakes():
    fails("ex1_plain_cnn", PlainWithSkip, "has a skip connection", "`features.3`")
    fails("ex1_plain_cnn", FixedDepth, "PlainCNN(depth=20) has 6 nn.Conv2d layers")
    fails("ex1_plain_cnn", UnusedLayer, "`extra.weight`", "never learn")


def test_cifar_resnet_correct(capsys):
    check("ex1_cifar_resnet", CifarResNet)
    assert "residual blocks" in capsys.readouterr().out


class PerStage(CifarResNet):
    def __init__(self, num_blocks=6):
        super().__init__(3 * num_blocks)


class PlainAsResNet(nn.Module):
    def __init__(self, num_blocks=6):
        super().__init__()
        self.net = PlainCNN(2 * num_blocks)

    def forward(self, x):
        return self.net(x)


def test_cifar_resnet_mistakes():
    fails("ex1_cifar_resnet", PerStage, "has 18 residual blocks", "expected 6",
          "total number of blocks")
    fails("ex1_cifar_resnet", PlainAsResNet, "has 0 residual blocks", "its own nn.Module")


def test_grad_norm_correct(capsys):
    check("ex1_grad_norm", first_layer_grad_norm)
    assert "reference computation" in capsys.readouterr().out


def stale(model, images, labels):
    F.cross_entropy(model(images), labels).backward()
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).weight.grad.norm().item()


def first_parameter(model, images, labels):
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return next(model.parameters()).grad.norm().item()


def by_name(model, images, labels):
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return model.conv1.weight.grad.norm().item()


def as_tensor(model, images, labels):
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).weight.grad.norm()


def squared(model, images, labels):
    return first_layer_grad_norm(model, images, labels) ** 2


def test_grad_norm_mistakes():
    fails("ex1_grad_norm", stale, "left over from earlier backward passes", "zero_grad")
    fails("ex1_grad_norm", first_parameter, "gradient norm of `classifier.weight`",
          "`stem.0.weight`")
    message = fails("ex1_grad_norm", by_name, "AttributeError", "model.conv1.weight")
    assert "isinstance(m, nn.Conv2d)" in message
    fails("ex1_grad_norm", as_tensor, "returned a tensor", ".item()")
    fails("ex1_grad_norm", squared, "squared norm")


# --- Exercise 2 -------------------------------------------------------------------------------


class ThreeBlocks(SmallResNet):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__(in_channels, num_classes)
        self.blocks = self.blocks[:3]


class NoFinalReLUBlock(BasicBlock):
    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return out + (x if self.downsample is None else self.downsample(x))


class SmallWithBadBlock(SmallResNet):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__(in_channels, num_classes)
        self.blocks[1] = NoFinalReLUBlock(16, 32, 2)


class FixedClasses(SmallResNet):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__(in_channels, 10)


def test_small_resnet(capsys):
    check("ex2_small_resnet", SmallResNet)
    assert "exactly 4" in capsys.readouterr().out
    fails("ex2_small_resnet", ThreeBlocks, "has 3 residual blocks", "exactly 4")
    fails("ex2_small_resnet", SmallWithBadBlock, "block `blocks.1`",
          "the ReLU after the addition is missing")
    fails("ex2_small_resnet", FixedClasses, "returned shape (2, 10); expected (2, 5)")


def count_all(model):
    return sum(p.numel() for p in model.parameters())


def count_state(model):
    return sum(v.numel() for v in model.state_dict().values())


def count_tensors(model):
    return len([p for p in model.parameters() if p.requires_grad])


def count_named(model):
    return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)
               if p.requires_grad)


def count_with_flag(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def test_count_parameters(capsys):
    check("ex2_count_parameters", count_parameters)
    check("ex2_count_parameters", count_with_flag)
    assert "trainable_only=False counts all" in capsys.readouterr().out
    fails("ex2_count_parameters", count_all, "counts frozen parameters")
    fails("ex2_count_parameters", count_state, "counts buffers")
    fails("ex2_count_parameters", count_tensors, "parameter tensors, not their elements")
    fails("ex2_count_parameters", count_named, "shared weight twice")
    fails("ex2_count_parameters", lambda m: torch.tensor(count_parameters(m)), "Python int")


# --- Exercise 3 -------------------------------------------------------------------------------


def se_net(place, channels=64, se=SEBlock):
    class Net(CIFAR10NetSE):
        def __init__(self, num_classes=10):
            super().__init__(num_classes)
            self.se = se(channels)

        def forward(self, x):
            s = self.se
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.pool(s(x) if place == "layer1" else x)
            x = self.conv2(x)
            x = s(x) if place == "before_bn" else x
            x = self.bn2(x)
            x = s(x) if place == "after_bn" else x
            x = F.relu(x)
            x = s(x) if place == "after_relu" else x
            x = self.pool(x)
            x = s(x) if place == "after_pool" else x
            x = self.pool(F.relu(self.bn3(self.conv3(x))))
            return self.classifier(x)

    return Net


@pytest.mark.parametrize("place,words", [("after_relu", "after BN + ReLU"),
                                         ("after_bn", "after BN, before ReLU"),
                                         ("after_pool", "after pooling")])
def test_se_net_accepted_placements(place, words, capsys):
    check("ex3_se_net", se_net(place))
    assert words in capsys.readouterr().out


def test_se_net_default_solution(capsys):
    check("ex3_se_net", CIFAR10NetSE)
    assert "✓ CIFAR10NetSE" in capsys.readouterr().out


def test_se_net_mistakes():
    fails("ex3_se_net", se_net("before_bn"), "between the second conv and its BatchNorm")
    fails("ex3_se_net", se_net("layer1", channels=32), "on the first conv layer's output "
          "(32 channels)", "Parameters: expected")
    fails("ex3_se_net", se_net("nowhere"), "never applied in forward")


def test_se_net_rejects_torchvision_se():
    from torchvision.ops import SqueezeExcitation

    fails("ex3_se_net", se_net("after_relu", se=lambda c: SqueezeExcitation(c, c // 16)),
          "torchvision")


# --- Exercise 5 -------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cls", [("ex5_lenet_style", LeNetStyle), ("ex5_vgg_style", VGGStyle),
                                      ("ex5_resnet_style", ResNetStyle)])
def test_ex5_nets_correct(name, cls, capsys):
    check(name, cls)
    assert capsys.readouterr().out.startswith("✓")


class VGG5x5(VGGStyle):
    def __init__(self, num_classes=10):
        super().__init__(num_classes)
        self.features[0] = nn.Conv2d(3, 32, 5, padding=2, bias=False)


class LeNet3(LeNetStyle):
    def __init__(self, num_classes=10):
        super().__init__(num_classes)
        self.features[3] = nn.Sequential(nn.Conv2d(6, 16, 3), nn.Conv2d(16, 16, 3))


class ResNet3(ResNetStyle):
    def __init__(self, num_classes=10):
        super().__init__(num_classes)
        self.blocks = self.blocks[:3]
        self.head = nn.Linear(64, num_classes)


class VGGWithSkip(VGGStyle):
    def forward(self, x):
        h = self.features[:3](x)
        h = h + self.features[3:6](h)
        return self.classifier(self.features[6:](h))


def test_ex5_net_mistakes():
    fails("ex5_vgg_style", VGG5x5, "`features.0` has a 5×5 kernel", "only 3×3")
    fails("ex5_lenet_style", LeNet3, "has 3 nn.Conv2d layers", "has 2")
    fails("ex5_resnet_style", ResNet3, "has 3 residual blocks", "has 4")
    fails("ex5_vgg_style", VGGWithSkip, "skip connection around `features.3`")
    fails("ex5_resnet_style", nn.Sequential(), "not an instance")


def test_plot_correct(capsys):
    before = plt.get_fignums()
    check("ex5_plot", plot_learning_curves)
    assert "labelled by model name" in capsys.readouterr().out
    assert plt.get_fignums() == before  # the checker closes the figures it made


def plot_train_acc(histories):
    fig, (a, b) = plt.subplots(1, 2)
    for name, h in histories.items():
        a.plot(h.train_loss, label=name)
        b.plot(h.train_acc, label=name)
    a.set_ylabel("loss")
    b.set_ylabel("accuracy")
    a.legend()
    b.legend()
    return fig


def plot_unlabelled(histories):
    fig, (a, b) = plt.subplots(1, 2)
    for h in histories.values():
        a.plot(h.train_loss)
        b.plot(h.test_acc)
    return fig


def plot_returns_axes(histories):
    return plot_learning_curves(histories).axes[0]


def plot_no_legend(histories):
    fig = plot_learning_curves(histories)
    for ax in fig.axes:
        ax.get_legend().remove()
    return fig


def test_plot_mistakes():
    fails("ex5_plot", plot_train_acc, "no line shows LeNetStyle's test accuracy")
    fails("ex5_plot", plot_unlabelled, "label every line with its model's name")
    fails("ex5_plot", plot_returns_axes, "expected a matplotlib Figure", "not an Axes")
    fails("ex5_plot", plot_no_legend, "no legend")
    fails("ex5_plot", lambda histories: None, "forget `return fig`")

