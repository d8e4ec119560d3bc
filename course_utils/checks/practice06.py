"""Lesson 06 practice: ``interpolate_pos_embedding`` and ``mean_attention_distance``.

References are computed here: the resized table with ``F.interpolate(mode="bicubic",
align_corners=True)`` on the g×g grid (what torchvision's ``interpolate_embeddings`` does;
tests/test_checks_practice.py confirms they agree), the attention distance in float64 from
the definition in the lesson.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._calls import call, expect_function, fail, shape_str
from ._functions import (
    close,
    expect_tensor,
    expect_value_error,
    first_match,
    max_diff,
    reject_names,
)
from ._registry import grading, register

INTERPOLATE = "def interpolate_pos_embedding(pos_embed, new_grid) -> tensor of shape " \
              "(1, 1 + new_grid², D)"
DISTANCE = "def mean_attention_distance(weights, grid_size, patch_size) -> tensor of shape " \
           "weights.shape[:-2]"


def resize(pos_embed: torch.Tensor, new_grid: int, mode: str = "bicubic",
           align_corners: bool | None = True, layout: str = "rows") -> torch.Tensor:
    """The reference (defaults), or a known mistake: another mode, align_corners=False, the
    resized grid read out column by column (``layout="cols"``: rows and columns swapped) or
    reshaped without a permute (``layout="raw"``)."""
    cls_entry, patches = pos_embed[:, :1], pos_embed[:, 1:]
    count, dim = patches.shape[1], patches.shape[2]
    g = math.isqrt(count)
    if layout == "raw":
        image = patches.reshape(1, dim, g, g)
    else:
        image = patches.reshape(1, g, g, dim).permute(0, 3, 1, 2)
    options = {"align_corners": align_corners} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(image, size=(new_grid, new_grid), mode=mode, **options)
    if layout == "raw":
        out = out.reshape(1, new_grid * new_grid, dim)
    else:
        back = (0, 2, 3, 1) if layout == "rows" else (0, 3, 2, 1)
        out = out.permute(*back).reshape(1, new_grid * new_grid, dim)
    return torch.cat([cls_entry, out], dim=1)


def _coordinates(g: int) -> torch.Tensor:
    """A (1, 1 + g², 2) table whose patch entries are their own (row, column)."""
    rows, cols = torch.meshgrid(torch.arange(float(g)), torch.arange(float(g)), indexing="ij")
    return torch.cat([torch.zeros(1, 2), torch.stack([rows, cols], -1).reshape(g * g, 2)])[None]


def _interpolate_case(fn: object, pos_embed: torch.Tensor, new_grid: int, label: str) -> None:
    g, dim = math.isqrt(pos_embed.shape[1] - 1), pos_embed.shape[2]
    what = f"interpolate_pos_embedding(pos_embed, {new_grid}) with {label}"
    given = pos_embed.clone()
    got = expect_tensor(call(what, fn, given, new_grid), what)
    if not torch.equal(given, pos_embed):
        fail(f"{what} changed pos_embed in place; return a new tensor and leave the input alone.")
    want = resize(pos_embed, new_grid)
    shape = tuple(got.shape)
    if shape != tuple(want.shape):
        hint = f"expected {shape_str(want.shape)} = (1, 1 + {new_grid}·{new_grid}, {dim})"
        if shape == (1, new_grid * new_grid, dim):
            hint = ("the class token's entry is missing: keep pos_embed[:, :1] unchanged and "
                    "put it first")
        elif shape == (1, 1 + g * g, dim) and g != new_grid:
            hint = f"the {g}×{g} grid was not resized to {new_grid}×{new_grid}"
        elif len(shape) == 2:
            hint = "keep the leading batch dimension of 1: (1, 1 + new_grid², D)"
        fail(f"{what} returned shape {shape_str(shape)}; {hint}.")
    if not torch.equal(got[:, 0], pos_embed[:, 0]):
        if torch.equal(got[:, -1], pos_embed[:, 0]):
            fail(f"{what}: the class token's entry must come first, not last.")
        fail(f"{what}: the first entry differs from the class token's entry pos_embed[:, 0]; "
             "keep it unchanged and resize only the g×g patch entries.")
    if close(got, want, rtol=1e-4, atol=1e-4):
        return
    candidates = [
        (lambda: resize(pos_embed, new_grid, layout="cols"), "rows and columns are swapped: "
         "the patch entries are in row-major order, so permute the resized (1, D, new, new) "
         "grid to (1, new, new, D) before reshaping it to (1, new², D)"),
        (lambda: resize(pos_embed, new_grid, layout="raw"), "reshaping (1, g², D) straight to "
         "(1, D, g, g) mixes positions and channels: reshape to (1, g, g, D), then permute to "
         "(1, D, g, g) (and back after interpolating)"),
        (lambda: resize(pos_embed, new_grid, align_corners=False), "use align_corners=True "
         "(torchvision's choice): the corner positions of the grid stay where they are"),
        (lambda: resize(pos_embed, new_grid, mode="bilinear"), "that is bilinear interpolation; "
         "use mode=\"bicubic\""),
        (lambda: resize(pos_embed, new_grid, mode="bilinear", align_corners=False),
         "that is bilinear interpolation with align_corners=False; use mode=\"bicubic\", "
         "align_corners=True"),
        (lambda: resize(pos_embed, new_grid, mode="nearest", align_corners=None),
         "that is nearest-neighbour resizing; use mode=\"bicubic\", align_corners=True"),
    ]
    reason = first_match(got, candidates, rtol=1e-4, atol=1e-4)
    fail(f"{what}: the patch entries differ from the {g}×{g} grid resized to "
         f"{new_grid}×{new_grid} with F.interpolate(mode=\"bicubic\", align_corners=True) "
         f"(largest difference {max_diff(got, want):.3g})" + (f": {reason}." if reason else "."))


@register("practice_interpolate_pos_embedding", "interpolate_pos_embedding(pos_embed, new_grid)")
def check_interpolate_pos_embedding(obj: object) -> str:
    expect_function(obj, "interpolate_pos_embedding", INTERPOLATE)
    reject_names(obj, "interpolate_pos_embedding", ("interpolate_embeddings",),
                 "write the resizing yourself with F.interpolate; calling torchvision's "
                 "interpolate_embeddings is not allowed.")
    g = torch.Generator().manual_seed(0)
    table = torch.randn(1, 1 + 8 * 8, 16, generator=g)
    _interpolate_case(obj, table, 12, "an 8×8 grid of 16-dim entries")
    _interpolate_case(obj, table, 8, "an 8×8 grid of 16-dim entries (same size: unchanged)")
    if grading():
        for grid, new_grid, dim in ((14, 24, 768), (8, 12, 16), (8, 4, 16), (5, 7, 3)):
            table = torch.randn(1, 1 + grid * grid, dim, generator=g)
            _interpolate_case(obj, table, new_grid, f"a {grid}×{grid} grid of {dim}-dim entries")
        _interpolate_case(obj, _coordinates(6), 11,
                          "a 6×6 grid whose entries are their own (row, column)")
        expect_value_error("interpolate_pos_embedding(pos_embed, 4) with pos_embed of shape "
                           "(1, 11, 4)", obj, torch.randn(1, 11, 4, generator=g), 4,
                           why="10 patch entries do not form a square grid")
    return ("✓ interpolate_pos_embedding resizes an 8×8 grid to 12×12 like torchvision "
            "(bicubic, align_corners=True), keeps the class token first and unchanged, and "
            "leaves an 8×8 table as it is.")


# --- mean_attention_distance ----------------------------------------------------------------


def distance(weights: torch.Tensor, grid_size: int, patch_size: float, *, renormalise=True,
             pixels=True, metric="euclidean", over_queries="mean") -> torch.Tensor:
    """The reference (defaults) in float64, or a known mistake (keywords)."""
    a = weights[..., 1:, 1:].double()
    if renormalise:
        a = a / a.sum(-1, keepdim=True)
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    centres = (torch.stack([rows, cols], -1).reshape(-1, 2).double() + 0.5) * \
        (patch_size if pixels else 1)
    diff = centres[:, None, :] - centres[None, :, :]
    if metric == "euclidean":
        dist = diff.pow(2).sum(-1).sqrt()
    elif metric == "squared":
        dist = diff.pow(2).sum(-1)
    else:
        dist = diff.abs().sum(-1)
    per_query = (a * dist).sum(-1)
    return per_query.mean(-1) if over_queries == "mean" else per_query.sum(-1)


def _distance_case(fn: object, weights: torch.Tensor, grid: int, patch: int, label: str) -> None:
    what = f"mean_attention_distance(weights, {grid}, {patch}) with {label}"
    given = weights.clone()
    got = expect_tensor(call(what, fn, given, grid, patch), what)
    if not torch.equal(given, weights):
        fail(f"{what} changed weights in place; return a new tensor and leave the input alone.")
    want = distance(weights, grid, patch)
    lead = tuple(weights.shape[:-2])
    if tuple(got.shape) != lead:
        shape, hint = tuple(got.shape), f"expected weights.shape[:-2] = {shape_str(lead)}"
        if shape == lead + (grid * grid,):
            hint = "that is one value per query patch: average over the query patches"
        elif shape == lead + (1 + grid * grid,):
            hint = ("that is one value per query, class token included: drop the class token "
                    "(row and column 0) and average over the query patches")
        elif len(shape) < len(lead) or (shape in ((), (1,)) and lead not in ((), (1,))):
            hint += " (one value per image and head: average over the query patches only)"
        fail(f"{what} returned shape {shape_str(shape)}; {hint}.")
    if close(got, want, rtol=1e-4, atol=1e-4):
        return
    candidates = [
        (lambda: distance(weights, grid, patch, renormalise=False), "after dropping the class "
         "token, renormalise each query's weights over the key patches so they sum to one"),
        (lambda: distance(weights, grid, patch, pixels=False), "that is in patches, not "
         "pixels: multiply the positions (or the distances) by patch_size"),
        (lambda: distance(weights, grid, patch, metric="manhattan"), "that is the Manhattan "
         "distance |Δr| + |Δc|; use the Euclidean distance √(Δr² + Δc²)"),
        (lambda: distance(weights, grid, patch, metric="squared"), "that is the squared "
         "distance; take the square root (Euclidean distance)"),
        (lambda: distance(weights, grid, patch, over_queries="sum"), "that sums over the query "
         "patches; average over them"),
    ]
    reason = first_match(got, candidates, rtol=1e-4, atol=1e-4)
    fail(f"{what} returned values that differ from the definition (largest difference "
         f"{max_diff(got, want):.3g})" + (f": {reason}." if reason else
                                          ": Σ_j a_ij · dist(i, j) over the key patches j, "
                                          "averaged over the query patches i."))


def _wrap_right(grid: int) -> torch.Tensor:
    """Each query patch attends only to its right-hand neighbour (wrapping to the row start)."""
    w = torch.zeros(1, 1 + grid * grid, 1 + grid * grid)
    w[0, 0, 0] = 1
    for r in range(grid):
        for c in range(grid):
            w[0, 1 + r * grid + c, 1 + r * grid + (c + 1) % grid] = 1
    return w


@register("practice_attention_distance", "mean_attention_distance(weights, grid_size, "
                                         "patch_size)")
def check_attention_distance(obj: object) -> str:
    expect_function(obj, "mean_attention_distance", DISTANCE)
    _distance_case(obj, torch.full((1, 5, 5), 1 / 5), 2, 16,
                   "uniform weights of shape (1, 5, 5) (a 2×2 grid and the class token)")
    _distance_case(obj, torch.eye(5).expand(3, 2, 5, 5).contiguous(), 2, 16,
                   "weights of shape (3, 2, 5, 5) where every token attends to itself")
    if grading():
        g = torch.Generator().manual_seed(0)
        for grid, patch, lead in ((4, 8, (2, 3)), (3, 16, (5,)), (6, 4, (1, 2, 2))):
            n = 1 + grid * grid
            w = (torch.randn(*lead, n, n, generator=g) * 3).softmax(-1)
            _distance_case(obj, w, grid, patch, f"random weights of shape {shape_str(w.shape)}")
        w = torch.rand(1, 10, 10, generator=g).softmax(-1)
        w[..., 0] *= 50
        w = w / w.sum(-1, keepdim=True)
        _distance_case(obj, w, 3, 8, "weights of shape (1, 10, 10) with most of the attention "
                       "on the class token")
        _distance_case(obj, _wrap_right(3), 3, 10, "weights of shape (1, 10, 10) where each "
                       "patch attends only to its right-hand neighbour")
    return ("✓ mean_attention_distance: uniform attention on a 2×2 grid of 16-pixel patches "
            f"gives {(16 + 16 + 16 * math.sqrt(2)) / 4:.2f} pixels, attention to oneself gives 0, "
            "with one value per image and head.")
