"""Answers copied between students: winnowing fingerprints (copydetect, as in MOSS).

For each answer cell (an nbgrader ``solution`` code cell, identified by its grade id) the
answers of every student are tokenised by copydetect: names become ``V``/``F``/``O``,
strings ``S``, whitespace and comments go, so renaming variables and re-indenting change
nothing. Fingerprints are winnowed hashes of ``noise`` characters of that token text
(k-grams); two answers are similar when many of their fingerprints coincide, wherever
they sit, so reordering methods changes little either.

Discounted: the code every student received (the release notebook's cell: class line,
signature, ``# YOUR CODE HERE``), and fingerprints that more than ``common_share`` of the
class (and at least ``COMMON_MIN`` answers) share, as MOSS's ``-m`` does: the obvious way to
write a line is not evidence of copying. An answer with fewer than ``min_tokens`` tokens of
its own left is too short to tell copying from the only sensible answer, and is skipped.

A pair's similarity is the share of one answer's tokens found in the other; a pair is
listed when either share reaches ``threshold``. The defaults (k-grams of 40 token
characters, winnowing window 5, threshold 0.5) separate a BasicBlock copied with renamed
variables and reordered methods (0.95) from independent answers with the same idea (at most
0.21) in tests/test_report.py.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

NOISE = 40          # k: the shortest run of token text that counts as shared
WINDOW = 5          # winnowing window: any shared run of NOISE + WINDOW - 1 is found
THRESHOLD = 0.5
MIN_TOKENS = 60
COMMON_SHARE = 0.5
COMMON_MIN = 10
SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION.*?^[ \t]*### END SOLUTION[ \t]*\n?",
                             re.M | re.S)


@dataclass
class Answer:
    student: str
    source: str


@dataclass
class Pair:
    assignment: str
    cell: str                 # the answer cell's grade id
    items: tuple[str, ...]    # the checks that grade it
    a: str
    b: str
    similarity_a: float       # share of a's answer found in b's
    similarity_b: float
    lines_a: list[tuple[str, bool]] = field(default_factory=list)  # (line, copied?)
    lines_b: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def similarity(self) -> float:
        return max(self.similarity_a, self.similarity_b)


def release_boilerplate(source_cell: str, stub: str = "# YOUR CODE HERE\nraise "
                        "NotImplementedError()") -> str:
    """What a student receives for a source cell: its solution regions replaced by the stub
    (used when the course has no release copy of the notebook)."""
    def stub_at(match: re.Match) -> str:
        indent = re.match(r"[ \t]*", match.group(0)).group(0)
        return "".join(f"{indent}{line}\n" for line in stub.splitlines())
    return SOLUTION_REGION.sub(stub_at, source_cell)


class _Fingerprint:
    """copydetect's CodeFingerprint, with a k-gram hash that is the same in every process.

    copydetect hashes k-grams with Python's ``hash()``, which is salted per process, so the
    fingerprints winnowing keeps (and the similarities) would change from run to run. Here
    the same steps use copydetect's own tokeniser, winnowing and coverage, over blake2b.
    """

    def __init__(self, source: str, boilerplate: np.ndarray | None = None,
                 window: int = WINDOW, noise: int = NOISE) -> None:
        from copydetect.utils import filter_code, get_token_coverage, winnow

        filtered, offsets = filter_code(source, "answer.py", "python")
        grams = [filtered[i:i + noise] for i in range(len(filtered) - noise + 1)]
        hashes = np.array([int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(),
                                          "little", signed=True) for g in grams],
                          dtype=np.int64)
        if len(hashes):
            hashes, idx = winnow(hashes, window, remove_duplicates=False)
        else:
            idx = np.array([], dtype=np.int64)
        if boilerplate is not None and len(boilerplate) and len(hashes):
            keep = ~np.isin(hashes, boilerplate)
            hashes, idx = hashes[keep], idx[keep]
        self.hash_idx: dict[int, list[int]] = {}
        for value, i in zip(hashes.tolist(), idx.tolist(), strict=True):
            self.hash_idx.setdefault(value, []).append(i)
        self.hashes = set(self.hash_idx)
        self.raw_code, self.filtered_code, self.offsets = source, filtered, offsets
        self.k = noise
        self.token_coverage = get_token_coverage(self.hash_idx, noise, len(filtered))


def _lines(source: str, slices: np.ndarray) -> list[tuple[str, bool]]:
    """The answer's lines, each marked when a copied slice touches it (side-by-side view)."""
    marked = np.zeros(len(source) + 1, dtype=bool)
    if slices.size:
        for start, end in zip(slices[0], slices[1], strict=True):
            marked[int(start):int(end)] = True
    out, pos = [], 0
    for line in source.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        touched = bool(marked[pos:pos + len(stripped)].any()) and bool(stripped.strip())
        out.append((stripped, touched))
        pos += len(line)
    return out


def similar_pairs(assignment: str, cell: str, answers: list[Answer], boilerplate: str = "",
                  items: tuple[str, ...] = (), threshold: float = THRESHOLD,
                  min_tokens: int = MIN_TOKENS, common_share: float = COMMON_SHARE,
                  common_min: int = COMMON_MIN) -> tuple[list[Pair], list[Pair]]:
    """(pairs at or above ``threshold``, every pair compared) for one answer cell."""
    from copydetect import compare_files

    answers = [a for a in answers if a.source.strip()]
    if len(answers) < 2:
        return [], []
    base = _Fingerprint(boilerplate, window=1) if boilerplate.strip() else None
    discount = set(base.hashes) if base is not None else set()
    # Fingerprints most of the class shares: the obvious code, not a copy.
    first = [_Fingerprint(a.source, np.array(sorted(discount), dtype=np.int64))
             for a in answers]
    counts = Counter(h for fp in first for h in fp.hashes)
    limit = max(common_min, common_share * len(answers))
    discount |= {h for h, count in counts.items() if count > limit}
    boiler = np.array(sorted(discount), dtype=np.int64)
    prints = [_Fingerprint(a.source, boiler) if len(boiler) else fp
              for a, fp in zip(answers, first, strict=True)]
    flagged, compared = [], []
    for (i, a), (j, b) in itertools.combinations(enumerate(answers), 2):
        fa, fb = prints[i], prints[j]
        if min(fa.token_coverage, fb.token_coverage) < min_tokens:
            continue
        _, (sa, sb), (slices_a, slices_b) = compare_files(fa, fb)
        pair = Pair(assignment, cell, items, a.student, b.student, float(sa), float(sb))
        compared.append(pair)
        if pair.similarity >= threshold:
            pair.lines_a = _lines(a.source, np.asarray(slices_a))
            pair.lines_b = _lines(b.source, np.asarray(slices_b))
            flagged.append(pair)
    flagged.sort(key=lambda p: (-p.similarity, p.a, p.b))
    return flagged, compared
