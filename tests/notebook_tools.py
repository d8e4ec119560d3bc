"""Shared helpers for tests that read, generate and execute the lesson notebooks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
LESSONS = [
    "01_cnn_basics",
    "02_vgg",
    "03_resnet",
    "04_resnet_variants",
    "05_efficientnet",
    "06_vision_transformer",
    "07_transfer_learning",
]
KERNEL = "cnn-course"


def solution_path(lesson: str) -> Path:
    return ROOT / "solutions" / lesson / f"{lesson}.ipynb"


def student_path(lesson: str) -> Path:
    return ROOT / "notebooks" / lesson / f"{lesson}.ipynb"


def existing_lessons() -> list[str]:
    return [lesson for lesson in LESSONS if solution_path(lesson).exists()]


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_autograded_test(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def run_nbgrader(cwd: Path, *args: str, mode: str = "grade",
                 check: bool = False) -> subprocess.CompletedProcess:
    """Run the `nbgrader` command line in `cwd` with COURSE_MODE=`mode`."""
    nbgrader = Path(sys.executable).with_name("nbgrader")
    # nbgrader runs `alembic` from PATH: put this interpreter's bin folder first.
    env = dict(os.environ, PATH=f"{nbgrader.parent}{os.pathsep}{os.environ.get('PATH', '')}",
               COURSE_MODE=mode)
    return subprocess.run([str(nbgrader), *args], cwd=cwd, check=check, capture_output=True,
                          text=True, env=env)


def generate_student_copies(workdir: Path) -> dict[str, Path]:
    """Run nbgrader generate_assignment once for every lesson, on a copy of the course.

    Returns {lesson: generated notebook}. One nbgrader process for all lessons (the
    assignment id "*" is a pattern to nbgrader): 4 s instead of 4 s per lesson.
    """
    shutil.copy(ROOT / "nbgrader_config.py", workdir / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions", workdir / "solutions")
    run_nbgrader(workdir, "generate_assignment", "*", "--force", "--log-level=ERROR",
                 f"--CourseDirectory.root={workdir}",
                 f"--CourseDirectory.db_url=sqlite:///{workdir / 'gradebook.db'}", check=True)
    return {path.parent.name: path for path in sorted(workdir.glob("notebooks/*/*.ipynb"))}


def execute(path: Path, workdir: Path, mode: str = "grade", allow_errors: bool = False,
            timeout: int = 180, env: dict[str, str] | None = None):
    """Execute a copy of the notebook in `workdir` with COURSE_MODE=`mode`; return it.

    The kernel gets `env` (default: this process's environment) with COURSE_MODE set, so a
    caller controls exactly what the notebook sees without touching os.environ.
    """
    nb = nbformat.read(path, as_version=4)
    kernel_env = dict(os.environ if env is None else env, COURSE_MODE=mode)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute(env=kernel_env)
    return nb


def cell_error(cell) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None



def output_text(cell) -> str:
    """What a code cell showed as text: its streams, text/plain and text/markdown outputs."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/markdown", "") + out["data"].get("text/plain", ""))
    return "".join(parts)


@dataclass(frozen=True)
class ExecutedNotebook:
    """One lesson notebook after a run: the executed cells, where it ran, how long it took.

    Cells ran with allow_errors=True, so a failing cell is in `errors()` rather than an
    exception: tests assert on it and say which cell failed.
    """

    lesson: str
    mode: str
    copy: str  # "solution" or "student"
    nb: nbformat.NotebookNode
    workdir: Path  # the notebook's working directory (files it wrote are here)
    seconds: float

    def errors(self) -> list[tuple[int, str, str]]:
        """(cell index, exception name, message) of every cell that raised."""
        return [(i, err["ename"], err["evalue"]) for i, cell in enumerate(self.nb.cells)
                if (err := cell_error(cell)) is not None]

    def text(self) -> str:
        """Everything the code cells showed as text, in order (see output_text)."""
        return "".join(output_text(c) for c in self.nb.cells if c.cell_type == "code")

    def cells_with(self, snippet: str) -> list:
        """Code cells whose source contains `snippet` (with their outputs)."""
        return [c for c in self.nb.cells if c.cell_type == "code" and snippet in c.source]

    def cell_text(self, snippet: str) -> str:
        """What the one code cell containing `snippet` showed as text (see output_text)."""
        cells = self.cells_with(snippet)
        assert len(cells) == 1, f"expected one code cell containing {snippet!r}, found {len(cells)}"
        return output_text(cells[0])


__all__ = ["CellExecutionError", "LESSONS", "ROOT", "ExecutedNotebook", "cell_error", "execute",
           "existing_lessons", "generate_student_copies", "is_autograded_test", "nbgrader_meta",
           "output_text", "run_nbgrader", "solution_path", "student_path"]
