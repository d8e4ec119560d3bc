"""nbgrader's Execute step, made to survive a submission that ends its own kernel.

nbgrader gives up on the whole notebook when the kernel dies (`os._exit(0)`, `exit()`,
`os.kill(os.getpid(), 9)`), so every item of that student would stay ungraded. Here the cell
that killed the kernel gets an error output that says so, a new kernel is started, the cells
above it that ran cleanly are replayed silently to rebuild the state, and grading goes on.
"""

from __future__ import annotations

import copy

from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute

MAX_RESTARTS = 3
KILLED = (
    "This cell ended the Python process (os._exit, exit() or a kill signal), so the grader "
    "skipped it, restarted the kernel, re-ran the cells above it, and graded the rest."
)
GAVE_UP = f"The kernel died more than {MAX_RESTARTS} times; this cell was not run."


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def _has_error(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


class SurvivingExecute(Execute):
    """Execute that records a kernel death in the offending cell and carries on."""

    # After an interrupted cell, late or missing output must not fail the whole notebook.
    raise_on_iopub_timeout = False

    def reset_execution_trackers(self) -> None:
        super().reset_execution_trackers()
        self._restarts = 0
        self._replaying = False

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self._restarts > MAX_RESTARTS and not self._replaying:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_error("KernelDied", GAVE_UP)]
            return cell
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        except DeadKernelError:
            if self._replaying:
                raise
            cell.outputs = [_error("KernelDied", KILLED)]
            self._restarts += 1
            if self._restarts <= MAX_RESTARTS:
                await self._restart_and_replay(cell_index)
            return cell

    # nbclient binds the sync wrapper to its own coroutine: rebind it to ours.
    execute_cell = run_sync(async_execute_cell)

    async def _restart_and_replay(self, upto: int) -> None:
        """Start a fresh kernel and re-run cells [0, upto) that finished without error."""
        self.kc.stop_channels()
        await self.km.restart_kernel(now=True)
        await self.async_start_new_kernel_client()
        self._replaying = True
        try:
            for index, cell in enumerate(self.nb.cells[:upto]):
                if cell.cell_type == "code" and not _has_error(cell):
                    await super().async_execute_cell(copy.deepcopy(cell), index,
                                                     store_history=False)
        except DeadKernelError:
            # A cell that kills the kernel later (a timer, a thread) makes replay pointless.
            self._restarts = MAX_RESTARTS + 1
        finally:
            self._replaying = False
