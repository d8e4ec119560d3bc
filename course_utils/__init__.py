"""Helpers for the course 'Famous CNN architectures in PyTorch'.

Small modules, one job each: mode (QUICK/FULL/GRADE), device, seed, data, train, profile,
plots, models, and checks (the exercise checker). The names used in every lesson are
re-exported here; `init()` is the first call of each notebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision

from .device import get_device
from .mode import Mode, describe_mode, get_mode, loader_settings, pick
from .seed import set_seed


@dataclass(frozen=True)
class Session:
    mode: Mode
    device: torch.device
    seed: int


def init(seed: int = 0, mode: str | Mode | None = None) -> Session:
    """Start a lesson: choose the mode, the device and the seed, and say so in three lines."""
    current = get_mode(mode)
    print(describe_mode(current))
    device = get_device(verbose=True)
    set_seed(seed)
    print(f"Seed: {seed} · torch {torch.__version__} · torchvision {torchvision.__version__}")
    return Session(current, device, seed)


# The other common names load on first use, so `import course_utils` (every lesson's first
# cell, and the autograder's) does not pay for matplotlib, scikit-learn or thop up front.
_LAZY = {
    "data": ["DatasetUnavailableError", "ShapesDataset", "load_dataset", "make_loaders",
             "sample_images"],
    "train": ["History", "evaluate", "fit"],
    "profile": ["ModelProfile", "compare_counters", "count_parameters", "profile_model",
                "thop_profile"],
    "plots": ["plot_accuracy_vs_cost", "plot_feature_maps", "plot_filters",
              "plot_learning_curves", "show_images"],
    "models": ["CIFAR10Net"],
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


__all__ = ["Mode", "Session", "describe_mode", "get_device", "get_mode", "init",
           "loader_settings", "pick", "set_seed", *sorted(_LAZY_NAMES)]
