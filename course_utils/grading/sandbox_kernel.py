"""Start an IPython kernel inside a bubblewrap sandbox: the grading kernel's argv.

The kernel sees the whole file system read-only, except its own notebook folder (its working
directory) and a private /tmp. Paths listed in COURSE_GRADING_HIDE (os.pathsep-separated) are
covered by empty directories, so the solutions, the gradebook and other students' work are not
even readable. The address space is capped (COURSE_GRADING_MEMORY, bytes), so a memory bomb
raises MemoryError instead of taking the machine down.

The network namespace is shared on purpose: the kernel talks to nbgrader over loopback TCP.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys

DEFAULT_MEMORY = 6 * 2**30  # torch + OpenBLAS threads need ~4 GiB of address space to start
MAX_FILE_SIZE = 512 * 2**20  # no single file written by a student above 512 MiB
# The repository holding course_utils (runner.PACKAGE_REPO; not imported from there because
# this launcher runs by path and must not import the package, and torch with it, before bwrap).
COURSE_CODE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bwrap_argv(workdir: str, hide: list[str], kernel_argv: list[str],
               readable: list[str] = ()) -> list[str]:
    """The bubblewrap command that runs `kernel_argv` with only `workdir` writable.

    `readable` paths stay visible (read-only) even under /tmp: the kernel's connection file,
    and the Python environment and course code when the course was cloned under /tmp.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: sudo apt-get install bubblewrap")
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--die-with-parent", "--new-session", "--unshare-pid"]
    for path in readable:
        argv += ["--ro-bind", path, path]
    # Hidden paths come after: a folder inside a readable one is still covered.
    for path in hide:
        if os.path.isdir(path):
            argv += ["--tmpfs", path]
        elif os.path.exists(path):
            argv += ["--ro-bind", "/dev/null", path]
    # Bound last so that it stays visible even when it lies under a hidden or tmpfs folder.
    argv += ["--bind", workdir, workdir, "--chdir", workdir, "--setenv", "HOME", "/tmp",
             "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib", "--"]
    return argv + kernel_argv


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    memory = int(os.environ.get("COURSE_GRADING_MEMORY", DEFAULT_MEMORY))
    hide = [p for p in os.environ.get("COURSE_GRADING_HIDE", "").split(os.pathsep) if p]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_SIZE, MAX_FILE_SIZE))
    kernel = [sys.executable, "-m", "ipykernel_launcher",
              "--IPKernelApp.outstream_class=course_utils.grading.capped_stream.CappedOutStream",
              # In its own PID namespace the kernel's parent is pid 1, which ipykernel's parent
              # poller reads as "orphaned"; --die-with-parent does that job instead.
              "--IPKernelApp.parent_handle=1",
              *argv]
    os.environ.pop("JPY_PARENT_PID", None)
    connection_file = argv[argv.index("-f") + 1] if "-f" in argv else None
    readable = [p for p in (sys.prefix, COURSE_CODE, connection_file) if p and os.path.exists(p)]
    cmd = bwrap_argv(os.getcwd(), hide, kernel, readable=readable)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
