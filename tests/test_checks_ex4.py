"""Exercise 4 (lesson 05): efficiency_table and best_accuracy_per_parameter, against the corpus.

The table's wrong answers in tests/checks_corpus.py reuse one cached thop profile per model, so
the corpus stays fast; every correct answer passes, every wrong one fails with its mistake's id
and phrases.
"""

import copy

import checks_corpus as corpus
import pytest
from checks_corpus import best_accuracy_per_parameter, efficiency_table

from course_utils.checks import check, judge
from course_utils.checks.ex4 import NAMES, exact_macs, reference_params

ITEMS = ("ex4_efficiency_table", "ex4_best")
CORRECT = [(item, i) for item in ITEMS for i in range(len(corpus.CORRECT[item]))]
WRONG = [(item, name) for item in ITEMS for name in corpus.WRONG[item]]


@pytest.fixture(scope="module")
def rows():
    """The real table, computed once by the corpus solution (thop MACs)."""
    return efficiency_table(list(NAMES))


@pytest.mark.parametrize("item,index", CORRECT, ids=[f"{i}-{k}" for i, k in CORRECT])
def test_correct_answers_pass(item, index):
    result = judge(item, corpus.CORRECT[item][index])
    assert result.passed, result.text


@pytest.mark.parametrize("item,name", WRONG, ids=[f"{i}-{n}" for i, n in WRONG])
def test_wrong_answers_are_named(item, name):
    answer, key, phrases = corpus.WRONG[item][name]
    result = judge(item, answer)
    assert not result.passed, f"{item}: {name} passed"
    assert result.mistake == f"{item}.{key}", result.text
    for phrase in phrases:
        assert phrase in result.text, result.text


def test_full_check_calls_the_function(capsys):
    check("ex4_efficiency_table", efficiency_table)
    out = capsys.readouterr().out
    assert "params (int), MACs" in out and "mobilenet_v2 at input_size=192" in out
    assert "convnext_tiny at input_size=32" in out


def test_exact_counter_and_seed_top1_accepted(capsys):
    """MACs from FlopCounterMode and top-1 from the seed lesson's table are right too."""
    seed = {"vgg16": 71.5, "resnet50": 76.0, "efficientnet_b0": 77.1}
    rows = corpus.efficiency_table_exact(list(NAMES))
    for row in rows:
        row["top1"] = seed[row["name"]]
        row["top1_per_mparam"] = row["top1"] / (row["params"] / 1e6)
    check("ex4_efficiency_table", corpus.efficiency_table_exact, rows=rows)
    assert capsys.readouterr().out.startswith("✓")


def test_rows_passed_in_are_judged(rows):
    table = copy.deepcopy(rows)
    table[0]["params"] = float(table[0]["params"])
    result = judge("ex4_efficiency_table", efficiency_table, rows=table)
    assert result.mistake == "ex4_efficiency_table.float_params", result.text
    assert "the rows you passed (rows=...)" in result.text
    assert judge("ex4_efficiency_table", efficiency_table, rows=rows[:2]).mistake == \
        "ex4_efficiency_table.wrong_rows"


def test_best_most_parameters_is_not_called_min_instead_of_max():
    result = judge("ex4_best", corpus.best_most_params)
    assert "min instead of max" not in result.text and "the most parameters" in result.text
    assert judge("ex4_best", corpus.best_min_ratio).mistake == "ex4_best.min_ratio"


def test_best(capsys):
    check("ex4_best", best_accuracy_per_parameter)
    assert "efficientnet_b0 on the real table" in capsys.readouterr().out


def test_references_come_from_torchvision():
    assert reference_params("vgg16") == 138_357_544  # REFERENCE.md
    assert exact_macs("resnet50", 224) == pytest.approx(4.089e9)
