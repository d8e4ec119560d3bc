"""Autograding a class: exact points for correct, empty, mistaken and hostile submissions.

A small assignment ("mini": the BasicBlock exercise of lesson 03 and one tiny function) keeps
this fast; every submission really runs through nbgrader autograde in the bubblewrap sandbox.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mini_course import BLOCK_POINTS, COUNT_POINTS, new_mini_course
from nbgrader.api import Gradebook

from course_utils.grading import demo
from course_utils.grading.runner import alembic_head, format_table, grade_class

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None,
                       reason="bubblewrap is not installed (make system-deps installs it)"),
]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = new_mini_course(tmp_path_factory.mktemp("course"))
    demo.save_submission(course, "correct", "mini", demo.filled("mini", course_dir=course))
    demo.save_submission(course, "empty", "mini", demo.student_copy("mini", course))
    mistake = demo.filled("mini", course_dir=course)
    demo.cell_defining(mistake, "BasicBlock").source = demo.BASIC_BLOCK_RELU_BEFORE_ADD
    demo.save_submission(course, "relu_before_add", "mini", mistake)
    demo.add_hostile_students(course, "mini")
    return course


@pytest.fixture(scope="module")
def graded(course):
    protected = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in [
        ROOT / "course_utils" / "checks" / "__init__.py",
        course / "solutions" / "mini" / "mini.ipynb",
        course / "submitted" / "correct" / "mini" / "mini.ipynb",
    ]}
    report = grade_class(course, workers=2, cell_timeout=15, log=lambda line: None)
    return report, protected


def _scores(course: Path) -> dict[str, dict[str, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {sub.student.id: {g.name: g.auto_score for g in sub.notebooks[0].grades
                                 if g.cell.cell_type == "code"}
                for sub in gb.find_assignment("mini").submissions}


FULL = {"basic_block_check": BLOCK_POINTS, "count_check": COUNT_POINTS}
BLOCK_WRONG = {"basic_block_check": 0, "count_check": COUNT_POINTS}
EXPECTED = {
    "correct": FULL,
    "empty": {"basic_block_check": 0, "count_check": 0},
    "relu_before_add": BLOCK_WRONG,
    # The emptied check is restored from the source and fails the buggy block; the deleted
    # one cannot be run, so nbgrader records no auto score (0 points, left to manual grading).
    "h1_edited_tests": {"basic_block_check": 0, "count_check": None},
    "h2_infinite_loop": FULL,             # both runaway cells interrupted, the rest graded
    "h3_memory_bomb": FULL,               # MemoryError in the sandbox, grading goes on
    "h4_monkeypatch": BLOCK_WRONG,        # patched checker/torch: still graded on behaviour
    "h5_vandal": FULL,                    # every write outside its folder fails
    "h6_exits": FULL,                     # sys.exit, os._exit, SIGKILL: kernel restarted
    "h7_torchvision_passoff": BLOCK_WRONG,  # torchvision's block is not the student's work
    "h8_output_flood": FULL,              # output capped, grading unaffected
    "h9_syntax_error": BLOCK_WRONG,       # only the broken cell's item is lost
    "h9_invalid_json": {"basic_block_check": 0, "count_check": 0},
    # Attacks on the verdict itself, each with a block that has no skip connection: the judge
    # decides outside the kernel, so the block is graded as what it computes.
    "j1_rebinds_check": BLOCK_WRONG,
    "j2_input_transformer": BLOCK_WRONG,
    "j3_patched_builtins": BLOCK_WRONG,   # the kernel freezes, is replaced; the rest graded
    "j4_forged_oracle": BLOCK_WRONG,
    "j5_hidden_torchvision": BLOCK_WRONG,  # importlib hides it from the source, not the class
}


def test_every_submission_gets_exact_points(course, graded):
    report, _ = graded
    assert {r.student for r in report.graded} == set(EXPECTED)
    assert _scores(course) == EXPECTED, format_table(report.scores)


def test_hostile_acts_left_no_trace(course, graded):
    _, protected = graded
    for path, digest in protected.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} was modified"
    assert not (course / "pwned.txt").exists()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert len(gb.students) == len(EXPECTED)


def test_feedback_names_the_mistake_and_the_reasons(course, graded):
    feedback = course / "feedback"
    relu = (feedback / "relu_before_add" / "mini" / "mini.html").read_text()
    assert "before the addition" in relu
    dead = (feedback / "h6_exits" / "mini" / "mini.html").read_text()
    assert "ended the Python process" in dead
    invalid = (feedback / "h9_invalid_json" / "mini" / "mini.html").read_text()
    assert "could not read your submission" in invalid
    passoff = (feedback / "h7_torchvision_passoff" / "mini" / "mini.html").read_text()
    assert "torchvision" in passoff
    vandal = html.unescape((feedback / "h5_vandal" / "mini" / "mini.html").read_text())
    for act in ("append to the checker", "delete the solutions", "overwrite the gradebook",
                "delete another student's work", "read the reference solutions"):
        assert f"{act} -> blocked" in vandal
    # (Its file "in the course" lands in the sandbox's private /tmp, where this test's course
    # lies, and vanishes with it: test_hostile_acts_left_no_trace.)
    # Patched checker, torch and IPython's error display: the judge's verdict stands.
    patched = html.unescape((feedback / "h4_monkeypatch" / "mini" / "mini.html").read_text())
    assert "there is no skip connection" in patched
    for student in ("j1_rebinds_check", "j2_input_transformer", "j4_forged_oracle"):
        text = html.unescape((feedback / student / "mini" / "mini.html").read_text())
        assert "does not behave like torchvision's BasicBlock" in text, student
    hidden = html.unescape((feedback / "j5_hidden_torchvision" / "mini" / "mini.html").read_text())
    assert "subclasses torchvision.models.resnet.BasicBlock" in hidden
    assert "found by reading your code" in passoff  # the plain import: the static scan


def test_output_flood_is_capped(course, graded):
    size = (course / "autograded" / "h8_output_flood" / "mini" / "mini.ipynb").stat().st_size
    assert size < 2_000_000
    flood = (course / "feedback" / "h8_output_flood" / "mini" / "mini.html").read_text()
    assert "output truncated by the grader" in flood


def test_grades_csv(course, graded):
    rows = (course / "grades.csv").read_text().splitlines()
    header = rows[0].split(",")
    by_student = {r.split(",")[header.index("student_id")]: r.split(",") for r in rows[1:]}
    assert float(by_student["correct"][header.index("score")]) == BLOCK_POINTS + COUNT_POINTS
    assert float(by_student["empty"][header.index("score")]) == 0


def test_rerun_is_idempotent_and_regrades_only_changes(course, graded):
    before = _scores(course)
    report = grade_class(course, workers=2, cell_timeout=15, log=lambda line: None)
    assert report.graded == [] and len(report.skipped) == len(EXPECTED)
    assert _scores(course) == before
    # The empty student finishes the work: only that submission is graded again.
    demo.save_submission(course, "empty", "mini", demo.filled("mini", course_dir=course))
    report = grade_class(course, workers=2, cell_timeout=15, log=lambda line: None)
    assert [r.student for r in report.graded] == ["empty"]
    assert _scores(course)["empty"] == FULL


def test_manual_grades_survive_a_regrade_and_count(course, graded):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("why", "mini", "mini", "correct")
        grade.manual_score = 1
        gb.db.commit()
    report = grade_class(course, workers=1, students=["correct"], force=True, cell_timeout=15,
                         log=lambda line: None)
    assert [r.student for r in report.graded] == ["correct"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_grade("why", "mini", "mini", "correct").manual_score == 1
        assert gb.find_submission("mini", "correct").score == BLOCK_POINTS + COUNT_POINTS + 1


def test_dask_local_cluster_gives_the_same_points(course, graded, tmp_path):
    small = tmp_path / "course"
    shutil.copytree(course, small, ignore=shutil.ignore_patterns(
        "autograded", "feedback", "gradebook.db", ".grading_state.json", "grades.csv"))
    for student in list((small / "submitted").iterdir()):
        if student.name not in ("correct", "relu_before_add"):
            shutil.rmtree(student)
    grade_class(small, workers=2, scheduler="local", cell_timeout=15, log=lambda line: None)
    scores = _scores(small)
    assert scores == {s: EXPECTED[s] for s in ("correct", "relu_before_add")}


def test_cli_reports_bad_input_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "grade", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 101  # the command could not run (not a count of submissions)
    assert proc.stderr.strip().startswith("error: no submissions:")
    assert "Traceback" not in proc.stderr


def test_new_gradebooks_record_the_schema_version_the_alembic_command_reports(monkeypatch):
    """The grader reads nbgrader's schema head from its migration scripts instead of
    starting the `alembic` command for every new gradebook: both must agree."""
    import nbgrader.api

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=":")
    assert alembic_head() == nbgrader.api.get_alembic_version()
