"""Command line: python -m course_utils.grading {grade,feedback,demo,report,export} ...

  grade     autograde <course>/submitted/ (new or changed submissions only), write feedback
            and grades.csv, print a per-student table and a one-line summary
  feedback  write the feedback and grades.csv again (after manual grading in the formgrader)
  demo      build a sample class from the student notebooks and grade it (make grade-demo)
  report    the class report: <course>/reports/index.html (statistics per item, named
            mistakes, students, similar answers) and a printed summary (make report)
  export    grades for an LMS: <course>/exports/canvas.csv and moodle.csv

Exit status: the number of submissions not graded automatically (0 when every submission
was graded; at most 100), or 101 when the command itself could not run; report and export:
0, or 101. While `grade` runs, a progress bar on a terminal's stderr counts the submissions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .runner import format_table, grade_class, refresh_feedback
from .sandbox_kernel import DEFAULT_MEMORY

MAX_EXIT = 100
ERROR_EXIT = 101


class _Parser(argparse.ArgumentParser):
    """argparse with this command's exit status for usage errors (101, not 2)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(ERROR_EXIT)


def _memory(text: str) -> int:
    units = {"G": 2**30, "M": 2**20}
    try:
        return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].isalpha() else int(text)
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"memory must look like 6G or 512M, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m course_utils.grading",
                     description=__doc__.split("\n\n")[0],
                     epilog="Exit status: the number of submissions not graded automatically "
                            "(0: all graded; at most 100), or 101 on an error.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p):
        p.add_argument("--workers", type=int, default=os.cpu_count(),
                       help="parallel grading jobs (default: CPU count)")
        p.add_argument("--dask", metavar="SCHEDULER", default=None,
                       help="run jobs on Dask: 'local' for a LocalCluster, or a scheduler "
                            "address such as tcp://10.0.0.5:8786")
        p.add_argument("--cell-timeout", type=int, default=None,
                       help="seconds one cell may run before it is interrupted (default: "
                            "the course's nbgrader_config.py, c.ExecutePreprocessor.timeout)")
        p.add_argument("--memory", type=_memory, default=None,
                       help="address-space cap of a student's kernel, e.g. 6G (default "
                            f"{DEFAULT_MEMORY // 2**30}G)")

    g = sub.add_parser("grade", help="autograde a submitted/ tree")
    g.add_argument("course_dir", nargs="?", default=".", help="nbgrader course directory")
    g.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    g.add_argument("--student", action="append", help="only this student (repeatable)")
    g.add_argument("--force", action="store_true", help="grade again even if unchanged")
    common(g)

    f = sub.add_parser("feedback", help="write feedback and grades.csv again")
    f.add_argument("course_dir", nargs="?", default=".", help="nbgrader course directory")
    f.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    f.add_argument("--student", action="append", help="only this student (repeatable)")

    d = sub.add_parser("demo", help="build and grade a sample class")
    d.add_argument("--out", default="grade-demo", help="folder for the demo course (default: grade-demo)")
    d.add_argument("--lessons", nargs="*", default=None, help="lessons for the full-class students")
    common(d)

    r = sub.add_parser("report", help="write the class report (reports/index.html)")
    r.add_argument("course_dir", nargs="?", default=".", help="nbgrader course directory")
    r.add_argument("--out", default=None, help="the HTML file (default: <course>/reports/index.html)")
    r.add_argument("--threshold", type=float, default=None,
                   help="similarity at which a pair of answers is listed (default 0.5)")
    r.add_argument("--no-similarity", action="store_true", help="skip the similarity check")

    e = sub.add_parser("export", help="write LMS grade exports (exports/canvas.csv, moodle.csv)")
    e.add_argument("course_dir", nargs="?", default=".", help="nbgrader course directory")
    e.add_argument("--out", default=None, help="folder for the files (default: <course>/exports)")

    args = parser.parse_args(argv)
    if args.command in ("report", "export"):
        return _report_or_export(args)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        if args.command == "feedback":
            refresh_feedback(args.course_dir, args.assignment, args.student)
            return 0
        if args.command == "grade":
            report = grade_class(args.course_dir, workers=args.workers,
                                 assignments=args.assignment, students=args.student,
                                 scheduler=args.dask, cell_timeout=args.cell_timeout,
                                 memory_bytes=args.memory, force=args.force)
        else:
            from .demo import run_demo

            report = run_demo(Path(args.out), workers=args.workers, scheduler=args.dask,
                              cell_timeout=args.cell_timeout, memory_bytes=args.memory,
                              lessons=args.lessons)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR_EXIT
    print()
    print(format_table(report.scores))
    print(f"\ngrades: {report.csv_path}")
    print(report.summary())
    return min(len(report.attention), MAX_EXIT)


def _report_or_export(args) -> int:
    try:
        if args.command == "export":
            from .export import export_lms

            for path in export_lms(args.course_dir, args.out):
                print(f"wrote {path}")
            return 0
        from .report import write_report
        from .similarity import THRESHOLD

        path, data = write_report(args.course_dir, args.out,
                                  check_similarity=not args.no_similarity,
                                  threshold=THRESHOLD if args.threshold is None
                                  else args.threshold)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR_EXIT
    from .report import summary_text

    print(summary_text(data))
    print(f"\nreport: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
