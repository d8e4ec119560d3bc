"""Definitions taken from a solution notebook, so a benchmark runs the lesson's own code.

Only the notebook's imports and the named top-level definitions are executed (no training,
no plots), so `CifarResNet` here is the Exercise 1 reference solution itself, not a copy.
"""

from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {target.id for target in node.targets if isinstance(target, ast.Name)}
    return set()


def load_definitions(lesson: str, names: list[str], helpers: tuple[str, ...] = ()) -> dict:
    """{name: object} for top-level classes, functions and constants of a solution notebook.

    `helpers`: top-level names the definitions may use, run when the notebook defines them.
    """
    path = ROOT / "solutions" / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(path, as_version=4)
    namespace: dict = {"__name__": f"notebook_{lesson}"}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: never a definition we need
            continue
        keep = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                or _defined_names(node) & {*names, *helpers}]
        # One code object per cell: tracebacks then give the right cell and line.
        code = compile(ast.Module(body=keep, type_ignores=[]), f"{path}#cell{index}", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)
    missing = [name for name in names if name not in namespace]
    if missing:
        raise LookupError(f"{path} defines no top-level {', '.join(missing)}")
    return {name: namespace[name] for name in names}


def exercise1_resnet():
    """Lesson 03, Exercise 1: the CifarResNet class (call it with num_blocks=6)."""
    # Older versions of the lesson kept the stage widths and sizes as notebook globals.
    return load_definitions("03_resnet", ["BasicBlock", "CifarResNet"],
                            helpers=("WIDTHS", "stage_sizes"))["CifarResNet"]
