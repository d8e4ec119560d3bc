"""Helpers for the checks of plain functions (tensors and numbers in, tensors and numbers out).

Used by the practice checks of lessons 01, 02, 06 and 07. Everything here works the same on the
student's function itself (in the notebook) and on the grader's stand-in for it (when
grading, a call sends the arguments to the student's kernel and brings the result back as
data), so a check only *calls* the function and looks at what comes back.

Rules like "must not call ``F.conv2d``" are a static look at the student's code
(:func:`forbidden_name`): the grader cannot watch what runs inside the student's kernel.
"""

from __future__ import annotations

import ast
import numbers
import re
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ._calls import (
    Unanswered,
    describe,
    exception_str,
    fail,
    not_implemented_message,
    shape_str,
    source_of,
    where_str,
)


def forbidden_name(obj: Any, names: Iterable[str]) -> tuple[str, str] | None:
    """(name, line) of the first use of one of ``names`` in the student's code for ``obj``.

    Reads attributes (``F.conv2d``), plain names (``Conv2d``) and strings
    (``getattr(F, "conv2d")``) in the code, not in comments or docstrings. ``None`` when the
    code uses none of them or cannot be read.
    """
    names = set(names)
    source = source_of(obj)
    if not source:
        return None
    text = textwrap.dedent(source)
    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError:  # e.g. an IPython magic in the cell: read it line by line instead
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b")
        for line in lines:
            found = pattern.search(line.split("#", 1)[0])
            if found:
                return found.group(1), line.strip()
        return None
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef |
                                ast.Module)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings):
            name = node.value
        else:
            continue
        if name in names:
            hits.append((node.lineno, name))
    if not hits:
        return None
    lineno, name = min(hits)
    return name, lines[lineno - 1].strip() if lineno <= len(lines) else ""


def reject_names(obj: Any, func: str, names: Iterable[str], rule: str) -> None:
    """Fail if the student's ``func`` uses one of ``names``; ``rule`` says what to do instead."""
    found = forbidden_name(obj, names)
    if found:
        name, line = found
        fail(f"Your {func} uses `{name}` (in `{line[:120]}`): {rule}")


def expect_value_error(what: str, fn: Callable[..., Any], *args: Any, why: str,
                       **kwargs: Any) -> None:
    """Fail unless ``fn(*args, **kwargs)`` raises ValueError; ``why`` says why it should."""
    try:
        value = fn(*args, **kwargs)
    except (KeyboardInterrupt, Unanswered):
        raise
    except ValueError:
        return
    except NotImplementedError as exc:
        fail(not_implemented_message(what, exc))
    except BaseException as exc:  # noqa: BLE001 - any other exception is the wrong one
        fail(f"{what} raised {exception_str(exc)}{where_str(exc)}\nExpected a ValueError "
             f"({why}); raise it yourself: `raise ValueError(\"...\")`.")
    fail(f"{what} returned {describe(value)}; it should raise a ValueError: {why}.")


def expect_tensor(value: Any, what: str, hint: str = "") -> torch.Tensor:
    """Fail unless ``value`` is a tensor; return it as a plain torch.Tensor."""
    if not isinstance(value, torch.Tensor):
        extra = " Did you forget `return`?" if value is None else ""
        fail(f"{what} returned {describe(value)}; expected a tensor.{extra}{hint}")
    return value.as_subclass(torch.Tensor) if type(value) is not torch.Tensor else value


def close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-4) -> bool:
    """Same shape and values within tolerance (compared in float64)."""
    if tuple(got.shape) != tuple(want.shape):
        return False
    if not (got.is_floating_point() or got.is_complex()) and want.is_floating_point():
        got = got.double()
    return bool(torch.allclose(got.detach().double(), want.detach().double(), rtol=rtol,
                               atol=atol))


def max_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.detach().double() - want.detach().double()).abs().max()) \
        if got.numel() else 0.0


def first_match(got: torch.Tensor, candidates: Iterable[tuple[Callable[[], Any], str]],
                **tolerance: float) -> str | None:
    """The reason of the first candidate (a known wrong answer) that ``got`` equals."""
    for make, reason in candidates:
        try:
            wrong = make()
        except Exception:  # noqa: BLE001 - a mistake that cannot happen on these inputs
            continue
        if isinstance(wrong, torch.Tensor) and close(got, wrong, **tolerance):
            return reason
    return None


def expect_number(value: Any, what: str, kind: str = "a number") -> float | int:
    """Fail unless ``value`` is a Python number (not a tensor, not a bool)."""
    if isinstance(value, torch.Tensor):
        fail(f"{what} is a tensor ({describe(value)}); return a Python number (e.g. with "
             "`int(...)` or `.item()`).")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{what} is {describe(value)}; expected {kind}.")
    return value


def same_number(value: float | int, expected: float | int) -> bool:
    return float(value) == float(expected)


def number_mistake(value: float | int, candidates: Iterable[tuple[Any, str]]) -> str | None:
    """The reason of the first candidate value that ``value`` equals."""
    for wrong, reason in candidates:
        if wrong is not None and same_number(value, wrong):
            return reason
    return None


__all__ = ["close", "expect_number", "expect_tensor", "expect_value_error", "first_match",
           "forbidden_name", "max_diff", "number_mistake", "reject_names", "same_number",
           "shape_str"]
