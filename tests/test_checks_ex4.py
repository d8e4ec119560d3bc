"""Corpus for Exercise 4 (lesson 05): efficiency_table and best_accuracy_per_parameter."""

import copy

import pytest
from checks_corpus import best_accuracy_per_parameter, efficiency_table

from course_utils.checks import check
from course_utils.checks.ex4 import NAMES, exact_macs, reference_params


@pytest.fixture(scope="module")
def rows():
    """The real table, computed once by the corpus solution (thop MACs)."""
    return efficiency_table(list(NAMES))


def fails(name, obj, *phrases, **options):
    with pytest.raises(AssertionError) as err:
        check(name, obj, **options)
    for phrase in phrases:
        assert phrase in str(err.value), str(err.value)


def test_full_check_calls_the_function(capsys):
    check("ex4_efficiency_table", efficiency_table)
    out = capsys.readouterr().out
    assert "params, MACs" in out and "mobilenet_v2 at input_size=192" in out


def exact_table(names, input_size=224):
    """MACs from torch's FlopCounterMode (exact), top-1 from the seed's table."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision import models

    seed = {"vgg16": 71.5, "resnet50": 76.0, "efficientnet_b0": 77.1}
    rows = []
    for name in names:
        model = models.get_model(name, weights=None).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
        params = sum(p.numel() for p in model.parameters())
        top1 = seed.get(name) or models.get_model_weights(name).DEFAULT.meta[
            "_metrics"]["ImageNet-1K"]["acc@1"]
        rows.append({"name": name, "params": params, "macs": counter.get_total_flops() // 2,
                     "top1": top1, "top1_per_mparam": top1 / (params / 1e6)})
    return rows


def test_exact_counter_and_seed_top1_accepted(rows, capsys):
    check("ex4_efficiency_table", exact_table, rows=exact_table(list(NAMES)))
    assert capsys.readouterr().out.startswith("✓")


def modified(rows, name, **changes):
    rows = copy.deepcopy(rows)
    for row in rows:
        if row["name"] == name:
            row.update(changes)
    return rows


def test_table_mistakes(rows):
    vgg = next(r for r in rows if r["name"] == "vgg16")
    fails("ex4_efficiency_table", efficiency_table, "FLOP count (2 × MACs)",
          rows=modified(rows, "vgg16", macs=2 * vgg["macs"]))
    fails("ex4_efficiency_table", efficiency_table, "looks like GMACs",
          rows=modified(rows, "vgg16", macs=vgg["macs"] / 1e9))
    fails("ex4_efficiency_table", efficiency_table, "looks like a fraction",
          rows=modified(rows, "vgg16", top1=vgg["top1"] / 100,
                        top1_per_mparam=vgg["top1"] / 100 / (vgg["params"] / 1e6)))
    fails("ex4_efficiency_table", efficiency_table, "per parameter, not per million",
          rows=modified(rows, "vgg16", top1_per_mparam=vgg["top1"] / vgg["params"]))
    fails("ex4_efficiency_table", efficiency_table, "params for resnet50", "25,557,032",
          rows=modified(rows, "resnet50", params=25.6))
    fails("ex4_efficiency_table", efficiency_table, "expected one row per name",
          rows=rows[:2])


def test_hard_coded_table_is_caught(rows):
    def hard_coded(names, input_size=224):
        return copy.deepcopy(rows)

    fails("ex4_efficiency_table", hard_coded, "efficiency_table(['mobilenet_v2'], input_size=192)",
          "expected one row per name", rows=rows)


def test_ignored_input_size_is_caught(rows):
    def ignores_size(names, input_size=224):
        return efficiency_table(names)

    fails("ex4_efficiency_table", ignores_size, "input_size=192 argument is ignored", rows=rows)


def test_best(capsys):
    check("ex4_best", best_accuracy_per_parameter)
    assert "efficientnet_b0 on the real table" in capsys.readouterr().out


def test_best_mistakes():
    fails("ex4_best", lambda rows: "efficientnet_b0", "whatever the rows say")
    fails("ex4_best", lambda rows: max(rows, key=lambda r: r["top1"])["name"],
          "highest top-1, not the highest top-1 per parameter")
    fails("ex4_best", lambda rows: min(rows, key=lambda r: r["top1_per_mparam"])["name"],
          "min instead of max")
    fails("ex4_best", lambda rows: max(rows, key=lambda r: r["top1_per_mparam"]),
          "return the model's name")

    def sorts_in_place(rows):
        rows.sort(key=lambda r: -r["top1_per_mparam"])
        return rows[0]["name"]

    fails("ex4_best", sorts_in_place, "changed the rows")


def test_references_come_from_torchvision():
    assert reference_params("vgg16") == 138_357_544  # REFERENCE.md
    assert exact_macs("resnet50", 224) == pytest.approx(4.089e9)
