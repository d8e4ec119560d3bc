"""Grade every submission of a class: in parallel, resumably, with one gradebook writer.

Layout (nbgrader's): <course>/submitted/<student>/<assignment>/<notebook>.ipynb.
Jobs run in worker threads that each drive an `nbgrader autograde` process, or on Dask
workers; results are merged into <course>/gradebook.db by this process alone, so parallel
grading never meets "database is locked". A submission whose files have not changed since
it was last graded is skipped, so re-running is cheap and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .job import JobResult, JobSpec, grade, read_tree, venv_env
from .merge import merge

STATE_FILE = ".grading_state.json"
HIDDEN_FROM_STUDENTS = ("solutions", "submitted", "autograded", "feedback", "gradebook.db",
                        ".git", STATE_FILE)
# The repository this package was installed from holds the reference solutions too (in its
# files and its git history), wherever the course directory itself lies.
PACKAGE_REPO = Path(__file__).resolve().parents[2]


@dataclass
class ClassReport:
    graded: list[JobResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    scores: dict = field(default_factory=dict)  # student -> assignment -> (score, max)
    csv_path: Path | None = None


def _nbgrader(course_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"]
    proc = subprocess.run(cmd, cwd=course_dir, capture_output=True, text=True, env=venv_env())
    if proc.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed:\n{proc.stdout}{proc.stderr}")
    return proc


def find_submissions(course_dir: Path, assignments: Iterable[str] | None = None,
                     students: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(student, assignment) pairs present under submitted/, sorted."""
    root = course_dir / "submitted"
    if not root.is_dir():
        raise FileNotFoundError(f"no submissions: {root} does not exist")
    wanted_a = set(assignments) if assignments else None
    wanted_s = set(students) if students else None
    pairs = []
    for student in sorted(p for p in root.iterdir() if p.is_dir()):
        for assignment in sorted(p for p in student.iterdir() if p.is_dir()):
            if (wanted_a is None or assignment.name in wanted_a) and \
               (wanted_s is None or student.name in wanted_s):
                pairs.append((student.name, assignment.name))
    return pairs


def submission_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for rel, data in sorted(read_tree(folder).items()):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


@dataclass
class AssignmentFiles:
    source: dict[str, bytes]
    release: dict[str, bytes]
    gradebook: bytes


def prepare_assignment(course_dir: Path, db_url: str, assignment: str) -> AssignmentFiles:
    """Register the assignment in the course gradebook and build what every job needs.

    `generate_assignment` writes its student copy to a scratch folder, so notebooks/ is
    never touched; a second run with a private gradebook gives jobs a gradebook that knows
    the assignment's cells and nothing about any student.
    """
    source_dir = course_dir / "solutions" / assignment
    if not source_dir.is_dir():
        raise FileNotFoundError(f"unknown assignment {assignment!r}: no {source_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        _nbgrader(course_dir, "generate_assignment", assignment, "--force",
                  f"--CourseDirectory.release_directory={scratch / 'release'}",
                  f"--CourseDirectory.db_url={db_url}")
        job_db = scratch / "gradebook.db"
        _nbgrader(course_dir, "generate_assignment", assignment, "--force",
                  f"--CourseDirectory.release_directory={scratch / 'release'}",
                  f"--CourseDirectory.db_url=sqlite:///{job_db}")
        return AssignmentFiles(read_tree(source_dir),
                               read_tree(scratch / "release" / assignment),
                               job_db.read_bytes())


def _run_jobs(specs: list[JobSpec], workers: int, scheduler: str | None):
    """Yield JobResults as they finish, from threads or from a Dask cluster."""
    if not specs:
        return
    if scheduler is None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(grade, spec) for spec in specs]
            for future in as_completed(futures):
                yield future.result()
        return
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.map(grade, specs, pure=False)
        for future in dask_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _scores(db_url: str) -> dict:
    from nbgrader.api import Gradebook

    table = {}
    with Gradebook(db_url) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                table.setdefault(sub.student.id, {})[assignment.name] = (sub.score, sub.max_score)
    return table


def grade_class(course_dir: str | os.PathLike = ".", workers: int | None = None,
                assignments: Iterable[str] | None = None, students: Iterable[str] | None = None,
                scheduler: str | None = None, cell_timeout: int = 60,
                memory_bytes: int | None = None, force: bool = False,
                log: Callable[[str], None] = print) -> ClassReport:
    """Autograde new or changed submissions, then write feedback and grades.csv."""
    course_dir = Path(course_dir).resolve()
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError("workers must be at least 1")
    db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    state_path = course_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}

    pairs = find_submissions(course_dir, assignments, students)
    report = ClassReport()
    todo = []
    for student, assignment in pairs:
        digest = submission_hash(course_dir / "submitted" / student / assignment)
        if not force and state.get(f"{student}/{assignment}") == digest:
            report.skipped.append((student, assignment))
        else:
            todo.append((student, assignment, digest))
    log(f"{len(pairs)} submissions: {len(todo)} to grade, {len(report.skipped)} unchanged; "
        f"{workers} worker(s){' on Dask ' + scheduler if scheduler else ''}")

    config = (course_dir / "nbgrader_config.py").read_bytes()
    hide = sorted({str(root / name) for root in (course_dir, PACKAGE_REPO)
                   for name in HIDDEN_FROM_STUDENTS})
    prepared = {a: prepare_assignment(course_dir, db_url, a) for a in sorted({a for _, a, _ in todo})}
    specs = [JobSpec(s, a, config, prepared[a].source, prepared[a].release, prepared[a].gradebook,
                     read_tree(course_dir / "submitted" / s / a), cell_timeout=cell_timeout,
                     memory_bytes=memory_bytes, hide=hide)
             for s, a, _ in todo]
    digests = {(s, a): d for s, a, d in todo}
    for result in _run_jobs(specs, workers, scheduler):
        merge(course_dir, db_url, result)
        state[f"{result.student}/{result.assignment}"] = digests[(result.student, result.assignment)]
        state_path.write_text(json.dumps(state, indent=1, sort_keys=True))
        report.graded.append(result)
        log(f"  {result.student:<24} {result.assignment:<24} {result.status:<7} "
            f"{result.seconds:5.1f} s  {result.message}")

    # Feedback is made from autograded notebooks: none exist when every job of one failed.
    for assignment in sorted({r.assignment for r in report.graded if r.status == "graded"}):
        _nbgrader(course_dir, "generate_feedback", assignment, "--force",
                  f"--CourseDirectory.db_url={db_url}")
    report.csv_path = course_dir / "grades.csv"
    if report.graded or not report.csv_path.exists():
        _nbgrader(course_dir, "export", f"--CourseDirectory.db_url={db_url}",
                  f"--CsvExportPlugin.filename={report.csv_path}")
    report.scores = _scores(db_url)
    return report


def format_table(scores: dict) -> str:
    """Per-student table: one column per assignment, then the total."""
    assignments = sorted({a for row in scores.values() for a in row})
    head = f"{'student':<26}" + "".join(f"{a[:12]:>14}" for a in assignments) + f"{'total':>14}"
    lines = [head, "-" * len(head)]
    for student in sorted(scores):
        row = scores[student]
        cells, got, out_of = [], 0.0, 0.0
        for a in assignments:
            if a in row:
                score, max_score = row[a]
                got, out_of = got + score, out_of + max_score
                cells.append(f"{score:>7.1f}/{max_score:<6.0f}")
            else:
                cells.append(f"{'—':>14}")
        lines.append(f"{student:<26}" + "".join(cells) + f"{got:>7.1f}/{out_of:<6.0f}")
    return "\n".join(lines)
