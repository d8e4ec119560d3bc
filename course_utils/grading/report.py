"""What the class got wrong: `python -m course_utils.grading report <course>` (`make report`).

Reads only <course>/gradebook.db (nbgrader's Gradebook API) and the autograded notebooks
(<course>/autograded/<student>/<assignment>/*.ipynb); it never runs student code. Writes
<course>/reports/index.html, one self-contained file (plots as embedded PNG), with:

- per assignment and graded cell: max points, mean, median, share of full marks and of
  zero, and the cells most students miss; a histogram of the total scores;
- per check: the named mistakes across the class (the judge's ``course_judge`` metadata:
  the mistake's stable id, labelled with the headline of its message) and who made each;
- per student: scores over all assignments, missing and late work, work awaiting manual
  grading;
- answers copied between students (``similarity``), the shared lines side by side.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import os
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import similarity

REPORT_DIR = "reports"
NOT_IMPLEMENTED = re.compile(r"not implemented yet|raises NotImplementedError", re.I)
CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([^"']+)["']""")
NOT_ATTEMPTED = "not attempted"
TOP_MISSED = 3


# --- the data -----------------------------------------------------------------------------

@dataclass
class CellStats:
    """One graded cell of an assignment (an autograded test cell or a written answer)."""

    notebook: str
    name: str                      # nbgrader grade id
    kind: str                      # "code" (autograded) or "markdown" (graded by hand)
    checks: tuple[str, ...]        # the check items a test cell runs
    max_points: float
    scores: dict[str, float] = field(default_factory=dict)  # student -> points (graded only)
    awaiting: list[str] = field(default_factory=list)      # students not graded yet (by hand)

    @property
    def label(self) -> str:
        return self.name + (f" ({', '.join(self.checks)})" if self.checks else "")

    def _values(self) -> list[float]:
        return list(self.scores.values())

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self._values()) if self.scores else None

    @property
    def median(self) -> float | None:
        return statistics.median(self._values()) if self.scores else None

    @property
    def full_share(self) -> float | None:
        return _share(v >= self.max_points - 1e-9 for v in self._values())

    @property
    def zero_share(self) -> float | None:
        return _share(v <= 1e-9 for v in self._values())

    @property
    def missed_by(self) -> list[str]:
        return sorted(s for s, v in self.scores.items() if v < self.max_points - 1e-9)


@dataclass
class StudentWork:
    score: float
    max_score: float
    seconds_late: float = 0.0
    penalty: float = 0.0
    needs_manual: bool = False


@dataclass
class AssignmentStats:
    name: str
    max_score: float
    duedate: datetime.datetime | None
    cells: list[CellStats] = field(default_factory=list)
    work: dict[str, StudentWork] = field(default_factory=dict)   # submitted work only

    @property
    def totals(self) -> list[float]:
        return [w.score for w in self.work.values()]

    @property
    def most_missed(self) -> list[CellStats]:
        """Graded cells ranked by how many students lost points on them."""
        ranked = [c for c in self.cells if c.missed_by]
        ranked.sort(key=lambda c: (-len(c.missed_by), c.mean / c.max_points
                                   if c.max_points else 0, c.name))
        return ranked[:TOP_MISSED]


@dataclass
class MistakeGroup:
    key: str                       # the checker's id (or NOT_ATTEMPTED, or a derived key)
    label: str                     # the headline of the message (the most common one)
    students: list[str]


@dataclass
class CheckStats:
    assignment: str
    item: str
    judged: set[str] = field(default_factory=set)
    passed: set[str] = field(default_factory=set)
    headlines: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    who: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def groups(self) -> list[MistakeGroup]:
        out = [MistakeGroup(key, self.headlines[key].most_common(1)[0][0],
                            sorted(self.who[key])) for key in self.who]
        out.sort(key=lambda g: (g.key == NOT_ATTEMPTED, -len(g.students), g.key))
        return out

    def mistakes(self) -> list[MistakeGroup]:
        """Named mistakes of students who tried (not attempted left out), most common first."""
        return [g for g in self.groups() if g.key != NOT_ATTEMPTED]


@dataclass
class ClassData:
    course_dir: Path
    students: list[str]
    assignments: list[AssignmentStats]
    checks: list[CheckStats]
    pairs: list[similarity.Pair] = field(default_factory=list)
    compared: list[similarity.Pair] = field(default_factory=list)
    threshold: float = similarity.THRESHOLD
    generated: datetime.datetime = field(default_factory=lambda: datetime.datetime.now().astimezone())

    def flags(self, student: str) -> list[str]:
        """'missing 03_resnet', 'late 03_resnet (2 d 5 h)'."""
        out = []
        for a in self.assignments:
            work = a.work.get(student)
            if work is None:
                out.append(f"missing {a.name}")
            elif work.seconds_late > 0:
                out.append(f"late {a.name} ({_duration(work.seconds_late)})")
        return out


def _share(flags) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"]
    return " ".join(parts[:2])


def headline(text: str) -> str:
    """The first non-empty line of a message."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def mistake_key(mistake: str | None, text: str) -> str:
    """The identity a failure is counted under: the checker's id; NOT_ATTEMPTED for work not
    done (still raising NotImplementedError, or None); otherwise the headline with its
    numbers blanked, so that the same unnamed message groups across students."""
    if NOT_IMPLEMENTED.search(headline(text)) or (mistake or "").endswith("not_implemented"):
        return NOT_ATTEMPTED
    if mistake:
        return mistake
    return "unnamed: " + re.sub(r"\d[\d,.]*", "N", headline(text))[:160]


# --- reading the course -------------------------------------------------------------------

def _source_order(course_dir: Path, assignment: str) -> dict[tuple[str, str], int]:
    """(notebook, grade id) -> position in the instructor's source, for a stable order."""
    order = {}
    for path in sorted((course_dir / "solutions" / assignment).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - an unreadable source only loses the order
            continue
        for i, cell in enumerate(nb.cells):
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                order[(path.stem, gid)] = i
    return order


def _source_cells(course_dir: Path, assignment: str) -> dict[tuple[str, str], str]:
    cells = {}
    for path in sorted((course_dir / "solutions" / assignment).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001
            continue
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                cells[(path.stem, gid)] = cell.source
    return cells


def read_gradebook(course_dir: Path) -> tuple[list[str], list[AssignmentStats]]:
    from nbgrader.api import Gradebook, MissingEntry

    db = course_dir / "gradebook.db"
    if not db.exists():
        raise FileNotFoundError(f"no gradebook: {db} does not exist (grade the class first)")
    assignments = []
    with Gradebook(f"sqlite:///{db}") as gb:
        students = sorted(s.id for s in gb.students)
        for a in sorted(gb.assignments, key=lambda a: a.name):
            order = _source_order(course_dir, a.name)
            sources = _source_cells(course_dir, a.name)
            stats = AssignmentStats(a.name, float(a.max_score or 0), a.duedate)
            by_name = {}
            for nb in a.notebooks:
                for gc in nb.grade_cells:
                    checks = tuple(CHECK_CALL.findall(sources.get((nb.name, gc.name), "")))
                    cell = CellStats(nb.name, gc.name, gc.cell_type, checks, float(gc.max_score))
                    by_name[(nb.name, gc.name)] = cell
            stats.cells = sorted(by_name.values(),
                                 key=lambda c: (c.notebook, order.get((c.notebook, c.name), 10**6),
                                                c.name))
            for student in students:
                try:
                    sub = gb.find_submission(a.name, student)
                except MissingEntry:
                    continue
                stats.work[student] = StudentWork(
                    float(sub.score), float(sub.max_score), float(sub.total_seconds_late or 0),
                    float(sub.late_submission_penalty or 0), bool(sub.needs_manual_grade))
                for snb in sub.notebooks:
                    for g in snb.grades:
                        cell = by_name.get((snb.name, g.name))
                        if cell is None:
                            continue
                        if g.auto_score is None and g.manual_score is None:
                            cell.awaiting.append(student)
                        else:
                            cell.scores[student] = float(g.score)
            assignments.append(stats)
    return students, assignments


def _is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) \
        and not meta.get("solution")


def _error_text(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return str(out.get("evalue") or "\n".join(out.get("traceback") or []) or
                       out.get("ename", "error"))
    return None


def _notebooks(course_dir: Path, assignment: str) -> list[tuple[str, Path]]:
    """(student, autograded notebook) for every student folder under autograded/."""
    root = course_dir / "autograded"
    out = []
    if not root.is_dir():
        return out
    for student in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        folder = student / assignment
        if folder.is_dir() and not folder.is_symlink():
            out += [(student.name, path) for path in sorted(folder.glob("*.ipynb"))
                    if not path.is_symlink()]
    return out


def _read(path: Path):
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable notebook is reported as missing data
        return None


def read_mistakes(course_dir: Path, assignments: list[AssignmentStats]) -> list[CheckStats]:
    """Per check: who was judged, who passed, and the named mistakes (course_judge)."""
    checks: dict[tuple[str, str], CheckStats] = {}
    for a in assignments:
        for student, path in _notebooks(course_dir, a.name):
            nb = _read(path)
            if nb is None:
                continue
            for cell in nb.cells:
                if not _is_test_cell(cell):
                    continue
                judged = cell.get("metadata", {}).get("course_judge")
                text = _error_text(cell) or ""
                if isinstance(judged, dict):
                    entries = [e for e in judged.get("items", []) if isinstance(e, dict)]
                else:
                    # Not judged (the kernel gave up, or a cell the judge could not read): the
                    # cell's first check failed with whatever its output says.
                    items = CHECK_CALL.findall(cell.source) or \
                        [cell.metadata["nbgrader"].get("grade_id", "?")]
                    entries = [{"item": items[0], "passed": text == "",
                                "mistake": "not_judged" if text else None}]
                for entry in entries:
                    item = str(entry.get("item"))
                    stats = checks.setdefault((a.name, item), CheckStats(a.name, item))
                    stats.judged.add(student)
                    if entry.get("passed"):
                        stats.passed.add(student)
                        continue
                    key = mistake_key(entry.get("mistake"), text)
                    stats.who[key].add(student)
                    stats.headlines[key][headline(text) or str(entry.get("mistake"))] += 1
    return sorted(checks.values(), key=lambda c: (c.assignment, c.item))


def _release_dir(course_dir: Path) -> Path:
    from .runner import _course_config

    try:
        name = _course_config(course_dir).CourseDirectory.get("release_directory", "release")
    except Exception:  # noqa: BLE001 - a broken config: nbgrader's default
        name = "release"
    return course_dir / str(name)


def read_similarity(course_dir: Path, assignments: list[AssignmentStats],
                    threshold: float = similarity.THRESHOLD
                    ) -> tuple[list[similarity.Pair], list[similarity.Pair]]:
    """Similar answers per answer cell (nbgrader solution code cells) across the class."""
    flagged, compared = [], []
    release = _release_dir(course_dir)
    for a in assignments:
        answers: dict[tuple[str, str], list[similarity.Answer]] = defaultdict(list)
        for student, path in _notebooks(course_dir, a.name):
            nb = _read(path)
            if nb is None:
                continue
            seen = set()
            for cell in nb.cells:
                meta = cell.get("metadata", {}).get("nbgrader", {})
                gid = meta.get("grade_id")
                if cell.get("cell_type") == "code" and meta.get("solution") and gid \
                        and gid not in seen:
                    seen.add(gid)
                    answers[(path.stem, gid)].append(similarity.Answer(student, cell.source))
        sources = _source_cells(course_dir, a.name)
        order = _source_order(course_dir, a.name)
        for (notebook, gid), group in sorted(answers.items(),
                                             key=lambda kv: order.get(kv[0], 10**6)):
            boilerplate = _release_cell(release / a.name / f"{notebook}.ipynb", gid)
            if boilerplate is None:
                boilerplate = similarity.release_boilerplate(sources.get((notebook, gid), ""))
            items = _checks_after(course_dir, a.name, notebook, gid)
            found, pairs = similarity.similar_pairs(a.name, gid, group, boilerplate, items,
                                                    threshold=threshold)
            flagged += found
            compared += pairs
    return flagged, compared


def _release_cell(path: Path, grade_id: str) -> str | None:
    nb = _read(path) if path.is_file() else None
    for cell in nb.cells if nb is not None else ():
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell.source
    return None


def _checks_after(course_dir: Path, assignment: str, notebook: str, grade_id: str
                  ) -> tuple[str, ...]:
    """The checks of the first graded test cell below the answer cell (what grades it)."""
    nb = _read(course_dir / "solutions" / assignment / f"{notebook}.ipynb")
    if nb is None:
        return ()
    found = False
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            found = True
        elif found and _is_test_cell(cell):
            return tuple(CHECK_CALL.findall(cell.source))
    return ()


def collect(course_dir: str | os.PathLike, check_similarity: bool = True,
            threshold: float = similarity.THRESHOLD) -> ClassData:
    course_dir = Path(course_dir).resolve()
    students, assignments = read_gradebook(course_dir)
    data = ClassData(course_dir, students, assignments, read_mistakes(course_dir, assignments),
                     threshold=threshold)
    if check_similarity:
        data.pairs, data.compared = read_similarity(course_dir, assignments, threshold)
    return data


# --- the printed summary ------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def summary_text(data: ClassData) -> str:
    lines = [f"Class report: {len(data.students)} students, {len(data.assignments)} "
             f"assignment(s)"]
    for a in data.assignments:
        totals = a.totals
        late = sum(w.seconds_late > 0 for w in a.work.values())
        manual = sum(w.needs_manual for w in a.work.values())
        lines.append("")
        lines.append(f"{a.name}: {len(a.work)} of {len(data.students)} submitted"
                     + (f" ({late} late)" if late else "")
                     + (f", {manual} with work to grade by hand" if manual else "")
                     + (f", total mean {_num(statistics.fmean(totals))} / {_num(a.max_score)}, "
                        f"median {_num(statistics.median(totals))}" if totals else ""))
        lines.append(f"  {'graded cell':<40} {'max':>5} {'mean':>6} {'median':>6} "
                     f"{'full':>6} {'zero':>6}")
        for c in a.cells:
            awaiting = f"  ({len(c.awaiting)} to grade by hand)" if c.awaiting else ""
            lines.append(f"  {c.label[:40]:<40} {_num(c.max_points):>5} {_num(c.mean):>6} "
                         f"{_num(c.median):>6} {_pct(c.full_share):>6} "
                         f"{_pct(c.zero_share):>6}{awaiting}")
        if a.most_missed:
            lines.append("  most missed: " + "; ".join(
                f"{c.name} ({len(c.missed_by)} of {len(c.scores)})" for c in a.most_missed))
        for check in (c for c in data.checks if c.assignment == a.name):
            groups = check.groups()
            lines.append(f"  check {check.item}: {len(check.passed)} of {len(check.judged)} "
                         "passed" + (":" if groups else ""))
            for g in groups:
                who = ", ".join(g.students[:6]) + (" …" if len(g.students) > 6 else "")
                name = "not attempted" if g.key == NOT_ATTEMPTED else g.key
                lines.append(f"    {len(g.students):>3} × {name} ({who})")
    flagged = [(s, data.flags(s)) for s in data.students if data.flags(s)]
    lines.append("")
    lines.append(f"Missing or late work: {len(flagged)} student(s)")
    for student, flags in flagged[:10]:
        lines.append(f"  {student}: {', '.join(flags)}")
    if len(flagged) > 10:
        lines.append(f"  … and {len(flagged) - 10} more (see the report)")
    top = max(data.compared, key=lambda p: p.similarity, default=None)
    lines.append("")
    lines.append(f"Similar answers (≥ {data.threshold:.0%}): {len(data.pairs)} pair(s)"
                 + (f"; {len(data.compared)} pairs compared, highest "
                    f"{top.similarity:.0%}" if top else ""))
    for p in data.pairs[:10]:
        lines.append(f"  {p.assignment} / {p.cell}: {p.a} ~ {p.b}  "
                     f"{p.similarity_a:.0%} / {p.similarity_b:.0%}")
    return "\n".join(lines)


# --- the HTML -----------------------------------------------------------------------------

def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return ("<img alt='plot' src='data:image/png;base64,"
            + base64.b64encode(buffer.getvalue()).decode("ascii") + "'>")


def histogram(a: AssignmentStats) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 2.4))
    ax = fig.add_subplot()
    top = max(a.max_score, max(a.totals, default=0), 1)
    bins = min(20, max(5, int(top)))
    ax.hist(a.totals, bins=bins, range=(0, top), color="#4c72b0", edgecolor="white")
    ax.set_xlabel(f"total points (of {_num(a.max_score)})")
    ax.set_ylabel("students")
    ax.set_title(f"{a.name}: {len(a.totals)} submission{'s' * (len(a.totals) != 1)}",
                 fontsize=10)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


def mistake_chart(check: CheckStats) -> str:
    from matplotlib.figure import Figure

    groups = check.groups()[:8]
    if not groups:
        return ""
    fig = Figure(figsize=(5.6, 0.45 * len(groups) + 0.7))
    ax = fig.add_subplot()
    names = [("not attempted" if g.key == NOT_ATTEMPTED else g.key.split(".", 1)[-1])[:40]
             for g in groups]
    ax.barh(names[::-1], [len(g.students) for g in groups][::-1],
            color=["#bbbbbb" if g.key == NOT_ATTEMPTED else "#c44e52" for g in groups][::-1])
    ax.set_xlabel(f"students (of {len(check.judged)} judged)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1200px;
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}table{border-collapse:collapse;margin:.5em 0 1em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.flag{color:#a00}.late{color:#b60}.ok{color:#080}.muted{color:#777}
.grid{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.5em}
pre{background:#fafafa;border:1px solid #eee;padding:.4em;overflow-x:auto;font-size:.82em;
margin:0}pre span.copy{background:#ffe08a;display:block}pre span.line{display:block}
code{font-size:.9em}nav a{margin-right:1em}
"""


def _h(text) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: str, cls: str = "n") -> str:
    return f"<td class='{cls}'>{value}</td>"


def render_html(data: ClassData) -> str:
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>Class report: {_h(data.course_dir.name)}</title><style>{CSS}</style>"
           "</head><body>",
           f"<h1>Class report: {_h(data.course_dir.name)}</h1>",
           f"<p class='muted'>{len(data.students)} students, {len(data.assignments)} "
           f"assignment(s); generated {data.generated:%Y-%m-%d %H:%M %Z} from the gradebook and "
           "the autograded notebooks.</p>",
           "<nav><a href='#assignments'>Assignments</a><a href='#mistakes'>Mistakes</a>"
           "<a href='#students'>Students</a><a href='#similarity'>Similar answers</a></nav>",
           "<h2 id='assignments'>Assignments</h2>"]
    for a in data.assignments:
        totals = a.totals
        out.append(f"<h3>{_h(a.name)}</h3><p>{len(a.work)} of {len(data.students)} submitted"
                   + (f"; total mean {_num(statistics.fmean(totals))}, median "
                      f"{_num(statistics.median(totals))} of {_num(a.max_score)}" if totals else "")
                   + (f"; due {a.duedate:%Y-%m-%d %H:%M} UTC" if a.duedate else "") + ".</p>")
        out.append("<div class='grid'><div><table><tr><th>graded cell</th><th>checks</th>"
                   "<th>max</th><th>mean</th><th>median</th><th>full marks</th><th>zero</th>"
                   "<th>to grade by hand</th></tr>")
        for c in a.cells:
            out.append("<tr>" + _cell(_h(c.name), "") + _cell(_h(", ".join(c.checks))
                                                               or "<span class='muted'>"
                                                               "written answer</span>", "")
                       + "".join(_cell(x) for x in (_num(c.max_points), _num(c.mean),
                                                     _num(c.median), _pct(c.full_share),
                                                     _pct(c.zero_share),
                                                     str(len(c.awaiting)) if c.awaiting else ""))
                       + "</tr>")
        out.append("</table>")
        if a.most_missed:
            out.append("<p><b>Most missed:</b> " + "; ".join(
                f"{_h(c.name)} ({len(c.missed_by)} of {len(c.scores)} below full marks)"
                for c in a.most_missed) + "</p>")
        out.append(f"</div><div>{histogram(a) if totals else ''}</div></div>")

    out.append("<h2 id='mistakes'>Mistakes, per check</h2><p class='muted'>The mistake each "
               "failing student's message names (the checker's stable id), labelled with the "
               "message's first line. Not attempted: the answer still raises "
               "NotImplementedError or is None.</p>")
    for check in data.checks:
        groups = check.groups()
        out.append(f"<h3>{_h(check.assignment)} · <code>{_h(check.item)}</code>: "
                   f"{len(check.passed)} of {len(check.judged)} passed</h3>")
        if not groups:
            continue
        out.append("<div class='grid'><div><table><tr><th>students</th><th>mistake</th>"
                   "<th>headline of the message</th><th>who</th></tr>")
        for g in groups:
            share = len(g.students) / len(check.judged) if check.judged else 0
            out.append("<tr>" + _cell(f"{len(g.students)} ({share:.0%})")
                       + _cell(f"<code>{_h(g.key)}</code>", "")
                       + _cell(_h(g.label), "") + _cell(_h(", ".join(g.students)), "") + "</tr>")
        out.append(f"</table></div><div>{mistake_chart(check)}</div></div>")

    out.append("<h2 id='students'>Students</h2><table><tr><th>student</th>"
               + "".join(f"<th>{_h(a.name)}</th>" for a in data.assignments)
               + "<th>total</th><th>flags</th></tr>")
    for student in data.students:
        cells, got, out_of = [], 0.0, 0.0
        for a in data.assignments:
            work = a.work.get(student)
            out_of += a.max_score
            if work is None:
                cells.append(_cell("<span class='flag'>missing</span>"))
                continue
            got += work.score
            mark = " <span class='late'>late</span>" if work.seconds_late > 0 else ""
            if work.needs_manual:
                mark += " <span class='muted' title='to grade by hand'>✎</span>"
            cells.append(_cell(f"{_num(work.score)} / {_num(work.max_score)}{mark}"))
        flags = data.flags(student)
        out.append("<tr>" + _cell(_h(student), "") + "".join(cells)
                   + _cell(f"{_num(got)} / {_num(out_of)}")
                   + _cell(_h("; ".join(flags)) if flags else "<span class='ok'>—</span>", "")
                   + "</tr>")
    out.append("</table><p class='muted'>late: handed in after the due date (nbgrader's "
               "timestamp); ✎: written answers still to grade by hand in the formgrader.</p>")

    top = max(data.compared, key=lambda p: p.similarity, default=None)
    out.append(f"<h2 id='similarity'>Similar answers</h2><p class='muted'>Winnowing "
               f"fingerprints (copydetect) over each answer cell across the class; names, "
               f"comments and layout ignored, the code every student received discounted. "
               f"Pairs whose shared share reaches {data.threshold:.0%}: {len(data.pairs)} of "
               f"{len(data.compared)} compared"
               + (f" (highest {top.similarity:.0%})" if top else "")
               + ". A high similarity is a reason to look, not proof.</p>")
    for p in data.pairs:
        out.append(f"<h3>{_h(p.assignment)} · {_h(p.cell)}"
                   + (f" ({_h(', '.join(p.items))})" if p.items else "")
                   + f": {_h(p.a)} ~ {_h(p.b)}</h3><p>{_pct(p.similarity_a)} of {_h(p.a)}'s "
                   f"answer is found in {_h(p.b)}'s; {_pct(p.similarity_b)} of {_h(p.b)}'s in "
                   f"{_h(p.a)}'s. Shared lines are highlighted.</p><div class='pair'>")
        for who, lines in ((p.a, p.lines_a), (p.b, p.lines_b)):
            body = "".join(f"<span class='{'copy' if copied else 'line'}'>{_h(line) or ' '}"
                           "</span>" for line, copied in lines)
            out.append(f"<div><b>{_h(who)}</b><pre>{body}</pre></div>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(course_dir: str | os.PathLike = ".", out: str | os.PathLike | None = None,
                 check_similarity: bool = True, threshold: float = similarity.THRESHOLD
                 ) -> tuple[Path, ClassData]:
    """Write <course>/reports/index.html (or ``out``); return its path and the data."""
    data = collect(course_dir, check_similarity, threshold)
    path = Path(out) if out else data.course_dir / REPORT_DIR / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path, data
