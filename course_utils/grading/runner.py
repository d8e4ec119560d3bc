"""Grade every submission of a class: in parallel, resumably, with one gradebook writer.

Layout (nbgrader's): <course>/submitted/<student>/<assignment>/<notebook>.ipynb.
Jobs run in long-lived local worker processes (worker.py: one per core, nbgrader and the
judge loaded once) or on Dask workers; each assignment is prepared once per run, in this
process. Results are merged into <course>/gradebook.db by this process alone, so parallel
grading never meets "database is locked", and each submission's feedback is written as its
result arrives, while the workers go on. A submission whose files have not changed since
it was last graded is skipped, so re-running is cheap and changes nothing.

One submission's failure is that submission's alone: a folder that is refused (a symbolic
link, over the size cap), a job that fails or times out, is recorded as that student's "not
graded automatically, because ...", with nbgrader's log in <course>/grading-logs/, and the
run goes on. Student ids are folder names, whatever characters they hold: they never reach
nbgrader's command line or a glob (jobs use an internal id; feedback and grades.csv are
written here).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .job import (
    INTERNAL_ID,
    MAX_SUBMISSION_BYTES,
    JobResult,
    JobSpec,
    Refused,
    course_config,
    grade,
    read_submission,
    read_tree,
)
from .merge import merge
from .worker import WorkerPool

STATE_FILE = ".grading_state.json"
LOG_DIR = "grading-logs"
HIDDEN_FROM_STUDENTS = ("solutions", "submitted", "autograded", "feedback", "gradebook.db",
                        ".git", STATE_FILE, LOG_DIR)
# The repository this package was installed from holds the reference solutions too (in its
# files and its git history), wherever the course directory itself lies.
PACKAGE_REPO = Path(__file__).resolve().parents[2]


@dataclass
class ClassReport:
    graded: list[JobResult] = field(default_factory=list)  # every result of this run
    skipped: list[tuple[str, str]] = field(default_factory=list)
    scores: dict = field(default_factory=dict)  # student -> assignment -> (score, max)
    csv_path: Path | None = None
    # (student, assignment) -> (reason, log path or None): not graded automatically, in this
    # run or in an earlier one whose files have not changed since
    attention: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.graded if r.status != "graded"]

    def summary(self) -> str:
        """One line: graded, skipped, not graded automatically (with the logs), time."""
        done = sum(r.status == "graded" for r in self.graded)
        minutes, seconds = divmod(round(self.seconds), 60)
        line = (f"{done} graded, {len(self.skipped)} unchanged (skipped), "
                f"{len(self.attention)} not graded automatically, "
                f"{minutes} min {seconds:02d} s")
        if self.attention:
            named = [f"{s}/{a}" + (f" (log: {log})" if log else "")
                     for (s, a), (_, log) in sorted(self.attention.items())[:5]]
            more = len(self.attention) - len(named)
            line += ": " + "; ".join(named) + (f"; and {more} more" if more else "")
        return line


def find_submissions(course_dir: Path, assignments: Iterable[str] | None = None,
                     students: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(student, assignment) pairs present under submitted/, sorted.

    A student folder that is a symbolic link is listed (its assignments by name) so that
    it can be refused with a reason; nothing in it is read.
    """
    root = course_dir / "submitted"
    if not root.is_dir():
        raise FileNotFoundError(f"no submissions: {root} does not exist")
    wanted_a = set(assignments) if assignments else None
    wanted_s = set(students) if students else None
    pairs = []
    for student in sorted(p for p in root.iterdir() if p.is_dir()):
        if wanted_s is not None and student.name not in wanted_s:
            continue
        for assignment in sorted(p for p in student.iterdir() if p.is_dir()):
            if wanted_a is None or assignment.name in wanted_a:
                pairs.append((student.name, assignment.name))
    return pairs


def submission_hash(folder: Path) -> str:
    """A digest of the folder's names, links and contents; never fails, never follows links.

    Files over the size cap are identified by size and modification time (they are not
    graded anyway), so a huge file is not read on every run.
    """
    digest = hashlib.sha256()
    if folder.is_symlink() or folder.parent.is_symlink():
        link = folder if folder.is_symlink() else folder.parent
        digest.update(b"link\0" + os.readlink(link).encode(errors="replace"))
        return digest.hexdigest()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames) + sorted(dirnames):
            path = Path(dirpath, name)
            rel = str(path.relative_to(folder)).encode(errors="surrogateescape")
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                digest.update(rel + b"\0link\0" + os.readlink(path).encode(errors="replace"))
            elif stat.S_ISREG(st.st_mode):
                file_digest = hashlib.sha256()
                if st.st_size > MAX_SUBMISSION_BYTES:
                    file_digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
                else:
                    with open(path, "rb") as f:
                        for chunk in iter(lambda: f.read(2**20), b""):
                            file_digest.update(chunk)
                digest.update(rel + b"\0" + file_digest.digest())
            elif not stat.S_ISDIR(st.st_mode):
                digest.update(rel + b"\0special")
    return digest.hexdigest()


def load_submission(course_dir: Path, student: str, assignment: str) -> dict[str, bytes]:
    """The submitted files; raises Refused (one-line reason) for links, special files and
    folders over the size cap."""
    if (course_dir / "submitted" / student).is_symlink():
        raise Refused("the student folder is a symbolic link; links are not followed")
    return read_submission(course_dir / "submitted" / student / assignment)


@dataclass
class AssignmentFiles:
    source: dict[str, bytes]
    release: dict[str, bytes]
    gradebook: bytes


def _generate(course_dir: Path, assignment: str, release: Path, db_url: str) -> None:
    """nbgrader's generate_assignment, in this process, writing the student copy to
    `release` and the assignment's cells to the gradebook at `db_url`."""
    import io
    import logging

    from nbgrader.converters import GenerateAssignment, NbGraderException
    from nbgrader.coursedir import CourseDirectory

    _venv_on_path()  # a new gradebook asks the `alembic` command for its schema version
    stream = io.StringIO()
    log = logging.getLogger("course_utils.grading.generate")
    log.propagate = False
    log.setLevel(logging.WARNING)
    handler = logging.StreamHandler(stream)
    log.addHandler(handler)
    config = course_config((course_dir / "nbgrader_config.py").read_bytes()) \
        if (course_dir / "nbgrader_config.py").exists() else None
    try:
        coursedir = CourseDirectory(config=config, root=str(course_dir), db_url=db_url,
                                    release_directory=str(release), assignment_id=assignment)
        converter = GenerateAssignment(coursedir=coursedir, config=config, log=log)
        converter.force = True
        converter.start()
    except NbGraderException:
        raise RuntimeError(f"nbgrader could not prepare {assignment}:\n"
                           f"{stream.getvalue()[-2000:]}") from None
    finally:
        log.removeHandler(handler)


def _venv_on_path() -> None:
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _source_cells(db_url: str, assignment: str) -> set | None:
    """(notebook, cell, kind, checksum, points) of every source cell the gradebook holds for
    `assignment`; None when it does not know the assignment."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            found = gb.find_assignment(assignment)
        except MissingEntry:
            return None
        cells = set()
        for nb in found.notebooks:
            cells |= {(nb.name, c.name, c.cell_type, c.checksum, None) for c in nb.source_cells}
            cells |= {(nb.name, c.name, "grade", None, c.max_score) for c in nb.grade_cells}
        return cells


def alembic_head() -> str | None:
    """The schema version a new gradebook records, read from nbgrader's migration scripts
    (the revision no other revision builds on); None if that is not one revision.

    nbgrader asks the `alembic` command for it, a Python start (2 s) per new gradebook.
    """
    import nbgrader

    revisions, parents = set(), set()
    for script in (Path(nbgrader.__file__).parent / "alembic" / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revision = re.search(r"^revision\s*=\s*['\"](\w+)['\"]", text, re.M)
        parent = re.search(r"^down_revision\s*=\s*['\"](\w+)['\"]", text, re.M)
        if revision:
            revisions.add(revision.group(1))
        if parent:
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


@functools.cache
def _empty_gradebook() -> bytes:
    """An empty gradebook, made once per process."""
    import nbgrader.api

    _venv_on_path()
    head, asks_alembic = alembic_head(), nbgrader.api.get_alembic_version
    if head is not None:
        nbgrader.api.get_alembic_version = lambda: head
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "gradebook.db"
            with nbgrader.api.Gradebook(f"sqlite:///{path}"):
                pass
            return path.read_bytes()
    finally:
        nbgrader.api.get_alembic_version = asks_alembic


def prepare_assignment(course_dir: Path, db_url: str, assignment: str) -> AssignmentFiles:
    """What every job of `assignment` needs, and the assignment registered in the course
    gradebook.

    generate_assignment runs in this process, once, with a private gradebook: that gives the
    jobs a gradebook that knows the assignment's cells and nothing about any student, and
    the student copy (written to a scratch folder: notebooks/ is never touched). The course
    gradebook is written only when it does not hold these very cells yet (same checksums
    and points), so an unchanged source costs it nothing.
    """
    source_dir = course_dir / "solutions" / assignment
    if not source_dir.is_dir():
        raise FileNotFoundError(f"unknown assignment {assignment!r}: no {source_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        job_db = scratch / "gradebook.db"
        job_db.write_bytes(_empty_gradebook())
        _generate(course_dir, assignment, scratch / "release", f"sqlite:///{job_db}")
        course_db = Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") \
            else None
        if course_db is not None and not course_db.exists():
            course_db.write_bytes(job_db.read_bytes())  # what generating into it would give
        elif _source_cells(db_url, assignment) != _source_cells(f"sqlite:///{job_db}",
                                                                assignment):
            _generate(course_dir, assignment, scratch / "course-release", db_url)
        return AssignmentFiles(read_tree(source_dir),
                               read_tree(scratch / "release" / assignment),
                               job_db.read_bytes())


def _run_jobs(specs: Iterable[JobSpec], pool: WorkerPool | DaskWorkers, workers: int):
    """Yield JobResults as they finish, from local worker processes or a Dask cluster.

    Local jobs are handed to the workers as `specs` yields them."""
    if isinstance(pool, WorkerPool):
        with ThreadPoolExecutor(max_workers=workers) as threads:
            futures = {threads.submit(pool.grade, spec): spec for spec in specs}
            for future in as_completed(futures):
                yield _result(future, futures[future])
        return
    specs = list(specs)
    if not specs:
        return
    from dask.distributed import as_completed as dask_completed

    futures = pool.map(specs)
    by_key = {future.key: spec for future, spec in zip(futures, specs, strict=True)}
    for future in dask_completed(futures):
        yield _result(future, by_key[future.key])


class DaskWorkers:
    """A Dask client (on a LocalCluster for "local"), started before the assignments are
    prepared: each Dask worker loads nbgrader and torch, starts its zygote and its first
    job's kernel meanwhile, and keeps starting the next job's kernel as a job begins."""

    def __init__(self, scheduler: str, workers: int, template: JobSpec) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None) if scheduler == "local" else None
        self.client = Client(self.cluster or scheduler)
        self._warming = ThreadPoolExecutor(1)
        self._warm = self._warming.submit(self.client.run, _long_lived, True, template)

    def map(self, specs: list[JobSpec]) -> list:
        """Dask futures grading `specs`, once every worker is warm (a job must not race its
        worker's warm-up for the next kernel)."""
        self._warm.result()
        return self.client.map(grade, specs, pure=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._warm.result()
        self._warming.shutdown()
        with contextlib.suppress(Exception):
            self.client.run(_long_lived, False)  # and stop the kernel no job will use
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _long_lived(on: bool, template: JobSpec | None = None) -> None:
    """On a Dask worker: load the grader, start the zygote and `template`'s kernel, and
    start each next job's kernel ahead of it (or stop all that)."""
    from . import job, judged  # noqa: F401  (nbgrader, the judge and torch, loaded once)

    if not on:
        job.PRESTART_NEXT = False
        job.discard_prestarted()
    job.use_zygote(on)
    if on:
        job.PRESTART_NEXT = True
        if template is not None:
            with contextlib.suppress(Exception):
                job.prestart(template)


def _result(future, spec: JobSpec) -> JobResult:
    """The job's result; a worker that died or raised fails that submission only."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - one submission's failure is its own
        return JobResult(spec.student, spec.assignment, "failed",
                         f"the grading worker failed: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}", 0.0,
                         log=repr(exc))


def _scores(db_url: str) -> dict:
    from nbgrader.api import Gradebook

    table = {}
    with Gradebook(db_url) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                table.setdefault(sub.student.id, {})[assignment.name] = (sub.score, sub.max_score)
    return table


def export_csv(db_url: str, path: Path) -> None:
    """grades.csv with nbgrader export's columns, quoted properly whatever the ids hold."""
    from nbgrader.api import Gradebook, MissingEntry

    keys = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
            "email", "raw_score", "late_submission_penalty", "score", "max_score"]
    with Gradebook(db_url) as gb, open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for assignment in gb.assignments:
            for student in gb.students:
                row = {"assignment": assignment.name, "duedate": assignment.duedate,
                       "student_id": student.id, "last_name": student.last_name,
                       "first_name": student.first_name, "email": student.email,
                       "max_score": assignment.max_score, "timestamp": "", "raw_score": 0.0,
                       "late_submission_penalty": 0.0, "score": 0.0}
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except MissingEntry:
                    pass
                else:
                    penalty = sub.late_submission_penalty
                    row.update(timestamp=sub.timestamp, raw_score=sub.score,
                               late_submission_penalty=penalty,
                               score=max(0.0, sub.score - penalty))
                writer.writerow(["" if row[k] is None else str(row[k]) for k in keys])


def _course_config(course_dir: Path):
    from traitlets.config.loader import PyFileConfigLoader

    path = course_dir / "nbgrader_config.py"
    if not path.exists():
        from traitlets.config import Config

        return Config()
    return PyFileConfigLoader(path.name, str(course_dir)).load_config()


def write_feedback(course_dir: Path, db_url: str, student: str, assignment: str) -> Path:
    """nbgrader's feedback for one autograded submission, into feedback/<student>/<assignment>.

    nbgrader's own generate_feedback globs the student id (so `x[1]` finds nothing) and
    reads it from the command line (so `--help` is an option); here its converter runs on a
    copy under the internal id, with the real id given to the gradebook lookup.
    """
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    class OneFeedback(GenerateFeedback):
        def init_single_notebook_resources(self, notebook_filename):
            resources = super().init_single_notebook_resources(notebook_filename)
            resources["nbgrader"]["student"] = student
            return resources

    source = course_dir / "autograded" / student / assignment
    target = course_dir / "feedback" / student / assignment
    with tempfile.TemporaryDirectory(prefix="fb-") as tmp:
        scratch = Path(tmp)
        shutil.copytree(source, scratch / "autograded" / INTERNAL_ID / assignment,
                        symlinks=True)
        config = _course_config(course_dir)
        config.HTMLExporter.template_name = "feedback"
        coursedir = CourseDirectory(config=config, root=str(scratch), db_url=db_url,
                                    assignment_id=assignment, student_id=INTERNAL_ID)
        app = OneFeedback(coursedir=coursedir, config=config)
        app.force = True
        app.log.setLevel("ERROR")
        app.start()
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        # nbgrader names the output folder after the id in the resources: the real one.
        shutil.copytree(scratch / "feedback" / student / assignment, target)
    return target


def _feedback(course_dir: Path, db_url: str, result: JobResult) -> str:
    """Write the result's feedback; '' or a note saying why there is none."""
    try:
        write_feedback(course_dir, db_url, result.student, result.assignment)
    except Exception as exc:  # noqa: BLE001 - the grades stand; say what is missing
        return f"  (no feedback: {type(exc).__name__}: {str(exc)[:200]})"
    return ""


def _log_path(course_dir: Path, student: str, assignment: str) -> Path:
    return course_dir / LOG_DIR / student / f"{assignment}.log"


def _record_failure(course_dir: Path, result: JobResult) -> str:
    """Keep the failed job's log for the instructor; drop feedback that no longer holds."""
    path = _log_path(course_dir, result.student, result.assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{result.student} / {result.assignment}: not graded automatically: "
                    f"{result.message}\n\n{result.log}", errors="replace")
    stale = course_dir / "feedback" / result.student / result.assignment
    if stale.exists():
        shutil.rmtree(stale)
    return str(path.relative_to(course_dir))


def _state_entry(value) -> dict:
    """A state entry (older runs stored the digest alone)."""
    return value if isinstance(value, dict) else {"digest": value, "status": "graded"}


class Progress:
    """A tqdm bar (count, rate, ETA) on stderr while jobs finish, under the lines ``log``
    prints: each line is written with the bar cleared and redrawn below it (what tqdm.write
    does), so neither garbles the other. Off when ``enabled`` is False, or when it is None
    and stderr is not a terminal or pytest is running."""

    def __init__(self, total: int, enabled: bool | None, log: Callable[[str], None],
                 file=None) -> None:
        self._log, self.bar = log, None
        if enabled is None:
            enabled = sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="grading", unit=" submissions",
                            file=file or sys.stderr, dynamic_ncols=True, smoothing=0.2,
                            bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def log(self, line: str) -> None:
        if self.bar is None:
            self._log(line)
            return
        with self.bar.external_write_mode(file=self.bar.fp):
            self._log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def grade_class(course_dir: str | os.PathLike = ".", workers: int | None = None,
                assignments: Iterable[str] | None = None, students: Iterable[str] | None = None,
                scheduler: str | None = None, cell_timeout: int | None = None,
                memory_bytes: int | None = None, force: bool = False,
                log: Callable[[str], None] = print, progress: bool | None = None
                ) -> ClassReport:
    """Autograde new or changed submissions, then write feedback and grades.csv.

    ``cell_timeout`` and ``memory_bytes``: None keeps the one default of each (the course's
    nbgrader_config.py for the cell timeout, sandbox_kernel.DEFAULT_MEMORY for memory).

    ``progress``: a progress bar on stderr while jobs finish (count, rate, ETA); None (the
    default) shows it when stderr is a terminal and not under pytest.
    """
    started = time.monotonic()
    course_dir = Path(course_dir).resolve()
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError("workers must be at least 1")
    db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    state_path = course_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    known = {p.name for p in (course_dir / "solutions").iterdir() if p.is_dir()} \
        if (course_dir / "solutions").is_dir() else set()
    for assignment in assignments or ():
        if assignment not in known:
            raise FileNotFoundError(f"unknown assignment {assignment!r}: "
                                    f"no {course_dir / 'solutions' / assignment}")

    pairs = find_submissions(course_dir, assignments, students)
    report = ClassReport()
    todo = []
    for student, assignment in pairs:
        key = f"{student}/{assignment}"
        digest = submission_hash(course_dir / "submitted" / student / assignment)
        previous = _state_entry(state[key]) if key in state else None
        if not force and previous and previous["digest"] == digest:
            report.skipped.append((student, assignment))
            if previous.get("status") == "failed":
                report.attention[(student, assignment)] = (previous.get("message", ""),
                                                           previous.get("log"))
        else:
            todo.append((student, assignment, digest))
    log(f"{len(pairs)} submissions: {len(todo)} to grade, {len(report.skipped)} unchanged; "
        f"{workers} worker(s){' on Dask ' + scheduler if scheduler else ''}")

    config = (course_dir / "nbgrader_config.py").read_bytes()
    hide = sorted({str(root / name) for root in (course_dir, PACKAGE_REPO)
                   for name in HIDDEN_FROM_STUDENTS})
    # The workers start now and load nbgrader and torch while the assignments are prepared.
    template = JobSpec("", "", config, {}, {}, b"", {}, cell_timeout=cell_timeout,
                       memory_bytes=memory_bytes, hide=hide)
    with _workers(len(todo), workers, scheduler, template) as pool:
        refused = []

        def specs():
            """Jobs, one assignment after the other: the first assignment's jobs run while
            the next one is prepared."""
            for assignment in sorted({a for _, a, _ in todo}):
                prepared = prepare_assignment(course_dir, db_url, assignment) \
                    if assignment in known else None
                for s, a, _ in todo:
                    if a != assignment:
                        continue
                    try:
                        if prepared is None:
                            raise Refused(f"there is no assignment {a!r} in solutions/")
                        files = load_submission(course_dir, s, a)
                    except (Refused, OSError) as exc:
                        refused.append(JobResult(s, a, "failed", str(exc), 0.0,
                                                 log=f"refused before grading: {exc}"))
                        continue
                    yield dataclasses.replace(template, student=s, assignment=a,
                                              source=prepared.source, release=prepared.release,
                                              gradebook=prepared.gradebook, submission=files)

        digests = {(s, a): d for s, a, d in todo}

        def results():
            yield from _run_jobs(specs(), pool, workers)
            yield from refused

        bar = Progress(len(todo), progress, log)
        for result in results():
            bar.advance()
            key = (result.student, result.assignment)
            entry = {"digest": digests[key], "status": result.status}
            if result.assignment in known:
                merge(course_dir, db_url, result)
            note = ""
            if result.status == "graded":
                _log_path(course_dir, *key).unlink(missing_ok=True)
                # Written now, while the workers grade the next submissions, not all at the end.
                note = _feedback(course_dir, db_url, result)
            else:
                entry["log"] = _record_failure(course_dir, result)
                entry["message"] = result.message
                report.attention[key] = (result.message, entry["log"])
                note = f"  (log: {entry['log']})"
            state[f"{result.student}/{result.assignment}"] = entry
            state_path.write_text(json.dumps(state, indent=1, sort_keys=True, ensure_ascii=False))
            report.graded.append(result)
            bar.log(f"  {result.student:<24} {result.assignment:<24} {result.status:<7} "
                    f"{result.seconds:5.1f} s  {result.message}{note}")
        bar.close()

    report.csv_path = course_dir / "grades.csv"
    if report.graded or not report.csv_path.exists():
        export_csv(db_url, report.csv_path)
    report.scores = _scores(db_url)
    report.seconds = time.monotonic() - started
    return report


@contextlib.contextmanager
def _workers(jobs: int, workers: int, scheduler: str | None, template: JobSpec):
    """Local worker processes or Dask workers (None with nothing to grade), started at once:
    each starts a kernel with `template`'s sandbox settings for its first job right away."""
    if not jobs:
        yield None
        return
    pool = DaskWorkers(scheduler, workers, template) if scheduler else \
        WorkerPool(min(workers, jobs), template)
    try:
        yield pool
    finally:
        pool.close()


def refresh_feedback(course_dir: str | os.PathLike = ".",
                     assignments: Iterable[str] | None = None,
                     students: Iterable[str] | None = None,
                     log: Callable[[str], None] = print) -> int:
    """Feedback again for every autograded submission (after manual grading), and
    grades.csv; what `nbgrader generate_feedback` and `nbgrader export` do, for any id.
    Returns how many feedback folders were written."""
    course_dir = Path(course_dir).resolve()
    db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    root = course_dir / "autograded"
    count = 0
    for student in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        if students and student.name not in students:
            continue
        for assignment in sorted(p for p in student.iterdir() if p.is_dir()):
            if assignments and assignment.name not in assignments:
                continue
            write_feedback(course_dir, db_url, student.name, assignment.name)
            count += 1
    export_csv(db_url, course_dir / "grades.csv")
    log(f"feedback written for {count} submission(s); grades: {course_dir / 'grades.csv'}")
    return count


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
