"""Figures the lessons draw again and again. Every function returns its matplotlib Figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator


def _as_runs(histories) -> list:
    """[(label, History)] from a History, a list of them, or a dict label -> History."""
    if isinstance(histories, dict):
        return list(histories.items())
    if hasattr(histories, "train_loss"):
        histories = [histories]
    return [(h.name, h) for h in histories]


def plot_learning_curves(histories, title: str | None = None):
    """Training loss and test accuracy per epoch, one labelled line per run, on one figure.

    `histories`: a History, a list of them, or a dict name -> History.
    """
    runs = _as_runs(histories)
    if not runs:
        raise ValueError("plot_learning_curves needs at least one History")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs:
        epochs = range(1, len(run.train_loss) + 1)
        ax_loss.plot(epochs, run.train_loss, marker="o", label=name)
        if run.test_acc:
            ax_acc.plot(range(1, len(run.test_acc) + 1), [100 * a for a in run.test_acc],
                        marker="o", label=name)
    ax_loss.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="Test accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, never 1.25, 1.5, ...
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _to_image(image) -> np.ndarray:
    """H x W (grey) or H x W x 3 floats for imshow, from a C x H x W tensor, an H x W (x C)
    array or a PIL image."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu().float()
        if t.dim() == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        elif t.dim() == 3 and t.shape[2] not in (1, 3):
            t = t.flatten()  # neither C x H x W nor H x W x C: rejected below
        array = t.numpy()
    elif isinstance(image, np.ndarray) or hasattr(image, "getbands"):  # array or PIL image
        array = np.asarray(image)
        array = array / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)
    else:
        raise TypeError(f"show_images expects tensors, arrays or PIL images, "
                        f"not {type(image).__name__}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        shape = tuple(image.shape) if hasattr(image, "shape") else array.shape
        raise ValueError(f"cannot show an image of shape {shape}: expected (C, H, W) "
                         f"with C in 1 or 3, or (H, W)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    lo, hi = float(array.min()), float(array.max())
    if lo >= 0 and hi <= 1:
        return array
    return (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)  # rescale to [0, 1]


def show_images(images, labels=None, class_names=None, ncols: int = 8, title: str | None = None):
    """A grid of images with optional labels.

    `images`: an N x C x H x W tensor, or a list of C x H x W tensors, arrays or PIL images.
    `labels`: class indices (named through `class_names`) or strings.
    """
    images = list(images)
    if not images:
        raise ValueError("show_images needs at least one image")
    n = len(images)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.8 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = _to_image(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        if labels is not None:
            label = labels[i]
            if not isinstance(label, str):
                label = int(label)
                label = class_names[label] if class_names else str(label)
            ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_filters(weight: torch.Tensor, max_filters: int = 32, title: str | None = None):
    """The kernels of a conv layer (out x in x k x k); RGB when in == 3, else the first channel."""
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight of shape (out, in, k, k), got {tuple(weight.shape)}")
    w = weight.detach().cpu()[:max_filters]
    filters = [f if f.shape[0] == 3 else f[:1] for f in w]
    return show_images(filters, ncols=8, title=title or f"{len(filters)} filters")


def plot_feature_maps(feature_maps: torch.Tensor, max_maps: int = 16, title: str | None = None):
    """Channels of one feature map (C x H x W, or 1 x C x H x W) as grey images."""
    fmap = feature_maps.detach().cpu()
    if fmap.dim() == 4:
        fmap = fmap[0]
    if fmap.dim() != 3:
        raise ValueError(f"expected (C, H, W) or (1, C, H, W), got {tuple(feature_maps.shape)}")
    maps = [m.unsqueeze(0) for m in fmap[:max_maps]]
    return show_images(maps, ncols=8, title=title or f"{len(maps)} of {fmap.shape[0]} channels")


def plot_accuracy_vs_cost(rows, x: str = "macs", y: str = "top1", size: str | None = "params",
                          label: str = "name", logx: bool = True, title: str | None = None):
    """Scatter of accuracy against cost, one labelled point per row (dicts with those keys)."""
    rows = list(rows)
    if not rows:
        raise ValueError("plot_accuracy_vs_cost needs at least one row")
    missing = {x, y, label} - set(rows[0])
    if missing:
        raise KeyError(f"rows lack the keys {sorted(missing)}")
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = [r[x] for r in rows]
    ys = [r[y] for r in rows]
    sizes = None
    if size and size in rows[0]:
        biggest = max(r[size] for r in rows)
        sizes = [30 + 600 * r[size] / biggest for r in rows]
    ax.scatter(xs, ys, s=sizes, alpha=0.6)
    for r, xv, yv in zip(rows, xs, ys, strict=True):
        ax.annotate(r[label], (xv, yv), textcoords="offset points", xytext=(5, 5), fontsize=9)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=y, title=title or f"{y} vs {x}" + (" (marker area ~ params)" if sizes else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
