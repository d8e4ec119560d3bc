"""Seconds per solution notebook in QUICK and GRADE mode, and per `check` call, against budgets.

Budgets (issue 7): a notebook runs in <= 180 s in QUICK mode on 2 cores and <= 30 s in GRADE
mode; one `check` takes <= 1 s (the efficiency-table exercise, which builds and counts ten
torchvision models, <= 15 s). Notebooks run the way the tests run them (a fresh `cnn-course`
kernel, COURSE_MODE set, in a temporary folder); checks run in this process on the correct
submissions of the test corpora (tests/checks_corpus.py, tests/practice_corpus.py).

    python -m benchmarks.notebooks [--lessons 03_resnet,04_resnet_variants] [--modes quick,grade]
                                   [--no-checks] [--no-notebooks]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

# The tests' notebook runner: one way to run a lesson, shared by the tests and the benchmarks.
from tests.notebook_tools import execute, existing_lessons, solution_path

BUDGET = {"quick": 180.0, "grade": 30.0}
CHECK_BUDGET = {"ex4_efficiency_table": 15.0}  # every other check: 1 s


def _cell_seconds(cell) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


@contextlib.contextmanager
def _kernel_stderr(skip: str = "Kernel is running over TCP without encryption"):
    """Pass the kernel's stderr (it writes to ours) through, minus its start-up warning."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.writelines(line for line in captured if skip not in line)


def time_notebook(path: Path, mode: str, timeout: int) -> dict:
    """Run one notebook; wall seconds (kernel start included) and its three slowest cells."""
    with tempfile.TemporaryDirectory() as workdir, _kernel_stderr():
        start = time.perf_counter()
        nb = execute(path, Path(workdir), mode=mode, timeout=timeout)
        wall = time.perf_counter() - start
    cells = sorted(((_cell_seconds(c), i) for i, c in enumerate(nb.cells)
                    if c.cell_type == "code"), reverse=True)
    return {"wall": wall, "cells": sum(s for s, _ in cells), "slowest": cells[:3]}


def notebooks(lessons: list[str], modes: list[str], timeout: int) -> list[str]:
    missed = []
    for mode in modes:
        print(f"\n{mode.upper()} mode (budget {BUDGET[mode]:.0f} s per notebook)")
        print(f"{'lesson':<24}{'wall s':>8}{'cells s':>9}  slowest cells (index: s)")
        total = 0.0
        for lesson in lessons:
            result = time_notebook(solution_path(lesson), mode, timeout)
            total += result["wall"]
            slowest = ", ".join(f"{i}: {s:.1f}" for s, i in result["slowest"])
            over = result["wall"] > BUDGET[mode]
            if over:
                missed.append(f"{lesson} in {mode.upper()} mode: {result['wall']:.1f} s")
            print(f"{lesson:<24}{result['wall']:>8.1f}{result['cells']:>9.1f}  {slowest}"
                  + ("   OVER BUDGET" if over else ""), flush=True)
        print(f"{'total':<24}{total:>8.1f}")
    return missed


def checks(names: list[str] | None = None) -> list[str]:
    """Seconds of one check per graded item (first call, and the best of three)."""
    from course_utils.checks import available_checks, check
    from tests.checks_corpus import SOLUTIONS as EXERCISES
    from tests.practice_corpus import SOLUTIONS as PRACTICE

    solutions = {**EXERCISES, **PRACTICE}

    names = names or list(available_checks())
    print(f"\nchecks on correct submissions (budget 1 s; "
          f"{', '.join(f'{k} {v:.0f} s' for k, v in CHECK_BUDGET.items())})")
    print(f"{'check':<24}{'first s':>9}{'best of 3':>11}")
    missed = []
    for name in names:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                check(name, solutions[name])
            times.append(time.perf_counter() - start)
        budget = CHECK_BUDGET.get(name, 1.0)
        over = times[0] > budget
        if over:
            missed.append(f"check {name}: {times[0]:.2f} s")
        print(f"{name:<24}{times[0]:>9.2f}{min(times):>11.2f}"
              + ("   OVER BUDGET" if over else ""), flush=True)
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", default=",".join(existing_lessons()),
                        help="comma-separated lesson folders (default: all)")
    parser.add_argument("--modes", default="quick,grade", help="comma-separated: quick, grade")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    parser.add_argument("--no-notebooks", action="store_true")
    parser.add_argument("--checks", default="", help="comma-separated check names (default: all)")
    parser.add_argument("--no-checks", action="store_true")
    args = parser.parse_args(argv)
    modes = [m.strip().lower() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(BUDGET))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}: use quick, grade")
    import torch

    print(f"{os.cpu_count()} CPU cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads in this process), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    missed = []
    if not args.no_notebooks:
        missed += notebooks(args.lessons.split(","), modes, args.timeout)
    if not args.no_checks:
        missed += checks([n for n in args.checks.split(",") if n] or None)
    print("\nbudgets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
