"""The class report, the similarity check, the LMS export, the progress bar and the student's
summary.

A small class of the mini assignment (tests/mini_course.py) is graded for real (nbgrader +
the judge, 2 workers); every student's answer is known, so every count is exact:

| student         | BasicBlock (5 pts)                       | count_parameters (1) |
|-----------------|------------------------------------------|----------------------|
| ana             | the reference solution                   | ✓ |
| ben, chloe      | correct, each in a style of their own    | ✓ |
| dan (late)      | correct, with a helper and a ModuleList  | ✓ |
| eve             | dan's answer, names changed, methods reordered (copied) | ✓ |
| finn            | ReLU before the addition                 | counts frozen parameters |
| gus             | no skip connection                       | ✓ |
| hugo            | ReLU before the addition (another style) | ✓ |
| ivy <b>&        | the student copy (nothing attempted)     | not attempted |
| zoe_absent      | in the gradebook, handed in nothing      | |

ana alone hands in the second assignment (mini2), so everyone else misses it.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
from mini_course import BASIC_BLOCK, mini_assignment, new_mini_course
from nbclient import NotebookClient
from nbgrader.api import Gradebook
from notebook_tools import run_nbgrader
from torch import nn

from course_utils.checks import summary
from course_utils.checks.summary import summary_lines
from course_utils.grading import demo
from course_utils.grading.export import export_lms
from course_utils.grading.report import NOT_ATTEMPTED, summary_text, write_report
from course_utils.grading.runner import Progress, grade_class
from course_utils.grading.similarity import Answer, release_boilerplate, similar_pairs

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "report"
CHROMIUM = Path("/usr/bin/chromium")
REFERENCE = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "", BASIC_BLOCK, flags=re.M)
ODD = "ivy <b>&"   # any folder name is a student id: the HTML and the CSVs must cope
BLOCKS = {
    "ana": None,  # the reference solution (demo.filled)
    "ben": demo.BASIC_BLOCK_SEQUENTIAL,
    "chloe": demo.BASIC_BLOCK_DOWNSAMPLE,
    "dan": demo.BASIC_BLOCK_ORIGINAL,
    "eve": demo.BASIC_BLOCK_COPIED,
    "finn": demo.BASIC_BLOCK_RELU_FIRST,
    "gus": demo.BASIC_BLOCK_PLAIN,
    "hugo": demo.BASIC_BLOCK_RELU_IN_DICT,
}
DUE = datetime.datetime(2026, 1, 10, 12, 0)


# --- similarity, on the answers alone (fast) ---------------------------------------------

def test_copied_answer_is_flagged_and_independent_ones_are_not():
    answers = [Answer("ana", REFERENCE)] + [Answer(s, src) for s, src in BLOCKS.items() if src]
    flagged, compared = similar_pairs("mini", "basic_block_answer", answers,
                                      release_boilerplate(BASIC_BLOCK))
    assert [(p.a, p.b) for p in flagged] == [("dan", "eve")]
    copied = flagged[0]
    honest = max((p for p in compared if {p.a, p.b} != {"dan", "eve"}),
                 key=lambda p: p.similarity)
    print(f"\ncopied pair dan ~ eve: {copied.similarity_a:.3f} / {copied.similarity_b:.3f}; "
          f"highest other pair {honest.a} ~ {honest.b}: {honest.similarity:.3f}")
    assert copied.similarity > 0.9 and honest.similarity < 0.3
    assert len(compared) == 28  # 8 answers, every pair long enough to compare
    # The side-by-side view marks dan's helper, copied under another name.
    marked = [line for line, copied_line in copied.lines_a if copied_line]
    assert "    def conv_bn(cin, cout, k, s):" in marked


def test_code_most_of_the_class_shares_is_not_evidence():
    # 12 students hand in the same long answer (the obvious one, or a leaked one): the
    # shared fingerprints are discounted as common, as MOSS's -m does.
    answers = [Answer(f"s{i:02d}", demo.BASIC_BLOCK_SEQUENTIAL) for i in range(12)]
    assert similar_pairs("a", "c", answers, release_boilerplate(BASIC_BLOCK))[0] == []
    # ... but two of them are a pair.
    assert len(similar_pairs("a", "c", answers[:2], release_boilerplate(BASIC_BLOCK))[0]) == 1
    # A one-line answer is too short to tell copying from the only sensible answer.
    one_liner = "def count_parameters(model):\n    return sum(p.numel() for p in " \
                "model.parameters() if p.requires_grad)\n"
    assert similar_pairs("a", "c", [Answer("x", one_liner), Answer("y", one_liner)]) == ([], [])


# --- the progress bar (fast) ---------------------------------------------------------------

def test_progress_bar_keeps_the_per_submission_lines_whole():
    screen = io.StringIO()  # stdout and stderr of one terminal
    bar = Progress(3, True, lambda line: screen.write(line + "\n"), file=screen)
    for i in range(3):
        bar.advance()
        bar.log(f"  student{i}   mini   graded   1.0 s")
    bar.close()
    text = screen.getvalue()
    for i in range(3):  # each line whole, on a line of its own
        assert re.search(rf"(^|[\r\n])  student{i}   mini   graded   1.0 s\n", text)
    final = text.rsplit("\r", 1)[-1]
    assert re.match(r"grading: 3/3 \|.*\| \[00:00<00:00, .*submissions/s\]", final), final
    # Under pytest (or with no terminal) the bar is off and lines go straight to log.
    lines = []
    quiet = Progress(3, None, lines.append)
    quiet.log("x")
    assert quiet.bar is None and lines == ["x"]


# --- the student's summary ----------------------------------------------------------------

def _partial_namespace() -> dict:
    namespace = {"torch": torch, "nn": nn}
    exec(demo.BASIC_BLOCK_RELU_FIRST, namespace)  # a mistake; count_parameters not written
    return namespace


HEAD = "Summary of mini.ipynb (checked here, without the grader's hidden cases)"
RELU_LINE = ("  ✗ basic_block             5 pts  BasicBlock(64, 64, stride=1)(x) does not behave "
             "like torchvision's BasicBlock: the ReLU comes before the addition "
             "(relu(bn2(conv2(out))) + identity) instead of after it.")


def test_summary_of_a_partial_submission(tmp_path):
    path = tmp_path / "mini.ipynb"
    nbformat.write(mini_assignment(), path)
    namespace = _partial_namespace()
    assert summary_lines(notebook=path, namespace=namespace) == [
        HEAD,
        RELU_LINE,
        "  – ex2_count_parameters     1 pt  not attempted (count_parameters is not defined yet)",
        "  ✎ why                      1 pt  written answer, graded by hand",
        "Checked here: 0 of 6 pts pass; 1 item not attempted; 1 pt graded by hand.",
    ]
    # The stub still raising NotImplementedError is "not attempted" too; a right answer is ✓.
    exec("def count_parameters(model):\n    raise NotImplementedError()", namespace)
    exec(demo.BASIC_BLOCK_SEQUENTIAL, namespace)
    assert summary_lines(notebook=path, namespace=namespace)[1:3] == [
        "  ✓ basic_block             5 pts",
        "  – ex2_count_parameters     1 pt  not attempted",
    ]


def test_summary_in_the_students_kernel(tmp_path):
    """summary() with no argument, as the last cell of the student's own notebook."""
    course = new_mini_course(tmp_path / "course")
    nb = nbformat.read(course / "notebooks" / "mini" / "mini.ipynb", as_version=4)
    demo.cell_defining(nb, "BasicBlock").source = demo.BASIC_BLOCK_RELU_FIRST
    nb.cells.append(nbformat.v4.new_code_cell("from course_utils.checks import summary\n"
                                              "summary()"))
    work = tmp_path / "student"
    work.mkdir()
    nbformat.write(nb, work / "mini.ipynb")
    # Answer cells that still raise NotImplementedError stop a plain run: keep going.
    NotebookClient(nb, kernel_name="cnn-course", timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(work)}}).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                      if o.output_type == "stream")
    assert printed.splitlines() == [
        HEAD,
        RELU_LINE,
        "  – ex2_count_parameters     1 pt  not attempted",
        "  – why                      1 pt  not attempted (written answer, graded by hand)",
        "Checked here: 0 of 6 pts pass; 2 items not attempted; 1 pt graded by hand.",
    ]


def test_summary_needs_to_know_the_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    with pytest.raises(FileNotFoundError, match=r'summary\("03_resnet"\)'):
        summary()
    with pytest.raises(FileNotFoundError, match="no nope.ipynb"):
        summary("nope")


# --- a graded class ------------------------------------------------------------------------

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (make system-deps)")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    started = time.monotonic()
    course = new_mini_course(tmp_path_factory.mktemp("report") / "course")
    shutil.copytree(course / "solutions" / "mini", course / "solutions" / "mini2")
    (course / "solutions" / "mini2" / "mini.ipynb").rename(
        course / "solutions" / "mini2" / "mini2.ipynb")
    proc = run_nbgrader(course, "generate_assignment", "mini2", "--force")
    assert proc.returncode == 0, proc.stderr
    for student, block in BLOCKS.items():
        nb = demo.filled("mini", course_dir=course)
        if block:
            demo.cell_defining(nb, "BasicBlock").source = block
        if student == "finn":
            demo.cell_defining(nb, "count_parameters").source = demo.COUNT_ALL_PARAMETERS
        demo.save_submission(course, student, "mini", nb)
    demo.save_submission(course, ODD, "mini", demo.student_copy("mini", course))
    demo.save_submission(course, "ana", "mini2", demo.filled("mini2", course_dir=course))
    for student, stamp in (("ana", "2026-01-09 10:00:00.000000 UTC"),
                           ("dan", "2026-01-12 14:30:00.000000 UTC")):
        (course / "submitted" / student / "mini" / "timestamp.txt").write_text(stamp)
    report = grade_class(course, workers=2, cell_timeout=15, log=lambda line: None)
    assert not report.attention, report.summary()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment("mini", duedate=DUE)
        gb.add_student("zoe_absent", first_name="Zoë", last_name="Absent",
                       email="zoe@example.org")
        gb.update_or_create_student("ana", first_name="Ana", last_name="Lima",
                                    email="ana@example.org")
    print(f"\ngraded the report class in {time.monotonic() - started:.0f} s")
    return course


@pytest.fixture(scope="module")
def report(course):
    return write_report(course)


MINI_STUDENTS = ["ana", "ben", "chloe", "dan", "eve", "finn", "gus", "hugo", ODD]


@needs_bwrap
def test_item_statistics(report):
    _, data = report
    assert data.students == sorted([*MINI_STUDENTS, "zoe_absent"])
    mini, mini2 = data.assignments
    assert (mini.name, mini.max_score, mini2.name) == ("mini", 7, "mini2")
    assert sorted(mini.work) == sorted(MINI_STUDENTS) and list(mini2.work) == ["ana"]
    block, count, why = mini.cells
    assert (block.name, block.checks, block.max_points) == ("basic_block_check",
                                                            ("basic_block",), 5)
    assert block.scores == {s: 0.0 if s in ("finn", "gus", "hugo", ODD) else 5.0
                            for s in MINI_STUDENTS}
    assert (block.mean, block.median) == (25 / 9, 5)
    assert (block.full_share, block.zero_share) == (5 / 9, 4 / 9)
    assert count.scores == {s: 0.0 if s in ("finn", ODD) else 1.0 for s in MINI_STUDENTS}
    assert (count.full_share, count.zero_share) == (7 / 9, 2 / 9)
    # The written answer: nbgrader scores an untouched one 0 itself; the rest await a person.
    assert (why.kind, why.checks) == ("markdown", ())
    assert why.scores == {ODD: 0.0} and why.awaiting == sorted(set(MINI_STUDENTS) - {ODD})
    assert [c.name for c in mini.most_missed] == ["basic_block_check", "count_check", "why"]


@needs_bwrap
def test_named_mistakes_per_check(report):
    _, data = report
    checks = {(c.assignment, c.item): c for c in data.checks}
    assert set(checks) == {("mini", "basic_block"), ("mini", "ex2_count_parameters"),
                           ("mini2", "basic_block"), ("mini2", "ex2_count_parameters")}
    block = checks[("mini", "basic_block")]
    assert len(block.judged) == 9 and block.passed == {"ana", "ben", "chloe", "dan", "eve"}
    assert [(g.key, g.students) for g in block.groups()] == [
        ("basic_block.relu_before_add", ["finn", "hugo"]),
        ("basic_block.no_skip", ["gus"]),
        (NOT_ATTEMPTED, [ODD]),
    ]
    relu = block.groups()[0]
    assert relu.label == ("BasicBlock(64, 64, stride=1)(x) does not behave like torchvision's "
                          "BasicBlock: the ReLU comes before the addition "
                          "(relu(bn2(conv2(out))) + identity) instead of after it.")
    count = checks[("mini", "ex2_count_parameters")]
    groups = count.groups()
    assert [g.students for g in groups] == [["finn"], [ODD]] and groups[1].key == NOT_ATTEMPTED
    assert "counts frozen parameters" in groups[0].label  # whatever id the checker gives it
    assert [g.key for g in block.mistakes()] == ["basic_block.relu_before_add",
                                                 "basic_block.no_skip"]


@needs_bwrap
def test_students_missing_and_late_work(report):
    _, data = report
    assert data.flags("ana") == []
    assert data.flags("dan") == ["late mini (2 d 2 h)", "missing mini2"]
    assert data.flags("zoe_absent") == ["missing mini", "missing mini2"]
    assert data.flags("ben") == ["missing mini2"]
    assert data.assignments[0].work["dan"].seconds_late == (2 * 24 + 2.5) * 3600


@needs_bwrap
def test_similarity_in_the_report(report):
    _, data = report
    assert [(p.assignment, p.cell, p.items, p.a, p.b) for p in data.pairs] == [
        ("mini", "basic_block_answer", ("basic_block",), "dan", "eve")]
    copied = data.pairs[0]
    honest = max((p for p in data.compared if {p.a, p.b} != {"dan", "eve"}),
                 key=lambda p: p.similarity)
    print(f"\nreport: copied dan ~ eve {copied.similarity_a:.3f} / {copied.similarity_b:.3f}; "
          f"highest honest pair {honest.a} ~ {honest.b} {honest.similarity:.3f}")
    assert copied.similarity > 0.9 and honest.similarity < 0.3


@needs_bwrap
def test_html_is_one_self_contained_file(report):
    path, data = report
    assert path == data.course_dir / "reports" / "index.html"
    text = path.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text)  # nothing fetched
    assert text.count("src='data:image/png;base64,") == 2 + 2  # histograms; charts of mini
    assert ODD not in text and "ivy &lt;b&gt;&amp;" in text
    assert "late mini (2 d 2 h)" in text and "<span class='copy'>" in text


@needs_bwrap
def test_cli_prints_the_summary(course, report):
    proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "report", str(course)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    print("\n" + proc.stdout)
    assert proc.stdout.strip() == (summary_text(report[1]) + f"\n\nreport: {report[0]}").strip()
    assert "  check basic_block: 5 of 9 passed:" in proc.stdout
    assert "      2 × basic_block.relu_before_add (finn, hugo)" in proc.stdout
    assert "  mini / basic_block_answer: dan ~ eve" in proc.stdout


@needs_bwrap
def test_lms_exports(course, report):
    canvas, moodle = export_lms(course)
    rows = list(csv.reader(canvas.open()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "mini", "mini2"]
    assert rows[1] == ["Points Possible", "", "", "", "", "7", "7"]
    by_id = {r[2]: r for r in rows[2:]}
    assert len(by_id) == 10
    assert by_id["ana"] == ["Lima, Ana", "", "ana", "ana@example.org", "", "6", "6"]
    assert by_id["finn"][5:] == ["0", ""]           # 0 points; mini2 not handed in: empty
    assert by_id[ODD][:3] == [ODD, "", ODD]          # quoted as needed, never mangled
    assert by_id["zoe_absent"] == ["Absent, Zoë", "", "zoe_absent", "zoe@example.org", "",
                                   "", ""]
    rows = list(csv.reader(moodle.open()))
    assert rows[0] == ["ID number", "Email address", "First name", "Last name", "mini", "mini2"]
    assert ["dan", "", "", "", "6", ""] in rows and len(rows) == 11


@needs_bwrap
def test_screenshots_of_the_report(report):
    path, _ = report
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (make system-deps installs chromium)")
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(path.as_uri())
        assert page.locator("img").count() == 4
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth)")
        page.screenshot(path=str(ARTIFACTS / "full.png"), full_page=True)
        for section in ("assignments", "mistakes", "students", "similarity"):
            page.locator(f"#{section}").scroll_into_view_if_needed()
            page.evaluate(f"document.getElementById('{section}').scrollIntoView()")
            page.screenshot(path=str(ARTIFACTS / f"{section}.png"))
        browser.close()
    print("\nscreenshots:", *sorted(ARTIFACTS.iterdir()), sep="\n  ")
