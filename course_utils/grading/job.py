"""Grade one (student, assignment) with nbgrader's Autograde in a private course directory.

The converter runs in the calling process (a long-lived worker: nbgrader, SQLAlchemy and
the judge stay loaded between jobs); the student's code runs only in the job's own
sandboxed kernel, a fresh process per job, often started before the job came (prestart).

A job carries everything it needs as bytes (the assignment's source, a gradebook that knows
its cells, the submitted files), so it runs the same in a local process or on a Dask worker on
another machine. It returns plain data: the scores and comments nbgrader recorded and the
autograded files. Only the caller writes the course gradebook.

Inside the job directory the student is always INTERNAL_ID: the real id, whatever characters
it holds, never reaches nbgrader's command line, a glob, a path list or a socket path; the
runner maps the result back. The job directory is short (/tmp/g-XXXXXXXX) because the
kernel's Unix sockets live in it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

GRADING_KERNEL = "cnn-course-grading"
INTERNAL_ID = "student"
LOG_CHARS = 50_000                      # the tail of nbgrader's log kept with a result
MAX_SUBMISSION_BYTES = 50 * 2**20       # a submission folder above this is not graded
MAX_NOTEBOOK_BYTES = 40 * 2**20         # an autograded notebook above this is not kept
MAX_EXTRA_FILE_BYTES = 2**20            # other autograded files: small ones only ...
MAX_EXTRA_TOTAL_BYTES = 10 * 2**20      # ... and not too many of them
UNIX_SOCKET_PATH_MAX = 107
INVALID_NOTE = (
    "**The grader could not read your submission `{name}`** ({reason}). It was graded as "
    "an unanswered copy of the assignment: 0 points for every exercise."
)
DUPLICATE_NOTE = (
    "**Note from the grader:** the cell below is a copy of the graded cell `{grade_id}` "
    "above it (same nbgrader id, as a copy and paste leaves it). Only the first one is graded; "
    "this copy ran as an ordinary cell."
)
# Variables of the grader's environment that the student's kernel may see (when set).
SANDBOX_ENV_PASS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "LANG", "LC_ALL", "TZ")
# Read-only caches the kernel may use when the grader's environment names them.
SANDBOX_CACHE_VARS = ("COURSE_DATA", "TORCH_HOME")

class Refused(ValueError):
    """A submission that is not graded automatically; the message says why, in one line."""


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
    # Limits: None means the one default, kept where the limit is enforced: the cell timeout
    # in the course's nbgrader_config.py (c.ExecutePreprocessor.timeout), the memory cap in
    # sandbox_kernel.DEFAULT_MEMORY, the output cap in capped_stream.CAP_CHARS.
    cell_timeout: int | None = None
    job_timeout: int = 900
    memory_bytes: int | None = None
    cpu_seconds: int | None = None     # CPU limit of one kernel process (default: job_timeout)
    output_cap: int | None = None      # characters one cell may print
    hide: list[str] = field(default_factory=list)  # host paths the kernel must not see


@dataclass
class JobResult:
    student: str
    assignment: str
    status: str                        # "graded", or "failed": not graded automatically
    message: str                       # one line for the instructor: "graded", or the reason
    seconds: float
    timestamp: str | None = None
    grades: dict = field(default_factory=dict)    # notebook -> {grade cell -> auto score}
    comments: dict = field(default_factory=dict)  # notebook -> {cell -> auto comment}
    autograded: dict[str, bytes] = field(default_factory=dict)
    log: str = ""
    phases: dict = field(default_factory=dict)  # seconds: prepare, kernel_start, cells, ...


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
    """All regular files under `root` by relative path (symlinks skipped, size capped).

    For the instructor's own folders (sources, release copies); submissions go through
    read_submission, which refuses instead of skipping.
    """
    files, total = {}, 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or ".ipynb_checkpoints" in path.parts:
            continue
        total += path.stat().st_size
        if total > max_bytes:
            raise ValueError(f"{root} holds more than {max_bytes // 2**20} MiB")
        files[str(path.relative_to(root))] = path.read_bytes()
    return files


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _walk(root: Path):
    """(relative path, lstat) of every entry under `root`, never following a link."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            yield path.relative_to(root), path.lstat()


def read_submission(folder: Path, max_bytes: int = MAX_SUBMISSION_BYTES) -> dict[str, bytes]:
    """The files of a submission folder; raises Refused with a one-line reason instead of
    reading a symbolic link (in or as the folder), a special file, or more than `max_bytes`."""
    import stat

    if folder.is_symlink():
        raise Refused("the submission folder is a symbolic link; links are not followed")
    sizes, files = {}, {}
    for rel, st in _walk(folder):
        if ".ipynb_checkpoints" in rel.parts:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise Refused(f"it holds a symbolic link ({rel}); links are not followed")
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"it holds {rel}, which is not a regular file")
        sizes[rel] = st.st_size
    total = sum(sizes.values())
    if total > max_bytes:
        big = max(sizes, key=sizes.get)
        raise Refused(f"the submission folder holds {_mib(total)}, more than the "
                      f"{_mib(max_bytes)} allowed (largest file: {big}, {_mib(sizes[big])})")
    for rel in sizes:
        files[str(rel)] = (folder / rel).read_bytes()
    return files


def read_autograded(root: Path) -> tuple[dict[str, bytes], list[str]]:
    """What the course keeps of an autograded folder: its notebooks and small other files.

    Files the kernel wrote there (a checkpoint, a dataset) are left behind, never an error.
    Raises Refused when a notebook itself is too big to keep.
    """
    import stat

    files, skipped, extra = {}, [], 0
    for rel, st in _walk(root):
        if not stat.S_ISREG(st.st_mode) or ".ipynb_checkpoints" in rel.parts:
            continue
        if rel.suffix == ".ipynb" and len(rel.parts) == 1:
            if st.st_size > MAX_NOTEBOOK_BYTES:
                raise Refused(f"the graded notebook {rel} is {_mib(st.st_size)}, more than "
                              f"the {_mib(MAX_NOTEBOOK_BYTES)} kept")
        elif st.st_size > MAX_EXTRA_FILE_BYTES or extra + st.st_size > MAX_EXTRA_TOTAL_BYTES:
            skipped.append(f"{rel} ({_mib(st.st_size)})")
            continue
        else:
            extra += st.st_size
        files[str(rel)] = (root / rel).read_bytes()
    return files, skipped


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


def dedupe_grade_ids(nb) -> list[str]:
    """Keep the first cell of each nbgrader grade id; turn later copies into plain cells.

    A copy and paste in JupyterLab keeps the cell's nbgrader metadata, and nbgrader refuses a
    notebook with a grade id twice. Each copy loses its metadata and gets a note above it.
    Returns the duplicated ids.
    """
    seen, duplicated, cells = set(), [], []
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is not None and grade_id in seen:
            del cell.metadata["nbgrader"]
            cells.append(nbformat.v4.new_markdown_cell(DUPLICATE_NOTE.format(grade_id=grade_id)))
            if grade_id not in duplicated:
                duplicated.append(grade_id)
        elif grade_id is not None:
            seen.add(grade_id)
        cells.append(cell)
    nb.cells = cells
    return duplicated


def _dedupe_notebooks(spec: JobSpec, submitted: Path) -> list[str]:
    notes = []
    for rel in spec.release:
        if not rel.endswith(".ipynb") or not (submitted / rel).exists():
            continue
        nb = nbformat.read(submitted / rel, as_version=4)
        duplicated = dedupe_grade_ids(nb)
        if duplicated:
            nbformat.write(nb, submitted / rel)
            ids = ", ".join(duplicated)
            notes.append(f"{rel}: a copy of the graded cell(s) {ids} was graded as a plain cell")
    return notes


# The zygote that forks this process's kernels (long-lived workers start one: use_zygote);
# without one, every kernel starts with bubblewrap and imports torch itself.
ZYGOTE = None


def use_zygote(on: bool) -> None:
    """Start (or stop) this process's zygote."""
    global ZYGOTE
    if ZYGOTE is not None and not on:
        ZYGOTE.close()
        ZYGOTE = None
    elif ZYGOTE is None and on:
        from .zygote import Zygote

        ZYGOTE = Zygote()


def _forking_zygote():
    """The zygote when it forks kernels, else None."""
    if ZYGOTE is None or ZYGOTE.unavailable() or ZYGOTE.proc.poll() is not None:
        return None
    return ZYGOTE


def kernel_launch() -> str:
    """How this process starts its kernels, in words (written in every job's log)."""
    if _forking_zygote():
        return "forked by the worker's zygote (torch and the lessons' modules imported once)"
    reason = ZYGOTE and (ZYGOTE.unavailable() or "the zygote ended")
    return "started with bubblewrap" + (f" (no zygote: {reason})" if reason else "")


def kernel_argv(sandbox_config: Path) -> list[str]:
    """The grading kernel's command line (a `{connection_file}` placeholder for jupyter).

    Run by path, not with -m: importing the course_utils package would load torch in the
    launcher too, seconds per kernel start spent before bubblewrap even runs.
    """
    zygote = _forking_zygote()
    if zygote is not None:
        return zygote.kernel_argv(sandbox_config)
    return [sys.executable, str(Path(__file__).with_name("sandbox_kernel.py")),
            str(sandbox_config), "-f", "{connection_file}"]


def _sandbox_config(spec: JobSpec, job: Path, workdir: Path) -> dict:
    """What the kernel may see and use (read by sandbox_kernel.py)."""
    import course_utils

    python = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)} |
                    {sys.prefix, sys.base_prefix})
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin",
                                    "/usr/bin", "/bin"]),
           "HOME": "/tmp", "USER": "student", "LOGNAME": "student",
           "MPLCONFIGDIR": "/tmp/matplotlib", "COURSE_MODE": "grade", "COURSE_OFFLINE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in SANDBOX_ENV_PASS if os.environ.get(k)})
    if spec.output_cap is not None:
        from .capped_stream import CAP_VARIABLE

        env[CAP_VARIABLE] = str(spec.output_cap)
    readonly = []
    for name in SANDBOX_CACHE_VARS:
        path = os.environ.get(name)
        if path and os.path.isdir(path):
            env[name] = os.path.abspath(path)
            readonly.append(os.path.abspath(path))
    etc = job / "etc"
    etc.mkdir()
    uid, gid = os.getuid(), os.getgid()
    users, groups = ["root:x:0:0:root:/tmp:/bin/sh"], ["root:x:0:"]
    if uid:
        users.append(f"student:x:{uid}:{gid}:student:/tmp:/bin/sh")
    if gid:
        groups.append(f"student:x:{gid}:")
    (etc / "passwd").write_text("\n".join(users) + "\n")
    (etc / "group").write_text("\n".join(groups) + "\n")
    return {
        "python_executable": sys.executable,
        "python": python,
        "code": [str(Path(course_utils.__file__).resolve().parent)],
        "readonly": readonly,
        "sockets": str(job / "s"),
        "workdir": str(workdir),
        "log": str(job / "kernel.log"),
        "hide": list(spec.hide),
        "env": env,
        "etc": {"passwd": str(etc / "passwd"), "group": str(etc / "group")},
        "memory": spec.memory_bytes,
        "cpu_seconds": spec.cpu_seconds or spec.job_timeout,
    }


def _job_dir() -> Path:
    """A new private directory with a short path (Unix socket paths are limited)."""
    base = "/tmp" if os.access("/tmp", os.W_OK) else tempfile.gettempdir()
    job = Path(tempfile.mkdtemp(prefix="g-", dir=base))
    if len(str(job / "s" / "k-65535")) > UNIX_SOCKET_PATH_MAX:
        raise RuntimeError(f"the job directory {job} is too long for Unix socket paths")
    return job


def _new_job(spec: JobSpec) -> Path:
    """A job directory laid out for `spec`'s sandbox: sockets folder, sandbox.json, and the
    kernel's writable folder (autograded/, where nbgrader puts the notebook it runs)."""
    job = _job_dir()
    (job / "s").mkdir(mode=0o700)
    (job / "autograded").mkdir()
    (job / "sandbox.json").write_text(json.dumps(_sandbox_config(spec, job, job / "autograded")))
    return job


def _sandbox_key(spec: JobSpec) -> tuple:
    return (tuple(spec.hide), spec.memory_bytes, spec.cpu_seconds or spec.job_timeout,
            spec.output_cap)


# A sandboxed kernel started for the next job of this process: (sandbox key, job dir, km).
_next: tuple[tuple, Path, object] | None = None
# Whether each job starts the next job's kernel as it begins (set by long-lived workers).
PRESTART_NEXT = False


def prestart(spec: JobSpec) -> None:
    """Start the next job's kernel now, with `spec`'s sandbox settings, so that it boots
    (and imports torch) while this worker waits for and sets up its next job.

    The kernel is a fresh process in a fresh job directory, used by one job only: nothing of
    one student's kernel reaches the next student's.
    """
    global _next
    from jupyter_core.utils import run_sync

    from .judged import sandbox_kernel_manager

    discard_prestarted()
    job = _new_job(spec)
    try:
        km = sandbox_kernel_manager(kernel_argv(job / "sandbox.json"), str(job / "s" / "k"))
        run_sync(km.start_kernel)(cwd=str(job / "autograded"))
    except Exception:
        import shutil

        shutil.rmtree(job, ignore_errors=True)
        raise
    _next = (_sandbox_key(spec), job, km)


def discard_prestarted() -> None:
    """Stop the kernel started for a next job that will not come."""
    global _next
    if _next is not None:
        import shutil

        _, job, km = _next
        _next = None
        _discard(km)
        shutil.rmtree(job, ignore_errors=True)


def _discard(km) -> None:
    if km is not None and km.has_kernel:
        from jupyter_core.utils import run_sync

        with suppress(Exception):
            run_sync(km.shutdown_kernel)(now=True)


def _take_prestarted(spec: JobSpec) -> tuple[Path, object | None]:
    """(job directory, its started kernel manager or None) for `spec`."""
    global _next
    if _next is not None and _next[0] == _sandbox_key(spec):
        _, job, km = _next
        _next = None
        return job, km
    discard_prestarted()
    return _new_job(spec), None


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
    """Run nbgrader autograde for one submission; never raises: a job that cannot grade
    returns a failed result with the reason in one line and the log."""
    start = time.monotonic()
    try:
        return _grade(spec, start)
    except Exception as exc:  # noqa: BLE001 - one submission's failure is its own
        reason = str(exc).splitlines()[0][:300] if str(exc) else ""
        return JobResult(spec.student, spec.assignment, "failed",
                         f"the grader failed: {type(exc).__name__}: {reason}",
                         time.monotonic() - start, log=traceback.format_exc()[-LOG_CHARS:])


def _grade(spec: JobSpec, start: float) -> JobResult:
    import shutil

    phases: dict[str, float] = {}

    def failed(message: str, log: str) -> JobResult:
        return JobResult(spec.student, spec.assignment, "failed", message,
                         time.monotonic() - start, log=log[-LOG_CHARS:], phases=phases)

    job, kernel = _take_prestarted(spec)
    if PRESTART_NEXT:
        with suppress(Exception):  # no head start for the next job, that is all
            prestart(spec)
    try:
        db = job / "gradebook.db"
        db.write_bytes(spec.gradebook)
        _write_tree(job / "solutions" / spec.assignment, spec.source)
        submitted = job / "submitted" / INTERNAL_ID / spec.assignment
        submitted.mkdir(parents=True)
        _write_tree(submitted, spec.submission)
        notes = _replace_unreadable(spec, submitted) + _dedupe_notebooks(spec, submitted)
        workdir = job / "autograded" / INTERNAL_ID / spec.assignment
        sandbox = job / "sandbox.json"
        if kernel is not None:
            from .judged import PRESTARTED

            PRESTARTED[str(job / "kernel.log")] = kernel
        phases["prepare"] = time.monotonic() - start

        log, timed_out = _autograde(spec, job, db, sandbox, workdir, phases)
        if timed_out:
            return failed(f"grading took longer than {spec.job_timeout} s", log)
        if not workdir.is_dir():
            return failed("nbgrader could not grade this submission: "
                          f"{_last_error(log)}", log)
        try:
            stamp, grades, comments = _read_scores(db, spec.assignment, INTERNAL_ID)
        except Exception:  # noqa: BLE001 - nbgrader recorded nothing usable
            return failed("nbgrader recorded no scores for this submission: "
                          f"{_last_error(log)}", log)
        try:
            files, skipped = read_autograded(workdir)
        except Refused as exc:
            return failed(str(exc), log)
        if skipped:
            log += "\nfiles the kernel left in the notebook folder, not kept: " + \
                ", ".join(skipped)
        message = "graded" + "".join(f"; {n}" for n in notes)
        return JobResult(spec.student, spec.assignment, "graded", message,
                         time.monotonic() - start, stamp, grades, comments, files,
                         log[-LOG_CHARS:], phases)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _autograde(spec: JobSpec, job: Path, db: Path, sandbox: Path, workdir: Path,
               phases: dict[str, float]) -> tuple[str, bool]:
    """nbgrader's Autograde converter, in this process, on the job directory.

    Returns (nbgrader's log, whether the job ran past spec.job_timeout). The worker process
    keeps nbgrader, SQLAlchemy and the judge loaded from one job to the next; every job still
    gets a fresh sandboxed kernel, and nothing of the student's runs in this process.
    """
    import io
    import logging

    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from .judged import PRESTARTED, CourseAutograde, JobTimedOut, timings

    stream = io.StringIO()
    log = logging.getLogger(f"course_utils.grading.job.{job.name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log.addHandler(handler)
    config = course_config(spec.config)
    job_config = Config()
    job_config.JudgedExecute.kernel_argv = kernel_argv(sandbox)
    job_config.JudgedExecute.kernel_log = str(job / "kernel.log")
    job_config.JudgedExecute.notebook_dir = str(workdir)
    job_config.JudgedExecute.deadline = time.monotonic() + spec.job_timeout
    if spec.cell_timeout is not None:
        job_config.JudgedExecute.timeout = spec.cell_timeout
    # The kernel has no network: it talks to this process over Unix sockets in the job folder.
    job_config.KernelManager.transport = "ipc"
    job_config.KernelManager.ip = str(job / "s" / "k")
    config.merge(job_config)
    timed_out = False
    try:
        coursedir = CourseDirectory(config=config, root=str(job), db_url=f"sqlite:///{db}",
                                    assignment_id=spec.assignment, student_id=INTERNAL_ID)
        converter = CourseAutograde(coursedir=coursedir, config=config, log=log)
        converter.force = True
        with warnings.catch_warnings():
            # nbgrader's own queries trip SQLAlchemy's autoflush warnings: harmless noise.
            warnings.filterwarnings("ignore", message=".*not in session.*")
            converter.start()
    except NbGraderException:
        pass  # nbgrader logged the reason; the caller reads it from the log
    finally:
        log.removeHandler(handler)
        phases.update(timings.pop(str(job / "kernel.log"), {}))
        _discard(PRESTARTED.pop(str(job / "kernel.log"), None))
    text = f"[INFO] the kernel: {kernel_launch()}\n" + stream.getvalue()
    if JobTimedOut.__name__ in text:
        timed_out = True
    kernel_log = job / "kernel.log"
    if kernel_log.exists():
        text += "\n--- kernel's own output ---\n" + \
            kernel_log.read_text(errors="replace")[-LOG_CHARS // 5:]
    return text, timed_out


_CONFIGS: dict[bytes, object] = {}


def course_config(text: bytes):
    """The course's nbgrader_config.py as a traitlets Config (a copy; loaded once per text)."""
    import copy

    from traitlets.config.loader import PyFileConfigLoader

    if text not in _CONFIGS:
        with tempfile.TemporaryDirectory(prefix="cfg-") as tmp:
            Path(tmp, "nbgrader_config.py").write_bytes(text)
            _CONFIGS[text] = PyFileConfigLoader("nbgrader_config.py", tmp).load_config()
    return copy.deepcopy(_CONFIGS[text])


def _last_error(log: str) -> str:
    """The last ERROR line of nbgrader's log, shortened to a clause."""
    for line in reversed(log.splitlines()):
        if "ERROR" in line and "see the" not in line.lower() and "traceback" not in line.lower():
            text = line.split("]", 1)[-1].strip()
            return (text[:200] + "…") if len(text) > 200 else text
    return "see the log"
