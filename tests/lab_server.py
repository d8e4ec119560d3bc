"""Start JupyterLab the way `make lab` does, on a free port, for the tests that talk to it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from course_utils.lab import REPO_ROOT, lab_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebooks(dest: Path) -> Path:
    """A fresh copy of the student notebooks/ (an empty folder if there is none)."""
    if (REPO_ROOT / "notebooks").is_dir():
        shutil.copytree(REPO_ROOT / "notebooks", dest)
    else:
        dest.mkdir()
    return dest


@contextlib.contextmanager
def serve_lab(notebook_dir: Path, token: str, env: dict | None = None,
              start_timeout: float = 90, instructor: bool = False) -> Iterator[str]:
    """Run `lab_command` (what `make lab` runs) on `notebook_dir`; yield its base URL.

    instructor=True: what `make formgrader` runs, with `notebook_dir` as the course root.
    """
    port = free_port()
    cmd = lab_command(
        notebook_dir=notebook_dir,
        extra_args=[f"--port={port}", "--no-browser", f"--IdentityProvider.token={token}"],
        instructor=instructor,
    )
    # The server's log goes to a file: a pipe nobody reads would block it once full.
    with tempfile.TemporaryFile(mode="w+") as log:
        # nbgrader takes the course root from the working directory, as `make formgrader` has it.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=notebook_dir if instructor else None)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"JupyterLab exited early:\n{log.read()}")
                try:
                    requests.get(f"{base}/api/status", params={"token": token}, timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.5)
            else:
                pytest.fail(f"JupyterLab did not answer within {start_timeout:.0f} s")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
