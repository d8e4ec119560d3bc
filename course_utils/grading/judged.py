"""nbgrader's Execute step with graded test cells decided by the judge, not the kernel.

Answer cells and the lesson's own cells run in the student's (sandboxed) kernel as before,
so the student's definitions exist there. A graded test cell is not sent to the kernel: the
judge (``judge.py``) runs its checks in this process against the kernel as an oracle and
writes the verdict as the cell's output. nbgrader then scores, stores and shows the cell as
usual: an error output scores 0, anything else full points.
"""

from __future__ import annotations

from time import monotonic

from jupyter_client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_core.utils import run_sync
from nbformat import NotebookNode
from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute
from traitlets import Float, List, Unicode

from .execute import GAVE_UP, MAX_RESTARTS, SurvivingExecute, _error
from .judge import KernelChannel, NotJudgeable, is_judged_cell, judge_cell, outputs_for

NOT_JUDGEABLE = ("The grader runs only check(...) lines in a graded test cell, and this one "
                 "holds something else ({reason}). Ask the course staff: the assignment's "
                 "test cell needs fixing.")


# Seconds spent per phase of one job, by the job's kernel_log path (read by job.py).
timings: dict[str, dict[str, float]] = {}
# Kernel managers whose kernel was started before the job came (job.prestart), by kernel_log.
PRESTARTED: dict[str, object] = {}


class JobTimedOut(RuntimeError):
    """The job ran past its deadline: the rest of the notebook is not run."""


class _OneSpec(KernelSpecManager):
    """A kernel spec manager that knows one kernel: the job's sandboxed one."""

    argv = List()

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(argv=list(self.argv), display_name="CNN course (grading sandbox)",
                          language="python", resource_dir="",
                          # The kernel sits in its own session, out of reach of SIGINT to
                          # this process group: interrupt it with a control message.
                          interrupt_mode="message")


def sandbox_kernel_manager(argv: list[str], ipc_path: str, config=None):
    """An AsyncKernelManager for the sandboxed kernel `argv`, over Unix sockets at
    `ipc_path`: the kernel has no network, only the job's socket folder."""
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name="grading-sandbox", config=config,
                            kernel_spec_manager=_OneSpec(argv=argv))
    km.transport, km.ip = "ipc", ipc_path
    return km


class JudgedExecute(SurvivingExecute):
    """SurvivingExecute whose graded test cells are judged outside the kernel.

    The kernel is the one `kernel_argv` starts (the job's sandbox), whatever the notebook's
    kernelspec names, or the one the worker started before the job came (PRESTARTED).
    `kernel_log` (the kernel's own output, written by sandbox_kernel.py) names the job. Every kernel starts in the job's autograded/ folder and
    is moved to `notebook_dir` before any cell runs. Past `deadline` (time.monotonic) no
    further cell runs.
    """

    kernel_argv = List(help="command line of the grading kernel").tag(config=True)
    kernel_log = Unicode("", help="the file of the kernel's own output").tag(config=True)
    deadline = Float(0.0, help="time.monotonic() after which no cell runs").tag(config=True)
    notebook_dir = Unicode("", help="the kernel's working folder").tag(config=True)

    def create_kernel_manager(self):
        if not self.kernel_argv:
            raise RuntimeError("JudgedExecute needs kernel_argv: the sandboxed kernel")
        self.km = PRESTARTED.pop(self.kernel_log, None) or sandbox_kernel_manager(
            self.kernel_argv, self.config.KernelManager.get("ip", ""), self.config)
        return self.km

    async def async_start_new_kernel(self, **kwargs):
        started = monotonic()
        try:
            await super().async_start_new_kernel(**kwargs)
        finally:
            self._phase("kernel_start", monotonic() - started)

    # nbclient binds the sync wrappers to its own coroutines: rebind them to ours.
    start_new_kernel = run_sync(async_start_new_kernel)

    async def async_start_new_kernel_client(self):
        started = monotonic()
        try:
            client = await super().async_start_new_kernel_client()
            if self.notebook_dir:
                reply = await client.execute_interactive(
                    f"__import__('os').chdir({self.notebook_dir!r})", silent=True,
                    store_history=False, timeout=self.startup_timeout)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"the kernel could not enter {self.notebook_dir}")
            return client
        finally:
            self._phase("kernel_start", monotonic() - started)

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def _phase(self, name: str, seconds: float) -> None:
        if self.kernel_log:
            phases = timings.setdefault(self.kernel_log, {})
            phases[name] = phases.get(name, 0.0) + seconds

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self.deadline and monotonic() > self.deadline and not self._replaying:
            raise JobTimedOut("the job ran past its time limit")
        started = monotonic()
        try:
            return await self._execute_or_judge(cell, cell_index, execution_count,
                                                store_history)
        finally:
            self._phase("cells", monotonic() - started)

    async def _execute_or_judge(self, cell, cell_index, execution_count, store_history):
        if not is_judged_cell(cell):
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        if getattr(self, "_replaying", False):
            return cell  # a verdict needs no replay: nothing in the kernel depends on it
        if self._restarts > MAX_RESTARTS:
            cell.outputs = [_error("KernelDied", GAVE_UP)]
            return cell
        started = monotonic()
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
            self._phase("judge", monotonic() - started)
        if channel.dead:
            # The kernel hangs or is frozen: start a fresh one for the cells below.
            self._restarts += 1
            if self._restarts <= MAX_RESTARTS:
                await self._restart_and_replay(cell_index)
        return cell

    execute_cell = run_sync(async_execute_cell)

    async def _async_cleanup_kernel(self):
        started = monotonic()
        try:
            await super()._async_cleanup_kernel()
        finally:
            self._phase("kernel_stop", monotonic() - started)

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    def _channel(self) -> KernelChannel:
        client = BlockingKernelClient()
        client.load_connection_info(self.km.get_connection_info())
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        return KernelChannel(client, timeout=float(self.timeout or 60))


class CourseAutograde(Autograde):
    """nbgrader's Autograde with its Execute step replaced by JudgedExecute.

    The rest of nbgrader's list (and any change the course's config makes to it) stays.
    """

    def _init_preprocessors(self) -> None:
        if not self._sanitizing:
            self.autograde_preprocessors = [
                JudgedExecute if p in (Execute, "nbgrader.preprocessors.Execute") else p
                for p in self.autograde_preprocessors]
            if JudgedExecute not in self.autograde_preprocessors:
                raise RuntimeError("the course's Autograde.autograde_preprocessors has no "
                                   "Execute step to replace with the judge")
        super()._init_preprocessors()
