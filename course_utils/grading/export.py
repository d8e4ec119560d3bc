"""Grades an LMS gradebook imports: one row per student, one column per assignment.

`python -m course_utils.grading export <course>` writes, next to nbgrader's grades.csv:

- exports/canvas.csv: Canvas's gradebook CSV layout: ``Student, ID, SIS User ID,
  SIS Login ID, Section``, then one column per assignment named as the assignment; a second
  row ``Points Possible`` holds each assignment's maximum, as Canvas's own export does.
  ``Student`` is "Last, First" (the id when the gradebook has no names), ``SIS User ID`` the
  nbgrader student id, ``SIS Login ID`` the student's email when known; ``ID`` (Canvas's
  internal user id) and ``Section`` are left empty.
- exports/moodle.csv: ``ID number, Email address, First name, Last name``, then one column
  per assignment; Moodle's CSV import maps "ID number" to the user's idnumber (or "Email
  address" to their email) and each assignment column to a grade item.

Scores are points (not percentages) out of the assignment's maximum, after nbgrader's late
penalty (``score`` in grades.csv). Work not handed in is an empty cell: both LMSs leave the
grade untouched rather than record a 0.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

EXPORT_DIR = "exports"


def _points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def read_grades(course_dir: Path) -> tuple[list[tuple[str, float]], list[dict]]:
    """([(assignment, max points)], [{id, first, last, email, scores: {assignment: points}}])."""
    from nbgrader.api import Gradebook, MissingEntry

    db = course_dir / "gradebook.db"
    if not db.exists():
        raise FileNotFoundError(f"no gradebook: {db} does not exist (grade the class first)")
    with Gradebook(f"sqlite:///{db}") as gb:
        assignments = [(a.name, float(a.max_score or 0))
                       for a in sorted(gb.assignments, key=lambda a: a.name)]
        rows = []
        for student in sorted(gb.students, key=lambda s: s.id):
            scores = {}
            for name, _ in assignments:
                try:
                    sub = gb.find_submission(name, student.id)
                except MissingEntry:
                    continue
                scores[name] = max(0.0, float(sub.score) - float(sub.late_submission_penalty or 0))
            rows.append({"id": student.id, "first": student.first_name or "",
                         "last": student.last_name or "", "email": student.email or "",
                         "scores": scores})
    return assignments, rows


def write_canvas(path: Path, assignments, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                         *(name for name, _ in assignments)])
        writer.writerow(["Points Possible", "", "", "", "",
                         *(_points(m) for _, m in assignments)])
        for r in rows:
            name = f"{r['last']}, {r['first']}" if r["last"] or r["first"] else r["id"]
            writer.writerow([name, "", r["id"], r["email"], "",
                             *(_points(r["scores"][a]) if a in r["scores"] else ""
                               for a, _ in assignments)])


def write_moodle(path: Path, assignments, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ID number", "Email address", "First name", "Last name",
                         *(name for name, _ in assignments)])
        for r in rows:
            writer.writerow([r["id"], r["email"], r["first"], r["last"],
                             *(_points(r["scores"][a]) if a in r["scores"] else ""
                               for a, _ in assignments)])


def export_lms(course_dir: str | os.PathLike = ".", out: str | os.PathLike | None = None
               ) -> list[Path]:
    """Write exports/canvas.csv and exports/moodle.csv; return their paths."""
    course_dir = Path(course_dir).resolve()
    folder = Path(out) if out else course_dir / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    assignments, rows = read_grades(course_dir)
    paths = [folder / "canvas.csv", folder / "moodle.csv"]
    write_canvas(paths[0], assignments, rows)
    write_moodle(paths[1], assignments, rows)
    return paths
