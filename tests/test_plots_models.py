"""Plots return figures with the right content; CIFAR10Net has the documented shape."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.models import CIFAR10Net  # noqa: E402
from course_utils.plots import (  # noqa: E402
    plot_accuracy_vs_cost,
    plot_feature_maps,
    plot_filters,
    plot_learning_curves,
    show_images,
)
from course_utils.train import History  # noqa: E402


def _history(name, losses, accs):
    return History(name=name, train_loss=losses, train_acc=accs, test_loss=losses,
                   test_acc=accs, seconds=[1.0] * len(losses))


def test_learning_curves_one_line_per_run():
    runs = {"plain": _history("a", [2.0, 1.5], [0.3, 0.5]),
            "resnet": _history("b", [1.8, 1.0], [0.4, 0.7])}
    fig = plot_learning_curves(runs)
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["plain", "resnet"]
    assert list(loss_ax.lines[1].get_ydata()) == [1.8, 1.0]
    assert list(acc_ax.lines[0].get_ydata()) == pytest.approx([30.0, 50.0])
    assert runs["plain"].name == "a"  # labels come from the keys; histories untouched
    with pytest.raises(ValueError):
        plot_learning_curves([])


@pytest.mark.parametrize("epochs", [2, 3, 5, 12])
def test_learning_curves_tick_whole_epochs_only(epochs):
    fig = plot_learning_curves(_history("a", [2.0 - 0.1 * i for i in range(epochs)], [0.1] * epochs))
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_image_grids():
    fig = show_images(torch.rand(5, 3, 8, 8), labels=[0, 1, 2, 3, 4], class_names=list("abcde"),
                      ncols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == list("abcde")
    def shown(fig):
        return sum(bool(ax.images) for ax in fig.axes)

    assert shown(plot_filters(torch.randn(6, 3, 3, 3))) == 6
    assert shown(plot_feature_maps(torch.randn(1, 20, 5, 5), max_maps=10)) == 10
    with pytest.raises(ValueError):
        plot_filters(torch.randn(3, 3))


def test_show_images_takes_photos_and_string_labels():
    from PIL import Image

    photo = Image.fromarray(np.full((6, 9, 3), 255, np.uint8))
    fig = show_images([photo, np.zeros((5, 5)), torch.full((1, 4, 4), 7.0)],
                      labels=["white", "black", "flat"])
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["white", "black", "flat"]
    assert shown[0].shape == (6, 9, 3) and float(shown[0].min()) == 1.0  # uint8 -> [0, 1]
    assert np.isfinite(shown[2]).all()  # a constant map outside [0, 1] does not divide by 0
    with pytest.raises(TypeError, match="tensors, arrays or PIL images"):
        show_images(["not an image"])
    with pytest.raises(ValueError, match="cannot show an image of shape"):
        show_images([torch.zeros(16, 4, 4)])  # 16 feature maps are not one image


def test_accuracy_vs_cost_labels_every_point():
    rows = [{"name": "a", "macs": 1e9, "top1": 70.0, "params": 5e6},
            {"name": "b", "macs": 4e9, "top1": 76.0, "params": 25e6}]
    fig = plot_accuracy_vs_cost(rows)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    assert ax.get_xscale() == "log"
    with pytest.raises(KeyError):
        plot_accuracy_vs_cost([{"name": "a"}])


def test_cifar10net_shapes_and_size():
    model = CIFAR10Net()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert all(c.bias is None for c in convs)  # BatchNorm follows every conv
    assert sum(p.numel() for p in model.parameters()) == 620_586
