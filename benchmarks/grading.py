"""Autograding speed against its physical limit, with the sandbox and the judge on.

    python benchmarks/grading.py [--students 20] [--lesson 03_resnet] [--workers 2]
                                 [--skip-full] [--skip-class] [--skip-dask] [--one-worker]

1. One complete submission of all seven lessons, graded by `course_utils.grading` with one
   worker, next to executing the same seven notebooks plainly in GRADE mode (one kernel per
   notebook, no nbgrader, no sandbox, no judge): the limit. Also the fixed cost per job:
   everything but executing cells (preparation, nbgrader, waiting for a kernel, feedback,
   merge, export), per job.
2. A class of N students on one lesson (correct, partial and empty submissions in turn),
   graded in the same run by plain sequential `nbgrader autograde` (no sandbox, one process,
   test cells run in the kernel), by `course_utils.grading` with local workers, and by the
   same on a Dask LocalCluster with as many workers. Prints students per minute and the
   ratios the README quotes. Our timings include feedback and grades.csv; plain nbgrader's
   do not.
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

import nbformat

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


def ours(course: Path, lesson: str | None, workers: int, scheduler: str | None = None):
    """(seconds, report) of grading the course's submissions with course_utils.grading."""
    start = time.perf_counter()
    report = grade_class(course, workers=workers, scheduler=scheduler,
                         assignments=[lesson] if lesson else None, log=lambda line: None,
                         progress=False)
    seconds = time.perf_counter() - start
    failed = [r for r in report.graded if r.status != "graded"]
    if failed:
        raise RuntimeError(f"{len(failed)} submissions not graded: {failed[0].message}")
    return seconds, report


def cells_seconds(report) -> float:
    return sum(r.phases.get("cells", 0.0) for r in report.graded)


def plain_execution(course: Path, lessons: list[str], workdir: Path) -> dict[str, float]:
    """Seconds to execute each submitted notebook in GRADE mode: a kernel, the cells, no
    grader around them (test cells run in the kernel)."""
    from nbclient import NotebookClient

    env = dict(os.environ, COURSE_MODE="grade")
    seconds = {}
    for lesson in lessons:
        nb = nbformat.read(course / "submitted" / "complete" / lesson / f"{lesson}.ipynb", 4)
        folder = workdir / lesson
        folder.mkdir(parents=True)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, allow_errors=True,
                       resources={"metadata": {"path": str(folder)}}).execute(env=env)
        seconds[lesson] = time.perf_counter() - start
    return seconds


def full_submission(workdir: Path) -> None:
    course = workdir / "full"
    lessons = demo.new_course(course)
    for lesson in lessons:
        demo.save_submission(course, "complete", lesson, demo.filled(lesson, course_dir=course))
    plain = plain_execution(course, lessons, workdir / "plain-run")
    total, report = ours(course, None, workers=1)
    by_lesson = {r.assignment: r for r in report.graded}
    cells = cells_seconds(report)
    print(f"One complete submission of all {len(lessons)} lessons ({uptime()}):")
    print(f"  {'lesson':<24} {'plain GRADE run':>16} {'graded (1 worker)':>18} "
          f"{'of which: cells':>16} {'judge':>7} {'kernel wait':>12} {'points':>9}")
    for lesson in lessons:
        score, out_of = report.scores["complete"][lesson]
        phases = by_lesson[lesson].phases
        print(f"  {lesson:<24} {plain[lesson]:14.1f} s {by_lesson[lesson].seconds:16.1f} s "
              f"{phases.get('cells', 0):14.1f} s {phases.get('judge', 0):5.1f} s "
              f"{phases.get('kernel_start', 0):10.1f} s {score:4.0f}/{out_of:<4.0f}")
    print(f"  {'total':<24} {sum(plain.values()):14.1f} s {total:16.1f} s   "
          f"(ours / plain = {total / sum(plain.values()):.2f}; target <= 1.3)")
    print(f"  fixed cost per job (all but executing cells, run overheads included): "
          f"{(total - cells) / len(lessons):.1f} s (target <= 3 s)")
    print()


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def class_throughput(workdir: Path, lesson: str, students: int, workers: int,
                     dask: bool, one_worker: bool) -> None:
    rows = []
    course = workdir / "plain"
    make_class(course, lesson, students)
    rows.append(("plain `nbgrader autograde`, sequential", plain_nbgrader(course, lesson), None))
    counts = [1, workers] if one_worker and workers != 1 else [workers]
    for n in counts:
        course = workdir / f"ours{n}"
        make_class(course, lesson, students)
        rows.append((f"course_utils.grading, {_workers(n)}", *ours(course, lesson, n)))
    if dask:
        course = workdir / "dask"
        make_class(course, lesson, students)
        rows.append((f"course_utils.grading, Dask LocalCluster, {_workers(workers)}",
                     *ours(course, lesson, workers, scheduler="local")))
    print(f"A class of {students} students on {lesson} ({os.cpu_count()} CPU cores, "
          f"{uptime()}):")
    print(f"  {'grader':<52} {'seconds':>8} {'s/student':>10} {'students/min':>13} "
          f"{'fixed s/job':>12}")
    for name, seconds, report in rows:
        fixed = "" if report is None else \
            f"{(seconds * min(workers, students) - cells_seconds(report)) / students:12.1f}"
        print(f"  {name:<52} {seconds:8.1f} {seconds / students:10.1f} "
              f"{students / seconds * 60:13.2f} {fixed}")
    plain = rows[0][1]
    local = next(s for name, s, _ in rows if name == f"course_utils.grading, {_workers(workers)}")
    print(f"  {_workers(workers)} vs plain sequential nbgrader: {plain / local:.2f}x the "
          f"students/min (target >= 2.0)")
    if dask:
        print(f"  Dask vs local workers: {local / rows[-1][1]:.2f}x the students/min "
              f"(target within 10 %)")


def uptime() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--lesson", default="03_resnet")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true",
                        help="skip grading one full seven-lesson submission")
    parser.add_argument("--skip-class", action="store_true", help="skip the class of N")
    parser.add_argument("--skip-dask", action="store_true", help="skip the Dask row")
    parser.add_argument("--one-worker", action="store_true", help="add a row with 1 worker")
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error("--students must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if shutil.which("bwrap") is None:
        parser.error("bubblewrap is not installed (make system-deps installs it)")
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        if not args.skip_full:
            full_submission(Path(tmp))
        if not args.skip_class:
            class_throughput(Path(tmp), args.lesson, args.students, args.workers,
                             not args.skip_dask, args.one_worker)
    print(f"\nbenchmark time {time.perf_counter() - start:.0f} s; at the end: {uptime()}")


if __name__ == "__main__":
    main()
