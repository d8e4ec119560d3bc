"""Which names ``check`` knows, and the options each accepts."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    func: Callable[..., str]   # returns the ✓ line (plus notes); raises CheckFailure
    options: tuple[str, ...]
    expects: str               # the student-facing API, for messages and docs


REGISTRY: dict[str, Entry] = {}


def register(name: str, expects: str, options: tuple[str, ...] = ()) -> Callable:
    def decorate(func: Callable[..., str]) -> Callable[..., str]:
        REGISTRY[name] = Entry(name, func, options, expects)
        return func

    return decorate


# True while the grader's judge runs a check: checks then add their hidden configurations
# (the extra cases the student's notebook does not run, like nbgrader's hidden tests).
GRADING: ContextVar[bool] = ContextVar("course_grading", default=False)


def grading() -> bool:
    return GRADING.get()
