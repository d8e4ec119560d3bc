"""Start JupyterLab on the student notebooks: what `make lab` runs.

Usage: python -m course_utils.lab [extra jupyter-lab options, e.g. --port 8899 --no-browser]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def lab_command(notebook_dir: str | os.PathLike | None = None, extra_args=()) -> list[str]:
    """The argv that starts JupyterLab on `notebook_dir` (default: the repo's notebooks/)."""
    notebook_dir = Path(notebook_dir) if notebook_dir else REPO_ROOT / "notebooks"
    if not notebook_dir.is_dir():
        raise FileNotFoundError(f"notebook directory not found: {notebook_dir}")
    return [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={notebook_dir}",
        # Students run it locally: listen on loopback only.
        "--ServerApp.ip=127.0.0.1",
        # The instructors' formgrader expects the course root (the repo) as server root;
        # students open notebooks/, so keep it off here (see README, "For instructors").
        "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': False}",
        # CI and containers run as root; Jupyter refuses that without this flag.
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *extra_args,
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    cmd = lab_command(extra_args=argv)
    print("Starting JupyterLab on notebooks/ (Ctrl-C to stop)", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
