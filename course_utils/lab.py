"""Start JupyterLab on the student notebooks: what `make lab` runs.

Usage: python -m course_utils.lab [--instructor] [extra jupyter-lab options, e.g. --port 8899]

--instructor serves the course root instead, with nbgrader's formgrader (`make formgrader`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def lab_command(notebook_dir: str | os.PathLike | None = None, extra_args=(),
                instructor: bool = False) -> list[str]:
    """The argv that starts JupyterLab on `notebook_dir` (default: the repo's notebooks/).

    With `instructor=True` the default folder is the course root and the formgrader is on.
    """
    default = REPO_ROOT if instructor else REPO_ROOT / "notebooks"
    notebook_dir = Path(notebook_dir) if notebook_dir else default
    if not notebook_dir.is_dir():
        raise FileNotFoundError(f"notebook directory not found: {notebook_dir}")
    # The formgrader expects the course root (where nbgrader_config.py is) as server root;
    # students open notebooks/, so it stays off for them (see README, "For instructors").
    formgrader = "True" if instructor else "False"
    return [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={notebook_dir}",
        # Run locally: listen on loopback only.
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.jpserver_extensions={{'nbgrader.server_extensions.formgrader': {formgrader}}}",
        # CI and containers run as root; Jupyter refuses that without this flag.
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *extra_args,
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    instructor = "--instructor" in argv
    argv = [arg for arg in argv if arg != "--instructor"]
    cmd = lab_command(extra_args=argv, instructor=instructor)
    if instructor:
        os.chdir(REPO_ROOT)  # nbgrader takes the course root from the working directory
    where = "the course root, with the formgrader (menu Nbgrader)" if instructor else "notebooks/"
    print(f"Starting JupyterLab on {where} (Ctrl-C to stop)", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
