"""A process that has imported what the lessons import and forks each job's sandboxed kernel.

    python -m course_utils.grading.zygote FOLDER     (started by Zygote, never by hand)

Starting a kernel that imports torch, torchvision, matplotlib and course_utils costs about
3.5 s of CPU, a third of grading one lesson-03 submission. A zygote pays it once per worker:
it imports those modules (and runs nothing), then for each kernel forks a child that enters
the sandbox with system calls (namespaces.enter: the same sandbox as sandbox_kernel's
bubblewrap command, built from the same SANDBOX.json) and starts the IPython kernel there.
Each kernel is a fork of the same pristine zygote, its own address space in its own
namespaces: nothing of one student's kernel reaches another's. The zygote itself holds no
student data and is not visible from any sandbox.

Jupyter starts `zygote_kernel.py` as the kernel's process (no torch there: it starts in
milliseconds). That launcher hands its request and its stdout/stderr to the zygote over the
Unix socket FOLDER/zygote and stays as the kernel's stand-in: it ends with the kernel's
exit status, and when Jupyter kills it the zygote kills the kernel and its namespace.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from .namespaces import exit_status
from .zygote_kernel import NO_KERNEL, SOCKET_NAME

# What the lessons' notebooks import (course_utils and its submodules, the libraries under
# them), and what the kernel itself needs.
PRELOAD = ("numpy", "torch", "torch.nn.functional", "torch.autograd.functional",
           "torch.utils.flop_counter", "torchvision", "torchvision.models",
           "torchvision.transforms", "matplotlib.pyplot", "ipykernel.kernelapp",
           "IPython.display", "course_utils", "course_utils.checks", "course_utils.compare",
           "course_utils.data", "course_utils.layers", "course_utils.models",
           "course_utils.plots", "course_utils.pretrained", "course_utils.profile",
           "course_utils.train", "course_utils.grading.oracle",
           "course_utils.grading.capped_stream")
MAX_REQUEST = 1 << 20
# An interactive backend must be chosen before matplotlib is imported: the kernel's inline one.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def preload() -> None:
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    for name in PRELOAD:
        importlib.import_module(name)
    # A fork copies one thread: a lock held by another Python thread would stay held in the
    # kernel. (numpy's OpenBLAS pool is native and stops itself around a fork.)
    if threading.active_count() != 1:
        raise RuntimeError("importing the lessons' modules started a Python thread")


def run_kernel(request: dict, root: str, stdout: int, stderr: int) -> None:
    """In a fresh child: enter the sandbox, then be the IPython kernel. Never returns."""
    from . import namespaces
    from .sandbox_kernel import kernel_options

    try:
        with open(request["config"]) as f:
            config = json.load(f)
        namespaces.enter(config, request.get("connection_file"), root, stdout, stderr)
    except BaseException:  # noqa: BLE001 - said on the kernel's log, then this child ends
        os.write(stderr, ("the grading sandbox could not be entered:\n" +
                          traceback.format_exc()).encode(errors="replace"))
        os._exit(NO_KERNEL)
    code = 0
    try:
        from ipykernel.kernelapp import launch_new_instance

        sys.argv = ["ipykernel_launcher", *kernel_options(), *request.get("argv", [])]
        launch_new_instance()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def probe(folder: Path, root: str) -> None:
    """Enter an empty sandbox once in a child; raises with the reason when that fails
    (no user namespaces, a kernel that refuses a mount, ...)."""
    from . import namespaces

    work = tempfile.mkdtemp(prefix="probe-", dir=folder)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            namespaces.enter({"sockets": work, "workdir": work, "env": {}}, None, root, 1, write)
        except BaseException as exc:  # noqa: BLE001
            os.write(write, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
            os._exit(NO_KERNEL)
        try:  # now the sandbox's kernel process: its stderr is the pipe
            with open("/proc/self/status") as f:
                no_capabilities = "CapEff:\t0000000000000000" in f.read()
            os._exit(0 if os.getpid() == 2 and no_capabilities else 1)
        finally:
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        reason = f.read().decode(errors="replace").strip()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(reason or f"the sandbox's test process ended with status {status}")


class Server:
    """The zygote's loop: one kernel per connection; a closed connection kills its kernel."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = tempfile.mkdtemp(prefix="root-", dir=folder)  # mount point, stays empty
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(folder / SOCKET_NAME))
        self.listener.listen(16)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self.selector.register(sys.stdin, selectors.EVENT_READ, self._parent_gone)
        self.kernels: dict[socket.socket, tuple[int, int]] = {}  # conn -> (pid, pidfd)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                key.data(key.fileobj)

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        try:
            message, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 2)
            request = json.loads(message)
            if len(fds) != 2:
                raise ValueError("a request carries the kernel's stdout and stderr")
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(f"error {exc}\n".encode())
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            run_kernel(request, self.root, *fds)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.kernels[conn] = (pid, pidfd)
        self.selector.register(conn, selectors.EVENT_READ, self._launcher_gone)
        self.selector.register(pidfd, selectors.EVENT_READ, lambda _: self._ended(conn))
        conn.sendall(f"started {pid}\n".encode())

    def _launcher_gone(self, conn: socket.socket) -> None:
        """Jupyter killed the kernel's stand-in (or it wrote, which it never does)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.kernels[conn][0], signal.SIGKILL)  # its sandbox's PID 1 follows
        self.selector.unregister(conn)

    def _ended(self, conn: socket.socket) -> None:
        pid, pidfd = self.kernels.pop(conn)
        _, status = os.waitpid(pid, 0)
        code = exit_status(status)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
        conn.close()

    def _parent_gone(self, stdin) -> None:
        if os.read(stdin.fileno(), 1):
            return
        for pid, _ in self.kernels.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os._exit(0)


def main() -> None:
    folder = Path(sys.argv[1])
    from .namespaces import PR_SET_PDEATHSIG, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker's end is the zygote's end
    try:
        preload()
        server = Server(folder)
        probe(folder, server.root)
    except Exception as exc:  # noqa: BLE001 - the worker reads the reason and does without
        print(f"error {type(exc).__name__}: {exc}".splitlines()[0], flush=True)
        return
    print("ready", flush=True)
    server.serve()


if __name__ == "__main__":
    main()


def zygote_folder() -> str:
    """A new private folder with a short path (a socket path holds at most 107 characters)."""
    return tempfile.mkdtemp(prefix="z-", dir="/tmp" if os.access("/tmp", os.W_OK) else None)


def zygote_env() -> dict[str, str]:
    """The zygote's environment: what a kernel may see, no more. A forked kernel gets the
    sandbox's own environment, but /proc/self/environ still shows the zygote's."""
    from .job import SANDBOX_ENV_PASS

    env = {k: os.environ[k] for k in SANDBOX_ENV_PASS if os.environ.get(k)}
    # numpy, torch and matplotlib read these as they load; the sandbox's values apply later.
    env.update(HOME=os.path.expanduser("~"), MPLBACKEND=INLINE_BACKEND)
    return env


class Zygote:
    """A worker's zygote process (see the module docstring), started at once: it imports for
    a few seconds while the worker loads nbgrader."""

    def __init__(self, folder: str | None = None) -> None:
        import subprocess

        self.folder = Path(folder or zygote_folder())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "course_utils.grading.zygote", str(self.folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self.folder,
            env=zygote_env())
        self._state: str | None = None
        self._lock = threading.Lock()  # a Dask worker asks from two threads

    def unavailable(self) -> str | None:
        """None once the zygote forks kernels; otherwise why it cannot (waits for it)."""
        with self._lock:
            if self._state is None:
                self._state = self.proc.stdout.readline().strip() or "error it ended on start"
        return None if self._state == "ready" else self._state.removeprefix("error ")

    def kernel_argv(self, sandbox_config: Path) -> list[str]:
        """The kernel command line that has this zygote fork the kernel."""
        return [sys.executable, str(Path(__file__).with_name("zygote_kernel.py")),
                str(self.folder), str(sandbox_config), "-f", "{connection_file}"]

    def close(self) -> None:
        import shutil

        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # the zygote kills its kernels and ends
        try:
            self.proc.wait(10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)
