"""The install story: what students install (requirements.txt) and what maintainers add
(requirements-dev.txt), both closed and pinned; a conda file that agrees; the make targets the
README and CI use do what they say (checked with `make --dry-run`, so nothing is installed)."""

import os
import re
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements.txt", "requirements-dev.txt")
MAINTAINER_TOOLS = {"pytest", "ruff", "playwright", "dask", "distributed"}


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins(lock: str) -> dict[str, str]:
    """Every exact pin of a lock file (comments and `-r` includes skipped)."""
    pins = {}
    for line in ROOT.joinpath(lock).read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-r")):
            name, _, ver = line.partition("==")
            pins[_name(name)] = ver.strip()
    return pins


def _direct_pins(lock: str) -> dict[str, str]:
    """Direct dependencies: a lock's first block of pins (up to the first blank line)."""
    pins = {}
    for line in ROOT.joinpath(lock).read_text().splitlines():
        if not line.strip():
            break
        if not line.startswith(("#", "-r")):
            name, _, ver = line.partition("==")
            pins[_name(name)] = ver.strip()
    return pins


def _conda_pip_pins() -> dict[str, str]:
    text = ROOT.joinpath("environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    return {
        _name(m.group(1)): m.group(2)
        for m in re.finditer(r"^\s+-\s+([A-Za-z0-9_.\-]+)==(\S+)\s*$", pip_block, re.M)
    }


def _installed_closure(names) -> set[str]:
    """The names and everything they require, as installed here (extras left out)."""
    seen, todo = set(), [_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_name(req.name))
    return seen


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_is_pinned_exactly(lock):
    for line in ROOT.joinpath(lock).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert line == "-r requirements.txt" or re.fullmatch(
                r"[A-Za-z0-9_.\-\[\]]+==\S+", line.strip()), line


def test_torch_and_torchvision_pins():
    pins = _direct_pins("requirements.txt")
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


def test_environment_yml_matches_requirements():
    direct, conda = _direct_pins("requirements.txt"), _conda_pip_pins()
    missing = sorted(set(direct) - set(conda))
    extra = sorted(set(conda) - set(direct))
    differ = sorted(n for n in set(direct) & set(conda) if direct[n] != conda[n])
    assert not (missing or extra or differ), (
        f"environment.yml drifted from requirements.txt: missing {missing}, extra {extra}, "
        f"different versions {[(n, direct[n], conda[n]) for n in differ]}"
    )


@pytest.mark.parametrize("lock", LOCKS)
def test_installed_packages_match_the_lock(lock):
    wrong = []
    for name, pinned in _direct_pins(lock).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            wrong.append(f"{name} not installed")
            continue
        # CUDA/CPU wheels carry a local tag: 2.14.1+cu130 is torch 2.14.1.
        if Version(installed.split("+")[0]) != Version(pinned):
            wrong.append(f"{name} {installed} != {pinned}")
    assert not wrong, "run `make setup` / `make dev`: " + ", ".join(wrong)


def test_students_lock_is_complete_without_the_maintainers_tools():
    """Everything the course's packages need is pinned in requirements.txt, and nothing there
    pulls in a test runner, linter, browser driver or Dask."""
    course = _installed_closure(_direct_pins("requirements.txt"))
    torch_own = _installed_closure(["torch"]) - {"torch"}  # its CUDA wheels: torch pins them
    unpinned = sorted(course - set(_pins("requirements.txt")) - torch_own)
    assert not unpinned, f"requirements.txt misses what the course needs: {unpinned}"
    assert not course & MAINTAINER_TOOLS, sorted(course & MAINTAINER_TOOLS)
    assert set(_pins("requirements.txt")).isdisjoint(_pins("requirements-dev.txt"))


def test_maintainers_lock_is_complete():
    tools = _installed_closure(_direct_pins("requirements-dev.txt"))
    pinned = set(_pins("requirements.txt")) | set(_pins("requirements-dev.txt"))
    assert set(_direct_pins("requirements-dev.txt")) >= MAINTAINER_TOOLS
    assert not sorted(tools - pinned), f"requirements-dev.txt misses {sorted(tools - pinned)}"


# --- the make targets, dry-run -------------------------------------------------------------


def _dry_run(target: str) -> list[str]:
    """The commands `make <target>` would run from scratch (-B: as if nothing were set up)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    proc = subprocess.run(["make", "--dry-run", "--always-make", target], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _ran(commands: list[str], pattern: str) -> list[int]:
    return [i for i, line in enumerate(commands) if re.search(pattern, line)]


def test_make_lab_installs_only_the_course_then_starts_jupyterlab():
    commands = _dry_run("lab")
    course = _ran(commands, r"pip install .*-r requirements\.txt")
    lab = _ran(commands, r"python -m course_utils\.lab$")
    assert course and lab and course[0] < lab[0]
    assert not _ran(commands, r"requirements-dev\.txt|pytest")


@pytest.mark.parametrize("target,selection", [("test", r"pytest tests -n 2 --dist loadfile$"),
                                              ("test-fast", r"pytest tests -m unit$")])
def test_make_test_adds_the_maintainers_tools_then_runs_its_tier(target, selection):
    commands = _dry_run(target)
    course = _ran(commands, r"pip install .*-r requirements\.txt")
    tools = _ran(commands, r"pip install .*-r requirements-dev\.txt")
    tests = _ran(commands, r"python -m pytest ")
    assert course and tools and tests and course[0] < tools[0] < tests[0]
    assert len(tests) == 1 and re.search(selection, commands[tests[0]]), commands[tests[0]]


def test_readme_quick_start_is_make_lab_and_make_test():
    readme = ROOT.joinpath("README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["make lab", "make test"]


def test_ci_runs_make_test(tmp_path):
    """.ci/run, run for real with a `make` that only records how it was called."""
    (tmp_path / "make").write_text('#!/bin/sh\necho "$PWD $*" >> "$MAKE_CALLS"\n')
    (tmp_path / "make").chmod(0o755)
    calls = tmp_path / "calls"
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
               MAKE_CALLS=str(calls))
    subprocess.run([str(ROOT / ".ci" / "run")], cwd=tmp_path, env=env, check=True, timeout=60)
    assert calls.read_text().splitlines() == [f"{ROOT} test"]
