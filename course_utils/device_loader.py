"""A whole small dataset kept on the training device, batched and augmented there.

For CIFAR-10-sized data (50,000 images of 3x32x32 are 600 MB as float32) a GPU is idle most of
the time a DataLoader spends indexing, collating and copying images one by one. DeviceLoader
stores the images and labels once as two tensors on the device and yields (images, labels)
batches by indexing them; the augmentation (random crop with zero padding, horizontal flip)
runs on the whole batch there too. It works on any device, the CPU included, and plugs into
`fit()` in place of a DataLoader.

    train = DeviceLoader.from_dataset(train_set, batch_size=128, augment=True, device=device)
    fit(model, train, test_loader, epochs=20)
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def random_crop_flip(images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor,
                     pad: int) -> torch.Tensor:
    """Crop each image from its zero-padded copy at (dy, dx) = shifts[i], mirrored where flips[i].

    images (N, C, H, W); shifts (N, 2) integers in [0, 2 * pad]; flips (N,) booleans. The
    result has the input's shape and is the same as torchvision's RandomCrop(padding=pad)
    followed by RandomHorizontalFlip with those draws, computed as one gather for the batch.
    """
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = shifts[:, :1] + torch.arange(h, device=images.device)                 # (N, H)
    cols = torch.arange(w, device=images.device).expand(n, w)
    cols = shifts[:, 1:] + torch.where(flips[:, None], w - 1 - cols, cols)        # (N, W)
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Indexing the (N, H, W, C) view gathers whole pixels; permuting back gives NCHW shape
    # in channels-last memory, the layout fit() trains conv nets in.
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class DeviceLoader:
    """Shuffled (images, labels) batches of tensors that live on one device.

    `seed` fixes the order and the augmentation of every epoch (drawn on the CPU, so the
    batches are the same on every device). `drop_last` drops an incomplete final batch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128,
                 shuffle: bool = True, augment: bool = False, pad: int = 4,
                 drop_last: bool = False, seed: int = 0, device: torch.device | str | None = None):
        if images.dim() != 4 or len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"expected N images (N, C, H, W) and N labels with N >= 1, got "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        device = torch.device(device) if device is not None else images.device
        self.images, self.labels = images.to(device), labels.to(device)
        self.batch_size, self.shuffle, self.augment, self.pad = batch_size, shuffle, augment, pad
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_dataset(cls, dataset: Dataset, device: torch.device | str | None = None,
                     **options) -> DeviceLoader:
        """Read every (image, label) of `dataset` once and keep them as tensors on `device`."""
        images, labels = [], []
        for batch in DataLoader(dataset, batch_size=1024):
            images.append(batch[0])
            labels.append(torch.as_tensor(batch[1]))
        return cls(torch.cat(images), torch.cat(labels), device=device, **options)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.augment:  # one epoch of draws, moved to the device once
            shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=self.generator)
            flips = torch.rand(n, generator=self.generator) < 0.5
            shifts, flips = shifts.to(self.device), flips.to(self.device)
        order = order.to(self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if self.augment:
                part = slice(start, start + len(index))
                images = random_crop_flip(images, shifts[part], flips[part], self.pad)
            yield images, self.labels[index]
