"""Grade one (student, assignment) with `nbgrader autograde` in a private course directory.

A job carries everything it needs as bytes (the assignment's source, a gradebook that knows
its cells, the submitted files), so it runs the same in a local process or on a Dask worker on
another machine. It returns plain data: the scores and comments nbgrader recorded and the
autograded files. Only the caller writes the course gradebook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

GRADING_KERNEL = "cnn-course-grading"
INVALID_NOTE = (
    "**The grader could not read your submission `{name}`** ({reason}). It was graded as "
    "an unanswered copy of the assignment: 0 points for every exercise."
)

# Appended to the course's nbgrader_config.py inside the job directory.
JOB_CONFIG = """
from course_utils.grading.execute import SurvivingExecute
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                    LimitOutput, SaveAutoGrades)
from nbconvert.preprocessors import ClearMetadataPreprocessor

c.Autograde.autograde_preprocessors = [SurvivingExecute, IgnorePattern,
    ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
    CheckCellMetadata]
c.Execute.kernel_name = {kernel!r}
c.Execute.timeout = {timeout}
c.CourseDirectory.db_url = "sqlite:///{db}"
"""


@dataclass
class JobSpec:
    """Everything needed to grade one submission, as plain data."""

    student: str
    assignment: str
    config: bytes                      # the course's nbgrader_config.py
    source: dict[str, bytes]           # files of solutions/<assignment>/, by relative path
    release: dict[str, bytes]          # the student copy, used to stand in for unreadable files
    gradebook: bytes                   # a gradebook that knows the assignment's cells only
    submission: dict[str, bytes]       # files of submitted/<student>/<assignment>/
    cell_timeout: int = 60
    job_timeout: int = 900
    memory_bytes: int | None = None
    hide: list[str] = field(default_factory=list)  # host paths the kernel must not see


@dataclass
class JobResult:
    student: str
    assignment: str
    status: str                        # "graded", or "failed" when nbgrader itself gave up
    message: str                       # a line for the instructor's table
    seconds: float
    timestamp: str | None = None
    grades: dict = field(default_factory=dict)    # notebook -> {grade cell -> auto score}
    comments: dict = field(default_factory=dict)  # notebook -> {cell -> auto comment}
    autograded: dict[str, bytes] = field(default_factory=dict)
    log: str = ""


def venv_env(**extra: str) -> dict[str, str]:
    """The environment with this interpreter's bin folder first: nbgrader runs `alembic`."""
    bin_dir = os.path.dirname(sys.executable)
    return dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), **extra)


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:
            raise ValueError(f"refusing to write outside the job directory: {rel}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path, max_bytes: int = 50 * 2**20) -> dict[str, bytes]:
    """All regular files under `root` by relative path (symlinks skipped, size capped)."""
    files, total = {}, 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or ".ipynb_checkpoints" in path.parts:
            continue
        total += path.stat().st_size
        if total > max_bytes:
            raise ValueError(f"{root} holds more than {max_bytes // 2**20} MiB")
        files[str(path.relative_to(root))] = path.read_bytes()
    return files


def _replace_unreadable(spec: JobSpec, submitted: Path) -> list[str]:
    """Swap notebooks that are not valid JSON notebooks for the blank copy plus a note."""
    notes = []
    for rel, data in spec.release.items():
        if not rel.endswith(".ipynb"):
            continue
        target = submitted / rel
        reason = None
        if not target.exists():
            reason = "the file is missing"
        else:
            try:
                nbformat.validate(nbformat.reads(target.read_text(), as_version=4))
            except Exception as exc:  # noqa: BLE001 - any reason makes it unreadable
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if reason:
            nb = nbformat.reads(data.decode(), as_version=4)
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                INVALID_NOTE.format(name=rel, reason=reason)))
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            notes.append(f"{rel}: {reason}")
    return notes


def _install_kernel(jupyter_dir: Path) -> None:
    spec_dir = jupyter_dir / "kernels" / GRADING_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_dir.joinpath("kernel.json").write_text(json.dumps({
        # Run by path, not with -m: importing the course_utils package would load torch in
        # the launcher too, 3-4 s per kernel start spent before bubblewrap even runs.
        "argv": [sys.executable, str(Path(__file__).with_name("sandbox_kernel.py")),
                 "-f", "{connection_file}"],
        "display_name": "CNN course (grading sandbox)",
        "language": "python",
        # The sandboxed kernel sits in its own session, out of reach of a SIGINT sent to the
        # launcher's process group: interrupt it with a message on the control channel.
        "interrupt_mode": "message",
    }))


def _read_scores(db: Path, assignment: str, student: str) -> tuple[str | None, dict, dict]:
    from nbgrader.api import Gradebook

    grades, comments = {}, {}
    with Gradebook(f"sqlite:///{db}") as gb:
        sub = gb.find_submission(assignment, student)
        for nb in sub.notebooks:
            grades[nb.name] = {g.name: g.auto_score for g in nb.grades}
            comments[nb.name] = {c.name: c.auto_comment for c in nb.comments}
        stamp = sub.timestamp.isoformat() if sub.timestamp else None
    return stamp, grades, comments


def grade(spec: JobSpec) -> JobResult:
    """Run nbgrader autograde for one submission; never raises for a bad submission."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"grade-{spec.student}-{spec.assignment}-") as tmp:
        job = Path(tmp)
        db = job / "gradebook.db"
        db.write_bytes(spec.gradebook)
        config = spec.config.decode() + JOB_CONFIG.format(
            kernel=GRADING_KERNEL, timeout=spec.cell_timeout, db=db)
        (job / "nbgrader_config.py").write_text(config)
        _write_tree(job / "solutions" / spec.assignment, spec.source)
        submitted = job / "submitted" / spec.student / spec.assignment
        _write_tree(submitted, spec.submission)
        notes = _replace_unreadable(spec, submitted)
        _install_kernel(job / "jupyter")

        hidden = [str(job / d) for d in ("solutions", "submitted", "notebooks")]
        env = venv_env(COURSE_MODE="grade", JUPYTER_PATH=str(job / "jupyter"),
                       COURSE_GRADING_HIDE=os.pathsep.join(hidden + [str(db)] + spec.hide))
        if spec.memory_bytes:
            env["COURSE_GRADING_MEMORY"] = str(spec.memory_bytes)
        cmd = [sys.executable, "-m", "nbgrader", "autograde", spec.assignment,
               "--student", spec.student, "--force", "--log-level=INFO"]
        try:
            proc = subprocess.run(cmd, cwd=job, env=env, capture_output=True, text=True,
                                  timeout=spec.job_timeout)
            log = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            log = f"{exc.stdout or ''}{exc.stderr or ''}\nkilled after {spec.job_timeout} s"
            return JobResult(spec.student, spec.assignment, "failed",
                             f"grading took longer than {spec.job_timeout} s",
                             time.monotonic() - start, log=log[-20_000:])

        autograded = job / "autograded" / spec.student / spec.assignment
        if not autograded.is_dir():
            return JobResult(spec.student, spec.assignment, "failed",
                             "nbgrader could not grade this submission (see the log)",
                             time.monotonic() - start, log=log[-20_000:])
        try:
            stamp, grades, comments = _read_scores(db, spec.assignment, spec.student)
        except Exception:  # noqa: BLE001 - nbgrader recorded nothing usable
            return JobResult(spec.student, spec.assignment, "failed",
                             "nbgrader could not grade this submission (see the log)",
                             time.monotonic() - start, log=log[-20_000:])
        message = "; ".join(notes) if notes else "graded"
        files = read_tree(autograded) if autograded.is_dir() else {}
        return JobResult(spec.student, spec.assignment, "graded", message,
                         time.monotonic() - start, stamp, grades, comments, files,
                         log[-20_000:])
