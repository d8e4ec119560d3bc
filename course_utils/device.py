"""Pick the fastest device available: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch


def get_device(verbose: bool = True) -> torch.device:
    """The best available device; with `verbose`, print one line saying which and why."""
    if torch.cuda.is_available():
        device = torch.device("cuda")
        why = f"CUDA GPU found: {torch.cuda.get_device_name(0)}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
        why = "Apple GPU (MPS) found"
    else:
        device = torch.device("cpu")
        why = f"no CUDA GPU or Apple MPS found; using {torch.get_num_threads()} CPU threads"
    if verbose:
        print(f"Device: {device} — {why}")
    return device
