"""nbgrader's Execute step, made to survive a submission that kills, freezes or floods its kernel.

nbgrader gives up on the whole notebook when the kernel dies (`os._exit(0)`, `exit()`,
`os.kill(os.getpid(), 9)`, the CPU limit), so every item of that student would stay ungraded.
Here the cell that killed the kernel gets an error output that says so, a new kernel is
started, the cells above it that ran cleanly are replayed silently to rebuild the state, and
grading goes on.

A kernel that stops answering is treated the same way. When a cell runs past the cell timeout
the kernel is interrupted; if the cell has not ended INTERRUPT_GRACE seconds later (it ignores
SIGINT, or its own code broke the kernel's message loop), or if the cell right after a
timed-out one times out too, the kernel is declared dead: killed, restarted, the cells above
replayed, the rest graded. A kernel that dies of the interrupt itself (the code broke the
kernel's own signal handling) is reported the same way: the cell ran past its limit. So no
cell waits longer than its timeout plus the grace, and a frozen kernel costs one timeout,
not one per remaining cell.

Outputs are capped here, in the grader, whatever the kernel does: one cell keeps at most
CELL_OUTPUT_CAP characters of output (text, HTML, images, errors), one notebook at most
NOTEBOOK_OUTPUT_CAP; past that, outputs are dropped and one note says so.
"""

from __future__ import annotations

import asyncio
import copy
import json
from queue import Empty
from time import monotonic

from jupyter_core.utils import ensure_async, run_sync
from nbclient.client import timestamp
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import default

MAX_RESTARTS = 3
INTERRUPT_GRACE = 5.0                 # seconds an interrupted cell has to end
CELL_OUTPUT_CAP = 2_000_000           # characters of output one cell keeps
NOTEBOOK_OUTPUT_CAP = 10_000_000      # characters of output one notebook keeps
ERROR_TEXT_CAP = 20_000               # characters of one error's value and traceback
OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error", "update_display_data"}
KILLED = (
    "This cell ended the Python process (os._exit, exit(), a kill signal or the CPU limit), "
    "so the grader skipped it, restarted the kernel, re-ran the cells above it, and graded "
    "the rest."
)
FROZEN = (
    "This cell ran past the {timeout} s limit and the kernel did not recover when interrupted "
    "(the code ignores interrupts, or it broke the kernel), so the grader stopped the kernel, "
    "restarted it, re-ran the cells above this one, and graded the rest."
)
GAVE_UP = f"The kernel died more than {MAX_RESTARTS} times; this cell was not run."
TRUNCATED = ("[output truncated by the grader: more than {cap:,} characters of output in "
             "{where}]\n")


class KernelFrozen(DeadKernelError):
    """The kernel is alive but does not finish an interrupted cell: treated as dead."""


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def _has_error(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def _size(content: dict) -> int:
    """Characters an output message adds to a notebook (its data, text or traceback)."""
    total = 0
    for key in ("data", "text", "traceback", "evalue"):
        value = content.get(key)
        if isinstance(value, str):
            total += len(value)
        elif value is not None:
            try:
                total += len(json.dumps(value))
            except (TypeError, ValueError):
                total += len(str(value))
    return total


def _shorten(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + " [... shortened by the grader]"


def _trim_error(content: dict) -> None:
    """Bound an error's value and traceback (a student can raise a 100 MB message)."""
    if isinstance(content.get("evalue"), str):
        content["evalue"] = _shorten(content["evalue"], ERROR_TEXT_CAP)
    traceback = content.get("traceback")
    if isinstance(traceback, list):
        kept, used = [], 0
        for line in reversed(traceback):
            line = _shorten(str(line), ERROR_TEXT_CAP)
            if used + len(line) > ERROR_TEXT_CAP and kept:
                kept.append("[... traceback shortened by the grader]")
                break
            kept.append(line)
            used += len(line)
        content["traceback"] = kept[::-1]


class SurvivingExecute(Execute):
    """Execute that records a kernel death or freeze in the offending cell and carries on."""

    # After an interrupted cell, late or missing output must not fail the whole notebook.
    raise_on_iopub_timeout = False

    @default("shutdown_kernel")
    def _kill_when_done(self) -> str:
        # The kernel's state is thrown away: a polite shutdown only waits (seconds per job).
        return "immediate"

    def reset_execution_trackers(self) -> None:
        super().reset_execution_trackers()
        self._restarts = 0
        self._replaying = False
        self._no_replay: set[int] = set()
        self._last_timed_out = False
        self._interrupted = False  # this cell ran past its timeout and was interrupted
        self._cap_cell = None
        self._cap_used = 0
        self._cap_noted = False
        self._notebook_used = 0

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self._restarts > MAX_RESTARTS and not self._replaying:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_error("KernelDied", GAVE_UP)]
            return cell
        self._interrupted = False
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        except DeadKernelError as exc:
            if self._replaying:
                raise
            # A kernel that dies of the interrupt (its code broke the kernel's own handling)
            # is a frozen cell too: the cell ran past its limit, it did not kill the process.
            frozen = isinstance(exc, KernelFrozen) or self._interrupted
            message = FROZEN.format(timeout=self.timeout) if frozen else KILLED
            cell.outputs = [_error("KernelDied", message)]
            self._no_replay.add(cell_index)
            self._restarts += 1
            if self._restarts <= MAX_RESTARTS:
                await self._restart_and_replay(cell_index)
            return cell

    # nbclient binds the sync wrapper to its own coroutine: rebind it to ours.
    execute_cell = run_sync(async_execute_cell)

    async def _restart_and_replay(self, upto: int) -> None:
        """Start a fresh kernel and re-run cells [0, upto) that finished without error.

        A replayed cell that kills or freezes the kernel again (a timer, a thread, a patch of
        the kernel itself) is left out of the next replay, up to MAX_RESTARTS restarts.
        """
        while True:
            self.kc.stop_channels()
            # now=True: kill at once, whether the kernel is dead or frozen.
            await self.km.restart_kernel(now=True)
            await self.async_start_new_kernel_client()
            self._last_timed_out = False
            self._replaying = True
            index = None
            try:
                for index, cell in enumerate(self.nb.cells[:upto]):
                    if cell.cell_type == "code" and not _has_error(cell) and \
                            index not in self._no_replay:
                        await super().async_execute_cell(copy.deepcopy(cell), index,
                                                         store_history=False)
                return
            except DeadKernelError:
                self._no_replay.add(index)
                self._restarts += 1
                if self._restarts > MAX_RESTARTS:
                    return
            finally:
                self._replaying = False

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg,
                                    task_poll_kernel_alive):
        """nbclient's loop, with the timeout rule above: interrupt, then a short grace."""
        deadline = None if timeout is None else monotonic() + timeout
        interrupted = False
        while True:
            wait = None if deadline is None else max(0.0, deadline - monotonic())
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=wait))
            except Empty:
                await self._async_check_alive()  # DeadKernelError if it died meanwhile
                if interrupted or self._last_timed_out:
                    task_poll_kernel_alive.cancel()
                    raise KernelFrozen("the kernel did not end an interrupted cell") from None
                self.log.error("Timeout waiting for execute reply (%is); interrupting", timeout)
                interrupted = self._last_timed_out = self._interrupted = True
                await ensure_async(self.km.interrupt_kernel())
                deadline = monotonic() + INTERRUPT_GRACE
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if self.record_timing:
                cell["metadata"]["execution"]["shell.execute_reply"] = timestamp(msg)
            try:
                await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
            except (asyncio.TimeoutError, Empty):
                self.log.warning("Timeout waiting for IOPub output")
            task_poll_kernel_alive.cancel()
            if interrupted:
                # nbgrader's timeout error, as nbclient gives it, so the cell is marked failed.
                msg = {**msg, "content": {**self.error_on_timeout, "status": "error"}}
            else:
                self._last_timed_out = False
            return msg

    # ---------------------------------------------------------------- output caps

    def process_message(self, msg, cell, cell_index):
        msg_type = msg.get("msg_type")
        if msg_type in OUTPUT_MESSAGES:
            content = msg.get("content", {})
            if msg_type == "error":
                _trim_error(content)
            if cell is not self._cap_cell:
                self._cap_cell, self._cap_used, self._cap_noted = cell, 0, False
            size = _size(content)
            notebook_full = not self._replaying and \
                self._notebook_used + size > NOTEBOOK_OUTPUT_CAP
            if msg_type != "error" and (self._cap_used + size > CELL_OUTPUT_CAP or notebook_full):
                if not self._cap_noted:
                    self._cap_noted = True
                    where = "one cell" if self._cap_used + size > CELL_OUTPUT_CAP else \
                        "this notebook"
                    cap = CELL_OUTPUT_CAP if where == "one cell" else NOTEBOOK_OUTPUT_CAP
                    cell.outputs.append(NotebookNode(
                        output_type="stream", name="stderr",
                        text=TRUNCATED.format(cap=cap, where=where)))
                return None
            self._cap_used += size
            if not self._replaying:  # a replayed cell's outputs are thrown away
                self._notebook_used += size
        return super().process_message(msg, cell, cell_index)

    def on_cell_executed(self, **kwargs):
        reply = kwargs.get("execute_reply") or {}
        if reply.get("content", {}).get("status") == "error":
            _trim_error(reply["content"])
        return super().on_cell_executed(**kwargs)
