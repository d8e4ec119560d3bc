"""nbgrader's Execute step with graded test cells decided by the judge, not the kernel.

Answer cells and the lesson's own cells run in the student's (sandboxed) kernel as before,
so the student's definitions exist there. A graded test cell is not sent to the kernel: the
judge (``judge.py``) runs its checks in this process against the kernel as an oracle and
writes the verdict as the cell's output. nbgrader then scores, stores and shows the cell as
usual: an error output scores 0, anything else full points.
"""

from __future__ import annotations

from jupyter_client import BlockingKernelClient
from jupyter_core.utils import run_sync
from nbformat import NotebookNode

from .execute import GAVE_UP, MAX_RESTARTS, SurvivingExecute, _error
from .judge import KernelChannel, NotJudgeable, is_judged_cell, judge_cell, outputs_for

NOT_JUDGEABLE = ("The grader runs only check(...) lines in a graded test cell, and this one "
                 "holds something else ({reason}). Ask the course staff: the assignment's "
                 "test cell needs fixing.")


class JudgedExecute(SurvivingExecute):
    """SurvivingExecute whose graded test cells are judged outside the kernel."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if not is_judged_cell(cell):
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        if getattr(self, "_replaying", False):
            return cell  # a verdict needs no replay: nothing in the kernel depends on it
        if self._restarts > MAX_RESTARTS:
            cell.outputs = [_error("KernelDied", GAVE_UP)]
            return cell
        channel = self._channel()
        try:
            verdicts = judge_cell(self.nb.cells, cell_index, channel)
            cell.outputs = outputs_for(verdicts)
            cell.metadata["course_judge"] = {
                "items": [{"item": v.item, "passed": v.passed, "mistake": v.mistake}
                          for v in verdicts],
                "requests": channel.requests}
        except NotJudgeable as exc:
            text = NOT_JUDGEABLE.format(reason=exc)
            cell.outputs = [NotebookNode(output_type="error", ename="NotJudgeable",
                                         evalue=text, traceback=[text])]
        finally:
            channel.client.stop_channels()
        if channel.dead:
            # The kernel hangs or is frozen: start a fresh one for the cells below.
            self._restarts += 1
            if self._restarts <= MAX_RESTARTS:
                await self._restart_and_replay(cell_index)
        return cell

    execute_cell = run_sync(async_execute_cell)

    def _channel(self) -> KernelChannel:
        client = BlockingKernelClient()
        client.load_connection_info(self.km.get_connection_info())
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        return KernelChannel(client, timeout=float(self.timeout or 60))
