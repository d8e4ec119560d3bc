"""Every lesson: clean committed notebooks, an exact student copy, and both copies executed.

Solutions must run top to bottom in GRADE mode with every autograded test passing; the student
copies must fail only at the exercises and earn no autograded points.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from notebook_tools import (
    LESSONS,
    ROOT,
    cell_error,
    existing_lessons,
    generate_student_copies,
    is_autograded_test,
    nbgrader_meta,
    solution_path,
    student_path,
)

LESSONS_PRESENT = existing_lessons()
# Errors a blank exercise legitimately causes downstream: the stub raises NotImplementedError,
# a check fails, or a later cell misses a name that the failed cell would have defined.
EXERCISE_ERRORS = {"NotImplementedError", "AssertionError", "NameError"}


def _read(path):
    return nbformat.read(path, as_version=4)


def test_all_seven_lessons_exist():
    missing = [lesson for lesson in LESSONS if not solution_path(lesson).exists()]
    assert not missing, f"missing lessons: {missing}"


@pytest.mark.parametrize("lesson", LESSONS_PRESENT)
@pytest.mark.parametrize("copy", ["solution", "student"])
def test_committed_without_outputs(lesson, copy):
    path = solution_path(lesson) if copy == "solution" else student_path(lesson)
    nb = _read(path)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts"


@pytest.fixture(scope="module")
def generated_copies(tmp_path_factory) -> dict:
    return generate_student_copies(tmp_path_factory.mktemp("generated"))


@pytest.mark.parametrize("lesson", LESSONS_PRESENT)
def test_student_copy_is_what_nbgrader_generates(lesson, generated_copies):
    assert lesson in generated_copies, f"nbgrader generated no student copy of {lesson}"
    generated = json.loads(generated_copies[lesson].read_text())
    committed = json.loads(student_path(lesson).read_text())
    assert committed == generated, (
        f"notebooks/{lesson} is stale: run `make student-notebooks` and commit the result"
    )


@pytest.mark.parametrize("lesson", LESSONS_PRESENT)
def test_student_copy_hides_solutions(lesson):
    text = student_path(lesson).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
        assert marker not in text


@pytest.mark.parametrize("lesson", LESSONS_PRESENT)
def test_notebook_conventions(lesson):
    nb = _read(solution_path(lesson))
    assert nb.metadata["kernelspec"]["name"] == "cnn-course"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "init(" in code[0].source, "the first code cell must call course_utils' init()"
    assert "import course_utils" in code[0].source or "from course_utils" in code[0].source
    for cell in code:
        assert "sys.path" not in cell.source, "no path hacks: course_utils is installed"
    stated = re.search(r"\*\*Total points: (\d+)\*\*", nb.cells[0].source)
    assert stated, "the first cell must state '**Total points: N**'"
    points = sum(nbgrader_meta(c).get("points", 0) for c in nb.cells
                 if nbgrader_meta(c).get("grade"))
    assert int(stated.group(1)) == points
    readme = re.search(rf"^\| {lesson} \| (\d+) \|", (ROOT / "README.md").read_text(), re.M)
    assert readme and int(readme.group(1)) == points, "README's points table is out of date"
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "duplicate nbgrader grade_id"
    index = LESSONS.index(lesson)
    if index + 1 < len(LESSONS):
        nxt = LESSONS[index + 1]
        assert f"../{nxt}/{nxt}.ipynb" in "".join(c.source for c in nb.cells), "link the next lesson"


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_PRESENT)
def test_solution_runs_in_grade_mode(lesson, executed_notebook):
    run = executed_notebook(lesson, "grade")
    assert run.errors() == [], f"{lesson} (solution, GRADE mode) raised in cells {run.errors()}"
    graded = [c for c in run.nb.cells if is_autograded_test(c)]
    assert graded and all(c.execution_count for c in graded), "every graded cell ran"


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_PRESENT)
def test_student_copy_fails_only_at_exercises(lesson, executed_notebook):
    nb = executed_notebook(lesson, "grade", copy="student").nb
    first_exercise = next((i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("solution")),
                          len(nb.cells))
    for i, cell in enumerate(nb.cells):
        err = cell_error(cell)
        if is_autograded_test(cell):
            assert err is not None, f"cell {i} ({nbgrader_meta(cell)['grade_id']}) passes blank"
        elif err is not None:
            assert i >= first_exercise and err["ename"] in EXERCISE_ERRORS, (
                f"cell {i} fails in the student copy with {err['ename']}: {err['evalue']}\n"
                f"{cell.source[:300]}"
            )
