"""The judge: graded test cells are decided here, in the grading process, not in the kernel.

A graded test cell holds only ``check("item", Name, option=...)`` lines. When grading, such
a cell is not sent to the student's kernel. For each line the judge

1. reads the student's code that defines ``Name`` (the answer cell above the test) and
   refuses torchvision's own block handed in as the student's (a static scan; the mirrored
   forward also reports torchvision code it sees running);
2. asks the kernel, over the oracle protocol (``course_utils.grading.oracle``), what ``Name``
   is, and runs the very check the notebook runs (``course_utils.checks.judge``) on a mirror
   of it (``course_utils.grading.mirror``), with the hidden configurations on;
3. writes the check's ✓ line as the cell's output, or its message as an error output, so
   nbgrader scores, stores and shows it as if the cell had run.

Student code can rebind ``check``, register input transformers, patch builtins or torch in
its kernel: none of that reaches this process. It can only make the kernel's answers wrong.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import time
from dataclasses import dataclass
from typing import Any

import torch
from nbformat import NotebookNode

from course_utils.checks import REGISTRY, judge
from course_utils.checks._calls import Unanswered
from course_utils.checks._cells import CheckCall, NotJudgeable, parse_checks  # noqa: F401
from course_utils.checks._registry import GRADING

from .mirror import factory, remote_error

ORACLE = "__import__('course_utils.grading.oracle', fromlist=['serve']).serve({!r})"
# Items judged against torchvision's own code: handing that code in proves nothing.
TORCHVISION_ITEMS = {"basic_block": "BasicBlock", "se_block": "SqueezeExcitation",
                     "ex2_small_resnet": "BasicBlock", "ex3_se_net": "SqueezeExcitation"}
FORBIDDEN_SOURCE = re.compile(
    r"torchvision\s*\.\s*models\s*\.\s*resnet|models\s*\.\s*resnet\s*\.\s*BasicBlock|"
    r"from\s+torchvision\.models\.resnet\s+import|torchvision\s*\.\s*ops\s*\.\s*misc|"
    r"SqueezeExcitation")


def is_judged_cell(cell: NotebookNode) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return (cell.get("cell_type") == "code" and bool(meta.get("grade"))
            and not meta.get("solution"))


# --- the kernel, as an oracle -------------------------------------------------------------------

_QUOTED_BASE64 = re.compile(r"'([A-Za-z0-9+/=]*)'")


def _quoted_base64(text: str) -> str:
    """The base64 inside the text/plain repr of the oracle's answer (parsed, never evaluated:
    ast.literal_eval compiled every answer: 9 % of the judge's time on lesson 03, profiled)."""
    match = _QUOTED_BASE64.fullmatch(text.strip())
    if match is None:
        raise ValueError("the answer is not one quoted base64 string")
    return match.group(1)


class KernelChannel:
    """Requests to the student's kernel over Jupyter's shell channel; answers as data only.

    A request is a ``user_expressions`` entry of an empty execute request: IPython evaluates
    it without input transformers, and the reply carries the answer (base64 of torch.save
    bytes), which the judge reads with ``weights_only=True``. After one request goes
    unanswered within ``timeout`` seconds the channel is dead: every later request fails at
    once, so a frozen kernel costs one timeout, not one per check.
    """

    def __init__(self, client: Any, timeout: float) -> None:
        self.client, self.timeout = client, timeout
        self.dead: str | None = None
        self.requests = 0

    def __call__(self, op: str, args: dict) -> Any:
        if self.dead:
            raise Unanswered(self.dead)
        buffer = io.BytesIO()
        torch.save({"op": op, "args": args}, buffer)
        expression = ORACLE.format(base64.b64encode(buffer.getvalue()).decode("ascii"))
        self.requests += 1
        msg_id = self.client.execute("", silent=True, store_history=False,
                                     user_expressions={"r": expression}, allow_stdin=False)
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.dead = (f"the kernel did not answer within {self.timeout:g} s (an endless "
                             "loop in your code, or a kernel frozen by an earlier cell)")
                raise Unanswered(self.dead)
            try:
                msg = self.client.get_shell_msg(timeout=left)
            except Exception:  # queue.Empty
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                break
        return self._read(msg.get("content", {}))

    def _read(self, content: dict) -> Any:
        expression = content.get("user_expressions", {}).get("r", {})
        text = expression.get("data", {}).get("text/plain") if isinstance(expression, dict) \
            else None
        if content.get("status") != "ok" or not isinstance(text, str):
            detail = expression.get("evalue", "") if isinstance(expression, dict) else ""
            raise Unanswered("the kernel could not run the grader's request"
                             + (f" ({str(detail)[:200]})" if detail else "")
                             + ": something in the notebook changed how the kernel evaluates "
                             "code or imports modules")
        try:
            payload = base64.b64decode(_quoted_base64(text), validate=True)
            reply = torch.load(io.BytesIO(payload), weights_only=True)
        except Exception:  # noqa: BLE001 - anything unreadable is the kernel's fault
            raise Unanswered("the kernel's answer to the grader was not readable data") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise Unanswered("the kernel's answer to the grader was not readable data")
        if not reply["ok"]:
            raise remote_error(reply.get("error") or {})
        return reply.get("value")


# --- judging one cell -------------------------------------------------------------------------

def defining_source(cells: list[NotebookNode], upto: int, name: str) -> tuple[int, str] | None:
    """(index, source) of the last code cell above ``upto`` that defines ``name``."""
    pattern = re.compile(rf"^\s*(class|def)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*=",
                         re.M)
    for index in range(upto - 1, -1, -1):
        cell = cells[index]
        if cell.get("cell_type") == "code" and pattern.search(cell.get("source", "")):
            return index, cell.source
    return None


def static_scan(item: str, source: str | None, name: str) -> str | None:
    """The message when the cell defining ``name`` names torchvision's reference code."""
    if item not in TORCHVISION_ITEMS or not source:
        return None
    for lineno, line in enumerate(source.splitlines(), 1):
        code = line.split("#", 1)[0]
        if FORBIDDEN_SOURCE.search(code):
            return (f"Your {name} uses torchvision's {TORCHVISION_ITEMS[item]} (found by "
                    f"reading your code, line {lineno} of the cell that defines {name}: "
                    f"`{line.strip()[:120]}`). The checker compares your {name} with "
                    "torchvision's, so handing in torchvision's own code proves nothing: "
                    "write the layers and the forward pass yourself.")
    return None


@dataclass
class Verdict:
    passed: bool
    text: str
    item: str
    mistake: str | None = None   # the checker's id of the named mistake, if any


def judge_cell(cells: list[NotebookNode], index: int, channel: KernelChannel) -> list[Verdict]:
    """Run the checks of the graded test cell ``cells[index]``; stop at the first failure."""
    verdicts = []
    for call in parse_checks(cells[index].source):
        verdict = _judge_call(call, cells, index, channel)
        verdicts.append(verdict)
        if not verdict.passed:
            break
    return verdicts


def _judge_call(call: CheckCall, cells: list, index: int, channel: KernelChannel) -> Verdict:
    if call.item not in REGISTRY:
        return Verdict(False, f"check() has no item named {call.item!r}", call.item)
    found = defining_source(cells, index, call.target) if call.target is not None else None
    if call.target is not None:
        message = static_scan(call.item, found[1] if found else None, call.target)
        if message:
            return Verdict(False, message, call.item, "torchvision_in_source")
    mirrors = factory(channel)
    token = GRADING.set(True)
    try:
        obj = None if call.target is None else mirrors.value(
            channel("lookup", {"name": call.target}), call.target)
        if obj is not None and found is not None:
            # what _calls.source_of gives a check: the cell, as the notebook holds it
            with contextlib.suppress(AttributeError, TypeError):
                obj.__course_source__ = found[1]
        options = {key: value if kind == "literal" else
                   mirrors.value(channel("lookup", {"name": value}), value)
                   for key, (kind, value) in call.options.items()}
        passed, text, mistake = judge(call.item, obj, **options)
    except Unanswered as exc:
        passed, text, mistake = False, f"The grader could not check {call.item!r}: {exc}.", \
            "unanswered"
    except Exception as exc:  # noqa: BLE001 - e.g. a remote error outside any check call
        passed, text, mistake = False, (f"The grader could not check {call.item!r}: "
                                        f"{type(exc).__name__}: {str(exc)[:300]}"), "unanswered"
    finally:
        GRADING.reset(token)
    return Verdict(passed, text, call.item, mistake)


def outputs_for(verdicts: list[Verdict]) -> list[NotebookNode]:
    """The cell outputs nbgrader reads: ✓ lines on stdout, a failure as an error output."""
    outputs = []
    passed = [v.text for v in verdicts if v.passed]
    if passed:
        outputs.append(NotebookNode(output_type="stream", name="stdout",
                                    text="\n".join(passed) + "\n"))
    failed = [v for v in verdicts if not v.passed]
    if failed:
        text = failed[0].text
        outputs.append(NotebookNode(output_type="error", ename="AssertionError", evalue=text,
                                    traceback=[f"AssertionError: {text}"]))
    return outputs
