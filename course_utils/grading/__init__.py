"""Autograding a class with nbgrader: parallel, resumable, and safe against hostile notebooks.

Modules:
- judge: decides graded test cells in the grading process, with the kernel as an oracle;
- judged: nbgrader's Execute step that hands graded test cells to the judge;
- oracle: the kernel-side half of the judge (answers requests with data only);
- mirror: the judge's stand-ins for the student's classes, modules and functions;
- sandbox_kernel: the grading kernel, started inside bubblewrap with a memory cap;
- zygote, zygote_kernel, namespaces: kernels forked from a process that imported torch and
  the lessons' modules once, each entering the same sandbox with system calls;
- capped_stream: caps what one cell may print;
- execute: nbgrader's Execute step, made to survive a kernel that dies or freezes;
- job: grade one (student, assignment) in a private course directory;
- worker: long-lived worker processes that grade job after job;
- merge: copy a job's result into the course gradebook (the only writer);
- runner: find submissions, skip unchanged ones, run jobs on local workers or on Dask;
- demo: build and grade a sample class (`make grade-demo`).
"""
