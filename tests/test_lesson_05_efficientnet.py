"""Lesson 05: the cells that GRADE mode shortens (eleven-model comparison, thop vs exact counts,
timings) hold assertions too — run them once in QUICK mode, at full size, so they cannot rot."""

import pytest

LESSON = "05_efficientnet"

# Lines the notebook prints only after its assertions passed.
VERIFIED = [
    "formulas == profile_model's counts for every layer above",
    "MobileNetV2: 3,504,872 parameters",
    "EfficientNet-B0: 5,288,548 parameters",
    "outputs equal torchvision's MBConv in eval and in (seeded) train mode",
    "our builder with the released width/depth has exactly torchvision's parameters for B0–B7",
    "for all 11 models",
    "ConvNeXt-T: thop misses 9,696 parameters",
    "the gap is fully accounted for",
]


@pytest.mark.slow
def test_quick_mode_runs_every_cell_and_verifies_its_claims(executed_notebook):
    run = executed_notebook(LESSON, "quick")
    assert run.errors() == []
    printed = run.text()
    missing = [line for line in VERIFIED if line not in printed]
    assert not missing, missing
    # thop's ViT-B/16 figures, as the lesson states them, next to the exact ones
    assert "| GMACs | 11.286 | 17.564 |" in printed
    assert "| params | 58,067,176 | 86,567,656 |" in printed
