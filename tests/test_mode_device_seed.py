"""mode, device, seed and init(): the first cell of every lesson."""

import random

import numpy as np
import pytest
import torch

import course_utils
from course_utils.mode import Mode, describe_mode, get_mode, loader_settings, pick
from course_utils.seed import seed_worker, set_seed


def test_mode_defaults_to_quick(monkeypatch):
    monkeypatch.delenv("COURSE_MODE", raising=False)
    assert get_mode() is Mode.QUICK


@pytest.mark.parametrize("value, mode", [("full", Mode.FULL), (" GRADE ", Mode.GRADE),
                                         ("quick", Mode.QUICK)])
def test_mode_from_environment(monkeypatch, value, mode):
    monkeypatch.setenv("COURSE_MODE", value)
    assert get_mode() is mode


def test_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "full")
    assert get_mode("grade") is Mode.GRADE


def test_bad_mode_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "fast")
    with pytest.raises(ValueError, match="COURSE_MODE='fast' is not a mode: use quick, full or grade"):
        get_mode()


def test_pick_per_mode():
    assert pick(quick=2, full=20, grade=1, mode="quick") == 2
    assert pick(quick=2, full=20, grade=1, mode="full") == 20
    assert pick(quick=2, full=20, grade=1, mode="grade") == 1
    assert pick(quick=2, full=20, mode="grade") == 2  # GRADE falls back to QUICK


def test_loader_settings_shrink_with_the_mode():
    quick, full, grade = (loader_settings(m) for m in ("quick", "full", "grade"))
    assert full.train_subset is None and full.max_steps_per_epoch is None
    assert grade.train_subset < quick.train_subset
    assert grade.max_steps_per_epoch is not None and grade.max_steps_per_epoch <= 5


def test_describe_mode_is_one_line():
    for mode in Mode:
        line = describe_mode(mode)
        assert "\n" not in line and mode.name in line


def test_device_on_this_machine(capsys):
    device = course_utils.get_device()
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device.type in (expected, "mps")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"Device: {device.type}")


def test_set_seed_makes_everything_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    set_seed(7)
    first = draw()
    set_seed(7)
    assert draw() == first
    set_seed(8)
    assert draw() != first


def test_set_seed_generator_and_worker_seeding():
    g1, g2 = set_seed(3), set_seed(3)
    assert torch.randperm(10, generator=g1).tolist() == torch.randperm(10, generator=g2).tolist()
    torch.manual_seed(11)
    seed_worker(0)
    a = np.random.rand()
    torch.manual_seed(11)
    seed_worker(0)
    assert np.random.rand() == a


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        set_seed(bad)


def test_init_prints_mode_device_seed(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "grade")
    session = course_utils.init(seed=5)
    out = capsys.readouterr().out.splitlines()
    assert session.mode is Mode.GRADE and session.seed == 5
    assert out[0].startswith("Mode: GRADE") and out[1].startswith("Device:")
    assert out[2].startswith("Seed: 5") and "torch" in out[2]


def test_common_names_are_reexported():
    from course_utils.data import load_dataset
    from course_utils.train import fit

    assert course_utils.fit is fit and course_utils.load_dataset is load_dataset
    assert set(course_utils.__all__) <= set(dir(course_utils))
    assert all(getattr(course_utils, name) is not None for name in course_utils.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        course_utils.nope  # noqa: B018
