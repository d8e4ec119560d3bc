"""DeviceLoader and random_crop_flip on the CPU (the same code runs on a GPU)."""

import pytest
import torch
from torch.utils.data import TensorDataset
from torchvision.transforms.v2 import functional as TF

from course_utils.device_loader import DeviceLoader, random_crop_flip
from course_utils.train import fit


def _data(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 6, generator=g), torch.arange(n)


def test_crop_flip_equals_torchvision_per_image():
    images, _ = _data(6)
    g = torch.Generator().manual_seed(1)
    shifts = torch.randint(0, 9, (6, 2), generator=g)
    flips = torch.tensor([True, False, True, False, False, True])
    out = random_crop_flip(images, shifts, flips, pad=4)
    assert out.shape == images.shape and out.is_contiguous(memory_format=torch.channels_last)
    for i in range(6):
        expected = TF.crop(TF.pad(images[i], [4]), int(shifts[i, 0]), int(shifts[i, 1]), 8, 6)
        if flips[i]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(out[i], expected), i


def test_centre_crop_without_flip_is_the_identity():
    images, _ = _data(3)
    shifts = torch.full((3, 2), 4)
    assert torch.equal(random_crop_flip(images, shifts, torch.zeros(3, dtype=torch.bool), 4),
                       images)


def test_every_image_once_per_epoch_and_seeded():
    images, labels = _data(10)
    loader = DeviceLoader(images, labels, batch_size=4, seed=3)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for x, y in batches:  # images travel with their labels
        assert torch.equal(x, images[y])
    again = torch.cat([y for _, y in DeviceLoader(images, labels, batch_size=4, seed=3)])
    assert torch.equal(seen, again)
    assert not torch.equal(seen, torch.cat([y for _, y in loader]))  # next epoch: new order


def test_drop_last_no_shuffle_and_augment():
    images, labels = _data(10)
    loader = DeviceLoader(images, labels, batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 2
    assert torch.cat([y for _, y in loader]).tolist() == list(range(8))
    augmented = DeviceLoader(images, labels, batch_size=10, shuffle=False, augment=True)
    x, _ = next(iter(augmented))
    assert x.shape == images.shape and not torch.equal(x, images)


def test_from_dataset_and_bad_input():
    images, labels = _data(5)
    loader = DeviceLoader.from_dataset(TensorDataset(images, labels), batch_size=2,
                                       shuffle=False)
    assert torch.equal(loader.images, images) and loader.device == torch.device("cpu")
    with pytest.raises(ValueError, match="N images"):
        DeviceLoader(images[:, 0], labels)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(images, labels, batch_size=0)


def test_fit_trains_from_a_device_loader():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (64,))
    images = torch.randn(64, 3, 8, 8) * 0.3 + (labels * 2 - 1).view(-1, 1, 1, 1)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    history = fit(model, DeviceLoader(images, labels, batch_size=16, augment=True), epochs=3,
                  lr=1e-2, progress=False, mode="quick")
    assert history.train_acc[-1] > 0.9
