"""Reference models and building rules shared between lessons.

CIFAR10Net is the small CNN built in lesson 01; lesson 04's Exercise 3 adds a
squeeze-and-excitation block to its second conv layer, and the checker compares against it.
stage_sizes is the rule lesson 03's CIFAR networks use to spread layers over their stages.
basic_block builds torchvision's ResNet block, which lesson 03 proves equal to the student's,
for the later lessons that need one. The graded answers themselves (a BasicBlock written
from scratch, SEBlock, the exercise networks) are deliberately not here, and the checker
refuses torchvision's block as an answer wherever it comes from.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


class CIFAR10Net(nn.Module):
    """Three conv blocks (conv3x3 -> BN -> ReLU -> 2x2 max-pool) and a two-layer classifier.

    The convolutions have no bias: the BatchNorm right after them has its own shift.
    Input 3x32x32 -> 32x16x16 -> 64x8x8 -> 128x4x4 -> num_classes logits.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.pool = nn.MaxPool2d(2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = self.pool(torch.relu(self.bn3(self.conv3(x))))
        return self.classifier(x)


def stage_sizes(n: int, stages: int = 3) -> list[int]:
    """Spread n layers (or blocks) over the stages as evenly as possible, earlier ones first.

    stage_sizes(5) == [2, 2, 1]; stage_sizes(6) == [2, 2, 2].
    """
    if n < 0 or stages < 1:
        raise ValueError(f"need n >= 0 and stages >= 1, not n={n}, stages={stages}")
    return [n // stages + (1 if i < n % stages else 0) for i in range(stages)]


def basic_block(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """torchvision's ResNet basic block, with a 1x1 conv-BN projection shortcut when the shape changes."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    return BasicBlock(in_channels, out_channels, stride, downsample)
