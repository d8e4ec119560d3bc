"""Calling student code safely, and the wording of the messages a check shows.

Every call into student code goes through :func:`call`. If it raises, the student sees an
``AssertionError`` naming the call that failed (``BasicBlock(64, 128, stride=2)(x) with x
of shape (2, 64, 8, 8)``), their exception's type and message, and the line of *their*
code it came from (the last traceback frame outside torch, torchvision, the standard library
and course_utils), never a raw traceback from inside the checker.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any, NoReturn

import torch


class CheckFailure(AssertionError):
    """A verdict: the student's object is wrong (the message says why).

    ``mistake`` is the stable id of a mistake from the checker's catalogue (e.g.
    ``"basic_block.relu_before_add"``) when the check recognised one; the grader records it
    with the score so that instructors can count mistakes across a class.
    """

    def __init__(self, message: str, mistake: str | None = None) -> None:
        super().__init__(message)
        self.mistake = mistake


class UsageError(ValueError):
    """check() was called wrongly by the notebook's author (a bad option value)."""


class Unanswered(RuntimeError):
    """When grading: the student's kernel gave no usable answer (frozen, or timed out)."""


def fail(message: str, mistake: str | None = None) -> NoReturn:
    raise CheckFailure(message, mistake)


# --- formatting -----------------------------------------------------------------------------

def n(value: int) -> str:
    """12345 -> '12,345'."""
    return f"{value:,}"


def shape_str(shape: tuple[int, ...] | torch.Size) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def call_str(name: str, *args: Any, **kwargs: Any) -> str:
    """call_str('BasicBlock', 64, 128, stride=2) -> 'BasicBlock(64, 128, stride=2)'."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def describe(obj: Any) -> str:
    """A short, safe description of any object for messages."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {shape_str(obj.size())}"
    if obj is None:
        return "None"
    if isinstance(obj, tuple | list):
        return f"a {type(obj).__name__} of {len(obj)} items"
    if inspect.isclass(obj):
        return f"the class {obj.__qualname__}"
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ in student code must not break the message
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= 60 else text[:57] + "..."


# --- where a student's exception came from ---------------------------------------------------

def _library_dirs() -> tuple[str, ...]:
    dirs = {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}  # course_utils
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.abspath(path))
    for mod in ("torch", "torchvision"):
        module = sys.modules.get(mod)
        if module is not None and getattr(module, "__file__", None):
            dirs.add(os.path.dirname(os.path.abspath(module.__file__)))
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()


def is_library_file(filename: str) -> bool:
    if filename.startswith("<") and not filename.startswith("<ipython-input"):
        return True  # <frozen importlib...>, <string> from torch internals
    path = os.path.abspath(filename)
    return any(path == d or path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def _remote_info(exc: BaseException) -> dict | None:
    """The kernel's own description of an exception raised there (see course_utils.grading.mirror)."""
    info = getattr(exc, "info", None)
    return info if isinstance(info, dict) and "text" in info else None


def student_frame(exc: BaseException) -> tuple[str, int, str, str] | None:
    """(filename, line number, function, source line) of the last frame in student code."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_library_file(code.co_filename):
            found = (code.co_filename, tb.tb_lineno,
                     getattr(code, "co_qualname", code.co_name), tb.tb_frame.f_globals)
        tb = tb.tb_next
    if found is None:
        return None
    filename, lineno, func, frame_globals = found
    line = linecache.getline(filename, lineno, frame_globals).strip()
    return filename, lineno, func, line


def where_str(exc: BaseException) -> str:
    if _remote_info(exc) is not None:
        return str(_remote_info(exc)["where"])
    frame = student_frame(exc)
    if frame is None:
        return ""
    filename, lineno, func, line = frame
    place = f"line {lineno} of {func}" if func != "<module>" else f"line {lineno}"
    if line:
        return f"\n    your {place}:  {line}"
    return f"\n    your {place} ({os.path.basename(filename)})"


def exception_str(exc: BaseException) -> str:
    if _remote_info(exc) is not None:
        return str(_remote_info(exc)["text"])
    try:
        text = str(exc)
    except Exception:
        text = ""
    text = text.strip().splitlines()[0] if text.strip() else ""
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def not_implemented_message(what: str, exc: BaseException) -> str:
    remote = _remote_info(exc)
    frame = student_frame(exc) if remote is None else None
    name = remote.get("func") if remote is not None else frame[2] if frame else None
    func = f"`{name}`" if name else "your code"
    return (
        f"Not implemented yet: {func} still raises NotImplementedError (while running {what}). "
        "Replace `raise NotImplementedError()` with your code and run that cell again."
    )


def call(what: str, fn: Callable[..., Any], *args: Any,
         hint: str | Callable[[BaseException], str] = "", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; if it raises, fail with a message about ``what``.

    ``what`` names the call as the student would write it, e.g.
    ``"BasicBlock(64, 128, stride=2)(x) with x of shape (2, 64, 8, 8)"``.
    """
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, Unanswered):
        raise
    except NotImplementedError as exc:
        fail(not_implemented_message(what, exc))
    except BaseException as exc:  # SystemExit too: a check must never end the kernel
        message = f"{what} failed with {exception_str(exc)}{where_str(exc)}"
        extra = hint(exc) if callable(hint) else hint
        if extra:
            message += f"\n{extra}"
        fail(message)


# --- what the student handed in ---------------------------------------------------------------

def expect_class(obj: Any, name: str, example: str, base: type = torch.nn.Module) -> None:
    """Fail unless ``obj`` is a class deriving from ``base`` (None: not implemented yet)."""
    if obj is None:
        fail(f"{name} is not implemented yet (got None): define `{example}` and run its cell "
             "before this check.")
    if isinstance(obj, base):
        fail(f"Pass the class {name} itself, not an instance: check(..., {name}), not "
             f"check(..., {name}(...)). The checker builds its own instances.")
    if not inspect.isclass(obj):
        fail(f"Expected the class {name} (`{example}`), got {describe(obj)}.")
    if not issubclass(obj, base):
        fail(f"{name} must subclass {base.__module__.replace('torch.nn.modules.module', 'torch.nn')}"
             f".{base.__qualname__}: `{example}`.")


def expect_function(obj: Any, name: str, example: str) -> None:
    if obj is None:
        fail(f"{name} is not implemented yet (got None): define `{example}` and run its cell "
             "before this check.")
    if inspect.isclass(obj) or not callable(obj):
        fail(f"Expected the function {name} (`{example}`), got {describe(obj)}.")


def instance_of(obj: Any, what: str, base: type = torch.nn.Module) -> None:
    if not isinstance(obj, base):
        fail(f"{what} gave {describe(obj)}, not an nn.Module.")


def source_of(obj: Any) -> str | None:
    """The student's source code defining ``obj``: when grading, the answer cell the judge
    read from the notebook (``__course_source__``); in the notebook, ``inspect.getsource``."""
    source = getattr(obj, "__course_source__", None)
    if isinstance(source, str):
        return source
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return None
