"""Correct and wrong answers to the exercises of lessons 03-05, shared by the tests/test_checks_*.py
files, tests/test_judge_parity.py and benchmarks/notebooks.py (not a test module itself). The
practice items of lessons 01, 02, 06 and 07 have their own corpus, tests/practice_corpus.py.

They are written the way a student would (not copied from the checker), in the seeds' style.
"""

import copy
import functools

import matplotlib
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


def stage_sizes(n, stages=3):
    return [n // stages + (1 if i < n % stages else 0) for i in range(stages)]


class PlainCNN(nn.Module):
    """The notebook's plain net: conv-BN-ReLU layers, stride-2 stage starts, GAP, Linear."""

    def __init__(self, depth=6, num_classes=10):
        super().__init__()
        layers, c = conv_bn_relu(3, 16), 16
        for stage, n in enumerate(stage_sizes(depth - 1)):
            for i in range(n):
                width = (16, 32, 64)[stage]
                stride = 2 if stage > 0 and i == 0 else 1
                layers += [nn.Conv2d(c, width, 3, stride=stride, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU()]
                c = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class CifarResNet(nn.Module):
    def __init__(self, num_blocks=6, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(3, 16))
        blocks, c = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(stage_sizes(num_blocks)[stage]):
                blocks.append(BasicBlock(c, width, 2 if stage > 0 and i == 0 else 1))
                c = width
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

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
}


# =============================================================================================
# The exercise corpus: several correct styles per item, and the common mistakes, each with the
# mistake id the check must give and phrases its message must contain (tests/test_checks_
# exercises.py, tests/test_checks_ex4.py and, through a real kernel, tests/test_judge_parity.py).
# =============================================================================================

# --- lesson 03, Exercise 1: PlainCNN ------------------------------------------------------------


class PlainModuleList(nn.Module):
    """ModuleLists, functional ReLU, conv biases (a note), x.mean for the pooling."""

    def __init__(self, depth=6, num_classes=10):
        super().__init__()
        plan, c = [(3, 16, 1)], 16
        for stage, n in enumerate(stage_sizes(depth - 1)):
            for i in range(n):
                plan.append((c, (16, 32, 64)[stage], 2 if stage and not i else 1))
                c = (16, 32, 64)[stage]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, s, 1) for a, b, s in plan)
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for _, b, _ in plan)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x)))
        return self.classifier(x.mean((2, 3)))


class PlainStages(nn.Module):
    """Head registered first; stages of conv-BN-ReLU Sequentials; AdaptiveAvgPool2d + Flatten."""

    def __init__(self, depth=6, num_classes=10):
        super().__init__()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        stages, c = [], 16
        for stage, n in enumerate(stage_sizes(depth - 1)):
            layers = []
            for i in range(n):
                w = (16, 32, 64)[stage]
                layers.append(nn.Sequential(
                    nn.Conv2d(c, w, 3, stride=2 if stage and not i else 1, padding=1, bias=False),
                    nn.BatchNorm2d(w), nn.ReLU(inplace=True)))
                c = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        if c != 64:
            self.head[2] = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


class PlainLogSoftmax(PlainCNN):
    """log_softmax outputs: accepted with a note (cross-entropy gives the same loss)."""

    def forward(self, x):
        return F.log_softmax(super().forward(x), dim=1)


def plain_with(**change):
    """PlainCNN with one thing done differently (a mistake)."""
    class Plain(nn.Module):
        def __init__(self, depth=6, num_classes=10):
            super().__init__()
            layers, c = [], 3
            plan = [(16, 1)] + [((16, 32, 64)[st], 2 if st and not i else 1)
                                for st, n in enumerate(stage_sizes(depth - 1)) for i in range(n)]
            for w, s in plan:
                w = change.get("width", w)
                s = 1 if change.get("no_stride") or change.get("pool") else s
                conv = nn.Conv2d(c, w, 3, stride=s, padding=1, bias=change.get("bias", False))
                bn, relu = nn.BatchNorm2d(w), nn.ReLU()
                unit = [conv, relu, bn] if change.get("relu_first") else [conv, bn, relu]
                if change.get("no_bn"):
                    unit = [conv, relu]
                if change.get("no_relu"):
                    unit = [conv, bn]
                if change.get("pool") and s != 1 or change.get("pool") and (w, 2) in plan[1:] and \
                        plan.index((w, 2)) == len(layers) // 3 and False:
                    pass
                layers += unit
                c = w
            if change.get("pool"):
                layers = []
                c = 3
                for w, s in plan:
                    layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                               nn.ReLU()] + ([nn.MaxPool2d(2)] if s == 2 else [])
                    c = w
            self.features = nn.Sequential(*layers)
            classes = 10 if change.get("ten_classes") else num_classes
            if change.get("flatten"):
                self.fc = nn.Linear(c * 8 * 8 if depth > 2 else c * 32 * 32, classes)
            else:
                self.fc = nn.Linear(c, classes)

        def forward(self, x):
            h = self.features(x)
            h = torch.flatten(h, 1) if change.get("flatten") else h.mean((2, 3))
            out = self.fc(h)
            if change.get("softmax"):
                return F.softmax(out, dim=1)
            return F.relu(out) if change.get("relu_out") else out

    return Plain


class PlainWithSkip(PlainCNN):
    def forward(self, x):
        h = self.features[:3](x)
        h = h + self.features[3:6](h)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features[6:](h), 1), 1))


class PlainFixedDepth(PlainCNN):
    def __init__(self, depth=6, num_classes=10):
        super().__init__(6, num_classes)


class PlainUnusedLayer(PlainCNN):
    def __init__(self, depth=6, num_classes=10):
        super().__init__(depth, num_classes)
        self.extra = nn.Linear(10, 10)


# --- lesson 03, Exercise 1: CifarResNet --------------------------------------------------------


class CifarStages(nn.Module):
    """torchvision-like names: conv1/bn1 stem with F.relu, layer1..layer3 from _make_layer."""

    def __init__(self, num_blocks=6, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_channels = 16
        sizes = stage_sizes(num_blocks)
        self.layer1 = self._make_layer(16, sizes[0], 1)
        self.layer2 = self._make_layer(32, sizes[1], 2)
        self.layer3 = self._make_layer(64, sizes[2], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.in_channels, num_classes)

    def _make_layer(self, width, n, stride):
        layers = []
        for i in range(n):
            layers.append(BasicBlock(self.in_channels, width, stride if i == 0 else 1))
            self.in_channels = width
        return nn.Sequential(*layers)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ShortcutFirstBlock(nn.Module):
    """Another correct block: shortcut registered and run first, other names."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.na = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.nb = nn.BatchNorm2d(cout)

    def forward(self, x):
        skip = self.shortcut(x)
        return F.relu(self.nb(self.b(F.relu(self.na(self.a(x))))) + skip)


class CifarOwnBlock(nn.Module):
    """Blocks in a ModuleList, an AvgPool2d(8) head (global pooling on the 8×8 map)."""

    def __init__(self, num_blocks=6, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        plan, c = [], 16
        for stage, n in enumerate(stage_sizes(num_blocks)):
            for i in range(n):
                plan.append(ShortcutFirstBlock(c, (16, 32, 64)[stage], 2 if stage and not i else 1))
                c = (16, 32, 64)[stage]
        self.blocks = nn.ModuleList(plan)
        self.out = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.out(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ReluBeforeAddBlock(BasicBlock):
    def forward(self, x):
        out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


def cifar_with(**change):
    """CifarResNet with one thing done differently (a mistake)."""
    class Cifar(nn.Module):
        def __init__(self, num_blocks=6, num_classes=10):
            super().__init__()
            widths = (64, 128, 256) if change.get("imagenet_widths") else (16, 32, 64)
            k, s = (7, 2) if change.get("imagenet_stem") else (3, 1)
            stem = [nn.Conv2d(3, widths[0], k, s, k // 2, bias=False), nn.BatchNorm2d(widths[0]),
                    nn.ReLU()]
            if change.get("no_stem_bn"):
                stem = [stem[0], stem[2]]
            if change.get("imagenet_stem"):
                stem.append(nn.MaxPool2d(3, 2, 1))
            if change.get("stem_pool"):
                stem.append(nn.MaxPool2d(2))
            if change.get("two_convs"):
                stem += [nn.Conv2d(widths[0], widths[0], 3, 1, 1, bias=False),
                         nn.BatchNorm2d(widths[0]), nn.ReLU()]
            self.stem = nn.Sequential(*stem)
            sizes = change.get("sizes", stage_sizes)(num_blocks)
            blocks, c = [], widths[0]
            block = change.get("block", BasicBlock)
            for stage, n in enumerate(sizes):
                for i in range(n):
                    stride = 2 if stage and not i and not change.get("no_stride") else 1
                    blocks.append(block(c, widths[stage], stride))
                    c = widths[stage]
            self.blocks = nn.Sequential(*blocks)
            classes = 10 if change.get("ten_classes") else num_classes
            spatial = 8 if not change.get("no_stride") else 32
            self.fc = nn.Linear(c * spatial * spatial if change.get("flatten") else c, classes)

        def forward(self, x):
            h = self.blocks(self.stem(x))
            out = self.fc(torch.flatten(h, 1) if change.get("flatten") else h.mean((2, 3)))
            if change.get("softmax"):
                return out.softmax(dim=1)
            return F.relu(out) if change.get("relu_out") else out

    return Cifar


class CifarPlain(nn.Module):
    """No residual blocks: a plain net of the same depth."""

    def __init__(self, num_blocks=6, num_classes=10):
        super().__init__()
        self.net = PlainCNN(2 * num_blocks + 1, num_classes)

    def forward(self, x):
        return self.net(x)


# --- lesson 03, Exercise 2: SmallResNet and count_parameters ------------------------------------


class SmallNamed(nn.Module):
    """Separate stem layers, blocks as attributes, nn.AdaptiveAvgPool2d + view."""

    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.block1 = BasicBlock(16, 16)
        self.block2 = BasicBlock(16, 32, stride=2)
        self.block3 = BasicBlock(32, 64, stride=2)
        self.block4 = BasicBlock(64, 64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.fc(self.pool(x).view(x.size(0), -1))


class SmallOwnBlocks(nn.Module):
    """Blocks of another correct style (shortcut first), a conv bias in the stem (a note)."""

    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.body = nn.Sequential(ShortcutFirstBlock(16, 16), ShortcutFirstBlock(16, 32, 2),
                                  ShortcutFirstBlock(32, 64, 2), ShortcutFirstBlock(64, 64))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def small_with(**change):
    """SmallResNet with one thing done differently (a mistake)."""
    class Small(SmallResNet):
        def __init__(self, in_channels=1, num_classes=10):
            super().__init__(in_channels, 10 if change.get("ten_classes") else num_classes)
            if "blocks" in change:
                self.blocks = nn.Sequential(*change["blocks"]())
                self.fc = nn.Linear(self.blocks[-1].bn2.num_features, num_classes)
            if change.get("stem_pool"):
                self.stem.append(nn.MaxPool2d(2))
            if change.get("flatten"):
                self.fc = nn.Linear(64 * 7 * 7, num_classes)
            if change.get("relu_first"):
                self.stem = nn.Sequential(self.stem[0], nn.ReLU(), self.stem[1])

        def forward(self, x):
            h = self.blocks(self.stem(x))
            out = self.fc(torch.flatten(h, 1) if change.get("flatten") else h.mean((2, 3)))
            return out.softmax(1) if change.get("softmax") else out

    return Small


class NoFinalReLUBlock(BasicBlock):
    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return out + (x if self.downsample is None else self.downsample(x))


def count_with_flag(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_named_parameters(model):
    """named_parameters() lists each (shared) parameter once, like parameters()."""
    total = 0
    for _, p in model.named_parameters():
        if p.requires_grad:
            total += p.numel()
    return total


def count_all(model):
    return sum(p.numel() for p in model.parameters())


def count_state(model):
    return sum(v.numel() for v in model.state_dict().values())


def count_tensors(model):
    return len([p for p in model.parameters() if p.requires_grad])


def count_named(model):
    return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)
               if p.requires_grad)


def count_over_modules(model):
    return sum(p.numel() for m in model.modules() for p in m.parameters() if p.requires_grad)


def count_weights(model):
    return sum(m.weight.numel() for m in model.modules()
               if getattr(m, "weight", None) is not None and m.weight.requires_grad)


def count_as_tensor(model):
    return torch.tensor(count_parameters(model))


def count_as_float(model):
    return float(count_parameters(model))


# --- lesson 04, Exercise 3: CIFAR10NetSE ----------------------------------------------------------


class ConvSE(nn.Module):
    """SE with 1×1 convs on the pooled map, functional pooling and gate."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.expand = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


def se_with(**change):
    """SEBlock with one of the SE catalogue's mistakes."""
    class SE(SEBlock):
        def forward(self, x):
            b, c, _, _ = x.size()
            y = self.squeeze(x).view(b, c)
            y = self.excitation[2](self.excitation[1](self.excitation[0](y)))
            y = F.softmax(y, dim=1) if change.get("softmax") else torch.sigmoid(y)
            y = y.view(b, c, 1, 1)
            return x + x * y if change.get("residual") else x * y

    return SE


def se_net(place="after_relu", channels=64, se=SEBlock, **change):
    """CIFAR10NetSE with the SE block at `place` (and other changes)."""
    class Net(CIFAR10NetSE):
        def __init__(self, num_classes=10):
            super().__init__(10 if change.get("ten_classes") else num_classes)
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
            out = self.classifier(x)
            return out.softmax(1) if change.get("softmax") else out

    return Net


class SENetTorchvision(CIFAR10NetSE):
    def __init__(self, num_classes=10):
        from torchvision.ops import SqueezeExcitation

        super().__init__(num_classes)
        self.se = SqueezeExcitation(64, 4)


# --- lesson 04, Exercise 5: LeNetStyle, VGGStyle, ResNetStyle -------------------------------------


class LeNetClassic(nn.Module):
    """tanh and average pooling, pooling before the activation, as in 1998."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.c1, self.s2 = nn.Conv2d(3, 6, 5), nn.AvgPool2d(2)
        self.c3, self.s4 = nn.Conv2d(6, 16, 5), nn.AvgPool2d(2)
        self.f5, self.f6, self.out = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, num_classes)

    def forward(self, x):
        x = torch.tanh(self.s2(self.c1(x)))
        x = torch.tanh(self.s4(self.c3(x)))
        x = torch.tanh(self.f5(x.flatten(1)))
        return self.out(torch.tanh(self.f6(x)))


class LeNetFunctional(nn.Module):
    """Padded 5×5 convs, F.relu and F.max_pool2d, two fully connected layers."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 8 * 8, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def lenet_with(**change):
    """LeNetStyle with one thing done differently (a mistake)."""
    class LeNet(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            act = nn.Identity if change.get("no_conv_act") or change.get("no_act") else nn.ReLU
            fc_act = nn.Identity if change.get("no_fc_act") or change.get("no_act") else nn.ReLU
            first_act = nn.Identity if change.get("first_act_missing") else act
            pool1 = nn.Identity() if change.get("pool1_missing") else nn.MaxPool2d(2)
            convs = [nn.Conv2d(3, 6, 5), first_act(), pool1, nn.Conv2d(6, 16, 5), act(),
                     nn.MaxPool2d(2)]
            if change.get("bn"):
                convs.insert(1, nn.BatchNorm2d(6))
            if change.get("three_convs"):
                convs += [nn.Conv2d(16, 16, 3, padding=1), act()]
            self.features = nn.Sequential(*convs)
            side = 12 if change.get("pool1_missing") else 5
            classes = 10 if change.get("ten_classes") else num_classes
            if change.get("one_fc"):
                head = [nn.Linear(16 * side * side, classes)]
            else:
                head = [nn.Linear(16 * side * side, 120), fc_act(), nn.Linear(120, 84), fc_act(),
                        nn.Linear(84, classes)]
            self.classifier = nn.Sequential(nn.Flatten(), *head)

        def forward(self, x):
            out = self.classifier(self.features(x))
            if change.get("softmax"):
                return F.softmax(out, dim=1)
            return F.relu(out) if change.get("relu_out") else out

    return LeNet


class LeNetWithSkip(LeNetStyle):
    def forward(self, x):
        h = self.features[:3](x)
        h = self.features[3:](h) + F.adaptive_avg_pool2d(h[:, :1], 5)
        return self.classifier(h)


class VGGGap(nn.Module):
    """Functional ReLU and pooling, global average pooling before one Linear layer."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 3, padding="same"),
                                    nn.Conv2d(32, 32, 3, padding=1),
                                    nn.Conv2d(32, 64, 3, padding=1),
                                    nn.Conv2d(64, 64, 3, padding=1, bias=False)])
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class VGGDropout(nn.Module):
    """The lesson's solution style: two vgg_block Sequentials, a classifier with Dropout."""

    def __init__(self, num_classes=10):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 16), block(16, 32))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 8 * 8, 128),
                                        nn.ReLU(inplace=True), nn.Dropout(0.5),
                                        nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def vgg_with(**change):
    """VGGStyle with one thing done differently (a mistake)."""
    class VGG(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            k = change.get("kernel", 3)
            pad = change.get("padding", k // 2)
            act = nn.Identity if change.get("no_act") else nn.ReLU
            norm = nn.BatchNorm2d if change.get("bn") else (lambda c: nn.Identity())
            pool = nn.AvgPool2d if change.get("avg") else nn.MaxPool2d
            layers, c = [], 3
            for i, w in enumerate((32, 32, 64, 64)):
                layers += [nn.Conv2d(c, w, k, padding=pad), norm(w), act()]
                if i % 2 == 1 or change.get("pool_every"):
                    layers.append(pool(2))
                c = w
            self.features = nn.Sequential(*layers)
            side = {3: 8, 5: 8}[k] if pad else 5
            if change.get("pool_every"):
                side = 2
            classes = 10 if change.get("ten_classes") else num_classes
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, 64), act(),
                                            nn.Linear(64, classes))

        def forward(self, x):
            out = self.classifier(self.features(x))
            if change.get("softmax"):
                return out.softmax(-1)
            return F.relu(out) if change.get("relu_out") else out

    return VGG


class VGGWithSkip(VGGStyle):
    def forward(self, x):
        h = self.features[:3](x)
        h = h + self.features[3:6](h)
        return self.classifier(self.features[6:](h))


class ResNetStyleSolution(nn.Module):
    """The lesson's solution style: stem with max-pooling, an nn.Sequential head."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.blocks = nn.Sequential(ShortcutFirstBlock(16, 16), ShortcutFirstBlock(16, 32, 2),
                                    ShortcutFirstBlock(32, 64, 2), ShortcutFirstBlock(64, 64))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class ResNetStyleBigStem(nn.Module):
    """A 5×5 stride-2 stem conv (free), blocks registered in a ModuleList."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 24, 5, stride=2, padding=2, bias=False)
        self.bn = nn.BatchNorm2d(24)
        self.blocks = nn.ModuleList([BasicBlock(24, 24), BasicBlock(24, 48, 2),
                                     BasicBlock(48, 48), BasicBlock(48, 48)])
        self.fc = nn.Linear(48, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


def resnet_style_with(**change):
    """ResNetStyle with one thing done differently (a mistake)."""
    class Net(ResNetStyle):
        def __init__(self, num_classes=10):
            super().__init__(10 if change.get("ten_classes") else num_classes)
            if "blocks" in change:
                self.blocks = nn.Sequential(*change["blocks"]())
                self.head = nn.Linear(self.blocks[-1].bn2.num_features, num_classes)
            if change.get("mlp"):
                self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, num_classes))
            if change.get("flatten"):
                self.head = nn.Linear(128 * 8 * 8, num_classes)
            if change.get("no_stem_bn"):
                self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())

        def forward(self, x):
            h = self.blocks(self.stem(x))
            out = self.head(torch.flatten(h, 1) if change.get("flatten") else h.mean((2, 3)))
            return out.softmax(1) if change.get("softmax") else out

    return Net


class ResNetStylePlain(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = PlainCNN(9, num_classes)

    def forward(self, x):
        return self.net(x)


# --- lesson 05, Exercise 4: efficiency_table and best_accuracy_per_parameter ---------------------


@functools.cache
def _profiled(name, input_size):
    """(exact params, thop MACs, thop params, default top-1) of one model, computed once."""
    import thop

    model = models.get_model(name, weights=None).eval()
    with torch.no_grad():
        macs, thop_params = thop.profile(copy.deepcopy(model),
                                         inputs=(torch.zeros(1, 3, input_size, input_size),),
                                         verbose=False)
    top1 = models.get_model_weights(name).DEFAULT.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    return count_parameters(model), macs, thop_params, top1


def table_with(**change):
    """efficiency_table (thop MACs, cached) with one thing done differently (a mistake)."""
    def efficiency_table(names, input_size=224):
        rows = []
        size = 224 if change.get("ignore_size") else input_size
        for name in (NAMES_OF_THE_TABLE if change.get("hard_coded") else names):
            params, macs, thop_params, top1 = _profiled(name, size)
            if change.get("thop_params"):
                params = thop_params
            if change.get("thop_params_int"):
                params = int(thop_params)
            if change.get("millions"):
                params = params / 1e6
            macs = macs * change.get("macs_factor", 1)
            top1 = top1 / 100 if change.get("fraction") else top1
            per = top1 / params if change.get("per_parameter") else top1 / (params / 1e6)
            rows.append({"name": name, "params": params, "macs": macs, "top1": top1,
                         "top1_per_mparam": per})
        return rows

    return efficiency_table


NAMES_OF_THE_TABLE = ("vgg16", "resnet50", "efficientnet_b0")


def efficiency_table_exact(names, input_size=224):
    """MACs from torch's FlopCounterMode (exact), params summed by hand."""
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for name in names:
        model = models.get_model(name, weights=None).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        weights = models.get_model_weights(name).DEFAULT
        top1 = weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        rows.append({"name": name, "params": params, "macs": counter.get_total_flops() // 2,
                     "top1": top1, "top1_per_mparam": top1 / (params / 1e6)})
    return rows


def best_by_mparam(rows):
    """Uses the precomputed column; a loop instead of max()."""
    best = None
    for row in rows:
        if best is None or row["top1_per_mparam"] > best["top1_per_mparam"]:
            best = row
    return best["name"]


def best_sorted(rows):
    return sorted(rows, key=lambda r: r["top1"] / r["params"], reverse=True)[0]["name"]


def best_hard_coded(rows):
    return "efficientnet_b0"


def best_highest_top1(rows):
    return max(rows, key=lambda r: r["top1"])["name"]


def best_min_ratio(rows):
    return min(rows, key=lambda r: r["top1_per_mparam"])["name"]


def best_most_params(rows):
    return max(rows, key=lambda r: r["params"])["name"]


def best_fewest_params(rows):
    return min(rows, key=lambda r: r["params"])["name"]


def best_returns_row(rows):
    return max(rows, key=lambda r: r["top1_per_mparam"])


def best_sorts_in_place(rows):
    rows.sort(key=lambda r: -r["top1_per_mparam"])
    return rows[0]["name"]


def best_first_row(rows):
    for row in rows:
        if row["top1_per_mparam"] > 0:
            return row["name"]


# --- lesson 03, Exercise 1: first_layer_grad_norm -------------------------------------------------


def grad_norm_set_to_none(model, images, labels):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            first = m
            break
    model.zero_grad(set_to_none=True)
    nn.CrossEntropyLoss()(model(images), labels).backward()
    return float(torch.linalg.vector_norm(first.weight.grad))


def grad_norm_autograd(model, images, labels):
    """torch.autograd.grad leaves .grad alone: stale gradients never enter."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    (grad,) = torch.autograd.grad(F.cross_entropy(model(images), labels), first.weight)
    return grad.norm().item()


def grad_norm_with(**change):
    """first_layer_grad_norm with one thing done differently (a mistake)."""
    def first_layer_grad_norm(model, images, labels):
        if not change.get("stale"):
            model.zero_grad()
        if change.get("eval"):
            model.eval()
        loss = F.cross_entropy(model(images), labels,
                               reduction="sum" if change.get("summed") else "mean")
        loss.backward()
        first = (next(model.parameters()) if change.get("first_parameter") else
                 next(m for m in model.modules() if isinstance(m, nn.Conv2d)).weight)
        if change.get("step"):
            torch.optim.SGD(model.parameters(), lr=0.1).step()
        value = first.grad.norm()
        if change.get("weight"):
            value = first.norm()
        if change.get("squared"):
            value = value ** 2
        return value if change.get("tensor") else value.item()

    return first_layer_grad_norm


# --- lesson 04, Exercise 5: plot_learning_curves --------------------------------------------------


def plot_percent_and_figure_legend(histories):
    """Accuracy in percent, one figure-level legend, titles instead of y-labels."""
    fig, axes = plt.subplots(2, 1, figsize=(6, 6))
    for name, h in histories.items():
        axes[0].plot(h.train_loss, label=name)
        axes[1].plot([100 * a for a in h.test_acc], label=name)
    axes[0].set_title("Training loss")
    axes[1].set_title("Test accuracy (%)")
    fig.legend()
    return fig


def plot_three_named_models(histories):
    """Plots the three models of the exercise by name, whatever the histories hold
    (a KeyError with any other names: only the hidden cases use other names)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2)
    for name in ("LeNetStyle", "VGGStyle", "ResNetStyle"):
        loss_ax.plot(histories[name].train_loss, label=name)
        acc_ax.plot(histories[name].test_acc, label=name)
    loss_ax.set_ylabel("training loss")
    acc_ax.set_ylabel("test accuracy")
    loss_ax.legend()
    acc_ax.legend()
    return fig


def plot_with(**change):
    """plot_learning_curves with one thing done differently (a mistake)."""
    def plot_learning_curves(histories):
        fig, (a, b) = plt.subplots(1, 2)
        for name, h in histories.items():
            label = None if change.get("unlabelled") else name
            a.plot(h.train_loss, label=label)
            b.plot(h.train_acc if change.get("train_acc") else h.test_acc, label=label)
        if not change.get("no_labels"):
            a.set_ylabel("loss")
            b.set_ylabel("accuracy")
        if not change.get("no_legend") and not change.get("unlabelled"):
            a.legend()
            b.legend()
        if change.get("axes"):
            return a
        return None if change.get("no_return") else fig

    return plot_learning_curves


CORRECT = {
    "ex1_plain_cnn": [PlainCNN, PlainModuleList, PlainStages, PlainLogSoftmax],
    "ex1_cifar_resnet": [CifarResNet, CifarStages, CifarOwnBlock],
    "ex1_grad_norm": [first_layer_grad_norm, grad_norm_set_to_none, grad_norm_autograd],
    "ex2_small_resnet": [SmallResNet, SmallNamed, SmallOwnBlocks],
    "ex2_count_parameters": [count_parameters, count_with_flag, count_named_parameters],
    "ex3_se_net": [CIFAR10NetSE, se_net("after_bn"), se_net("after_pool", se=ConvSE)],
    "ex5_lenet_style": [LeNetStyle, LeNetClassic, LeNetFunctional],
    "ex5_vgg_style": [VGGStyle, VGGGap, VGGDropout],
    "ex5_resnet_style": [ResNetStyle, ResNetStyleSolution, ResNetStyleBigStem],
    "ex5_plot": [plot_learning_curves, plot_percent_and_figure_legend],
    "ex4_efficiency_table": [efficiency_table, efficiency_table_exact, table_with()],
    "ex4_best": [best_accuracy_per_parameter, best_by_mparam, best_sorted],
}
# item -> {name: (answer, mistake id, phrases the message must contain)}
WRONG = {
    "ex1_plain_cnn": {
        "softmax": (plain_with(softmax=True), "softmax_output",
                    ["returns probabilities", "instead of logits", "Why it matters"]),
        "relu_on_logits": (plain_with(relu_out=True), "relu_on_logits",
                           ["ReLU is applied to the last Linear layer's output"]),
        "no_bn": (plain_with(no_bn=True, bias=True), "no_bn", ["no BatchNorm", "skip connections"]),
        "relu_before_bn": (plain_with(relu_first=True), "relu_before_bn",
                           ["ReLU before BatchNorm"]),
        "no_relu": (plain_with(no_relu=True), "no_relu", ["linear end to end"]),
        "no_downsampling": (plain_with(no_stride=True), "no_downsampling",
                            ["never downsamples", "stride 2"]),
        "maxpool": (plain_with(pool=True), "maxpool_downsampling", ["max-pooling instead of"]),
        "flatten": (plain_with(flatten=True), "flatten_head",
                    ["flattens the whole 64×8×8 feature map", "global average pooling"]),
        "num_classes": (plain_with(ten_classes=True), "num_classes_ignored",
                        ["`num_classes` is ignored", "PlainCNN(num_classes=5)"]),
        "fixed_depth": (PlainFixedDepth, "conv_count", ["PlainCNN(depth=20) has 6 nn.Conv2d"]),
        "skip": (PlainWithSkip, "skip_connection", ["has a skip connection", "`features.3`"]),
        "unused": (PlainUnusedLayer, "unused_layers", ["`extra`", "never uses"]),
        "widths": (plain_with(width=16), "layers_differ",
                   ["outputs 16×16×16 per image", "outputs 32×16×16"]),
    },
    "ex1_cifar_resnet": {
        "imagenet_stem": (cifar_with(imagenet_stem=True), "imagenet_stem",
                          ["ImageNet's stem", "`stem.0` is a 7×7 conv with stride 2",
                           "max-pooling (`stem.3`)", "start at 8×8 instead of 32×32"]),
        "imagenet_widths": (cifar_with(imagenet_widths=True), "imagenet_widths",
                            ["ImageNet's widths", "64/128/256 channels instead of 16/32/64"]),
        "stem_pool": (cifar_with(stem_pool=True), "stem_downsamples",
                      ["stem downsamples", "16×16 instead of 32×32"]),
        "no_downsampling": (cifar_with(no_stride=True), "no_downsampling",
                            ["never downsamples", "32×32"]),
        "per_stage": (cifar_with(sizes=lambda n: [n, n, n]), "blocks_per_stage",
                      ["has 18 residual blocks", "expected 6", "total number of blocks"]),
        "spread": (cifar_with(sizes=lambda n: [n - 2, 1, 1]), "layout",
                   ["third block `blocks.2` maps 16 → 16 channels with stride 1",
                    "maps 16 → 32 channels with stride 2", "stage_sizes: 2, 2, 2"]),
        "softmax": (cifar_with(softmax=True), "softmax_output", ["instead of logits"]),
        "relu_on_logits": (cifar_with(relu_out=True), "relu_on_logits", ["no logit can be negative"]),
        "flatten": (cifar_with(flatten=True), "flatten_head",
                    ["flattens the whole 64×8×8 feature map"]),
        "num_classes": (cifar_with(ten_classes=True), "num_classes_ignored",
                        ["CifarResNet(num_classes=5)"]),
        "stem_no_bn": (cifar_with(no_stem_bn=True), "stem_no_bn", ["the stem has no BatchNorm"]),
        "two_stem_convs": (cifar_with(two_convs=True), "stem_layers",
                           ["stem (the layers before the first block, `blocks.0`) has 2 conv"]),
        "block_relu_before_add": (cifar_with(block=ReluBeforeAddBlock), "basic_block.relu_before_add",
                                  ["CifarResNet()'s block `blocks.0`",
                                   "the ReLU comes before the addition"]),
        "plain": (CifarPlain, "no_residual_blocks", ["has 0 residual blocks", "own nn.Module"]),
    },
    "ex2_small_resnet": {
        "three_blocks": (small_with(blocks=lambda: [BasicBlock(16, 16), BasicBlock(16, 32, 2),
                                                    BasicBlock(32, 64, 2)]),
                         "block_count", ["has 3 residual blocks", "exactly 4 BasicBlocks"]),
        "bad_block": (small_with(blocks=lambda: [BasicBlock(16, 16), NoFinalReLUBlock(16, 32, 2),
                                                 BasicBlock(32, 64, 2), BasicBlock(64, 64)]),
                      "basic_block.no_final_relu",
                      ["SmallResNet()'s block `blocks.1`", "the ReLU after the addition is "
                       "missing"]),
        "num_classes": (small_with(ten_classes=True), "num_classes_ignored",
                        ["SmallResNet(in_channels=3, num_classes=5)", "`num_classes` is ignored"]),
        "softmax": (small_with(softmax=True), "softmax_output", ["instead of logits"]),
        "flatten": (small_with(flatten=True), "flatten_head",
                    ["flattens the whole 64×7×7 feature map"]),
        "stem_pool": (small_with(stem_pool=True), "stem_downsamples",
                      ["14×14 instead of 28×28"]),
        "widths": (small_with(blocks=lambda: [BasicBlock(16, 32), BasicBlock(32, 32, 2),
                                              BasicBlock(32, 64, 2), BasicBlock(64, 64)]),
                   "layout", ["first block `blocks.0` maps 16 → 32 channels with stride 1",
                              "maps 16 → 16 channels"]),
        "no_downsampling": (small_with(blocks=lambda: [BasicBlock(16, 16), BasicBlock(16, 32),
                                                       BasicBlock(32, 64), BasicBlock(64, 64)]),
                            "no_downsampling", ["never downsamples", "28×28"]),
        "stem_relu_before_bn": (small_with(relu_first=True), "stem_relu_before_bn",
                                ["the stem applies ReLU before BatchNorm"]),
    },
    "ex2_count_parameters": {
        "over_modules": (count_over_modules, "modules_double_count",
                         ["more than once", "model.modules()", "Why it matters"]),
        "weights_only": (count_weights, "weights_only", ["only the weights", "`bias`"]),
        "frozen": (count_all, "frozen_counted", ["counts frozen parameters"]),
        "state_dict": (count_state, "buffers_counted", ["counts buffers"]),
        "tensors": (count_tensors, "tensor_count", ["parameter tensors, not their elements"]),
        "shared": (count_named, "shared_twice", ["shared weight twice"]),
        "tensor": (count_as_tensor, "not_int", ["returned a tensor", "Python int"]),
        "float": (count_as_float, "not_int", ["expected an int"]),
    },
    "ex3_se_net": {
        "before_bn": (se_net("before_bn"), "before_bn",
                      ["between the second conv and its BatchNorm"]),
        "layer1": (se_net("layer1", channels=32), "layer1_relu",
                   ["on the first conv layer's output (32 channels)", "Parameters: expected"]),
        "nowhere": (se_net("nowhere"), "no_se", ["never applied in forward"]),
        "residual_after_relu": (se_net(se=se_with(residual=True)), "se_residual",
                                ["your SE block is wrong", "x + x * s"]),
        "residual_after_bn": (se_net("after_bn", se=se_with(residual=True)), "se_residual",
                              ["x + x * s (a residual SE)"]),
        "softmax_gate_after_bn": (se_net("after_bn", se=se_with(softmax=True)), "se_softmax_gate",
                                  ["softmax over the channels"]),
        "softmax_gate_after_pool": (se_net("after_pool", se=se_with(softmax=True)),
                                    "se_softmax_gate", ["softmax over the channels"]),
        "softmax_output": (se_net(softmax=True), "softmax_output", ["instead of logits"]),
        "num_classes": (se_net(ten_classes=True), "num_classes_ignored",
                        ["CIFAR10NetSE(num_classes=5)", "`num_classes` is ignored"]),
        "torchvision_se": (SENetTorchvision, "torchvision_reference", ["torchvision"]),
    },
    "ex5_lenet_style": {
        "softmax": (lenet_with(softmax=True), "softmax_output", ["instead of logits"]),
        "relu_on_logits": (lenet_with(relu_out=True), "relu_on_logits", ["no logit can be "
                                                                         "negative"]),
        "no_act": (lenet_with(no_act=True), "no_relu_pooled",
                   ["no nonlinearity", "apart from the pooling", "linear end to end"]),
        "no_fc_act": (lenet_with(no_fc_act=True), "no_fc_relu",
                      ["no nonlinearity between the fully connected layers"]),
        "no_conv_act": (lenet_with(no_conv_act=True), "no_conv_relu",
                        ["the convolutions have no activation"]),
        "first_act_missing": (lenet_with(first_act_missing=True), "missing_relu",
                              ["no nonlinearity between `features.0` and `features.3`"]),
        "pool1_missing": (lenet_with(pool1_missing=True), "no_pooling",
                          ["`features.0` is not followed by pooling"]),
        "three_convs": (lenet_with(three_convs=True), "conv_count", ["has 3 nn.Conv2d layers"]),
        "one_fc": (lenet_with(one_fc=True), "fc_layers", ["has 1 fully connected layer"]),
        "bn": (lenet_with(bn=True), "batchnorm", ["BatchNorm layers (`features.1`)"]),
        "num_classes": (lenet_with(ten_classes=True), "num_classes_ignored",
                        ["LeNetStyle(num_classes=5)"]),
        "skip": (LeNetWithSkip, "skip_connection", ["skip connection around `features.3`"]),
    },
    "ex5_vgg_style": {
        "kernel5": (vgg_with(kernel=5), "kernel_size", ["`features.0` has a 5×5 kernel",
                                                        "only 3×3"]),
        "no_padding": (vgg_with(padding=0), "padding", ["padding=1"]),
        "bn": (vgg_with(bn=True), "batchnorm", ["BatchNorm layers"]),
        "pool_every": (vgg_with(pool_every=True), "pooling",
                       ["receive maps of 32×32, 16×16, 8×8, 4×4"]),
        "avg_pool": (vgg_with(avg=True), "avg_pooling", ["average pooling instead of "
                                                         "max-pooling"]),
        "no_act": (vgg_with(no_act=True), "no_relu_pooled", ["linear end to end"]),
        "softmax": (vgg_with(softmax=True), "softmax_output", ["instead of logits"]),
        "relu_on_logits": (vgg_with(relu_out=True), "relu_on_logits", ["ReLU is applied to the "
                                                                       "last Linear"]),
        "num_classes": (vgg_with(ten_classes=True), "num_classes_ignored",
                        ["VGGStyle(num_classes=5)"]),
        "skip": (VGGWithSkip, "skip_connection", ["skip connection around `features.3`"]),
    },
    "ex5_resnet_style": {
        "three_blocks": (resnet_style_with(blocks=lambda: [BasicBlock(32, 32),
                                                           BasicBlock(32, 64, 2),
                                                           BasicBlock(64, 64)]),
                         "block_count", ["has 3 residual blocks", "expected 4"]),
        "no_downsampling": (resnet_style_with(blocks=lambda: [BasicBlock(32, 32),
                                                              BasicBlock(32, 64),
                                                              BasicBlock(64, 64),
                                                              BasicBlock(64, 128)]),
                            "no_downsampling", ["never downsamples", "at least one block"]),
        "bad_block": (resnet_style_with(blocks=lambda: [BasicBlock(32, 32),
                                                        ReluBeforeAddBlock(32, 64, 2),
                                                        BasicBlock(64, 64),
                                                        BasicBlock(64, 128, 2)]),
                      "basic_block.relu_before_add",
                      ["ResNetStyle()'s block `blocks.1`", "ReLU comes before the addition"]),
        "softmax": (resnet_style_with(softmax=True), "softmax_output", ["instead of logits"]),
        "flatten": (resnet_style_with(flatten=True), "flatten_head",
                    ["flattens the whole 128×8×8 feature map"]),
        "mlp_head": (resnet_style_with(mlp=True), "head_layers",
                     ["head (the layers after the last block, `blocks.3`) has 2 layers"]),
        "stem_no_bn": (resnet_style_with(no_stem_bn=True), "stem_no_bn",
                       ["the stem has no BatchNorm"]),
        "num_classes": (resnet_style_with(ten_classes=True), "num_classes_ignored",
                        ["ResNetStyle(num_classes=5)"]),
        "plain": (ResNetStylePlain, "no_residual_blocks", ["has 0 residual blocks"]),
    },
    "ex4_efficiency_table": {
        "thop_params": (table_with(thop_params=True), "float_params",
                        ["params for vgg16 is 138357544.0, a float", "count_parameters", "Why it matters"]),
        "thop_params_int": (table_with(thop_params_int=True), "thop_params",
                            ["efficiency_table(['convnext_tiny'], input_size=32)",
                             "thop's parameter count", "misses 9,696 parameters", "Why it matters"]),
        "millions": (table_with(millions=True), "params_in_millions", ["looks like millions"]),
        "flops": (table_with(macs_factor=2), "flops", ["FLOP count (2 × MACs)"]),
        "gmacs": (table_with(macs_factor=1e-9), "gmacs", ["looks like GMACs"]),
        "fraction": (table_with(fraction=True), "top1_fraction", ["looks like a fraction"]),
        "per_parameter": (table_with(per_parameter=True), "per_parameter",
                          ["per parameter, not per million"]),
        "hard_coded": (table_with(hard_coded=True), "wrong_rows",
                       ["efficiency_table(['mobilenet_v2'], input_size=192)",
                        "expected one row per name"]),
        "ignores_size": (table_with(ignore_size=True), "input_size_ignored",
                         ["input_size=192 argument is ignored"]),
    },
    "ex4_best": {
        "hard_coded": (best_hard_coded, "hard_coded", ["whatever the rows say"]),
        "highest_top1": (best_highest_top1, "highest_top1",
                         ["highest top-1, not the highest top-1 per parameter"]),
        "min_ratio": (best_min_ratio, "min_ratio", ["min instead of max"]),
        "most_params": (best_most_params, "most_params",
                        ["for the real table it returned 'vgg16'", "the most parameters"]),
        "fewest_params": (best_fewest_params, "fewest_params", ["fewest parameters"]),
        "returns_row": (best_returns_row, "returns_row", ["return the model's name"]),
        "sorts_in_place": (best_sorts_in_place, "changes_rows", ["changed the rows"]),
        "first_row": (best_first_row, "first_row", ["the first row"]),
    },
    "ex1_grad_norm": {
        "stale": (grad_norm_with(stale=True), "stale_gradients",
                  ["left over from earlier backward passes", "zero_grad"]),
        "first_parameter": (grad_norm_with(first_parameter=True), "wrong_layer",
                            ["gradient norm of `classifier.weight`", "`stem.0.weight`"]),
        "tensor": (grad_norm_with(tensor=True), "returns_tensor", ["returned a tensor",
                                                                   ".item()"]),
        "squared": (grad_norm_with(squared=True), "squared_norm", ["squared norm"]),
        "summed": (grad_norm_with(summed=True), "summed_loss", ["summed loss"]),
        "weight": (grad_norm_with(weight=True), "weight_norm", ["norm of the weight itself"]),
        "eval": (grad_norm_with(eval=True), "eval_mode", ["eval mode"]),
        "step": (grad_norm_with(step=True), "changed_weights", ["not take an optimizer step"]),
    },
    "ex5_plot": {
        "train_acc": (plot_with(train_acc=True), "missing_accuracy",
                      ["no line shows LeNetStyle's test accuracy"]),
        "unlabelled": (plot_with(unlabelled=True), "unlabelled",
                       ["label every line with its model's name"]),
        "axes": (plot_with(axes=True), "not_a_figure", ["expected a matplotlib Figure",
                                                        "not an Axes"]),
        "no_legend": (plot_with(no_legend=True), "no_legend", ["no legend"]),
        "no_labels": (plot_with(no_labels=True), "no_axis_label", ["no title or y-label"]),
        "no_return": (plot_with(no_return=True), "not_a_figure", ["forget `return fig`"]),
    },
}
