"""course_utils.reference_results: the committed reference files load, a FULL run's record
round-trips through save/load, bad files fail with one clear line, and the plot shows both."""

import json

import matplotlib
import pytest

from course_utils import reference_results as rr
from course_utils.train import History

matplotlib.use("Agg")


def _history(name, accs, losses):
    h = History(name=name)
    h.test_acc.extend(accs)
    h.train_loss.extend(losses)
    return h


def test_every_committed_reference_file_loads_and_cites_or_records_its_source():
    files = sorted(rr.RESULTS_DIR.glob("*.json"))
    assert files, f"no reference files in {rr.RESULTS_DIR}"
    for path in files:
        assert json.loads(path.read_text())["lesson"] == path.stem
        for experiment in rr.experiments(path.stem):
            assert rr.describe(rr.load(path.stem, experiment))  # a paper, or the run's hardware


def test_published_resnet_table_is_the_papers():
    runs = rr.load("04_resnet_variants", "ex5_evolution")["runs"]
    errors = {name.split()[0]: round(100 * (1 - r["test_acc"]), 2) for name, r in runs.items()}
    assert errors == {"ResNet-20": 8.75, "ResNet-32": 7.51, "ResNet-56": 6.97, "ResNet-110": 6.43}
    se = rr.load("04_resnet_variants", "ex3_se")["runs"]
    assert {n: round(100 * (1 - r["test_acc"]), 2) for n, r in se.items()} == {
        "ResNet-110": 6.37, "SE-ResNet-110": 5.21, "ResNet-164": 5.46, "SE-ResNet-164": 4.39}


def test_save_then_load_round_trips_a_run_with_its_settings_and_hardware(tmp_path):
    history = _history("net", [0.2, 0.5, 0.7], [2.0, 1.4, 0.9])
    path = rr.save("99_demo", "first", {"net": rr.run_record(history)}, settings={"epochs": 3}, root=tmp_path)
    rr.save("99_demo", "second", {"other": rr.run_record(history)}, settings={"epochs": 3}, root=tmp_path)
    data = rr.load("99_demo", "first", root=tmp_path)
    assert path == tmp_path / "99_demo.json"
    assert rr.experiments("99_demo", root=tmp_path) == ["first", "second"]  # saving one keeps the other
    assert data["source"] == "course run" and data["settings"] == {"epochs": 3}
    assert data["hardware"] and data["created"]
    assert data["runs"]["net"] == {"test_acc": 0.7, "train_loss": [2.0, 1.4, 0.9],
                                   "test_acc_curve": [0.2, 0.5, 0.7]}


class _Data:
    def __init__(self, source):
        self.source = source


def test_only_a_full_run_on_real_data_becomes_the_reference(tmp_path):
    runs = {"net": _history("net", [0.5, 0.8], [1.0, 0.5])}
    for mode, source in (("quick", "CIFAR-10"), ("grade", "CIFAR-10"), ("full", "shapes: 50,000 synthetic")):
        assert rr.record_full_run("99_demo", "x", runs, {"epochs": 2}, _Data(source), mode=mode,
                                  root=tmp_path) is None
    assert not list(tmp_path.iterdir())
    path = rr.record_full_run("99_demo", "x", runs, {"epochs": 2}, _Data("CIFAR-10 (torchvision)"),
                              mode="full", root=tmp_path)
    data = rr.load("99_demo", "x", root=tmp_path)
    assert path.exists() and data["settings"] == {"epochs": 2, "data": "CIFAR-10 (torchvision)"}
    assert data["runs"]["net"]["test_acc_curve"] == [0.5, 0.8]


def _file(entry):
    return json.dumps({"lesson": "bad", "experiments": {"e": entry}})


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"source": "published", "runs": {}}), "'experiments' mapping"),
    (_file({"source": "blog", "runs": {"a": {"test_acc": 0.5}}}), "source must be one of"),
    (_file({"source": "published", "runs": {"a": {"test_acc": 0.5}}}), "need a citation"),
    (_file({"source": "course run", "citation": "x", "runs": {"a": {"test_acc": 0.5}}}),
     "settings and hardware"),
    (_file({"source": "published", "citation": "x", "runs": {"a": {"test_acc": 93.0}}}),
     "between 0 and 1"),
    (_file({"source": "published", "citation": "x", "runs": {}}), "'runs' must map"),
])
def test_bad_files_are_refused_with_one_line(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        rr.load("bad", "e", root=tmp_path)
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_lesson_id():
    with pytest.raises(FileNotFoundError, match="no reference results for 00_nothing"):
        rr.load("00_nothing", "x")
    with pytest.raises(ValueError, match="lesson id"):
        rr.load("../etc/passwd", "x")
    with pytest.raises(KeyError, match="no experiment 'ex9'.*ex3_se"):
        rr.load("04_resnet_variants", "ex9")
    with pytest.raises(ValueError, match="at least one test accuracy"):
        rr.run_record(History(name="empty"))


def test_plot_beside_draws_own_curves_and_the_reference():
    own = {"A": _history("A", [0.1, 0.3, 0.4, 0.6], [2.3, 2.0, 1.5, 1.2])}
    fig = rr.plot_beside(own, rr.load("04_resnet_variants", "ex5_evolution"))
    ax_own, ax_ref = fig.axes
    assert [line.get_label() for line in ax_own.get_lines()] == ["A"]
    assert list(ax_own.get_lines()[0].get_ydata()) == pytest.approx([10, 30, 40, 60])
    assert all(float(t).is_integer() for t in ax_own.get_xticks())  # whole epochs
    widths = sorted(round(p.get_width(), 2) for p in ax_ref.patches)
    assert widths == [91.25, 92.49, 93.03, 93.57]
    assert "He, Zhang" in " ".join(t.get_text() for t in fig.texts)
    curves = {"source": "course run", "settings": {"epochs": 2}, "hardware": "GPU",
              "created": "today", "runs": {"B": {"test_acc": 0.5, "test_acc_curve": [0.3, 0.5]}}}
    fig = rr.plot_beside(own, curves)
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["B"]
