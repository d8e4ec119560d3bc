"""Start an IPython kernel inside a sealed bubblewrap sandbox: the grading kernel's argv.

    python sandbox_kernel.py SANDBOX.json -f CONNECTION_FILE

This launcher runs outside the sandbox, by path: importing the course_utils package would load
torch here too, seconds per kernel start spent before bubblewrap even runs. SANDBOX.json is
written by the grading job (job.py) and names what the kernel may see. Inside the sandbox:

- no network: a network namespace of its own (loopback only, nothing listens there); the
  kernel talks to nbgrader over Unix sockets in `sockets`, the only folder it shares with
  the grader besides its notebook folder;
- a file system of read-only system folders (/usr and the merged-usr links, a few /etc files,
  a made-up passwd), the Python environment (`python`: the venv and its base interpreter),
  the course package folder alone (`code`), `readonly` extras (the dataset and torch hub
  caches when set), the notebook folder read-write (`workdir`, the working directory),
  the connection file read-only, a private size-capped /tmp, /dev and /proc; its stdout
  and stderr go to `log` (outside, written through the inherited descriptors only). Paths
  in `hide` that lie inside a bound folder are covered by empty folders;
- a clean environment: only the variables in `env`;
- no capabilities, its own PID, IPC, UTS and user namespaces, its own session;
- resource limits that cannot be lifted from inside: address space (`memory`), CPU seconds
  of every process (`cpu_seconds`: SIGKILL at the limit), size of one written file
  (`file_size`), no core files.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys

# Address space, not RAM: torch and its threads reserve ~3.4 GiB on start, and the lessons'
# GRADE runs peak at 4.8-6.1 GiB (VmPeak; lesson 05's VGG16 with two torch threads: 6.1).
DEFAULT_MEMORY = 8 * 2**30
DEFAULT_CPU_SECONDS = 900
MAX_FILE_SIZE = 512 * 2**20  # no single file written by a student above 512 MiB
TMP_SIZE = 2**30  # the private /tmp is a tmpfs (RAM): at most 1 GiB
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/etc/alternatives",
             "/etc/mime.types")


def readable_paths(config: dict, connection_file: str | None) -> list[str]:
    """The host paths the sandbox shows read-only at their own path, without repeats."""
    readable = [*config.get("python", []), *config.get("code", []), *config.get("readonly", [])]
    if connection_file:
        readable.append(os.path.abspath(connection_file))
    return list(dict.fromkeys(readable))


def hidden_paths(config: dict, readable: list[str]) -> list[str]:
    """The existing paths of `hide` that lie inside a readable one: each gets covered."""
    return [path for path in config.get("hide", []) if os.path.exists(path) and any(
        path == r or path.startswith(r.rstrip("/") + "/") for r in readable)]


def bwrap_argv(config: dict, kernel_argv: list[str], connection_file: str | None = None
               ) -> list[str]:
    """The bubblewrap command that runs `kernel_argv` as described by `config`.

    `connection_file` (the kernel's ports and key, written by jupyter_client) is made
    readable at its own path.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: sudo apt-get install bubblewrap")
    argv = [bwrap, "--unshare-all", "--hostname", "grading-sandbox", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in sorted(config.get("env", {}).items()):
        argv += ["--setenv", key, value]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    for name, path in sorted(config.get("etc", {}).items()):
        argv += ["--ro-bind", path, f"/etc/{name}"]
    argv += ["--dev", "/dev", "--proc", "/proc", "--size", str(TMP_SIZE), "--tmpfs", "/tmp"]
    # After /tmp: the environment or the course may lie under /tmp.
    readable = readable_paths(config, connection_file)
    for path in readable:
        argv += ["--ro-bind", path, path]
    for path in hidden_paths(config, readable):
        argv += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    # Bound last so that they stay writable under anything above.
    for path in (config["sockets"], config["workdir"]):
        argv += ["--bind", path, path]
    argv += ["--chdir", config["workdir"], "--"]
    return argv + kernel_argv


def kernel_options() -> list[str]:
    """IPKernelApp's options for a grading kernel, started here or forked by the zygote."""
    return ["--IPKernelApp.outstream_class=course_utils.grading.capped_stream.CappedOutStream",
            # In its own PID namespace the kernel's parent is pid 1, which ipykernel's parent
            # poller reads as "orphaned"; the sandbox ends with its parent instead.
            "--IPKernelApp.parent_handle=1"]


def set_limits(config: dict) -> None:
    """Limits inherited by bubblewrap and the kernel; soft = hard, so they cannot be raised."""
    memory = int(config.get("memory") or DEFAULT_MEMORY)
    cpu = int(config.get("cpu_seconds") or DEFAULT_CPU_SECONDS)
    size = int(config.get("file_size") or MAX_FILE_SIZE)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # At the hard limit the kernel gets SIGKILL: no handler can catch or ignore it.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        config = json.load(f)
    kernel = [config["python_executable"], "-m", "ipykernel_launcher", *kernel_options(),
              # torch loads while the kernel boots (often before its job comes: job.prestart),
              # leaving no name behind: the notebook's own imports then cost nothing.
              "--IPKernelApp.exec_lines=import torch as _preloaded; del _preloaded",
              *argv[1:]]
    connection_file = argv[argv.index("-f") + 1] if "-f" in argv else None
    cmd = bwrap_argv(config, kernel, connection_file)
    if config.get("log"):
        # The kernel's own stdout and stderr (warnings, crashes) go to the job's log file.
        fd = os.open(config["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    set_limits(config)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
