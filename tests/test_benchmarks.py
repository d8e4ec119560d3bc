"""Smoke tests: each benchmark script runs with tiny settings and prints its table.

The benchmarks themselves (`make bench`) take minutes and measure; these only keep the
scripts working. Notebook timing is exercised on a two-cell notebook, not on a lesson.
"""

import shutil

import nbformat
import pytest
import torch

# The repository root is on sys.path (pyproject's pytest `pythonpath`): the benchmarks are a
# package there, as `python -m benchmarks.flops` runs them.
from benchmarks import flops, grading, notebook_code, notebooks, train_speed


@pytest.fixture
def threads_kept():
    threads = torch.get_num_threads()
    yield threads
    torch.set_num_threads(threads)


def test_flops_table(capsys):
    assert flops.main(["--models", "resnet18,convnext_tiny"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "GMACs" in out
    assert "convnext_tiny: thop counts nothing for modules it has no rule for" in out


def test_train_speed_prints_both_loops_and_the_ratio(capsys, threads_kept):
    args = ["--epochs", "1", "--train", "64", "--test", "32", "--batch", "32",
            "--threads", str(threads_kept)]
    assert train_speed.main(args) == 0
    out = capsys.readouterr().out
    for row in ("plain", "fit", "fit + DeviceLoader", "fit vs plain:"):
        assert row in out
    assert "175,258 params" in out  # Exercise 1's CifarResNet(num_blocks=6), from the notebook


def test_notebook_code_gives_the_lessons_model():
    resnet = notebook_code.exercise1_resnet()
    assert resnet(num_blocks=6)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(LookupError, match="NoSuchThing"):
        notebook_code.load_definitions("03_resnet", ["NoSuchThing"])


def test_notebook_and_check_timing(tmp_path, capsys):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nmode = os.environ['COURSE_MODE']"),
        nbformat.v4.new_code_cell("assert mode == 'quick'"),
    ])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    result = notebooks.time_notebook(path, "quick", timeout=60)
    assert result["wall"] >= result["cells"] >= 0 and len(result["slowest"]) == 2
    assert notebooks.checks(["ex2_count_parameters"]) == []
    assert "ex2_count_parameters" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        notebooks.main(["--modes", "full"])


@pytest.mark.slow
@pytest.mark.grading  # real nbgrader runs in the sandbox: the grading tier
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_grading_benchmark_compares_three_graders(capsys):
    # One student and one worker: the table's every row, at the least grading it can cost.
    grading.main(["--students", "1", "--workers", "1", "--lesson", "02_vgg", "--skip-full"])
    out = capsys.readouterr().out
    for row in ("plain `nbgrader autograde`, sequential", "course_utils.grading, 1 worker",
                "course_utils.grading, Dask LocalCluster, 1 worker", "students/min",
                "fixed s/job", "1 worker vs plain sequential nbgrader", "Dask vs local workers"):
        assert row in out
