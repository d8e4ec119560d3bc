"""Lesson 05: the section on SqueezeNet, ShuffleNet V2, MobileNetV3 and model hubs, and the
student-facing text.

The new cells run on their own (the imports, the eleven-model counts they extend, then the
section), in QUICK mode; the claims the prose draws from their table are checked on the numbers
the notebook computed.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
import torchvision
from notebook_tools import cell_error, execute, solution_path, student_path

LESSON = "05_efficientnet"


def _notebook_of(cell_ids, tmp_path):
    nb = nbformat.read(solution_path(LESSON), as_version=4)
    by_id = {c.get("id"): c for c in nb.cells}
    nb.cells = [by_id[i] for i in cell_ids]
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json\nprint('RESULTS', json.dumps({'profiles': PROFILES, "
        "'hub': count_parameters(hub_model)}))"))
    path = tmp_path / "section.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lesson05")
    nb = execute(_notebook_of(["l05-001", "l05-035", "l05-more-code", "l05-hub-code"], tmp_path),
                 tmp_path, mode="quick", timeout=300)
    errors = [cell_error(c) for c in nb.cells if cell_error(c)]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return json.loads(text.split("RESULTS", 1)[1])


def test_counts_are_torchvisions(section):
    for name in ("SqueezeNet 1.0", "SqueezeNet 1.1", "ShuffleNet V2 1.0×", "MobileNetV3-Small",
                 "MobileNetV3-Large"):
        p = section["profiles"][name]
        meta = torchvision.models.get_model_weights(p["tv_name"]).DEFAULT.meta
        assert p["params"] == meta["num_params"], name
        assert abs(p["macs"] / 1e9 - meta["_ops"]) < 0.01 * meta["_ops"], name


def test_the_prose_about_the_table(section):
    p = section["profiles"]
    squeeze, squeeze11, alex = p["SqueezeNet 1.0"], p["SqueezeNet 1.1"], p["AlexNet"]
    # "AlexNet's accuracy with about a fiftieth of its parameters"
    assert 40 < alex["params"] / squeeze["params"] < 60
    assert abs(squeeze["top1"] - alex["top1"]) < 3
    # "squeezenet1_1 ... the same accuracy and well under half the MACs"
    assert abs(squeeze11["top1"] - squeeze["top1"]) < 0.5 and squeeze11["macs"] < 0.5 * squeeze["macs"]
    # "more MACs per point of accuracy than any later design in the table"
    per_gmac = {n: q["top1"] / (q["macs"] / 1e9) for n, q in p.items()}
    later = ["ShuffleNet V2 1.0×", "MobileNetV3-Small", "MobileNetV3-Large", "MobileNetV2",
             "EfficientNet-B0"]
    assert max(per_gmac["SqueezeNet 1.0"], per_gmac["SqueezeNet 1.1"]) < min(per_gmac[n] for n in later)
    # "MobileNetV3-Small needs a fraction of MobileNetV2's MACs for a few points less accuracy"
    small, v2 = p["MobileNetV3-Small"], p["MobileNetV2"]
    assert small["macs"] < 0.25 * v2["macs"] and 0 < v2["top1"] - small["top1"] < 6


def test_hub_entry_point_builds_the_model_it_names(section):
    assert section["hub"] == sum(
        q.numel() for q in torchvision.models.squeezenet1_1(num_classes=10).parameters())


@pytest.mark.parametrize("lesson", ["05_efficientnet", "07_transfer_learning"])
@pytest.mark.parametrize("copy", ["solution", "student"])
def test_text_speaks_to_students(lesson, copy):
    """No references to material students never see, and no grading switches in lesson code."""
    path = (solution_path if copy == "solution" else student_path)(lesson)
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    found = re.findall(r"the seed\b|seed's|\bseeds\b|SEED_[A-Z]|API\.md|REFERENCE\.md|issue 7",
                       text, flags=re.I)
    assert not found, found
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'mode == "grade"' not in code and "GRADE" not in code
