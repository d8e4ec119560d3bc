"""One checker, two backends: the judge's verdict on a mirror equals the notebook's verdict.

Every object of the checker corpora (correct answers and known mistakes) is defined in a real
kernel, judged there by the grader's judge over the oracle protocol, and judged here by the
notebook's ``check`` on the object itself: same pass/fail, same words.
"""

from __future__ import annotations

import sys
from pathlib import Path

import checks_corpus
import nbformat
import pytest
import test_checks_basic_block as bb
import test_checks_se_block as se
from jupyter_client.manager import KernelManager

from course_utils.checks import judge
from course_utils.grading.judge import KernelChannel, judge_cell

TESTS = Path(__file__).resolve().parent

CASES = [(item, f"checks_corpus.SOLUTIONS[{item!r}]", obj)
         for item, obj in checks_corpus.SOLUTIONS.items()]
CASES += [("basic_block", f"test_checks_basic_block.BUGGY[{k!r}][0]", v[0])
          for k, v in bb.BUGGY.items()]
CASES += [("se_block", f"test_checks_se_block.BUGGY[{k!r}][0]", v[0]) for k, v in se.BUGGY.items()]
CASES += [("se_block", f"test_checks_se_block.CORRECT[{i}]", c) for i, c in enumerate(se.CORRECT)]
CASES += [("basic_block", "test_checks_basic_block.NoBatchNorm", bb.NoBatchNorm)]
# The exercise corpus: every correct style and every named mistake of lessons 03-05.
CASES += [(item, f"checks_corpus.CORRECT[{item!r}][{i}]", obj)
          for item, answers in checks_corpus.CORRECT.items() for i, obj in enumerate(answers)
          if obj is not checks_corpus.SOLUTIONS.get(item)]
CASES += [(item, f"checks_corpus.WRONG[{item!r}][{name!r}][0]", case[0])
          for item, cases in checks_corpus.WRONG.items() for name, case in cases.items()]


@pytest.fixture(scope="module")
def kernel():
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    reply = kc.execute_interactive(
        f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "import checks_corpus, test_checks_basic_block, test_checks_se_block", timeout=120)
    assert reply["content"]["status"] == "ok"
    yield kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def _remote(kc, item: str, expression: str) -> tuple[bool, str]:
    reply = kc.execute_interactive(f"SUBJECT = {expression}", timeout=60)
    assert reply["content"]["status"] == "ok"
    cells = [nbformat.v4.new_code_cell("SUBJECT = ..."),
             nbformat.v4.new_code_cell(f"check({item!r}, SUBJECT)")]
    (verdict,) = judge_cell(cells, 1, KernelChannel(kc, timeout=60))
    return verdict.passed, verdict.text, verdict.mistake


@pytest.mark.parametrize("item,expression,obj", CASES, ids=[c[1] for c in CASES])
def test_judge_equals_notebook_check(kernel, item, expression, obj):
    assert _remote(kernel, item, expression) == judge(item, obj)


def test_sys_path_untouched():
    assert str(TESTS) in sys.path  # the corpora import from tests/ (conftest rootdir)
