"""What a graded test cell holds: only ``check("item", Name, option=...)`` lines.

The grader's judge runs exactly these calls outside the kernel (``course_utils.grading.judge``)
and ``summary()`` runs them in the notebook; both read the cell with :func:`parse_checks`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class CheckCall:
    item: str
    target: str | None               # the global handed in (None: the literal None)
    options: dict[str, tuple] = field(default_factory=dict)  # name -> ("literal", v) | ("global", n)


class NotJudgeable(ValueError):
    """A graded test cell that holds something other than check(...) lines."""


def _option(node: ast.expr) -> tuple:
    try:
        return ("literal", ast.literal_eval(node))
    except ValueError:
        pass
    if isinstance(node, ast.Name):
        return ("global", node.id)
    raise NotJudgeable(f"option value {ast.unparse(node)!r} is neither a literal nor a name")


def parse_checks(source: str) -> list[CheckCall]:
    """The check(...) calls of a graded test cell; NotJudgeable if it holds anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotJudgeable(f"the cell is not valid Python ({exc.msg})") from None
    calls = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id == "check" and len(call.args) == 2
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)):
            raise NotJudgeable(f"line {stmt.lineno} is not a check(\"item\", Name) call")
        target = call.args[1]
        if isinstance(target, ast.Constant) and target.value is None:
            name = None
        elif isinstance(target, ast.Name):
            name = target.id
        else:
            raise NotJudgeable(f"line {stmt.lineno}: the checked object must be a name")
        options = {}
        for kw in call.keywords:
            if kw.arg is None:
                raise NotJudgeable(f"line {stmt.lineno}: **options are not supported")
            options[kw.arg] = _option(kw.value)
        calls.append(CheckCall(call.args[0].value, name, options))
    if not calls:
        raise NotJudgeable("the cell holds no check(...) call")
    return calls
