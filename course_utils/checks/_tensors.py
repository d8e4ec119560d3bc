"""How the checker compares tensors: largest difference, closeness, norms, seeded draws."""

from __future__ import annotations

import torch


def max_abs(t: torch.Tensor) -> float:
    """max |t| as a float; inf when t has NaN or inf."""
    t = t.detach()
    if t.numel() == 0:
        return 0.0
    if not bool(torch.isfinite(t).all()):
        return float("inf")
    return float(t.abs().max())


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| (inf for NaN/inf or different shapes)."""
    if a.shape != b.shape:
        return float("inf")
    return max_abs(a.detach().float() - b.detach().float())


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    """a equals b up to ``tol`` relative to the size of b (at least absolute ``tol``)."""
    return max_abs_diff(a, b) <= tol * max(1.0, max_abs(b))


def norm(t: torch.Tensor) -> float:
    """The L2 norm of all of t's entries (float64 accumulation)."""
    return float(t.detach().double().pow(2).sum().sqrt())


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
