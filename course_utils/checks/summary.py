"""``summary()``: how am I doing? Every graded item of a lesson, checked in the student's kernel.

A student runs, in a cell at the end of a lesson::

    from course_utils.checks import summary
    summary()             # or summary("03_resnet")

and sees one line per graded item of that notebook, in notebook order::

    Summary of 03_resnet.ipynb (checked here, without the grader's hidden cases)
      ✓ basic_block           4 pts
      ✗ ex1_plain_cnn         2 pts  PlainCNN(depth=6) has 5 conv layers; ...
      – ex1_cifar_resnet      2 pts  not attempted
      ✎ q1_degradation        2 pts  written answer, graded by hand

✓ / ✗ come from the very checks the grader runs (``course_utils.checks.judge``) on the
student's own objects (the names the graded test cells check, looked up in the caller's
globals), minus the grader's hidden cases: passing here is necessary, not sufficient. ✗
shows the first line of the message the test cell would show. "Not attempted": the name is
not defined yet, is None, or still raises NotImplementedError. Written answers (and code
graded by hand) are listed with their points; one still holding "YOUR ANSWER HERE" in the
saved notebook is not attempted.

Which notebook: the graded cells (their checks and points) are read from the notebook
file. ``summary(notebook=path)`` names it; ``summary("03_resnet")`` looks for
``03_resnet.ipynb`` in the current folder (a kernel's working folder is its notebook's),
then in the course's ``notebooks/03_resnet/``; ``summary()`` asks the kernel which notebook
it runs (JupyterLab tells it: ``__session__`` / ``JPY_SESSION_NAME``), and otherwise takes
the one notebook in the current folder.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path

from ._cells import NotJudgeable, parse_checks

COURSE_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOT_IMPLEMENTED = re.compile(r"not implemented yet|raises NotImplementedError", re.I)
TEXT_STUB = "YOUR ANSWER HERE"
_UNSET = object()


def _find_notebook(lesson: str | None, namespace: dict) -> Path:
    cwd = Path.cwd()
    if lesson:
        name = lesson if lesson.endswith(".ipynb") else f"{lesson}.ipynb"
        stem = name[:-len(".ipynb")]
        for path in (cwd / name, COURSE_NOTEBOOKS / stem / name):
            if path.is_file():
                return path
        raise FileNotFoundError(f"summary({lesson!r}): no {name} in {cwd} or "
                                f"{COURSE_NOTEBOOKS / stem}")
    session = namespace.get("__session__") or os.environ.get("JPY_SESSION_NAME")
    if isinstance(session, str) and session.endswith(".ipynb"):
        for path in (Path(session), cwd / Path(session).name):
            if path.is_file():
                return path
    found = sorted(p for p in cwd.glob("*.ipynb") if not p.name.startswith("."))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError("summary(): could not tell which notebook this is; name the "
                            "lesson, e.g. summary(\"03_resnet\")")


def _check_calls(source: str) -> list[tuple[str, str | None, dict[str, tuple]]] | None:
    """[(item, name checked, {option: ("literal", v) | ("global", name)})], or None when
    the cell holds anything but check(...) lines (the judge's own reading of the cell)."""
    try:
        return [(c.item, c.target, c.options) for c in parse_checks(source)]
    except NotJudgeable:
        return None


def _headline(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _judge_cell(calls, namespace: dict) -> tuple[str, str]:
    """(mark, detail) for one graded test cell: ✓, ✗ + headline, or – not attempted."""
    from . import judge

    for item, name, options in calls:
        obj = namespace.get(name, _UNSET) if name is not None else None
        if obj is _UNSET or obj is None:
            return "–", "not attempted" + (f" ({name} is not defined yet)"
                                            if obj is _UNSET else "")
        values = {key: value if kind == "literal" else namespace.get(value)
                  for key, (kind, value) in options.items()}
        try:
            result = judge(item, obj, **values)
        except Exception as exc:  # noqa: BLE001 - a summary line, never a traceback
            return "✗", f"could not check {item}: {type(exc).__name__}: {exc}"
        if not result.passed:
            text = _headline(result.text)
            if NOT_IMPLEMENTED.search(text):
                return "–", "not attempted"
            return "✗", text
    return "✓", ""


def _points(value: float) -> str:
    text = f"{value:g}"
    return f"{text} pt" + ("" if value == 1 else "s")


def summary_lines(lesson: str | None = None, *, notebook: str | os.PathLike | None = None,
                  namespace: dict | None = None) -> list[str]:
    """The lines ``summary`` prints."""
    if namespace is None:
        namespace = inspect.currentframe().f_back.f_globals
    path = Path(notebook) if notebook is not None else _find_notebook(lesson, namespace)
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    rows, passed, checked, missing, by_hand = [], 0.0, 0.0, 0, 0.0
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        points = float(meta.get("points") or 0)
        source = "".join(cell.get("source", ""))
        label = meta.get("grade_id", "?")
        if meta.get("solution"):
            by_hand += points
            if source.strip() in ("", TEXT_STUB):
                rows.append(("–", label, points, "not attempted (written answer, graded by hand)"))
                missing += 1
            else:
                rows.append(("✎", label, points, "written answer, graded by hand"))
            continue
        calls = _check_calls(source)
        if calls is None:
            rows.append(("?", label, points, "not a check(...) cell: run it to see"))
            continue
        label = " + ".join(item for item, _, _ in calls)
        mark, detail = _judge_cell(calls, namespace)
        checked += points
        passed += points if mark == "✓" else 0
        missing += mark == "–"
        rows.append((mark, label, points, detail))
    width = max((len(label) for _, label, _, _ in rows), default=10)
    lines = [f"Summary of {path.name} (checked here, without the grader's hidden cases)"]
    for mark, label, points, detail in rows:
        lines.append(f"  {mark} {label:<{width}}  {_points(points):>7}"
                     + (f"  {detail}" if detail else ""))
    lines.append(f"Checked here: {passed:g} of {_points(checked)} pass"
                 + (f"; {missing} item{'s' * (missing != 1)} not attempted" if missing else "")
                 + (f"; {_points(by_hand)} graded by hand" if by_hand else "") + ".")
    return lines


def summary(lesson: str | None = None, *, notebook: str | os.PathLike | None = None,
            namespace: dict | None = None) -> None:
    """Print every graded item of this lesson: ✓, ✗ with the mistake, or not attempted."""
    if namespace is None:
        namespace = inspect.currentframe().f_back.f_globals
    print("\n".join(summary_lines(lesson, notebook=notebook, namespace=namespace)))
