"""The install story: one lock file, a conda file that agrees with it, two README commands."""

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _direct_pins() -> dict[str, str]:
    """Direct dependencies: the first block of requirements.txt (up to the first blank line)."""
    pins = {}
    for line in ROOT.joinpath("requirements.txt").read_text().splitlines():
        if not line.strip():
            break
        if line.startswith("#"):
            continue
        name, _, ver = line.partition("==")
        pins[name.strip().lower()] = ver.strip()
    return pins


def _conda_pip_pins() -> dict[str, str]:
    text = ROOT.joinpath("environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^\s+-\s+([A-Za-z0-9_.\-]+)==(\S+)\s*$", pip_block, re.M)
    }


def test_every_requirement_is_pinned_exactly():
    for line in ROOT.joinpath("requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==\S+", line.strip()), line


def test_torch_and_torchvision_pins():
    pins = _direct_pins()
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


def test_environment_yml_matches_requirements():
    direct, conda = _direct_pins(), _conda_pip_pins()
    missing = sorted(set(direct) - set(conda))
    extra = sorted(set(conda) - set(direct))
    differ = sorted(n for n in set(direct) & set(conda) if direct[n] != conda[n])
    assert not (missing or extra or differ), (
        f"environment.yml drifted from requirements.txt: missing {missing}, extra {extra}, "
        f"different versions {[(n, direct[n], conda[n]) for n in differ]}"
    )


def test_installed_packages_match_the_lock():
    wrong = []
    for name, pinned in _direct_pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            wrong.append(f"{name} not installed")
            continue
        # CUDA/CPU wheels carry a local tag: 2.14.1+cu130 is torch 2.14.1.
        if Version(installed.split("+")[0]) != Version(pinned):
            wrong.append(f"{name} {installed} != {pinned}")
    assert not wrong, "run `make setup`: " + ", ".join(wrong)


def test_readme_quick_start_has_exactly_the_two_commands():
    readme = ROOT.joinpath("README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["make lab", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = ROOT.joinpath(".ci", "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


@pytest.mark.parametrize("target", ["setup", "lab", "test"])
def test_makefile_targets(target):
    makefile = ROOT.joinpath("Makefile").read_text()
    assert re.search(rf"^{target}:", makefile, re.M)
    if target in ("lab", "test"):
        assert re.search(rf"^{target}: setup", makefile, re.M), f"`make {target}` must set up first"
