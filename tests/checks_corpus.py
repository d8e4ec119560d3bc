"""Correct solutions shared by the tests/test_checks_*.py corpus (not a test module itself).

They are written the way a student would (not copied from the checker), in the seeds' style.
"""

import copy

import matplotlib
import practice_corpus
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class BasicBlock(nn.Module):
    """The lesson's block: builds its own projection when the shape changes."""

    def __init__(self, in_channels, out_channels, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if downsample is None and (stride != 1 or in_channels != out_channels):
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return F.relu(out)


class SEBlock(nn.Module):
    """The seed's SE block."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excitation = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(),
            nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.squeeze(x).view(b, c)
        y = self.excitation(y).view(b, c, 1, 1)
        return x * y


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class PlainCNN(nn.Module):
    def __init__(self, depth=6, width=16):
        super().__init__()
        layers, c = [], 3
        for i in range(depth):
            layers += conv_bn_relu(c, width)
            if i in (depth // 3, 2 * depth // 3):
                layers.append(nn.MaxPool2d(2))
            c = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class CifarResNet(nn.Module):
    def __init__(self, num_blocks=6):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(3, 16))
        # num_blocks spread over the three stages, earlier ones first (the notebook's stage_sizes)
        sizes = [num_blocks // 3 + (1 if i < num_blocks % 3 else 0) for i in range(3)]
        blocks, c = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(sizes[stage]):
                blocks.append(BasicBlock(c, width, 2 if stage > 0 and i == 0 else 1))
                c = width
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


def first_layer_grad_norm(model, images, labels):
    model.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return first.weight.grad.norm().item()


class SmallResNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 32, 2),
                                    BasicBlock(32, 64, 2), BasicBlock(64, 64))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class CIFAR10NetSE(nn.Module):
    """API.md's CIFAR10Net with the SE block after the second layer's BN + ReLU."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.se = SEBlock(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(128)
        self.pool = nn.MaxPool2d(2)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(),
                                        nn.Dropout(0.3), nn.Linear(256, num_classes))

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.se(F.relu(self.bn2(self.conv2(x)))))
        x = self.pool(F.relu(self.bn3(self.conv3(x))))
        return self.classifier(x)


def efficiency_table(names, input_size=224):
    import thop

    rows = []
    for name in names:
        model = models.get_model(name, weights=None).eval()
        x = torch.randn(1, 3, input_size, input_size)
        macs, _ = thop.profile(copy.deepcopy(model), inputs=(x,), verbose=False)
        params = count_parameters(model)
        top1 = models.get_model_weights(name).DEFAULT.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        rows.append({"name": name, "params": params, "macs": macs, "top1": top1,
                     "top1_per_mparam": top1 / (params / 1e6)})
    return rows


def best_accuracy_per_parameter(rows):
    return max(rows, key=lambda r: r["top1"] / r["params"])["name"]


class LeNetStyle(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def conv_relu(cin, cout):
    """VGG had no BatchNorm; the Identity keeps conv_bn_relu's layer indices."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.Identity(), nn.ReLU()]


class VGGStyle(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(*conv_relu(3, 32), *conv_relu(32, 32),
                                      nn.MaxPool2d(2), *conv_relu(32, 64),
                                      *conv_relu(64, 64), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 8 * 8, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class ResNetStyle(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(3, 32))
        self.blocks = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 64, 2),
                                    BasicBlock(64, 64), BasicBlock(64, 128, 2))
        self.head = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def plot_learning_curves(histories):
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in histories.items():
        epochs = range(1, len(h.train_loss) + 1)
        loss_ax.plot(epochs, h.train_loss, label=name)
        acc_ax.plot(epochs, [100 * a for a in h.test_acc], label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)")
    loss_ax.legend()
    acc_ax.legend()
    return fig


SOLUTIONS = {
    "basic_block": BasicBlock, "se_block": SEBlock, "ex1_plain_cnn": PlainCNN,
    "ex1_cifar_resnet": CifarResNet, "ex1_grad_norm": first_layer_grad_norm,
    "ex2_small_resnet": SmallResNet, "ex2_count_parameters": count_parameters,
    "ex3_se_net": CIFAR10NetSE, "ex4_efficiency_table": efficiency_table,
    "ex4_best": best_accuracy_per_parameter, "ex5_lenet_style": LeNetStyle,
    "ex5_vgg_style": VGGStyle, "ex5_resnet_style": ResNetStyle,
    "ex5_plot": plot_learning_curves,
    **practice_corpus.SOLUTIONS,  # lessons 01, 02, 06 and 07
}
