"""Reproducible runs: one call seeds Python, NumPy, torch and DataLoader workers."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seed every random number generator; return a torch.Generator for DataLoaders.

    `deterministic=True` also asks cuDNN and torch for deterministic kernels (slower; some
    operations then raise an error instead of running non-deterministically).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: derive each worker's Python/NumPy seeds from torch's."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
