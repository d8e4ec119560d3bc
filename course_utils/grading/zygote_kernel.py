"""The grading kernel's process when the worker has a zygote: it has the zygote fork the kernel.

    python zygote_kernel.py ZYGOTE_FOLDER SANDBOX.json -f CONNECTION_FILE

Run by path with the standard library only (no torch: it starts in milliseconds). It sends
the zygote the sandbox settings, the connection file and its own stdout and stderr (the job's
kernel log), then stays as the kernel's stand-in for Jupyter: it exits with the kernel's exit
status, and when Jupyter kills it, the zygote sees the connection close and kills the kernel
with its whole sandbox.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

SOCKET_NAME = "zygote"   # in the zygote's folder
CONNECT_WAIT = 120       # seconds a zygote may take to import torch and the lessons' modules
NO_KERNEL = 125          # exit status when no kernel could be started


def _connect(folder: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            sock.connect(os.path.join(folder, SOCKET_NAME))
            return sock
        except FileNotFoundError:  # the zygote is still importing
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    folder, config_path, kernel_args = argv[0], os.path.abspath(argv[1]), argv[2:]
    with open(config_path) as f:
        config = json.load(f)
    if config.get("log"):
        # The kernel's own stdout and stderr (warnings, crashes) go to the job's log file.
        fd = os.open(config["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    if "-f" in kernel_args:
        i = kernel_args.index("-f") + 1
        kernel_args[i] = os.path.abspath(kernel_args[i])
    request = {"config": config_path, "argv": kernel_args,
               "connection_file": kernel_args[i] if "-f" in kernel_args else None}
    try:
        sock = _connect(folder)
        socket.send_fds(sock, [json.dumps(request).encode()], [1, 2])
        for line in sock.makefile("r", encoding="utf-8"):
            word, _, value = line.strip().partition(" ")
            if word == "exit":
                sys.exit(int(value))
            if word == "error":
                print(f"the zygote could not start the kernel: {value}", file=sys.stderr)
                sys.exit(NO_KERNEL)
    except OSError as exc:
        print(f"the zygote could not be reached: {exc}", file=sys.stderr)
        sys.exit(NO_KERNEL)
    print("the zygote ended before the kernel", file=sys.stderr)
    sys.exit(NO_KERNEL)


if __name__ == "__main__":
    main()
