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


__all__ = ["Mode", "Session", "describe_mode", "get_device", "get_mode", "init",
           "loader_settings", "pick", "set_seed"]
