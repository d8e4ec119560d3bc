"""Shared fixtures and the suite's tiers.

Tiers (markers, registered in pyproject.toml; `make test` runs them all, `make test-fast`
runs `-m unit`):

- ``unit``: in-process tests of course_utils, the checks and the corpora. The default for a
  test that matches no rule below.
- ``notebooks``: tests that execute a lesson or generate its student copy
  (tests/test_notebooks.py, tests/test_lesson_*.py, and any test that uses
  ``executed_notebook``).
- ``grading``: real nbgrader runs, most in the bubblewrap sandbox (tests/test_grading*.py,
  tests/test_report.py), and the grader's judge talking to a real kernel (any test that uses
  ``kernel``: tests/test_judge*.py, tests/test_checks_practice.py).
- ``ui``: a JupyterLab server or a browser (tests/test_lab.py, tests/test_browser.py).

A test's own tier marker (``@pytest.mark.grading``) wins over the rules; then the fixtures
it uses; then its file name.

The lesson notebooks are executed once per (lesson, mode, copy) and pytest process: ask for
``executed_notebook`` instead of calling ``notebook_tools.execute`` (see its docstring).
`make test` runs two processes with ``--dist loadfile``, so a (lesson, mode, copy) asked for
by one test file only runs once in the whole suite.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import NamedTuple

import pytest
from jupyter_client.manager import KernelManager
from notebook_tools import ExecutedNotebook, execute, solution_path, student_path

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "notebooks", "grading", "ui")
# (file name pattern, tier): the first match decides; no match means "unit".
FILE_TIERS = [
    ("test_notebooks.py", "notebooks"),
    ("test_lesson_*.py", "notebooks"),
    ("test_grading*.py", "grading"),
    ("test_report.py", "grading"),
    ("test_browser.py", "ui"),
    ("test_lab.py", "ui"),
]
# Fixtures that put a test in a tier wherever it lives.
FIXTURE_TIERS = {"executed_notebook": "notebooks", "kernel": "grading"}
MODES = ("grade", "quick")
COPIES = ("solution", "student")


def tier_of(item: pytest.Item) -> str:
    own = [tier for tier in TIERS if item.get_closest_marker(tier)]
    if own:
        return own[0]
    for fixture, tier in FIXTURE_TIERS.items():
        if fixture in getattr(item, "fixturenames", ()):
            return tier
    name = Path(str(item.path)).name
    return next((tier for pattern, tier in FILE_TIERS if fnmatch(name, pattern)), "unit")


def pytest_configure(config):
    """Under pytest-xdist, give each process its share of the cores for torch's threads.

    Every process running two threads on 2 cores oversubscribes them; measured on 2 cores,
    `pytest tests -n 2`: 8 min 01 s and 13.3 CPU-minutes with torch's default threads,
    7 min 32 s and 12.5 CPU-minutes with one thread per process. Kernels, nbgrader and
    grading workers inherit the setting; a thread count set by the caller wins.
    """
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, len(os.sched_getaffinity(0)) // processes)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:  # imported already: it read the variable at start
            sys.modules["torch"].set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))


# --- executed lesson notebooks ---------------------------------------------------------------


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory) -> Callable[..., ExecutedNotebook]:
    """executed_notebook(lesson, mode="grade", copy="solution") -> ExecutedNotebook.

    Runs ``solutions/<lesson>`` (or, with ``copy="student"``, ``notebooks/<lesson>``) once per
    session in a fresh ``cnn-course`` kernel with COURSE_MODE=`mode` ("grade" or "quick"), in
    its own temporary folder, and hands every caller the same result. Cells run with
    allow_errors=True: assert ``nb.errors() == []`` (or on the errors you expect). A kernel
    death or a cell timeout is raised to every caller of that run, not retried.

    The kernel sees this process's environment as it was when the session started (plus
    COURSE_MODE): a test's monkeypatched variables never leak into the shared run. A test
    that needs a special environment (say, a prepared weights cache) calls
    ``notebook_tools.execute(..., env=...)`` itself.

    Treat the result as read-only; it is shared. Example::

        def test_lesson_05_verifies_its_counts(executed_notebook):
            run = executed_notebook("05_efficientnet", "quick")
            assert run.errors() == []
            assert "for all 11 models" in run.text()
    """
    session_env = dict(os.environ)
    runs: dict[tuple[str, str, str], ExecutedNotebook | BaseException] = {}

    def run(lesson: str, mode: str = "grade", copy: str = "solution") -> ExecutedNotebook:
        if mode not in MODES or copy not in COPIES:
            raise ValueError(f"mode must be one of {MODES} and copy one of {COPIES}, "
                             f"not {mode!r}/{copy!r}")
        key = (lesson, mode, copy)
        if key not in runs:
            path = solution_path(lesson) if copy == "solution" else student_path(lesson)
            workdir = tmp_path_factory.mktemp(f"{lesson}-{copy}-{mode}")
            start = time.perf_counter()
            try:
                nb = execute(path, workdir, mode=mode, allow_errors=True, timeout=600,
                             env=session_env)
                runs[key] = ExecutedNotebook(lesson, mode, copy, nb, workdir,
                                             time.perf_counter() - start)
            except Exception as exc:  # a dead kernel or a timeout: every caller sees it
                runs[key] = exc
        result = runs[key]
        if isinstance(result, BaseException):
            raise result
        return result

    return run


# --- a plain kernel -------------------------------------------------------------------------


class Kernel(NamedTuple):
    """A running IPython kernel: its manager (interrupt, restart) and its client."""

    manager: KernelManager
    client: object  # jupyter_client's BlockingKernelClient

    def run(self, code: str, timeout: float = 120) -> dict:
        """Execute `code` and require it to succeed; return the reply's content."""
        content = self.client.execute_interactive(code, timeout=timeout)["content"]
        assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"
        return content


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    """A fresh ``python3`` kernel per test module, started in tests/.

    Its working directory is tests/, so code run in it imports the corpora by name
    (``import checks_corpus``) as the tests here do, with no sys.path edits.
    """
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(TESTS))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        yield Kernel(km, kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
