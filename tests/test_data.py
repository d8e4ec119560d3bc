"""Datasets: offline ones generated or bundled, online ones with a tested fallback."""

import socket
import time

import numpy as np
import pytest
import torch
import torchvision
from torchvision import transforms as T

from course_utils import data as data_module
from course_utils.data import (
    DATASETS,
    SHAPE_CLASSES,
    DatasetUnavailableError,
    DigitsDataset,
    ShapesDataset,
    load_dataset,
    make_loaders,
    sample_images,
)
from course_utils.seed import seed_worker


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Make every torchvision download fail at once: mirrors point at a closed local port."""
    dead = "http://127.0.0.1:9/"
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", dead + "cifar-10-python.tar.gz")
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [dead])
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", [dead])
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))


def test_shapes_are_deterministic_and_well_formed():
    a, b = ShapesDataset(n=20, seed=3), ShapesDataset(n=20, seed=3)
    x, y = a[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert torch.equal(x, b[5][0]) and y == b[5][1]
    assert not torch.equal(x, ShapesDataset(n=20, seed=4)[5][0])
    labels = {ShapesDataset(n=400, seed=0)[i][1] for i in range(400)}
    assert labels == set(range(len(SHAPE_CLASSES)))


def test_shapes_drawn_once_read_the_same_and_stay_unshared(monkeypatch):
    data = ShapesDataset(n=30, seed=2, with_targets=True, max_objects=3)
    first = [data[i] for i in range(30)]
    fresh = ShapesDataset(n=30, seed=2, with_targets=True, max_objects=3)
    monkeypatch.setattr(data_module, "RENDER_CACHE_ITEMS", 0)  # fresh draws every read
    for (x, y, t), (x2, y2, t2) in zip(first, (fresh[i] for i in range(30)), strict=True):
        assert torch.equal(x, x2) and y == y2
        assert torch.equal(t["mask"], t2["mask"]) and torch.equal(t["boxes"], t2["boxes"])
    first[0][0].zero_()  # a caller's in-place edit must not reach the kept image
    first[0][2]["mask"].zero_()
    again = data[0]
    assert again[0].abs().sum() > 0 and again[2]["mask"].any()


@pytest.mark.parametrize("max_objects", [1, 3])
def test_shapes_boxes_and_masks_match_the_pixels(max_objects):
    data = ShapesDataset(n=60, seed=1, with_targets=True, max_objects=max_objects)
    for i in range(60):
        image, label, target = data[i]
        mask, boxes, labels = target["mask"], target["boxes"], target["labels"]
        assert mask.shape == (32, 32) and len(boxes) == len(labels) >= 1
        assert set(mask.unique().tolist()) - {0} == {int(c) + 1 for c in labels.unique()}
        for box, cls in zip(boxes.long(), labels, strict=True):
            x1, y1, x2, y2 = box.tolist()
            inside = mask[y1:y2, x1:x2] == cls + 1
            # tight: the box's border rows/columns each touch the shape
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
        if max_objects == 1:
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert labels[0] == label
            # the shape's pixels differ from the background's
            fg = image[:, mask > 0].mean(1)
            bg = image[:, mask == 0].mean(1)
            assert (fg - bg).abs().sum() > 0.3


def test_shapes_bad_arguments():
    with pytest.raises(ValueError, match="n must be at least 1"):
        ShapesDataset(n=0)
    with pytest.raises(ValueError, match="max_objects"):
        ShapesDataset(max_objects=9)
    with pytest.raises(IndexError):
        ShapesDataset(n=3)[3]


def test_digits_look_like_mnist():
    train, test = DigitsDataset(train=True), DigitsDataset(train=False)
    assert len(train) + len(test) == 1797 and len(test) == 360
    x, y = train[0]
    assert x.shape == (1, 28, 28) and x.min() >= 0 and x.max() <= 1 and 0 <= y <= 9
    assert len(set(train.targets.tolist())) == 10


def test_load_dataset_offline_names(capsys):
    shapes = load_dataset("shapes", train=False)
    digits = load_dataset("digits")
    assert len(shapes) == 10_000 and shapes.classes == SHAPE_CLASSES
    assert digits.classes[0] == "0"
    out = capsys.readouterr().out
    assert out.count("Data: ") == 2 and "offline" in out


@pytest.mark.parametrize("name, fallback, shape", [("cifar10", "shapes", (3, 32, 32)),
                                                   ("mnist", "digits", (1, 28, 28)),
                                                   ("fashion_mnist", "digits", (1, 28, 28))])
def test_failed_download_falls_back_and_says_so(no_network, capsys, name, fallback, shape):
    start = time.perf_counter()
    data = load_dataset(name, train=False)
    assert time.perf_counter() - start < 10  # a refused connection fails at once
    out = capsys.readouterr().out
    assert f"using the offline '{fallback}' dataset" in out
    assert "Connection refused" in out and out.count("\n") == 2  # the reason, then "Data:"
    assert data[0][0].shape == shape
    assert fallback in data.source


def test_a_server_that_never_answers_times_out_quickly(monkeypatch, tmp_path, capsys):
    """A proxy or firewall that accepts and then stays silent must not hang the notebook."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever replies
        port = silent.getsockname()[1]
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
        monkeypatch.setattr(data_module, "DOWNLOAD_TIMEOUT", 0.5)
        start = time.perf_counter()
        data = load_dataset("mnist", root=tmp_path)
        elapsed = time.perf_counter() - start
    assert elapsed < 10 and isinstance(data, DigitsDataset)
    assert "timed out" in capsys.readouterr().out
    assert socket.getdefaulttimeout() is None  # the global default is restored


def test_the_callers_transform_survives_the_fallback(no_network):
    pipeline = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    shapes = load_dataset("cifar10", train=False, transform=pipeline)
    image, label = shapes[0]
    plain = ShapesDataset(n=10_000, seed=1)[0][0]
    assert image.shape == (3, 32, 32) and image.min() < 0  # normalised to [-1, 1]
    flipped = torch.stack([plain, plain.flip(-1)]) * 2 - 1
    assert min((image - f).abs().max() for f in flipped) < 0.01  # same pixels, up to uint8
    digits = load_dataset("mnist", transform=T.ToTensor())
    assert torch.allclose(digits[3][0], DigitsDataset()[3][0], atol=1 / 255)


def test_transform_and_targets_do_not_mix():
    with pytest.raises(ValueError, match="cannot be combined with with_targets"):
        ShapesDataset(n=4, with_targets=True, transform=T.ToTensor())


def test_failed_download_without_fallback_says_how_to_get_it(no_network):
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded.*load_dataset"):
        load_dataset("mnist", offline_fallback=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    assert "cifar10" in DATASETS


def test_sample_images_are_real_photos():
    photos = sample_images()
    assert {"chelsea", "coffee", "astronaut", "rocket", "china", "flower"} <= set(photos)
    for image in photos.values():
        arr = np.asarray(image)
        assert image.mode == "RGB" and arr.shape[0] >= 300 and arr.std() > 20


def test_make_loaders_follow_the_mode(capsys):
    train, test = ShapesDataset(n=500, seed=0), ShapesDataset(n=300, seed=1)
    tl, vl = make_loaders(train, test, mode="grade")
    assert len(tl.dataset) == 128 and len(vl.dataset) == 128 and tl.batch_size == 32
    tl, vl = make_loaders(train, test, mode="full")
    assert len(tl.dataset) == 500 and len(vl.dataset) == 300
    tl, _ = make_loaders(train, mode="quick", batch_size=50, train_subset=100)
    images, labels = next(iter(tl))
    assert images.shape == (50, 3, 32, 32) and labels.shape == (50,)
    assert "Loaders:" in capsys.readouterr().out


def test_make_loaders_is_reproducible():
    data = ShapesDataset(n=300, seed=0)
    first = [y.tolist() for _, y in make_loaders(data, mode="grade", seed=4)[0]]
    again = [y.tolist() for _, y in make_loaders(data, mode="grade", seed=4)[0]]
    assert first == again


def test_make_loaders_rejects_empty_data():
    with pytest.raises(ValueError, match="training set is empty"):
        make_loaders(torch.utils.data.TensorDataset(torch.zeros(0, 3)))


def test_make_loaders_seeds_workers_and_rejects_empty_subsets():
    data = ShapesDataset(n=64, seed=0)
    train_loader, test_loader = make_loaders(data, data, mode="grade", num_workers=2)
    assert train_loader.worker_init_fn is seed_worker and test_loader.num_workers == 2
    assert make_loaders(data, mode="grade")[0].worker_init_fn is None
    with pytest.raises(ValueError, match="train_subset must be a whole number of images >= 1"):
        make_loaders(data, train_subset=0)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "all"])
def test_make_loaders_subset_is_a_count_none_or_the_modes(bad, capsys):
    data = ShapesDataset(n=300, seed=0)
    assert len(make_loaders(data, mode="grade")[0].dataset) == 128  # left out: the mode's
    assert len(make_loaders(data, mode="grade", train_subset="mode")[0].dataset) == 128
    assert len(make_loaders(data, mode="grade", train_subset=None)[0].dataset) == 300
    assert len(make_loaders(data, data, mode="grade", test_subset=10)[1].dataset) == 10
    with pytest.raises(ValueError, match=r"test_subset must be a whole number .* not ") as err:
        make_loaders(data, data, mode="grade", test_subset=bad)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("bad", [0, -1, -128, 2.5, True, "32"])
def test_make_loaders_rejects_a_batch_size_below_one(bad):
    data = ShapesDataset(n=64, seed=0)
    with pytest.raises(ValueError, match=r"batch_size must be a whole number >= 1 \(or None") as err:
        make_loaders(data, mode="quick", batch_size=bad)
    assert len(str(err.value).splitlines()) == 1


def test_make_loaders_batch_size_none_or_left_out_is_the_modes(capsys):
    data = ShapesDataset(n=300, seed=0)
    assert make_loaders(data, mode="grade")[0].batch_size == 32
    assert make_loaders(data, mode="quick", batch_size=None)[0].batch_size == 128
    assert make_loaders(data, mode="quick", batch_size=1)[0].batch_size == 1
    assert "batch 1 (QUICK)" in capsys.readouterr().out.splitlines()[-1]
