"""Lesson 04: the comparisons whose conclusions the prose draws, asserted with a margin on the
QUICK run (the solution notebook, executed once per session by the `executed_notebook` fixture).

Exercise 5 (architecture evolution): every network leaves chance, the final order is
ResNet > VGG > LeNet with room to spare, and the ResNet learns from the first epoch while the
plain VGG stack starts last. Exercise 3: training moves the SE gates well away from the 0.5 a
fresh block gives every channel. The added sections state their counts and savings.
"""

import re

import pytest

LESSON = "04_resnet_variants"


@pytest.fixture(scope="module")
def quick(executed_notebook):
    run = executed_notebook(LESSON, "quick")
    assert run.errors() == [], run.errors()
    return run


def _evolution_table(run) -> dict:
    """{model: (final test acc %, first epoch clearly below chance or None)} from Exercise 5's table."""
    text = run.cell_text("epochs_evolution = pick(")
    rows = {}
    for name in ("LeNetStyle", "VGGStyle", "ResNetStyle"):
        match = re.search(rf"^{name}\s+[\d,]+\s+[\d.]+\s+([\d.]+)%\s+[\d.]+%\s+(\d+|-)\s", text, re.M)
        assert match, f"no table row for {name} in:\n{text}"
        rows[name] = (float(match[1]), None if match[2] == "-" else int(match[2]))
    return rows


def test_exercise5_resnet_beats_vgg_beats_lenet_and_all_leave_chance(quick):
    rows = _evolution_table(quick)
    acc = {name: a for name, (a, _) in rows.items()}
    assert min(acc.values()) >= 30.0, acc  # chance is 10 %
    assert acc["ResNetStyle"] >= acc["VGGStyle"] + 5.0, acc
    assert acc["VGGStyle"] >= acc["LeNetStyle"] + 5.0, acc


def test_exercise5_resnet_learns_first_and_the_plain_vgg_stack_last(quick):
    start = {name: s for name, (_, s) in _evolution_table(quick).items()}
    assert start["ResNetStyle"] == 1, start
    assert start["LeNetStyle"] is not None and start["VGGStyle"] is not None, start
    assert start["ResNetStyle"] < start["LeNetStyle"] < start["VGGStyle"], start


def _gate_stats(text: str, label: str) -> tuple[float, float]:
    match = re.search(rf"gates {label}\s.*?std ([\d.]+),.*?(\d+)% of them further than 0.1 from 0.5", text)
    assert match, f"no gate statistics '{label}' in:\n{text}"
    return float(match[1]), float(match[2])


def test_exercise3_training_spreads_the_se_gates_away_from_one_half(quick):
    text = quick.cell_text("untrained_gates, _ = record_gates(")
    std_before, far_before = _gate_stats(text, "before training")
    std_after, far_after = _gate_stats(text, "after training")
    assert std_before <= 0.07 and far_before <= 12, (std_before, far_before)  # 0.5 ± a little
    assert std_after >= 0.09 and std_after >= 1.5 * std_before, (std_before, std_after)
    assert far_after >= 30 and far_after >= 3 * far_before, (far_before, far_after)


def test_added_sections_state_what_they_compute(quick):
    text = quick.text()
    # Wide ResNet: counts from the course's counter
    assert re.search(r"WRN-28-10\s+12 \(160, 320, 640\)\s+36,479,194\s+5\.24 G", text)
    assert "ResNet-110 (pre-act, k = 1)        54    (16, 32, 64)    1,730,522" in text
    # naive Inception: more channels out than in, and the reductions save MACs
    saving = re.search(r"the reductions save (\d+)% of the MACs", text)
    assert saving and int(saving[1]) >= 50
    assert "naive module 3:  832 → 1280 channels" in text
    # factorised convolutions: same receptive fields (asserted in the cell), fewer weights
    assert "two 3×3 instead of 5×5: 28% fewer weights; 1×7 + 7×1 instead of 7×7: 71% fewer" in text
    assert "Mixed_6b.branch7x7_2: 128 → 128, kernel (1, 7)" in text
