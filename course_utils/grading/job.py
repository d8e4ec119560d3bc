"""Grade one (student, assignment) with `nbgrader autograde` in a private course directory.

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

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
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
                    "OPENBLAS_NUM_THREADS", "LANG", "LC_ALL", "TZ",
                    "COURSE_GRADING_OUTPUT_CAP")
# Read-only caches the kernel may use when the grader's environment names them.
SANDBOX_CACHE_VARS = ("COURSE_DATA", "TORCH_HOME")

# Appended to the course's nbgrader_config.py inside the job directory.
JOB_CONFIG = """
from course_utils.grading.judged import JudgedExecute
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                    LimitOutput, SaveAutoGrades)
from nbconvert.preprocessors import ClearMetadataPreprocessor

# Graded test cells are decided by the judge, outside the kernel (judged.py).
c.Autograde.autograde_preprocessors = [JudgedExecute, IgnorePattern,
    ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
    CheckCellMetadata]
c.Execute.kernel_name = {kernel!r}
c.Execute.timeout = {timeout}
c.CourseDirectory.db_url = {db_url!r}
# The kernel has no network: it talks to nbgrader over Unix sockets in the job directory.
c.KernelManager.transport = "ipc"
c.KernelManager.ip = {ipc!r}
"""


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
    cell_timeout: int = 60
    job_timeout: int = 900
    memory_bytes: int | None = None
    cpu_seconds: int | None = None     # CPU limit of one kernel process (default: job_timeout)
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


def _install_kernel(jupyter_dir: Path, sandbox_config: Path) -> None:
    spec_dir = jupyter_dir / "kernels" / GRADING_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_dir.joinpath("kernel.json").write_text(json.dumps({
        # Run by path, not with -m: importing the course_utils package would load torch in
        # the launcher too, 3-4 s per kernel start spent before bubblewrap even runs.
        "argv": [sys.executable, str(Path(__file__).with_name("sandbox_kernel.py")),
                 str(sandbox_config), "-f", "{connection_file}"],
        "display_name": "CNN course (grading sandbox)",
        "language": "python",
        # The sandboxed kernel sits in its own session, out of reach of a SIGINT sent to the
        # launcher's process group: interrupt it with a message on the control channel.
        "interrupt_mode": "message",
    }))


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


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int) -> tuple[str, bool]:
    """Run `cmd` in its own session; on timeout kill the whole session. (log, timed out)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out, False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return f"{out}\nkilled after {timeout} s", True


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

    def failed(message: str, log: str) -> JobResult:
        return JobResult(spec.student, spec.assignment, "failed", message,
                         time.monotonic() - start, log=log[-LOG_CHARS:])

    job = _job_dir()
    try:
        db = job / "gradebook.db"
        db.write_bytes(spec.gradebook)
        config = spec.config.decode() + JOB_CONFIG.format(
            kernel=GRADING_KERNEL, timeout=spec.cell_timeout, db_url=f"sqlite:///{db}",
            ipc=str(job / "s" / "k"))
        (job / "nbgrader_config.py").write_text(config)
        _write_tree(job / "solutions" / spec.assignment, spec.source)
        submitted = job / "submitted" / INTERNAL_ID / spec.assignment
        submitted.mkdir(parents=True)
        _write_tree(submitted, spec.submission)
        notes = _replace_unreadable(spec, submitted) + _dedupe_notebooks(spec, submitted)
        (job / "s").mkdir(mode=0o700)
        workdir = job / "autograded" / INTERNAL_ID / spec.assignment
        sandbox = job / "sandbox.json"
        sandbox.write_text(json.dumps(_sandbox_config(spec, job, workdir)))
        _install_kernel(job / "jupyter", sandbox)

        env = venv_env(COURSE_MODE="grade", JUPYTER_PATH=str(job / "jupyter"))
        cmd = [sys.executable, "-m", "nbgrader", "autograde", spec.assignment,
               f"--CourseDirectory.student_id={INTERNAL_ID}", "--force", "--log-level=INFO"]
        log, timed_out = _run(cmd, job, env, spec.job_timeout)
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
                         log[-LOG_CHARS:])
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _last_error(log: str) -> str:
    """The last ERROR line of nbgrader's log, shortened to a clause."""
    for line in reversed(log.splitlines()):
        if "ERROR" in line and "see the" not in line.lower() and "traceback" not in line.lower():
            text = line.split("]", 1)[-1].strip()
            return (text[:200] + "…") if len(text) > 200 else text
    return "see the log"
