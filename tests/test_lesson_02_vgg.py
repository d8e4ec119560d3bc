"""Lesson 02's experiments show, in QUICK mode, what its prose concludes from them."""

import re

import pytest
from notebook_tools import output_text

LESSON = "02_vgg"
CHANCE = 0.10  # ten classes


def _cell(run, cell_id):
    return next(c for c in run.nb.cells if c.get("id") == cell_id)


@pytest.fixture(scope="module")
def quick_run(executed_notebook):
    run = executed_notebook(LESSON, "quick")
    assert run.errors() == [], f"{LESSON} (QUICK) raised in cells {run.errors()}"
    return run


def test_batchnorm_beats_no_batchnorm_and_both_learn(quick_run):
    text = output_text(_cell(quick_run, "fa162032"))
    found = dict(re.findall(r"(SmallVGG(?: \+ BN)?)\s+final train loss [\d.]+\s+test accuracy "
                            r"([\d.]+)%", text))
    assert set(found) == {"SmallVGG", "SmallVGG + BN"}, text
    plain, with_bn = float(found["SmallVGG"]) / 100, float(found["SmallVGG + BN"]) / 100
    assert plain > CHANCE + 0.05, f"the net without BN never left chance: {plain:.1%}"
    assert with_bn - plain >= 0.10, f"BN {with_bn:.1%} vs no BN {plain:.1%}: under 10 points"


def test_the_proof_runs_and_catches_the_wrong_pooling(quick_run):
    assert "VGG16: same parameter count, strict load, max |logit difference| = 0.0e+00" in (
        output_text(_cell(quick_run, "1699100f")))
    assert re.search(r"^vgg16_bn\s+138,365,992 parameters", output_text(
        _cell(quick_run, "proof-helper")), re.M)
    assert "yet: outputs differ: max |ours − theirs|" in output_text(_cell(quick_run, "4656b4be"))
