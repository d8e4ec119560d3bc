"""Long-lived grading workers: one process per core that grades job after job.

A worker loads nbgrader, SQLAlchemy and the judge (with torch) once, then runs each job it
is sent in-process (job.grade: nbgrader's Autograde converter, a fresh sandboxed kernel per
job). That saves a Python start and several seconds of imports per submission. Its zygote
(zygote.py) forks each kernel with torch and the lessons' modules already imported. As a job
begins, the worker starts the kernel of its next job (job.prestart), which boots while this
job runs: the next job does not wait for its kernel. Nothing
of a student's runs in the worker: the student's code runs only in the job's own kernel.

The parent talks to a worker over its stdin and stdout: a JobSpec goes in, a JobResult comes
out, each a length-prefixed pickle between two trusted processes. A worker that dies, or a
job that runs past its time limit, costs that job alone: the worker is killed (its kernel
goes with it) and a new one takes its place.

    python -m course_utils.grading.worker ZYGOTE_FOLDER [TEMPLATE]
        (started by WorkerPool, never by hand; TEMPLATE: a JobSpec, base64 pickle)
"""

from __future__ import annotations

import base64
import os
import pickle
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress

from .job import JobResult, JobSpec, venv_env
from .zygote import Zygote, zygote_folder

HEADER = 8                 # bytes of the length prefix
TIMEOUT_MARGIN = 60        # seconds past spec.job_timeout before the worker is killed
STDERR_TAIL = 5_000        # characters of a dead worker's stderr kept in the job's log
CLOSE_WAIT = 10            # seconds an idle worker has to stop its kernel and zygote


class WorkerDied(RuntimeError):
    """The worker process ended, or ran past its time, in the middle of a job."""


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(HEADER, "big") + data)
    stream.flush()


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Worker:
    """One worker process, driven from the parent."""

    def __init__(self, threads: int | None = None, template: JobSpec | None = None) -> None:
        self.threads, self.template = threads, template
        # Threads for torch in this worker and in its kernels (the sandbox passes them on):
        # one worker per core must not start a thread per core each.
        extra = {} if threads is None or "OMP_NUM_THREADS" in os.environ else \
            {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        # The worker's zygote keeps its socket here; removed here too, however the worker ends.
        self.zygote_folder = zygote_folder()
        # The template's sandbox settings let the worker start its first job's kernel at once.
        first = [] if template is None else \
            [base64.b64encode(pickle.dumps(template)).decode("ascii")]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "course_utils.grading.worker", self.zygote_folder, *first],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, env=venv_env(**extra),
            start_new_session=True)  # out of reach of the terminal's Ctrl-C to the runner

    def grade(self, spec: JobSpec) -> JobResult:
        """The job's result; raises WorkerDied (the worker is then unusable)."""
        deadline = time.monotonic() + spec.job_timeout + TIMEOUT_MARGIN
        try:
            _send(self.proc.stdin, spec)
            fd = self.proc.stdout.fileno()
            size = int.from_bytes(_read_exact(fd, HEADER, deadline), "big")
            return pickle.loads(_read_exact(fd, size, deadline))
        except TimeoutError:
            self.close()
            raise WorkerDied(f"grading took longer than {spec.job_timeout} s") from None
        except (EOFError, BrokenPipeError, OSError) as exc:
            self.close()
            raise WorkerDied(f"the grading worker died ({self._ended()})\n"
                             f"{self._stderr_tail()}") from exc

    def _ended(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "no reply"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-STDERR_TAIL:]

    def close(self, wait: float = 0.0) -> None:
        """Stop the worker: given `wait` seconds, it stops its kernels and zygote itself;
        then whatever is left of its process group is killed."""
        if wait and self.proc.poll() is None:
            with suppress(OSError):
                self.proc.stdin.close()  # the end of its jobs
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            with suppress(OSError):
                stream.close()
        shutil.rmtree(self.zygote_folder, ignore_errors=True)


class WorkerPool:
    """`size` workers, started at once so that they load while the runner prepares."""

    def __init__(self, size: int, template: JobSpec | None = None) -> None:
        self._idle: queue.Queue[Worker] = queue.Queue()
        threads = max(1, (os.cpu_count() or 1) // size)
        for _ in range(size):
            self._idle.put(Worker(threads, template))

    def grade(self, spec: JobSpec) -> JobResult:
        """Grade `spec` on an idle worker (blocks until one is free); never raises."""
        worker = self._idle.get()
        start = time.monotonic()
        try:
            result = worker.grade(spec)
        except WorkerDied as exc:
            worker = Worker(worker.threads, worker.template)
            message, _, log = str(exc).partition("\n")
            return JobResult(spec.student, spec.assignment, "failed", message,
                             time.monotonic() - start, log=log or message)
        finally:
            self._idle.put(worker)
        return result

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close(wait=CLOSE_WAIT)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> None:
    """Serve jobs from stdin until it closes; results go to the original stdout."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not break replies
    zygote = Zygote(sys.argv[1])  # imports torch and the lessons' modules while this loads
    from . import (
        job,
        judged,  # noqa: F401  (nbgrader, the judge and torch, loaded once)
    )

    job.ZYGOTE = zygote
    job.PRESTART_NEXT = True
    if len(sys.argv) > 2:  # a template job: start the first job's kernel now
        with suppress(Exception):
            job.prestart(pickle.loads(base64.b64decode(sys.argv[2])))
    requests = sys.stdin.buffer
    try:
        while True:
            header = requests.read(HEADER)
            if len(header) < HEADER:
                return
            spec = pickle.loads(requests.read(int.from_bytes(header, "big")))
            _send(replies, job.grade(spec))
    finally:
        job.discard_prestarted()
        job.use_zygote(False)


if __name__ == "__main__":
    main()
