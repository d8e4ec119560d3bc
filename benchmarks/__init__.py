"""Benchmarks (benchmarks/README.md), run from the repository root as modules:
`python -m benchmarks.flops`. The repository root is the one import base they share with the
tests: `tests.notebook_tools` runs a lesson notebook, `tests.checks_corpus` holds correct
answers.
"""
