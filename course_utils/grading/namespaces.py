"""The grading sandbox entered by a forked process: sandbox_kernel's bubblewrap command done
with system calls, so that a kernel forked from the zygote keeps the modules it imported.

`enter(config)` is called in a fresh child of the zygote (single-threaded, as unshare needs).
It reads the same SANDBOX.json settings as sandbox_kernel.bwrap_argv and builds the same
sandbox: new user, mount, PID, network, IPC, UTS and cgroup namespaces; a new root on a tmpfs
holding read-only binds of the system folders, the Python environment, the course package and
the connection file, a private /dev, /proc and size-capped /tmp, `hide` covered, the sockets
and notebook folders writable; then no capabilities, no new privileges, the clean environment
and the resource limits. It returns in the kernel process (PID 2 of the new PID namespace,
PID 1 being a small init that reaps and ends the namespace with the kernel), or raises
SandboxError in the caller before anything of the student's runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
import signal
import sys

from .sandbox_kernel import (
    ETC_FILES,
    SYSTEM_DIRS,
    TMP_SIZE,
    hidden_paths,
    readable_paths,
    set_limits,
)
from .zygote_kernel import NO_KERNEL

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, \
    0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = \
    1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAPABILITY_VERSION_3 = 0x20080522
SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126},
            "aarch64": {"pivot_root": 41, "capset": 91}}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# statvfs flags of a mount that a user namespace may not clear: kept when remounting read-only.
LOCKED_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
                os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME,
                os.ST_RELATIME: MS_RELATIME}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


class SandboxError(OSError):
    """The sandbox could not be built: nothing of the student's has run."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(err, f"{what}: {os.strerror(err)}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def _syscall(name: str, *args) -> int:
    numbers = SYSCALLS.get(platform.machine())
    if numbers is None:
        raise SandboxError(0, f"no system call table for {platform.machine()}")
    return _libc.syscall(numbers[name], *args)


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline, backslash as octal)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _mounts_at_or_below(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [_unescape(line.split()[4]) for line in f]
    prefix = path.rstrip("/") + "/"
    return [p for p in points if p == path or p.startswith(prefix)]


def _remount_readonly(target: str, below: bool = True) -> None:
    """Make `target` (and every mount below it) read-only: a bind is not, by itself."""
    for point in _mounts_at_or_below(target) if below else [target]:
        flags = os.statvfs(point).f_flag
        locked = sum(ms for st, ms in LOCKED_FLAGS.items() if flags & st)
        _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)


def _make_target(target: str, like: str) -> None:
    """An empty directory or file at `target` to mount `like` on."""
    if os.path.isdir(like):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()


def _bind(source: str, root: str, path: str | None = None, readonly: bool = True) -> None:
    target = root + (path or source)
    _make_target(target, source)
    _mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        _remount_readonly(target)


def _dev(root: str) -> None:
    """A private /dev: a few device nodes, /dev/shm for shared memory, the fd links."""
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", root, readonly=False)
    os.mkdir(dev + "/shm", 0o1777)
    os.chmod(dev + "/shm", 0o1777)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")


def _build_root(config: dict, root: str, connection_file: str | None) -> None:
    """Mount the sandbox's file system under `root` (same order as bwrap_argv)."""
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(path, root)
    for path in ETC_FILES:
        if os.path.exists(path):
            _bind(path, root)
    for name, path in sorted(config.get("etc", {}).items()):
        _bind(path, root, f"/etc/{name}")
    _dev(root)
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + "/tmp", exist_ok=True)
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={TMP_SIZE},mode=1777")
    readable = readable_paths(config, connection_file)
    for path in readable:
        _bind(path, root)
    for path in hidden_paths(config, readable):
        if os.path.isdir(path):
            _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        else:
            _mount("/dev/null", root + path, None, MS_BIND)
    # Bound last so that they stay writable under anything above.
    for path in (config["sockets"], config["workdir"]):
        _bind(path, root, readonly=False)
    _remount_readonly(root, below=False)  # the root itself; what is mounted on it stays as is


def _pivot(root: str) -> None:
    """Make `root` the file system root and drop the old one from this namespace."""
    os.chdir(root)
    _check(_syscall("pivot_root", b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def _drop_privileges() -> None:
    """No capabilities (effective, permitted, inheritable, bounding, ambient) and no way to
    gain any: what bwrap --cap-drop ALL leaves an unprivileged process."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_syscall("capset", header, data), "capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def _close_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep and fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone
                os.close(fd)


def exit_status(status: int) -> int:
    """A wait status as a shell writes it: the code, or 128 + the signal."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _init(kernel: int, failed: int) -> None:
    """PID 1 of the sandbox: reap every process, end with the kernel's status (killing the
    namespace's other processes with it); NO_KERNEL when the kernel could not be set up."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(NO_KERNEL)
        if pid == kernel:
            code = exit_status(status)
            os._exit(NO_KERNEL if os.read(failed, 1) else code)


def enter(config: dict, connection_file: str | None, root: str,
          stdout: int, stderr: int) -> None:
    """Turn this forked process into the sandboxed kernel process (see the module docstring).

    Returns only in the kernel process; the processes above it exit with its status.
    `root` is an empty folder to build the new root on; `stdout`/`stderr` receive the
    kernel's own output.
    """
    uid, gid = os.getuid(), os.getgid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _close_fds({stdout, stderr})
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                         CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    init = os.fork()  # PID 1 of the new PID namespace
    if init:
        _, status = os.waitpid(init, 0)
        os._exit(exit_status(status))
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _build_root(config, root, connection_file)
    _pivot(root)
    host = b"grading-sandbox"
    _check(_libc.sethostname(host, len(host)), "sethostname")
    _drop_privileges()
    set_limits(config)
    failed_read, failed_write = os.pipe()
    kernel = os.fork()
    if kernel:
        os.close(failed_write)
        _init(kernel, failed_read)
    os.close(failed_read)
    try:
        os.setsid()
        os.chdir(config["workdir"])
        os.environ.clear()
        os.environ.update(config.get("env", {}))
        null = os.open("/dev/null", os.O_RDONLY)
        for fd, target in ((null, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
        _close_fds({failed_write})
        random.seed()  # forked children must not share the zygote's random state
        _reseed_numpy()
    except BaseException:
        os.write(failed_write, b"x")
        raise
    os.close(failed_write)


def _reseed_numpy() -> None:
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
