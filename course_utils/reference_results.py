"""Reference results: what a FULL run (or a paper) reached, plotted beside the student's run.

Some effects a lesson teaches only show after full training on a GPU (hours on a CPU). For
those, the course keeps a small file `results/<lesson>.json` in the repository and the notebook
draws it next to the learning curves of the student's own QUICK run, so the comparison the prose
makes is visible even when the student's run is too short to show it.

The file maps experiment names (e.g. "ex5_evolution") to entries; each entry says where its
numbers come from:

* ``"source": "published"`` — numbers copied from a paper (``citation`` says which table), kept
  until a FULL run of the course on a GPU replaces them;
* ``"source": "course run"`` — written by `record_full_run()` (through `save()`) at the end of
  a FULL run on real data, with the run's ``settings`` and ``hardware``.

A run is a dict with a final ``test_acc`` (fraction, 0–1) and, when known, per-epoch lists
``train_loss`` and ``test_acc_curve``. Typical use in a notebook::

    reference = reference_results.load("04_resnet_variants", "ex5_evolution")
    fig = reference_results.plot_beside(histories, reference)
    reference_results.record_full_run("04_resnet_variants", "ex5_evolution", histories,
                                      {"epochs": 25}, train_set)
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from .mode import Mode, get_mode

__all__ = ["RESULTS_DIR", "describe", "experiments", "hardware", "load", "plot_beside", "record_full_run",
           "run_record", "save"]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
SOURCES = ("published", "course run")


def _path(lesson: str, root: str | os.PathLike | None) -> Path:
    if not isinstance(lesson, str) or not lesson or "/" in lesson or "\\" in lesson:
        raise ValueError(f"lesson must be a lesson id such as '04_resnet_variants', not {lesson!r}")
    return Path(root if root is not None else RESULTS_DIR) / f"{lesson}.json"


def _check_run(name: str, run) -> None:
    if not isinstance(run, dict):
        raise ValueError(f"run {name!r} must be a dict, not {type(run).__name__}")
    acc = run.get("test_acc")
    if not isinstance(acc, (int, float)) or isinstance(acc, bool) or not 0 <= acc <= 1:
        raise ValueError(f"run {name!r} needs a final test_acc between 0 and 1, not {acc!r}")
    for key in ("train_loss", "test_acc_curve"):
        values = run.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise ValueError(f"run {name!r}: {key} must be a list of numbers (one per epoch)")


def _check(data, where: str) -> dict:
    """One experiment's entry: source, citation or settings/hardware, runs."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object")
    if data.get("source") not in SOURCES:
        raise ValueError(f"{where}: source must be one of {SOURCES}, not {data.get('source')!r}")
    if data["source"] == "published" and not data.get("citation"):
        raise ValueError(f"{where}: published numbers need a citation")
    if data["source"] == "course run" and not (data.get("settings") and data.get("hardware")):
        raise ValueError(f"{where}: a course run must record its settings and hardware")
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"{where}: 'runs' must map run names to results")
    for name, run in runs.items():
        _check_run(name, run)
    return data


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("experiments"), dict):
        raise ValueError(f"{path}: expected an object with 'experiments' mapping names to results")
    return data


def experiments(lesson: str, root: str | os.PathLike | None = None) -> list[str]:
    """The experiment names that results/<lesson>.json holds."""
    path = _path(lesson, root)
    if not path.is_file():
        raise FileNotFoundError(f"no reference results for {lesson}: {path} does not exist")
    return list(_read(path)["experiments"])


def load(lesson: str, experiment: str, root: str | os.PathLike | None = None) -> dict:
    """One experiment's reference results from results/<lesson>.json, checked for the fields above."""
    path = _path(lesson, root)
    if not path.is_file():
        raise FileNotFoundError(f"no reference results for {lesson}: {path} does not exist")
    entries = _read(path)["experiments"]
    if experiment not in entries:
        raise KeyError(f"{path} has no experiment {experiment!r} (it has: {', '.join(entries) or 'none'})")
    return _check(entries[experiment], f"{path} [{experiment}]")


def run_record(history) -> dict:
    """A run's entry from a `course_utils.train.History`: final accuracy and per-epoch curves."""
    if not getattr(history, "test_acc", None):
        raise ValueError("run_record needs a History with at least one test accuracy")
    return {"test_acc": float(history.test_acc[-1]),
            "train_loss": [float(v) for v in history.train_loss],
            "test_acc_curve": [float(v) for v in history.test_acc]}


def hardware() -> str:
    """One line naming the machine that produced a run (GPU if any, else CPU and core count)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def save(lesson: str, experiment: str, runs: dict, settings: dict, note: str = "",
         root: str | os.PathLike | None = None) -> Path:
    """Write a FULL run's results as `experiment` of results/<lesson>.json (other experiments kept)."""
    data = {"source": "course run", "note": note, "settings": settings,
            "hardware": hardware(),
            "software": f"torch {torch.__version__}",
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "runs": runs}
    path = _path(lesson, root)
    _check(data, f"{path} [{experiment}]")
    content = _read(path) if path.is_file() else {"lesson": lesson, "experiments": {}}
    content["experiments"][experiment] = data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def record_full_run(lesson: str, experiment: str, histories: dict, settings: dict, dataset,
                    mode=None, root: str | os.PathLike | None = None) -> Path | None:
    """In FULL mode on real data, save `histories` as the lesson's reference; else do nothing.

    QUICK and GRADE runs are too short to be a reference, and a run on the offline stand-in data
    (`dataset.source` starting with "shapes") would not be comparable with the published numbers.
    """
    source = getattr(dataset, "source", "")
    if get_mode(mode) is not Mode.FULL or source.startswith("shapes"):
        return None
    runs = {name: run_record(history) for name, history in histories.items()}
    path = save(lesson, experiment, runs, {**settings, "data": source}, root=root)
    print(f"Saved this FULL run as the reference for {experiment} in {path}")
    return path


def describe(reference: dict) -> str:
    """One line: where the reference numbers come from."""
    if reference["source"] == "published":
        return f"published: {reference['citation']}"
    settings = ", ".join(f"{k}={v}" for k, v in reference["settings"].items())
    return f"course FULL run on {reference['hardware']} ({reference['created']}; {settings})"


def plot_beside(histories: dict, reference: dict, title: str | None = None):
    """Your run's test accuracy per epoch (left) beside the reference results (right).

    The right panel draws the reference's per-epoch curves where it has them and its final
    accuracies as labelled bars where it has only those (published tables).
    """
    if not histories:
        raise ValueError("plot_beside needs at least one History")
    fig, (ax_own, ax_ref) = plt.subplots(1, 2, figsize=(12, 4))
    for name, history in histories.items():
        ax_own.plot(range(1, len(history.test_acc) + 1), [100 * a for a in history.test_acc],
                    marker="o", label=name)
    ax_own.set(title="Your run", xlabel="epoch", ylabel="test accuracy (%)")
    ax_own.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_own.legend()
    runs = reference["runs"]
    curves = {n: r for n, r in runs.items() if r.get("test_acc_curve")}
    if curves:
        for name, run in curves.items():
            curve = run["test_acc_curve"]
            ax_ref.plot(range(1, len(curve) + 1), [100 * a for a in curve], label=name)
        ax_ref.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax_ref.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_ref.legend()
    else:
        names = list(runs)
        values = [100 * runs[n]["test_acc"] for n in names]
        bars = ax_ref.barh(names, values, color="tab:gray")
        ax_ref.bar_label(bars, fmt="%.2f %%", padding=3)
        ax_ref.set(xlabel="final test accuracy (%)", xlim=(0, 110))
        ax_ref.invert_yaxis()
    source = "published" if reference["source"] == "published" else "course FULL run"
    ax_ref.set_title(f"Reference ({source})")
    for ax in (ax_own, ax_ref):
        ax.grid(alpha=0.3)
    fig.text(0.5, -0.02, describe(reference), ha="center", va="top", fontsize=8, wrap=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
