"""The instructor's round trip on a real lesson (03_resnet), as README "For instructors" shows it.

`nbgrader validate` passes the solution and fails the student copy; the demo class's correct,
partial, empty and mistaken submissions are autograded in the sandbox to exact points;
manual grades of the written answers complete the total; the feedback shows the checker's
messages; the CSV export holds every student. (Hostile submissions: tests/test_grading.py.)
"""

from __future__ import annotations

import csv
import html
import re
import shutil
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from notebook_tools import run_nbgrader

from course_utils.grading import demo
from course_utils.grading.runner import format_table, grade_class

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None,
                       reason="bubblewrap is not installed (make system-deps installs it)"),
]
LESSON = "03_resnet"
STUDENTS = ("alice_correct", "bob_partial", "carol_empty", "m1_relu_before_add")

# Autograded items of 03_resnet and their points, as set in the solution notebook.
FULL = {"basic_block_test": 4, "ex1_plain_cnn_test": 2, "ex1_cifar_resnet_test": 2,
        "ex1_grad_norm_test": 2, "ex2_small_resnet_test": 3, "ex2_count_parameters_test": 1}
EXPECTED = {
    "alice_correct": FULL,
    "carol_empty": dict.fromkeys(FULL, 0),
    # Answers 1, 3, 5, ... filled in: BasicBlock, PlainCNN, first_layer_grad_norm, SmallResNet.
    "bob_partial": {**FULL, "ex1_cifar_resnet_test": 0, "ex2_count_parameters_test": 0},
    # The buggy block also makes CifarResNet and SmallResNet (built from it) wrong; the checks
    # say so.
    "m1_relu_before_add": {**FULL, "basic_block_test": 0, "ex1_cifar_resnet_test": 0,
                           "ex2_small_resnet_test": 0},
}
WRITTEN = {"q1_degradation": 2, "q2_gradient_paths": 2, "q3_family_table": 2,
           "ex1_explanation": 3, "ex2_parameters_question": 1}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("class") / "course"
    demo.build_class(course, lessons=[LESSON], hostile_lesson=None)
    grade_class(course, workers=2, assignments=[LESSON], log=lambda line: None)
    return course


def _auto_scores(course: Path) -> dict[str, dict[str, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {sub.student.id: {g.name: g.auto_score for g in sub.notebooks[0].grades
                                 if g.cell.cell_type == "code"}
                for sub in gb.find_assignment(LESSON).submissions}


def _text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_validate_passes_the_solution_and_fails_the_student_copy(course):
    solution = run_nbgrader(course, "validate", f"solutions/{LESSON}/{LESSON}.ipynb")
    assert "Success! Your notebook passes all the tests." in solution.stdout, solution.stdout
    student = run_nbgrader(course, "validate", f"notebooks/{LESSON}/{LESSON}.ipynb")
    # Every graded item fails in the blank copy: the autograded tests and the written answers.
    failed = re.search(r"VALIDATION FAILED ON (\d+) CELL", student.stdout)
    assert failed and int(failed.group(1)) == len(FULL) + len(WRITTEN), student.stdout[-2000:]


def test_points_per_item_match_the_solution_notebook(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        cells = {c.name: c.max_score for c in gb.find_notebook(LESSON, LESSON).grade_cells}
    assert cells == {**FULL, **WRITTEN}
    assert sum(cells.values()) == 24


def test_every_submission_gets_exact_points(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {sub.student.id: (sub.score, sub.max_score)
                  for sub in gb.find_assignment(LESSON).submissions}
    assert _auto_scores(course) == EXPECTED, format_table(scores)


def test_feedback_shows_the_checkers_messages(course):
    feedback = course / "feedback"
    correct = _text(feedback / "alice_correct" / LESSON / f"{LESSON}.html")
    assert correct.count("✓") >= len(FULL)
    mistaken = _text(feedback / "m1_relu_before_add" / LESSON / f"{LESSON}.html")
    assert "the ReLU comes before the addition" in mistaken
    assert "SmallResNet()'s block" in mistaken  # the follow-on loss says where and why


def test_csv_export_lists_every_student(course):
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(STUDENTS)
    for student, items in EXPECTED.items():
        assert float(rows[student]["score"]) == sum(items.values())
        assert float(rows[student]["max_score"]) == 24


def test_manual_grades_complete_the_total_and_survive_regrading(course):
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(db_url) as gb:
        alice = gb.find_submission(LESSON, "alice_correct")
        # Only the written answers wait for the instructor; the autograded items do not.
        assert {g.name for g in alice.notebooks[0].grades if g.needs_manual_grade} == set(WRITTEN)
        for name, points in WRITTEN.items():  # what the formgrader's grade API records
            grade = gb.find_grade(name, LESSON, LESSON, "alice_correct")
            grade.manual_score, grade.needs_manual_grade = points, False
        gb.db.commit()
        assert (alice.score, alice.needs_manual_grade) == (24, False)
    grade_class(course, workers=1, assignments=[LESSON], students=["alice_correct"],
                force=True, log=lambda line: None)
    with Gradebook(db_url) as gb:
        alice = gb.find_submission(LESSON, "alice_correct")
        # The manual scores stay; as in nbgrader, a regrade flags them for another look.
        assert alice.score == 24
        assert {g.name for g in alice.notebooks[0].grades if g.needs_manual_grade} == set(WRITTEN)
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert float(rows["alice_correct"]["score"]) == 24


def test_a_correct_lesson_05_gets_full_points_with_two_torch_threads(tmp_path, monkeypatch):
    """Lesson 05 builds VGG16 for its efficiency table: in GRADE mode its kernel peaks at
    6.1 GiB of address space with two torch threads (one worker on 2 cores). The sandbox's
    default cap must leave room for a correct submission."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    lesson = "05_efficientnet"
    course = tmp_path / "course"
    demo.new_course(course)
    demo.save_submission(course, "alice_correct", lesson, demo.filled(lesson, course_dir=course))
    grade_class(course, workers=1, assignments=[lesson], log=lambda line: None)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = {g.name: (g.auto_score, g.max_score)
                  for g in gb.find_submission_notebook(lesson, lesson, "alice_correct").grades
                  if g.cell.cell_type == "code"}
    assert grades == {"ex4_efficiency_table_test": (3.0, 3.0), "ex4_best_test": (1.0, 1.0)}
