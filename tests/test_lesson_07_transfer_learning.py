"""Lesson 07: the notebook's pretrained-weights cells, with and without the weights file.

With network access the notebook downloads ResNet-50 weights and prints each photo's top-5. Here
we run its opening cells (up to the top-5 cell) twice: once with a locally created weights file
in a temporary torch hub cache, named exactly as torchvision expects, and once offline with an
empty cache. Nothing is downloaded. Each run has its own environment, so these two stay out of
the shared `executed_notebook` runs.
"""

from __future__ import annotations

import os

import nbformat
import pytest
import torch
import torchvision
from notebook_tools import execute, solution_path

LESSON = "07_transfer_learning"


def _opening_cells(tmp_path):
    """A copy of the lesson that stops after the cell printing the photos' top-5."""
    nb = nbformat.read(solution_path(LESSON), as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "topk" in c.source)
    nb.cells = nb.cells[:last + 1]
    path = tmp_path / "opening.ipynb"
    nbformat.write(nb, path)
    return path


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.get("output_type") == "stream")


@pytest.mark.slow
def test_cached_weights_are_loaded_and_photos_classified(tmp_path):
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(),
               checkpoints / "resnet50-11ad3fa6.pth")  # the IMAGENET1K_V2 file name
    # COURSE_OFFLINE: the weights must come from the cache, never the network
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), COURSE_OFFLINE="1")

    out = _stdout(execute(_opening_cells(tmp_path), tmp_path, mode="quick", env=env))

    assert "Loaded resnet50 with ResNet50_Weights.IMAGENET1K_V2" in out
    assert "from the torch hub cache" in out
    top5 = [line for line in out.splitlines() if line.strip().startswith("chelsea:")]
    assert len(top5) == 1 and top5[0].count("%") == 5
    assert "Skipped" not in out


@pytest.mark.slow
def test_offline_without_weights_says_so_and_skips(tmp_path):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty"), COURSE_OFFLINE="1")

    out = _stdout(execute(_opening_cells(tmp_path), tmp_path, mode="quick", env=env))

    assert "Pretrained weights NOT available" in out
    assert "resnet50-11ad3fa6.pth" in out
    assert "Skipped: classifying the photos needs the ImageNet weights" in out
