"""Exercise 4 (lesson 05, efficiency trade-offs): efficiency_table and best_accuracy_per_parameter.

References come from torchvision itself, never from numbers typed into the checker:
parameters from ``weights.meta["num_params"]``; MACs from ``weights.meta["_ops"]`` (labelled
GFLOPS but really GMACs) at 224×224, or counted with ``FlopCounterMode`` at other sizes, and
from ``thop.profile`` (on a deep copy) — a student's MACs may match either within 2 %, since
thop also counts BatchNorm/activations; top-1 from the ``acc@1`` of any of the model's weight
versions, or the seed lesson's table (``SEED_TOP1``), which the exercise text points to.
Counting a model is cached per process, so repeated checks stay fast.
"""

from __future__ import annotations

import copy
import math
import numbers
from functools import cache

import torch
from torchvision import models

from ._calls import call, describe, expect_function, fail, n
from ._registry import grading, register

NAMES = ("vgg16", "resnet50", "efficientnet_b0")
# The syllabus table the exercise says to take top-1 from ("from the lesson's table").
SEED_TOP1 = {"vgg16": 71.5, "resnet50": 76.0, "resnet152": 78.3, "efficientnet_b0": 77.1,
             "efficientnet_b7": 84.3}
# Cheap extra calls prove the function computes its rows: other models, other sizes. ConvNeXt
# has parameters thop has no rule for (layer scale, LayerNorm2d): thop's count misses them.
PROBES = (("mobilenet_v2", 192), ("convnext_tiny", 32))
HIDDEN_PROBE = ("resnet18", 160)  # only when grading
KEYS = ("name", "params", "macs", "top1", "top1_per_mparam")
TABLE = "def efficiency_table(names, input_size=224) -> list of dicts with keys " + ", ".join(KEYS)
BEST = "def best_accuracy_per_parameter(rows) -> str (the name of the best row)"
MACS_TOLERANCE = 0.02


def _weights(name: str) -> list:
    return list(models.get_model_weights(name))


def reference_params(name: str) -> int:
    return int(_weights(name)[0].meta["num_params"])


def reference_top1(name: str) -> list[float]:
    values = [w.meta["_metrics"]["ImageNet-1K"]["acc@1"] for w in _weights(name)]
    values = [float(v) for v in values if not math.isnan(v)]
    if name in SEED_TOP1:
        values.append(SEED_TOP1[name])
    return values


def default_top1(name: str) -> float:
    return float(models.get_model_weights(name).DEFAULT.meta["_metrics"]["ImageNet-1K"]["acc@1"])


@cache
def _model(name: str) -> torch.nn.Module:
    with _fork_rng():
        return models.get_model(name, weights=None).eval()


@cache
def exact_macs(name: str, size: int) -> float:
    """MACs of one image: torchvision's documented _ops at 224, else FlopCounterMode."""
    if size == 224:
        return float(_weights(name)[0].meta["_ops"]) * 1e9
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        _model(name)(torch.zeros((1, 3, size, size)))
    return counter.get_total_flops() / 2


@cache
def _thop(name: str, size: int) -> tuple[float, float]:
    import thop

    with torch.no_grad():
        macs, params = thop.profile(copy.deepcopy(_model(name)),
                                    inputs=(torch.zeros((1, 3, size, size)),), verbose=False)
    return float(macs), float(params)


def thop_macs(name: str, size: int) -> float:
    return _thop(name, size)[0]


def thop_params(name: str, size: int) -> float:
    """thop's parameter count: it misses the parameters of modules it has no rule for."""
    return _thop(name, size)[1]


class _fork_rng:  # noqa: N801 - building models must not move the student's random state
    def __enter__(self) -> None:
        self._state = torch.random.get_rng_state()

    def __exit__(self, *exc: object) -> None:
        torch.random.set_rng_state(self._state)


def _near(value: float, target: float, tol: float) -> bool:
    return abs(value - target) <= tol * abs(target)


def _macs_problem(name: str, size: int, macs: float) -> tuple[str, str] | None:
    exact = exact_macs(name, size)
    if _near(macs, exact, MACS_TOLERANCE) or _near(macs, thop := thop_macs(name, size),
                                                    MACS_TOLERANCE):
        return None
    expected = f"{exact / 1e9:.3f} G (exact) or {thop / 1e9:.3f} G (thop)"
    if size != 224 and (_near(macs, exact_macs(name, 224), MACS_TOLERANCE)
                        or _near(macs, thop_macs(name, 224), MACS_TOLERANCE)):
        why, key = (f"that is the count at 224×224: the input_size={size} argument is ignored",
                    "input_size_ignored")
    elif _near(macs, 2 * exact, MACS_TOLERANCE) or _near(macs, 2 * thop, MACS_TOLERANCE):
        why, key = "that is the FLOP count (2 × MACs); thop.profile returns MACs", "flops"
    elif _near(macs * 1e9, exact, MACS_TOLERANCE) or _near(macs * 1e9, thop, MACS_TOLERANCE):
        why, key = "that looks like GMACs; give the raw count of multiply-accumulates", "gmacs"
    else:
        why, key = (f"profile the model on one {size}×{size} image, e.g. thop.profile(model, "
                    "inputs=(x,))", "wrong_macs")
    return f"macs for {name} at {size}×{size} is {macs:,.0f}; expected about {expected}: {why}", key


def _params_problem(name: str, size: int, params: object) -> tuple[str, str] | None:
    expected = reference_params(name)
    integral = isinstance(params, numbers.Integral)
    if integral and params == expected:
        return None
    head = f"params for {name} is {params!r}; expected {n(expected)}"
    if not integral and float(params) == expected:
        return (f"params for {name} is {params!r}, a float; the task asks for an int from "
                f"count_parameters(model) ({n(expected)}).\nWhy it matters: a float is what "
                "thop.profile returns as its parameter count, and thop's count misses the "
                "parameters of layers it has no rule for (ConvNeXt's layer scale and "
                "LayerNorm2d, ViT's attention); count_parameters counts every trainable "
                "parameter, exactly, as an int.", "float_params")
    if float(params) == thop_params(name, size) != expected:
        return (f"params for {name} is {params!r}, thop's parameter count; expected "
                f"{n(expected)} (count_parameters).\nWhy it matters: thop counts only the "
                f"modules it has a rule for and misses {n(expected - int(thop_params(name, size)))}"
                f" parameters of {name} (ConvNeXt's layer scale and its LayerNorm2d); "
                "count_parameters(model) counts them all, as the task says.", "thop_params")
    if _near(float(params) * 1e6, expected, 0.01):
        return (f"{head}: that looks like millions; give the exact count (an int).",
                "params_in_millions")
    return (f"{head} (count the model's parameters, e.g. with count_parameters).",
            "wrong_params")


def _row_problems(rows: object, names: list[str], size: int, what: str
                  ) -> tuple[str, str] | None:
    """None if the rows are right, else (message, mistake key)."""
    if not isinstance(rows, list | tuple) or not all(isinstance(r, dict) for r in rows):
        return f"{what} returned {describe(rows)}; expected a list of dicts ({TABLE}).", "not_rows"
    by_name = {}
    for row in rows:
        missing = [k for k in KEYS if k not in row]
        if missing:
            return (f"{what}: a row has no {', '.join(repr(k) for k in missing)} key ({row!r}).",
                    "missing_key")
        if not isinstance(row["name"], str):
            return (f"{what}: a row's name is {describe(row['name'])}; expected the model's "
                    "name.", "bad_name")
        by_name[row["name"]] = row
    if sorted(map(str, by_name)) != sorted(names) or len(rows) != len(names):
        return (f"{what} gave rows for {[r['name'] for r in rows]}; expected one row per name: "
                f"{names}.", "wrong_rows")
    for name in names:
        row = by_name[name]
        for key in ("params", "macs", "top1", "top1_per_mparam"):
            if isinstance(row[key], torch.Tensor) or not isinstance(row[key], numbers.Real):
                return (f"{what}: {name}'s {key} is {describe(row[key])}; expected a number.",
                        "not_a_number")
        problem = _params_problem(name, size, row["params"])
        if problem:
            return f"{what}: {problem[0]}", problem[1]
        params = row["params"]
        problem = _macs_problem(name, size, float(row["macs"]))
        if problem:
            return f"{what}: {problem[0]}.", problem[1]
        top1 = float(row["top1"])
        accepted = reference_top1(name)
        if not any(abs(top1 - t) <= 0.05 for t in accepted):
            why, key = "", "wrong_top1"
            if any(abs(top1 * 100 - t) <= 0.05 for t in accepted):
                why, key = (" It looks like a fraction; give top-1 in percent, as torchvision's "
                            "metadata does.", "top1_fraction")
            shown = ", ".join(f"{t:g}" for t in accepted)
            return (f"{what}: top1 for {name} is {top1!r}; expected ImageNet top-1 accuracy in % "
                    f"from torchvision's weights metadata or the lesson's table ({shown}).{why}",
                    key)
        ratio, want = float(row["top1_per_mparam"]), top1 / (params / 1e6)
        if not _near(ratio, want, 1e-3):
            why, key = "", "wrong_ratio"
            if _near(ratio, top1 / params, 1e-3):
                why, key = ": that is per parameter, not per million parameters", "per_parameter"
            return (f"{what}: top1_per_mparam for {name} is {ratio!r}; expected top1 / (params / "
                    f"1e6) = {want:.4g}{why}.", key)
    return None


@register("ex4_efficiency_table", "efficiency_table(names, input_size=224) -> list[dict]",
          ("rows",))
def check_efficiency_table(obj: object, rows: object = None) -> str:
    expect_function(obj, "efficiency_table", TABLE)
    names = list(NAMES)
    what = f"efficiency_table({names})"
    if rows is None:
        rows = call(what, obj, list(names))
    else:
        what = "the rows you passed (rows=...)"
    problem = _row_problems(rows, names, 224, what)
    if problem:
        fail(problem[0], mistake=f"ex4_efficiency_table.{problem[1]}")
    probes = list(PROBES) + ([HIDDEN_PROBE] if grading() else [])
    for name, size in probes:
        probe_what = f"efficiency_table([{name!r}], input_size={size})"
        probe_rows = call(probe_what, obj, [name], input_size=size)
        problem = _row_problems(probe_rows, [name], size, probe_what)
        if problem:
            fail(problem[0], mistake=f"ex4_efficiency_table.{problem[1]}")
    shown = " and ".join(f"{name} at input_size={size}" for name, size in PROBES)
    return (f"✓ efficiency_table: params (int), MACs (within 2 %), top-1 and top-1 per M params "
            f"right for {', '.join(names)} and for {shown}.")


# --- best_accuracy_per_parameter ----------------------------------------------------------------


def _row(name: str, params: int | None = None, top1: float | None = None) -> dict:
    params = reference_params(name) if params is None else params
    top1 = default_top1(name) if top1 is None else top1
    return {"name": name, "params": params, "macs": exact_macs(name, 224), "top1": top1,
            "top1_per_mparam": top1 / (params / 1e6)}


def _made_up(name: str, params: int, top1: float, macs: float) -> dict:
    return {"name": name, "params": params, "macs": macs, "top1": top1,
            "top1_per_mparam": top1 / (params / 1e6)}


def _cases() -> list[tuple[str, list[dict]]]:
    real = [_row(name) for name in NAMES]
    made_up = [_made_up("a", 10_000_000, 90.0, 1e9), _made_up("b", 1_000_000, 5.0, 5e9),
               _made_up("c", 4_000_000, 60.0, 2e9)]
    hidden = []
    if grading():
        table = [_made_up("p", 10_000_000, 70.0, 3e9), _made_up("q", 2_000_000, 20.0, 1e9),
                 _made_up("r", 1_000_000, 9.0, 2e9)]
        hidden = [("made-up rows p, q, r", table), ("made-up rows r, q, p", table[::-1]),
                  ("a single row", table[:1])]
    return [
        ("the real table", real),
        ("the same rows in another order", [real[2], real[0], real[1]]),
        ("rows where resnet50 has only 1,000,000 parameters", [
            real[0], _row("resnet50", params=1_000_000), real[2]]),
        ("rows for alexnet, resnet18 and mobilenet_v2", [
            _row("alexnet"), _row("resnet18"), _row("mobilenet_v2")]),
        ("made-up rows a, b, c", made_up),
    ] + hidden


def _ratio(row: dict) -> float:
    return row["top1"] / row["params"]


# What a wrong answer may be computing: (key, rule, why). The rule consistent with every answer
# the student's function gave names the mistake.
RULES = [
    ("min_ratio", lambda rows: min(rows, key=_ratio),
     "that is the lowest top-1 per parameter (min instead of max)"),
    ("most_params", lambda rows: max(rows, key=lambda r: r["params"]),
     "that is the model with the most parameters; the question is which model gets the most "
     "accuracy out of each parameter: the largest top1 / params"),
    ("fewest_params", lambda rows: min(rows, key=lambda r: r["params"]),
     "that has the fewest parameters, not the best accuracy per parameter (top1 / params)"),
    ("highest_top1", lambda rows: max(rows, key=lambda r: r["top1"]),
     "that has the highest top-1, not the highest top-1 per parameter"),
    ("lowest_top1", lambda rows: min(rows, key=lambda r: r["top1"]),
     "that has the lowest top-1; the question is the highest top-1 per parameter"),
    ("most_macs", lambda rows: max(rows, key=lambda r: r["macs"]),
     "that has the most MACs; the question is about parameters: the largest top1 / params"),
    ("fewest_macs", lambda rows: min(rows, key=lambda r: r["macs"]),
     "that has the fewest MACs; the question is about parameters: the largest top1 / params"),
    ("first_row", lambda rows: rows[0],
     "that is the first row, whatever the values (a return inside the loop, or a comparison "
     "that is never true?)"),
    ("last_row", lambda rows: rows[-1],
     "that is the last row, whatever the values (is the best kept only when it improves?)"),
]


def _best_problem(answers: list[tuple[str, list[dict], object]], usual: str
                  ) -> tuple[str, str] | None:
    """None if every answer is right, else (message, mistake key) about the first wrong one,
    naming the rule that explains all of them when there is one."""
    wrong = [(label, rows, value) for label, rows, value in answers
             if value != max(rows, key=_ratio)["name"]]
    if not wrong:
        return None
    label, rows, value = wrong[0]
    best = max(rows, key=_ratio)["name"]
    if isinstance(value, dict) and value.get("name") == best:
        return (f"for {label} it returned the whole row; return the model's name (row['name']).",
                "returns_row")
    if not isinstance(value, str):
        return f"for {label} it returned {describe(value)}; expected the name {best!r}.", "not_a_name"
    names = {r["name"] for r in rows}
    if value == usual:
        why, key = (f"it returns {usual!r} whatever the rows say; compute the answer from the "
                    "rows (top1 / params for each row, then the largest)", "hard_coded")
    elif value not in names:
        why, key = (f"{value!r} is not one of the rows ({sorted(names)}); compute the answer "
                    "from the rows", "not_a_row")
    else:
        why, key = ("compute top1 / params (or use top1_per_mparam) for every row and take the "
                    "largest", "wrong_choice")
        for rule_key, rule, rule_why in RULES:
            if all(isinstance(v, str) and rule(r)["name"] == v for _, r, v in answers):
                why, key = rule_why, rule_key
                break
    return f"for {label} it returned {value!r}; expected {best!r}: {why}.", key


@register("ex4_best", "best_accuracy_per_parameter(rows) -> str")
def check_best(obj: object) -> str:
    expect_function(obj, "best_accuracy_per_parameter", BEST)
    answers = []
    for label, rows in _cases():
        snapshot = copy.deepcopy(rows)
        value = call(f"best_accuracy_per_parameter(rows) for {label}", obj, rows)
        if rows != snapshot:
            fail(f"best_accuracy_per_parameter(rows) changed the rows it was given ({label}); "
                 "it should only read them.", mistake="ex4_best.changes_rows")
        answers.append((label, snapshot, value))
    problem = _best_problem(answers, usual="efficientnet_b0")
    if problem:
        fail(f"best_accuracy_per_parameter(rows): {problem[0]}", mistake=f"ex4_best.{problem[1]}")
    return ("✓ best_accuracy_per_parameter picks efficientnet_b0 on the real table and follows "
            "the data on 4 modified tables.")
