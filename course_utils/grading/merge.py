"""Write job results into the course gradebook. The process calling this is its only writer."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from .job import JobResult


def merge(course_dir: Path, db_url: str, result: JobResult) -> None:
    """Record `result` in the gradebook and place its autograded files in the course."""
    target = course_dir / "autograded" / result.student / result.assignment
    if target.exists():
        shutil.rmtree(target)
    for rel, data in result.autograded.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    with Gradebook(db_url) as gb, warnings.catch_warnings():
        # nbgrader's own queries trip SQLAlchemy's autoflush warnings; they are harmless noise.
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(result.student)
        try:
            submission = gb.find_submission(result.assignment, result.student)
        except MissingEntry:
            submission = gb.add_submission(result.assignment, result.student)
        if result.timestamp:
            from nbgrader import utils

            submission.timestamp = utils.parse_utc(result.timestamp)
        for nb in submission.notebooks:
            scores = result.grades.get(nb.name, {})
            notes = result.comments.get(nb.name, {})
            for grade in nb.grades:
                # Manual scores stay: an instructor's judgement is not the grader's to undo.
                if result.status == "graded":
                    grade.auto_score = scores.get(grade.name)
                elif grade.cell.cell_type == "code":
                    grade.auto_score = 0.0
                # nbgrader's rule (SaveAutoGrades): an item needs the instructor when the
                # grader gave it no score, or when a manual score may be stale after a regrade.
                grade.needs_manual_grade = (grade.manual_score is not None
                                            or grade.auto_score is None
                                            or result.status != "graded")
            for comment in nb.comments:
                comment.auto_comment = (notes.get(comment.name) if result.status == "graded"
                                        else f"Not graded automatically: {result.message}")
        gb.db.commit()
