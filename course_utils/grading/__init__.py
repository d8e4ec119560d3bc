"""Autograding a class with nbgrader: parallel, resumable, and safe against hostile notebooks.

Modules:
- sandbox_kernel: the grading kernel, started inside bubblewrap with a memory cap;
- capped_stream: caps what one cell may print;
- execute: nbgrader's Execute step, made to survive a kernel that kills itself;
- job: grade one (student, assignment) in a private course directory;
- merge: copy a job's result into the course gradebook (the only writer);
- runner: find submissions, skip unchanged ones, run jobs in processes or on Dask;
- demo: build and grade a sample class (`make grade-demo`).
"""
