"""Autograding speed: one full submission, and a class graded three ways in one run.

    python benchmarks/grading.py [--students 20] [--lesson 03_resnet] [--skip-full]

1. One complete submission of all seven lessons, graded by `course_utils.grading` with one
   worker: seconds in total and per lesson (sandboxed kernel, GRADE mode).
2. A class of N students on one lesson (correct, partial and empty submissions in turn),
   graded in the same run by plain sequential `nbgrader autograde` (no sandbox, one process)
   and by `course_utils.grading` with 1 and with 2 workers. Prints students per minute.
   Our timings include writing the feedback and grades.csv; plain nbgrader's do not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course_utils.grading import demo
from course_utils.grading.job import venv_env
from course_utils.grading.runner import grade_class

KINDS = {
    "correct": lambda lesson, course: demo.filled(lesson, course_dir=course),
    "partial": lambda lesson, course: demo.filled(lesson, lambda i, gid: i % 2 == 0,
                                                  course_dir=course),
    "empty": lambda lesson, course: demo.student_copy(lesson, course),
}


def make_class(course: Path, lesson: str, students: int) -> None:
    demo.new_course(course)
    kinds = list(KINDS)
    for n in range(students):
        kind = kinds[n % len(kinds)]
        demo.save_submission(course, f"s{n:02d}_{kind}", lesson, KINDS[kind](lesson, course))


def plain_nbgrader(course: Path, lesson: str) -> float:
    """Seconds for `nbgrader autograde <lesson>` over the whole class, as nbgrader ships."""
    env = venv_env(COURSE_MODE="grade")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", lesson, "--force", "--log-level=ERROR"],
                   cwd=course, env=env, check=True, capture_output=True)
    start = time.perf_counter()
    proc = subprocess.run([*nbgrader, "autograde", lesson, "--log-level=ERROR"], cwd=course,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader autograde failed:\n{proc.stderr[-2000:]}")
    return seconds


def ours(course: Path, lesson: str, workers: int) -> float:
    start = time.perf_counter()
    report = grade_class(course, workers=workers, assignments=[lesson], log=lambda line: None)
    seconds = time.perf_counter() - start
    failed = [r for r in report.graded if r.status != "graded"]
    if failed:
        raise RuntimeError(f"{len(failed)} submissions not graded: {failed[0].message}")
    return seconds


def full_submission(workdir: Path) -> None:
    course = workdir / "full"
    lessons = demo.new_course(course)
    for lesson in lessons:
        demo.save_submission(course, "complete", lesson, demo.filled(lesson, course_dir=course))
    start = time.perf_counter()
    report = grade_class(course, workers=1, log=lambda line: None)
    total = time.perf_counter() - start
    print(f"One complete submission of all {len(lessons)} lessons, 1 worker: {total:.1f} s "
          f"(including feedback and export)")
    for result in sorted(report.graded, key=lambda r: r.assignment):
        score, out_of = report.scores["complete"][result.assignment]
        print(f"  {result.assignment:<24} {result.seconds:6.1f} s   "
              f"{score:4.0f}/{out_of:<3.0f} autograded points")
    print()


def class_throughput(workdir: Path, lesson: str, students: int) -> None:
    rows = []
    course = workdir / "plain"
    make_class(course, lesson, students)
    rows.append(("plain `nbgrader autograde`, sequential", plain_nbgrader(course, lesson)))
    for workers in (1, 2):
        course = workdir / f"ours{workers}"
        make_class(course, lesson, students)
        rows.append((f"course_utils.grading, {workers} worker(s)", ours(course, lesson, workers)))
    print(f"A class of {students} students on {lesson} ({os.cpu_count()} CPU cores):")
    print(f"  {'grader':<40} {'seconds':>8} {'s/student':>10} {'students/min':>13}")
    for name, seconds in rows:
        print(f"  {name:<40} {seconds:8.1f} {seconds / students:10.1f} "
              f"{students / seconds * 60:13.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--lesson", default="03_resnet")
    parser.add_argument("--skip-full", action="store_true",
                        help="skip grading one full seven-lesson submission")
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error("--students must be at least 1")
    if shutil.which("bwrap") is None:
        parser.error("bubblewrap is not installed (make system-deps installs it)")
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        if not args.skip_full:
            full_submission(Path(tmp))
        class_throughput(Path(tmp), args.lesson, args.students)


if __name__ == "__main__":
    main()
