"""One checker, two backends: the judge's verdict on a mirror equals the notebook's verdict.

Every object of the checker corpora (correct answers and known mistakes) is defined in a real
kernel, judged there by the grader's judge over the oracle protocol, and judged here by the
notebook's ``check`` on the object itself: same pass/fail, same words.
"""

from __future__ import annotations

import checks_corpus
import nbformat
import practice_corpus
import pytest
import test_checks_basic_block as bb
import test_checks_se_block as se

from course_utils.checks import judge
from course_utils.grading.judge import KernelChannel, judge_cell

CASES = [(item, f"checks_corpus.SOLUTIONS[{item!r}]", obj)
         for item, obj in checks_corpus.SOLUTIONS.items()]
CASES += [(item, f"practice_corpus.SOLUTIONS[{item!r}]", obj)
          for item, obj in practice_corpus.SOLUTIONS.items()]
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
def corpus_kernel(kernel):
    """conftest's kernel (started in tests/) with the corpora imported by name."""
    kernel.run("import checks_corpus, practice_corpus, test_checks_basic_block, "
               "test_checks_se_block")
    return kernel.client


def _remote(kc, item: str, expression: str) -> tuple[bool, str]:
    reply = kc.execute_interactive(f"SUBJECT = {expression}", timeout=60)
    assert reply["content"]["status"] == "ok"
    cells = [nbformat.v4.new_code_cell("SUBJECT = ..."),
             nbformat.v4.new_code_cell(f"check({item!r}, SUBJECT)")]
    (verdict,) = judge_cell(cells, 1, KernelChannel(kc, timeout=60))
    return verdict.passed, verdict.text, verdict.mistake


@pytest.mark.parametrize("item,expression,obj", CASES, ids=[c[1] for c in CASES])
def test_judge_equals_notebook_check(corpus_kernel, item, expression, obj):
    assert _remote(corpus_kernel, item, expression) == judge(item, obj)
