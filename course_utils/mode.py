"""QUICK / FULL / GRADE: how much work a notebook does, chosen once per session.

QUICK (default) keeps every lesson under a few minutes on a laptop CPU, FULL runs the settings
the exercises name (meant for a GPU), GRADE does the minimum so autograding takes seconds.
Choose with the environment variable COURSE_MODE=quick|full|grade or an explicit argument.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    QUICK = "quick"
    FULL = "full"
    GRADE = "grade"

    def __str__(self) -> str:
        return self.value


DESCRIPTIONS = {
    Mode.QUICK: "QUICK — CPU-sized data subsets and few epochs (minutes per lesson); "
                "set COURSE_MODE=full for the exercises' real settings on a GPU",
    Mode.FULL: "FULL — the exercises' real settings (whole datasets, 20+ epochs); "
               "meant for a GPU, hours on a CPU",
    Mode.GRADE: "GRADE — autograding: training runs only a few steps (seconds per lesson)",
}


def get_mode(mode: str | Mode | None = None) -> Mode:
    """The mode from `mode`, else from $COURSE_MODE, else QUICK."""
    value = mode if mode is not None else os.environ.get("COURSE_MODE", "") or "quick"
    try:
        return Mode(str(value).strip().lower())
    except ValueError:
        source = "mode" if mode is not None else "COURSE_MODE"
        raise ValueError(f"{source}={value!r} is not a mode: use quick, full or grade") from None


def describe_mode(mode: str | Mode | None = None) -> str:
    """One line saying which mode is active and what it means for run time."""
    return f"Mode: {DESCRIPTIONS[get_mode(mode)]}"


def pick(quick, full, grade=None, mode: str | Mode | None = None):
    """The value for the active mode: pick(quick=2, full=20, grade=1). GRADE falls back to QUICK."""
    current = get_mode(mode)
    if current is Mode.FULL:
        return full
    if current is Mode.GRADE and grade is not None:
        return grade
    return quick


@dataclass(frozen=True)
class LoaderSettings:
    batch_size: int
    train_subset: int | None  # None: the whole dataset
    test_subset: int | None
    max_steps_per_epoch: int | None  # None: no cap


LOADER_SETTINGS = {
    Mode.QUICK: LoaderSettings(batch_size=128, train_subset=2048, test_subset=1024,
                               max_steps_per_epoch=None),
    Mode.FULL: LoaderSettings(batch_size=128, train_subset=None, test_subset=None,
                              max_steps_per_epoch=None),
    Mode.GRADE: LoaderSettings(batch_size=32, train_subset=128, test_subset=128,
                               max_steps_per_epoch=2),
}


def loader_settings(mode: str | Mode | None = None) -> LoaderSettings:
    """Batch size, subset sizes and the step cap that go with the mode."""
    return LOADER_SETTINGS[get_mode(mode)]
