"""Datasets for the lessons: real ones through torchvision, and offline ones that need no network.

- "cifar10", "mnist", "fashion_mnist": downloaded by torchvision (cached under $COURSE_DATA or
  ~/.cache/course_data). When the download fails they fall back, saying so in one line, to an
  offline dataset of the same shape: CIFAR-10 -> "shapes", MNIST/Fashion-MNIST -> "digits".
- "digits": scikit-learn's 1,797 bundled handwritten digits, resized to 1x28x28.
- "shapes": synthetic 3x32x32 images of 10 shape classes, generated deterministically from a
  seed; optionally with boxes and masks for detection and segmentation.
- sample_images(): real photos bundled with scikit-image and scikit-learn.

Every dataset yields (image, label) with images as float tensors in [0, 1] and carries
`.classes` (class names) and `.source` (one line saying what the data is).
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .mode import get_mode, loader_settings
from .seed import seed_worker

SHAPE_CLASSES = ["circle", "square", "triangle", "plus", "ring",
                 "diamond", "frame", "x-cross", "half-disk", "stripes"]
FALLBACK = {"cifar10": "shapes", "mnist": "digits", "fashion_mnist": "digits"}
TORCHVISION_NAMES = {"cifar10": "CIFAR10", "mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
PRETTY = {"cifar10": "CIFAR-10", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
DATASETS = sorted([*TORCHVISION_NAMES, "digits", "shapes"])
# torchvision opens its URLs without a timeout: a firewall that drops packets or a proxy that
# never answers would hang the notebook. Any socket silent this long counts as "offline".
DOWNLOAD_TIMEOUT = 10.0  # seconds


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be loaded and no offline fallback was allowed."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("COURSE_DATA") or Path.home() / ".cache" / "course_data")


# ----------------------------------------------------------------------------- shapes


def _shape_mask(kind: int, size: int, cy: float, cx: float, r: float, rng) -> np.ndarray:
    """Boolean mask of one shape of class `kind`, centred at (cy, cx) with radius r."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    if kind == 0:  # circle
        return dy**2 + dx**2 <= r**2
    if kind == 1:  # square
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if kind == 2:  # triangle, apex up
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == 3:  # plus
        t = max(r * 0.3, 1.0)
        return ((np.abs(dx) <= t) & (np.abs(dy) <= r)) | ((np.abs(dy) <= t) & (np.abs(dx) <= r))
    if kind == 4:  # ring
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (r * 0.55) ** 2)
    if kind == 5:  # diamond
        return np.abs(dx) + np.abs(dy) <= r
    if kind == 6:  # hollow square frame
        outer = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
        inner = (np.abs(dy) <= r * 0.45) & (np.abs(dx) <= r * 0.45)
        return outer & ~inner
    if kind == 7:  # diagonal cross
        t = max(r * 0.25, 0.8)
        box = (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
        return box & ((np.abs(dx - dy) <= t * 1.4) | (np.abs(dx + dy) <= t * 1.4))
    if kind == 8:  # half disk, flat side at a random orientation
        angle = rng.uniform(0, 2 * np.pi)
        return (dy**2 + dx**2 <= r**2) & (dx * np.cos(angle) + dy * np.sin(angle) >= 0)
    if kind == 9:  # square filled with stripes
        period = max(int(round(r * 0.5)), 2)
        box = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
        return box & ((np.floor(yy) // (period // 2 or 1)) % 2 == 0)
    raise ValueError(f"unknown shape class {kind}")


RENDER_CACHE_ITEMS = 20_000  # at most ~260 MB of drawn 32 px shapes per dataset


class ShapesDataset(Dataset):
    """Synthetic images of 10 shape classes, deterministic from `seed` (item i is always the same).

    Each image has a noisy background of a random colour and `max_objects` shapes of random
    class, size, position and colour (the label is the class of the first shape). With
    `with_targets=True` items are (image, label, target) where target has `boxes` (k x 4,
    x1 y1 x2 y2 in pixels, tight around the visible pixels), `labels` (k) and `mask` (H x W,
    0 = background, class + 1 where a shape is visible). `max_objects` > 1 draws 1 to
    `max_objects` smaller shapes per image (for detection and segmentation; later shapes may
    cover earlier ones, and fully covered ones get no box). `transform`, like a torchvision
    dataset's, receives a PIL image (so a CIFAR-10 pipeline with ToTensor() works unchanged).
    """

    classes = SHAPE_CLASSES

    def __init__(self, n: int = 10_000, seed: int = 0, image_size: int = 32,
                 with_targets: bool = False, max_objects: int = 1, noise: float = 0.08,
                 transform=None):
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, not {image_size}")
        if not 1 <= max_objects <= 4:
            raise ValueError(f"max_objects must be between 1 and 4, not {max_objects}")
        if transform is not None and with_targets:
            raise ValueError("transform cannot be combined with with_targets=True: "
                             "it would move the pixels away from their boxes and mask")
        self.n, self.seed, self.image_size = n, seed, image_size
        self.with_targets, self.max_objects, self.noise = with_targets, max_objects, noise
        self.transform = transform
        self.source = (f"shapes: {n:,} synthetic {image_size}x{image_size} RGB images, "
                       f"{len(SHAPE_CLASSES)} classes (offline, seed {seed})")
        # Training reads the same images every epoch; drawing one costs about as much as a
        # small model's step per image, so keep the first RENDER_CACHE_ITEMS drawn (~13 KB each
        # at 32 px). Transforms still run on every read, so augmentation stays random.
        self._rendered: dict[int, tuple] = {}

    def __len__(self) -> int:
        return self.n

    def _render(self, index: int):
        if index not in self._rendered:
            image, mask, kinds = self._draw(index)
            if len(self._rendered) >= RENDER_CACHE_ITEMS:
                return image, mask, kinds
            self._rendered[index] = image, mask.astype(np.int16), kinds
        image, mask, kinds = self._rendered[index]
        return image.copy(), mask.astype(np.int64), kinds

    def _draw(self, index: int):
        rng = np.random.default_rng([self.seed, index])
        s = self.image_size
        background = rng.uniform(0.0, 1.0, size=3)
        image = np.ones((s, s, 3), np.float32) * background
        image += rng.normal(0, self.noise, size=(s, s, 3)).astype(np.float32)
        mask = np.zeros((s, s), np.int64)
        count = 1 if self.max_objects == 1 else int(rng.integers(1, self.max_objects + 1))
        kinds = []
        for k in range(count):
            kind = int(rng.integers(len(SHAPE_CLASSES)))
            r = rng.uniform(0.2, 0.38) * s if count == 1 else rng.uniform(0.12, 0.22) * s
            cy, cx = rng.uniform(r, s - r, size=2)
            shape = _shape_mask(kind, s, cy, cx, r, rng)
            colour = rng.uniform(0.0, 1.0, size=3)
            # Keep the shape visible: push its colour away from the background.
            if np.abs(colour - background).sum() < 0.9:
                colour = np.where(background > 0.5, background - 0.55, background + 0.55)
            image[shape] = colour + rng.normal(0, self.noise, size=(int(shape.sum()), 3))
            mask[shape] = kind + 1 + 100 * k  # instance-tagged while drawing
            kinds.append(kind)
        return np.clip(image, 0, 1).astype(np.float32), mask, kinds

    def __getitem__(self, index: int):
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        index %= self.n
        image, instance_mask, kinds = self._render(index)
        tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
        label = kinds[0]
        if self.transform is not None:
            return self.transform(_to_pil(tensor)), label
        if not self.with_targets:
            return tensor, label
        boxes, labels = [], []
        for k, kind in enumerate(kinds):
            ys, xs = np.nonzero(instance_mask == kind + 1 + 100 * k)
            if len(ys):  # a later shape may hide an earlier one completely
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                labels.append(kind)
        mask = np.where(instance_mask > 0, instance_mask % 100, 0)
        target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                  "labels": torch.tensor(labels, dtype=torch.int64),
                  "mask": torch.from_numpy(mask)}
        return tensor, label, target


def _to_pil(image: torch.Tensor):
    """C x H x W float in [0, 1] -> PIL image (RGB or L), what torchvision transforms expect."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


# ----------------------------------------------------------------------------- digits


class DigitsDataset(Dataset):
    """scikit-learn's bundled 8x8 handwritten digits, resized to 1x28x28 like MNIST.

    A fixed 80/20 split (seeded permutation): 1,437 training and 360 test images.
    `transform`, like MNIST's, receives a PIL image (mode "L").
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, train: bool = True, size: int = 28, transform=None):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                                 align_corners=False).clamp(0, 1)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        cut = int(0.8 * len(images))
        keep = order[:cut] if train else order[cut:]
        self.images = images[keep]
        self.targets = torch.tensor(digits.target)[keep]
        self.transform = transform
        split = "train" if train else "test"
        self.source = (f"digits ({split}): {len(keep):,} scikit-learn handwritten digits, "
                       f"8x8 resized to 1x{size}x{size} (offline)")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(_to_pil(image))
        return image, int(self.targets[index])


# ----------------------------------------------------------------------------- loading


@contextmanager
def _socket_timeout(seconds: float):
    """Bound every socket operation (torchvision sets no timeout of its own)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_dataset(name: str, train: bool, root: Path, transform, download: bool):
    import torchvision
    from torchvision import transforms as T

    cls = getattr(torchvision.datasets, TORCHVISION_NAMES[name])
    with _socket_timeout(DOWNLOAD_TIMEOUT):
        dataset = cls(str(root), train=train, download=download,
                      transform=transform or T.ToTensor())
    split = "train" if train else "test"
    dataset.source = f"{PRETTY[name]} ({split}): {len(dataset):,} images from {root}"
    return dataset


def _reason(exc: Exception) -> str:
    """One line for why a download failed (MNIST's own message puts the cause last)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if lines[0].endswith(":") else lines[0]


def load_dataset(name: str, train: bool = True, root: str | os.PathLike | None = None,
                 transform=None, download: bool = True, offline_fallback: bool = True) -> Dataset:
    """Load a dataset by name (see the module docstring); print one line saying what was loaded."""
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if key == "shapes":
        dataset = ShapesDataset(n=50_000 if train else 10_000, seed=0 if train else 1,
                                transform=transform)
    elif key == "digits":
        dataset = DigitsDataset(train=train, transform=transform)
    else:
        folder = data_root(root)
        try:
            dataset = _torchvision_dataset(key, train, folder, transform, download)
        except Exception as exc:  # noqa: BLE001 - any failure to get the files means "offline"
            reason = _reason(exc)
            if not offline_fallback:
                raise DatasetUnavailableError(
                    f"{PRETTY[key]} is not in {folder} and could not be downloaded ({reason}). "
                    f"Connect to the internet once (files are cached there), copy the dataset "
                    f"into that folder, or use load_dataset({FALLBACK[key]!r}) offline."
                ) from None
            print(f"Could not download {PRETTY[key]} ({reason}): using the offline "
                  f"{FALLBACK[key]!r} dataset of the same shape instead.")
            return load_dataset(FALLBACK[key], train=train, transform=transform)
        print(f"Data: {dataset.source}")
        return dataset
    print(f"Data: {dataset.source}")
    return dataset


def sample_images() -> dict:
    """Real photos that ship inside scikit-image and scikit-learn, as RGB PIL images."""
    from PIL import Image
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(skdata, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")}
    bundle = load_sample_images()
    for filename, image in zip(bundle.filenames, bundle.images, strict=True):
        photos[Path(filename).stem] = image
    return {name: Image.fromarray(np.asarray(img)).convert("RGB") for name, img in photos.items()}


def _subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    if size is None or size >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:size].tolist())


def _is_count(value) -> bool:
    """A whole number >= 1 (bool is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def make_loaders(train_set: Dataset, test_set: Dataset | None = None, batch_size: int | None = None,
                 mode=None, seed: int = 0, num_workers: int = 0,
                 train_subset: int | None | Literal["mode"] = "mode",
                 test_subset: int | None | Literal["mode"] = "mode"):
    """(train_loader, test_loader) with subset sizes and batch size taken from the mode.

    Override them with batch_size (a whole number >= 1) and train_subset/test_subset (a
    number of images, or None for the whole set); "mode" and batch_size=None keep the mode's.
    """
    settings = loader_settings(mode)
    if batch_size is None:
        batch_size = settings.batch_size
    if not _is_count(batch_size):
        raise ValueError(f"batch_size must be a whole number >= 1 (or None for the mode's "
                         f"{settings.batch_size}), not {batch_size!r}")
    train_n = settings.train_subset if train_subset == "mode" else train_subset
    test_n = settings.test_subset if test_subset == "mode" else test_subset
    for what, n in (("train_subset", train_n), ("test_subset", test_n)):
        if n is not None and not _is_count(n):
            raise ValueError(f"{what} must be a whole number of images >= 1, None for all of "
                             f"them or 'mode' for the mode's, not {n!r}")
    if len(train_set) == 0:
        raise ValueError("the training set is empty")
    # Workers get reproducible seeds; pinned memory speeds up copies to a CUDA GPU.
    common = dict(num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                  worker_init_fn=seed_worker if num_workers else None)
    train = _subset(train_set, train_n, seed)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator,
                              drop_last=len(train) > batch_size, **common)
    test_loader = None
    parts = [f"{len(train):,} of {len(train_set):,} training images"]
    if test_set is not None:
        if len(test_set) == 0:
            raise ValueError("the test set is empty")
        test = _subset(test_set, test_n, seed + 1)
        test_loader = DataLoader(test, batch_size=max(batch_size, 256), shuffle=False, **common)
        parts.append(f"{len(test):,} of {len(test_set):,} test images")
    print(f"Loaders: {', '.join(parts)}, batch {batch_size} ({get_mode(mode).name})")
    return train_loader, test_loader
