"""The grader's Execute step on a plain kernel: which message a cell gets when its kernel ends.

A cell that runs past its timeout is interrupted. Whether its kernel then freezes or dies of
the interrupt depends on where the student's code broke it (a kernel whose builtins were
replaced does either, by timing): both are one frozen cell, not a cell that ended the process.
"""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_notebook

from course_utils.grading.execute import SurvivingExecute

DIES_OF_THE_INTERRUPT = ("import os, signal, time\n"
                         "signal.signal(signal.SIGINT, lambda *a: os._exit(3))\n"
                         "time.sleep(60)")


def _run(*sources: str):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb, _ = SurvivingExecute(timeout=2, kernel_name="python3").preprocess(nb, {})
    return nb.cells


def _died(cell) -> str:
    errors = [o for o in cell.outputs if o.get("ename") == "KernelDied"]
    assert len(errors) == 1, cell.outputs
    return errors[0]["evalue"]


def test_a_kernel_that_dies_of_the_interrupt_is_a_frozen_cell_and_grading_goes_on():
    cells = _run("x = 1", DIES_OF_THE_INTERRUPT, "print(x + 1)")
    assert "ran past the 2 s limit and the kernel did not recover when interrupted" \
        in _died(cells[1])
    assert [o.get("text") for o in cells[2].outputs] == ["2\n"]  # restarted, x replayed


def test_a_cell_that_exits_after_a_timed_out_cell_ended_the_process():
    cells = _run("x = 1", "import time\ntime.sleep(60)", "import os\nos._exit(1)",
                 "print(x + 2)")
    assert [o.get("ename") for o in cells[1].outputs][-1] == "CellTimeoutError"
    assert "This cell ended the Python process" in _died(cells[2])
    assert [o.get("text") for o in cells[3].outputs] == ["3\n"]
