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

import contextlib
import hmac
import io
import os
import re
import secrets
import socket
import tempfile
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
from .oracle import FRAME_HEADER, receive, send_frame

SERVE = "__import__('course_utils.grading.oracle', fromlist=['serve']).serve({!r}, {!r})"
MAX_ANSWER = 2**30  # bytes: a kernel cannot make the judge allocate more for one answer
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

class KernelChannel:
    """Requests to the student's kernel; answers as data only.

    The requests of one graded cell form a session: the judge listens on a fresh Unix socket
    in the folder the sandbox shares for the kernel's own sockets, and asks the kernel to
    connect and answer (``oracle.serve``), as a ``user_expressions`` entry of an empty execute
    request, which IPython evaluates without input transformers. Requests and answers are
    then torch.save bytes, each answer read with ``weights_only=True``; ``close`` ends the
    session and the kernel goes back to its cells. (Before, every request was its own
    execute request carrying base64 in JSON: 10 ms of overhead per request, 15 ms per MB.)
    After one request goes unanswered within ``timeout`` seconds the channel is dead: every
    later request fails at once, so a frozen kernel costs one timeout, not one per check.
    """

    def __init__(self, client: Any, timeout: float, folder: str | None = None) -> None:
        self.client, self.timeout = client, timeout
        self.folder = folder or _socket_folder(client)
        self.dead: str | None = None
        self.requests = 0
        self._sock: socket.socket | None = None

    def __call__(self, op: str, args: dict) -> Any:
        if self.dead:
            raise Unanswered(self.dead)
        if self._sock is None:
            self._sock = self._connect()
        buffer = io.BytesIO()
        torch.save({"op": op, "args": args}, buffer)
        self.requests += 1
        deadline = time.monotonic() + self.timeout
        try:
            self._sock.settimeout(self.timeout)
            send_frame(self._sock, buffer.getvalue())
            size = int.from_bytes(receive(self._sock, FRAME_HEADER, deadline), "big")
            if size > MAX_ANSWER:
                self._die("the kernel's answer to the grader was too large")
            data = receive(self._sock, size, deadline)
        except TimeoutError:
            self._die(self._no_answer())
        except (EOFError, OSError):  # the kernel died or dropped the connection
            self._die("the kernel stopped answering the grader (it crashed, ran out of memory,"
                      " or something in the notebook closed the grader's connection)")
        return _decode(data)

    def close(self) -> None:
        """End the session: the kernel's ``serve`` returns and its next cell can run."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __del__(self) -> None:
        self.close()

    def _no_answer(self) -> str:
        return (f"the kernel did not answer within {self.timeout:g} s (an endless loop in "
                "your code, or a kernel frozen by an earlier cell)")

    def _die(self, why: str) -> None:
        self.dead = why
        self.close()
        raise Unanswered(why)

    def _connect(self) -> socket.socket:
        path = os.path.join(self.folder, f"judge-{secrets.token_hex(6)}.sock")
        token = secrets.token_hex(16)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1)
            msg_id = self.client.execute("", silent=True, store_history=False,
                                         user_expressions={"r": SERVE.format(path, token)},
                                         allow_stdin=False)
            deadline = time.monotonic() + self.timeout
            wait = 0.002
            while True:
                listener.settimeout(wait)
                try:
                    conn, _ = listener.accept()
                    break
                except TimeoutError:
                    pass
                reply = self._reply(msg_id)
                if reply is not None:  # the request ended without connecting
                    raise Unanswered(_failure(reply.get("content", {})))
                if time.monotonic() > deadline:
                    self._die(self._no_answer())
                wait = min(wait * 2, 0.05)
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
        try:
            size = int.from_bytes(receive(conn, FRAME_HEADER, deadline), "big")
            ok = size == len(token) and hmac.compare_digest(
                receive(conn, size, deadline), token.encode("ascii"))
        except (EOFError, OSError):
            ok = False
        if not ok:
            conn.close()
            raise Unanswered("the kernel could not start the grader's session: something in "
                             "the notebook changed how the kernel evaluates code or imports "
                             "modules")
        return conn

    def _reply(self, msg_id: str) -> dict | None:
        """The kernel's reply to ``msg_id`` if it has come (others are stale: skipped)."""
        while True:
            try:
                msg = self.client.get_shell_msg(timeout=0)
            except Exception:  # queue.Empty
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg


def _socket_folder(client: Any) -> str:
    """Where the kernel can reach a socket: beside its own ones (the sandbox shares only
    that folder), or the temporary folder for a kernel on TCP (not sandboxed)."""
    if getattr(client, "transport", "tcp") == "ipc":
        return os.path.dirname(os.path.abspath(client.ip))
    return tempfile.gettempdir()


def _failure(content: dict) -> str:
    expression = content.get("user_expressions", {}).get("r", {})
    detail = expression.get("evalue", "") if isinstance(expression, dict) else ""
    return ("the kernel could not run the grader's request"
            + (f" ({str(detail)[:200]})" if detail else "")
            + ": something in the notebook changed how the kernel evaluates code or imports "
            "modules")


def _decode(data: bytes) -> Any:
    try:
        reply = torch.load(io.BytesIO(data), weights_only=True)
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
    try:
        for call in parse_checks(cells[index].source):
            verdict = _judge_call(call, cells, index, channel)
            verdicts.append(verdict)
            if not verdict.passed:
                break
    finally:
        channel.close()  # the kernel goes back to the notebook's cells
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
        options = {}
        for key, (kind, value) in call.options.items():
            if kind == "literal":
                options[key] = value
                continue
            reply = channel("lookup", {"name": value})
            if reply["kind"] == "missing":  # the notebook stops at a NameError here
                return Verdict(False, f"name {value!r} is not defined: run the cell that "
                               "computes it first", call.item, "undefined_option")
            options[key] = mirrors.value(reply, value)
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
