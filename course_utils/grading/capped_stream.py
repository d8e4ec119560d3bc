"""An ipykernel output stream that forwards at most a fixed amount of text per cell.

A submission that prints hundreds of megabytes would otherwise be copied into the graded
notebook, the gradebook's feedback and nbgrader's memory. Past the cap the rest of that cell's
output is dropped and one line says so; the next cell starts with a fresh allowance.
"""

from __future__ import annotations

import os

from ipykernel.iostream import OutStream

CAP_CHARS = 200_000  # the default; the grader may set another (JobSpec.output_cap)
CAP_VARIABLE = "COURSE_GRADING_OUTPUT_CAP"  # set in the sandbox's environment by the grader
NOTICE = "\n[output truncated by the grader: more than {:,} characters in one cell]\n"


class CappedOutStream(OutStream):
    """OutStream that stops forwarding after CAP_CHARS characters per executed cell."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cap_msg_id = None
        self._cap_used = 0
        self._cap = int(os.environ.get(CAP_VARIABLE) or CAP_CHARS)

    def write(self, string: str) -> int | None:
        msg_id = self.parent_header.get("msg_id") if isinstance(self.parent_header, dict) else None
        if msg_id != self._cap_msg_id:
            self._cap_msg_id, self._cap_used = msg_id, 0
        if not isinstance(string, str):
            return super().write(string)  # OutStream raises the usual TypeError
        room = self._cap - self._cap_used
        if room <= 0:
            return len(string)
        self._cap_used += len(string)
        if len(string) > room:
            super().write(string[:room] + NOTICE.format(self._cap))
            return len(string)
        return super().write(string)
