"""The sealed grading sandbox, and one submission's failure staying that submission's alone.

One class of the small "mini" assignment (tests/mini_course.py) is graded once, through the
command line (`python -m course_utils.grading grade`), with real nbgrader and kernels that
the workers' zygotes fork into the sandbox. Every hostile student is a correct submission
plus one act, so every point it loses is the act's doing; "plain" is the same correct
submission with nothing added, and must keep full points whatever the others do. A few fast
tests drive both ways into the sandbox directly, without nbgrader: bubblewrap (the launcher
of a job graded outside a worker) and a zygote's forked kernel (CPU limit, network, file
system, environment, kernels of one zygote kept apart).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from mini_course import BLOCK_POINTS, COUNT_POINTS, ROOT, new_mini_course
from nbgrader.api import Gradebook

from course_utils.grading import demo, sandbox_kernel
from course_utils.grading.job import JobSpec, _sandbox_config
from course_utils.grading.zygote import Zygote

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None,
                       reason="bubblewrap is not installed (make system-deps installs it)"),
]
CELL_TIMEOUT = 10
SECRET = "COURSE_SECRET_TEST"
FULL = {"basic_block_check": BLOCK_POINTS, "count_check": COUNT_POINTS}
ZERO = {"basic_block_check": 0, "count_check": 0}
ODD_IDS = ["--help", "x[1]", "José 学生 a:b", "a b"]
REFUSED = ["big_file", "linked_student", "linked_assignment", "linked_file"]

NET_PROBE = '''\
import json, socket
net = {{}}
for name, addr in {{"host loopback": ("127.0.0.1", {port}), "external": ("1.1.1.1", 443),
                   "dns": None}}.items():
    try:
        if addr is None:
            socket.getaddrinfo("pypi.org", 443)
        else:
            socket.create_connection(addr, timeout=3).close()
        net[name] = "connected"
    except OSError as exc:
        net[name] = type(exc).__name__
print("NET " + json.dumps(net))
'''
FILE_PROBE = '''\
import json, os
probes = {probes!r}
seen = {{p: os.path.exists(p) for p in probes}}
listing = {{d: sorted(os.listdir(d)) if os.path.isdir(d) else None
           for d in ("/", "/etc", "/root", "/work", "/home", {repo!r})}}
found = []  # the reference solution of this very assignment, anywhere visible
for top in ("/root", "/work", "/home", "/tmp", "/srv", "/opt", "/mnt", "/var"):
    for dirpath, dirnames, filenames in os.walk(top):
        found += [os.path.join(dirpath, f) for f in filenames if f == "mini.ipynb"
                  and "solutions" in dirpath]
print("FILES " + json.dumps({{"seen": seen, "listing": listing, "found": found,
                             "passwd": open("/etc/passwd").read()}}))
'''
ENV_PROBE = ('import json, os\nprint("ENV " + json.dumps(dict(os.environ)))\n'
             # the block the process started with (a forked kernel's is its zygote's)
             'print("RAWENV " + json.dumps(open("/proc/self/environ").read()))')
# The first cell of the prober: what the kernel had loaded before the notebook's imports.
LOADED_PROBE = ('import json, sys\nprint("LOADED " + json.dumps(sorted({"torch", "matplotlib", '
                '"course_utils"} & set(sys.modules))))')
SIGINT_LOOP = ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
               "while True:\n    pass")
FREEZE_ISINSTANCE = "import builtins\nbuiltins.isinstance = lambda *a, **k: True"
FREEZE_BUILTINS = ("import builtins\nbuiltins.float = None\nbuiltins.abs = None\n"
                   "builtins.max = None\nbuiltins.AssertionError = None")
CHECKPOINT = ('with open("checkpoint.pt", "wb") as f:\n'
              '    f.write(bytes(85 * 10**6))  # 85 MB next to the notebook')
RICH_FLOOD = ('from IPython.display import HTML, display\n'
              'display(HTML("<p>" + "x" * 80_000_000 + "</p>"))  # 80 MB of HTML\n'
              'for _ in range(20):\n'
              '    display(HTML("y" * 1_000_000))')


def _with_cell(course: Path, source: str):
    nb = demo.filled("mini", course_dir=course)
    demo.insert_after_first_code_cell(nb, source)
    return nb


def _pasted_answer(course: Path):
    """The BasicBlock answer cell pasted below itself, metadata and all (as JupyterLab does)."""
    nb = demo.filled("mini", course_dir=course)
    cell = demo.cell_defining(nb, "BasicBlock")
    copy = nbformat.from_dict(json.loads(json.dumps(cell)))
    copy["id"] = "pasted-copy"
    nb.cells.insert(nb.cells.index(cell) + 1, copy)
    return nb


@pytest.fixture(scope="module")
def listener():
    """A TCP server on the host's loopback that no student must reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture(scope="module")
def course(tmp_path_factory, listener) -> Path:
    course = new_mini_course(tmp_path_factory.mktemp("sandbox") / "course")
    other = new_mini_course(tmp_path_factory.mktemp("other") / "checkout")  # another copy
    correct = demo.filled("mini", course_dir=course)
    for student in ["plain", *ODD_IDS]:
        demo.save_submission(course, student, "mini", correct)
    probes = [str(p) for p in (
        ROOT / "solutions", ROOT / ".git", ROOT / "README.md", ROOT / "tests",
        course / "solutions" / "mini" / "mini.ipynb", course / "gradebook.db",
        course / "submitted" / "plain", other / "solutions" / "mini" / "mini.ipynb",
        Path.home() / ".bashrc", Path.home() / ".cache")]
    nb = _with_cell(course, NET_PROBE.format(port=listener.getsockname()[1]))
    demo.insert_after_first_code_cell(nb, FILE_PROBE.format(probes=probes, repo=str(ROOT)))
    demo.insert_after_first_code_cell(nb, ENV_PROBE)
    nb.cells.insert(0, nbformat.v4.new_code_cell(LOADED_PROBE))
    demo.save_submission(course, "prober", "mini", nb)
    demo.save_submission(course, "sigint_loop", "mini", _with_cell(course, SIGINT_LOOP))
    demo.save_submission(course, "frozen_isinstance", "mini",
                         _with_cell(course, FREEZE_ISINSTANCE))
    demo.save_submission(course, "frozen_builtins", "mini", _with_cell(course, FREEZE_BUILTINS))
    demo.save_submission(course, "checkpoint", "mini", _with_cell(course, CHECKPOINT))
    demo.save_submission(course, "rich_flood", "mini", _with_cell(course, RICH_FLOOD))
    demo.save_submission(course, "pasted_cell", "mini", _pasted_answer(course))
    # Refused before grading: a file over the size cap, and symbolic links.
    demo.save_submission(course, "big_file", "mini", correct)
    with open(course / "submitted" / "big_file" / "mini" / "dataset.bin", "wb") as f:
        f.truncate(60 * 2**20)  # sparse: 60 MiB without writing them
    submitted = course / "submitted"
    (submitted / "linked_student").symlink_to(submitted / "plain")
    (submitted / "linked_assignment").mkdir()
    (submitted / "linked_assignment" / "mini").symlink_to(course / "solutions" / "mini")
    demo.save_submission(course, "linked_file", "mini", correct)
    (submitted / "linked_file" / "mini" / "mini.ipynb").unlink()
    (submitted / "linked_file" / "mini" / "mini.ipynb").symlink_to(
        course / "solutions" / "mini" / "mini.ipynb")
    return course


def _grade_cli(course: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, **{SECRET: "1"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "grade", str(course),
                           "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT), *args],
                          capture_output=True, text=True, env=env, timeout=1500)
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def graded(course):
    proc, seconds = _grade_cli(course)
    lines = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^  (.+?)\s+mini\s+(graded|failed)\s+([\d.]+) s  (.*)$", line)
        if m:
            lines[m[1]] = (m[2], float(m[3]), m[4])
    return proc, seconds, lines


def _scores(course: Path) -> dict[str, dict[str, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {sub.student.id: {g.name: g.auto_score for g in sub.notebooks[0].grades
                                 if g.cell.cell_type == "code"}
                for sub in gb.find_assignment("mini").submissions}


def _printed(course: Path, student: str, tag: str):
    nb = nbformat.read(course / "autograded" / student / "mini" / "mini.ipynb", as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith(tag + " "):
                    return json.loads(line[len(tag) + 1:])
    raise AssertionError(f"{student} printed no {tag} line")


def _cell_outputs(course: Path, student: str, marker: str) -> str:
    nb = nbformat.read(course / "autograded" / student / "mini" / "mini.ipynb", as_version=4)
    cell = next(c for c in nb.cells if marker in c.source)
    return json.dumps(cell.get("outputs", []))


EXPECTED = {
    "plain": FULL, **{s: FULL for s in ODD_IDS},
    "prober": FULL,              # no network, nothing of the host, no grader variables
    "sigint_loop": FULL,         # the loop's cell is stopped, the kernel restarted
    "frozen_isinstance": FULL,   # the kernel it froze is replaced after one timeout
    "frozen_builtins": FULL,
    "checkpoint": FULL,          # its 85 MB file is left behind, not an error
    "rich_flood": FULL,          # 80 MB of HTML capped in the grader
    "pasted_cell": FULL,         # the copy of the answer cell is graded as a plain cell
    **{s: ZERO for s in REFUSED},  # not graded automatically, with a reason
}


def test_exact_points_for_everyone(course, graded):
    proc, _, lines = graded
    assert _scores(course) == EXPECTED, proc.stdout + proc.stderr


def test_exit_status_and_summary_name_what_needs_attention(course, graded):
    proc, _, lines = graded
    assert proc.returncode == len(REFUSED), proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{len(EXPECTED) - len(REFUSED)} graded, 0 unchanged"), summary
    assert f"{len(REFUSED)} not graded automatically" in summary
    for student in REFUSED:
        assert f"{student}/mini (log: grading-logs/{student}/mini.log)" in summary
        assert lines[student][0] == "failed"
        log = (course / "grading-logs" / student / "mini.log").read_text()
        assert log.startswith(f"{student} / mini: not graded automatically: ")


def test_refusals_give_the_reason(course, graded):
    _, _, lines = graded
    assert "more than the 50.0 MiB allowed (largest file: dataset.bin, 60.0 MiB)" in \
        lines["big_file"][2]
    assert "student folder is a symbolic link" in lines["linked_student"][2]
    assert "submission folder is a symbolic link" in lines["linked_assignment"][2]
    assert "symbolic link (mini.ipynb)" in lines["linked_file"][2]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        comment = gb.find_submission("mini", "linked_assignment").notebooks[0].comments[0]
        assert comment.auto_comment.startswith("Not graded automatically: ")
    assert not (course / "autograded" / "linked_assignment").exists()
    assert not (course / "feedback" / "big_file").exists()


def test_no_network_in_the_sandbox(course, graded, listener):
    net = _printed(course, "prober", "NET")
    assert set(net) == {"host loopback", "external", "dns"}
    assert "connected" not in net.values(), net
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody knocked on the host's loopback server


def test_nothing_of_the_host_is_visible(course, graded):
    files = _printed(course, "prober", "FILES")
    assert not any(files["seen"].values()), files["seen"]
    assert files["found"] == []
    # Only what the kernel needs: system folders, the Python environment, the course package.
    allowed_top = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev",
                   "proc", "tmp"} | {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix,
                                                                 str(ROOT))}
    assert set(files["listing"]["/"]) <= allowed_top, files["listing"]["/"]
    assert set(files["listing"]["/etc"]) <= {"ld.so.cache", "localtime", "fonts",
                                             "alternatives", "mime.types", "passwd", "group"}
    assert set(files["listing"][str(ROOT)]) <= {"course_utils", ".venv"}
    assert files["listing"]["/home"] is None
    assert "course_utils" in files["listing"][str(ROOT)]  # and `import course_utils` worked
    assert {line.split(":")[0] for line in files["passwd"].splitlines()} <= {"root", "student"}


def test_the_graders_environment_is_not_visible(course, graded):
    env = _printed(course, "prober", "ENV")
    assert SECRET not in env
    leaked = {k for k, v in os.environ.items() if env.get(k) == v} - {
        "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "LANG", "LC_ALL", "TZ", "COURSE_MODE", "PYTHONDONTWRITEBYTECODE"}
    assert not leaked, leaked
    assert env["HOME"] == "/tmp" and env["COURSE_MODE"] == "grade"
    assert SECRET not in _printed(course, "prober", "RAWENV")


def test_workers_fork_kernels_from_a_zygote(course, graded):
    # Every test of this class ran against forked kernels: they come with the lessons'
    # modules already imported (a kernel started with bubblewrap imports torch alone).
    assert _printed(course, "prober", "LOADED") == ["course_utils", "matplotlib", "torch"]


def test_runaway_and_frozen_kernels_cost_one_timeout(course, graded):
    _, seconds, lines = graded
    for student, marker in [("sigint_loop", "SIG_IGN"), ("frozen_isinstance", "isinstance"),
                            ("frozen_builtins", "builtins.float")]:
        status, took, _ = lines[student]
        assert status == "graded"
        # one timeout, the interrupt's grace, a restart and the rest: not a timeout per cell
        assert took < 4 * CELL_TIMEOUT + 60, (student, took)
        assert "did not recover when interrupted" in _cell_outputs(course, student, marker)
    assert seconds < 900


def test_checkpoint_and_rich_output_do_not_fail_the_run(course, graded):
    _, _, lines = graded
    assert lines["checkpoint"][0] == "graded"
    assert not (course / "autograded" / "checkpoint" / "mini" / "checkpoint.pt").exists()
    flood = course / "autograded" / "rich_flood" / "mini" / "mini.ipynb"
    assert flood.stat().st_size < 5_000_000
    assert "output truncated by the grader" in _cell_outputs(course, "rich_flood", "80 MB")
    assert "output truncated by the grader" in \
        (course / "feedback" / "rich_flood" / "mini" / "mini.html").read_text()


def test_odd_ids_get_feedback_and_csv_rows(course, graded):
    import csv

    for student in ["plain", *ODD_IDS]:
        assert (course / "feedback" / student / "mini" / "mini.html").exists(), student
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    for student in ["plain", *ODD_IDS]:
        assert float(rows[student]["score"]) == BLOCK_POINTS + COUNT_POINTS


def test_pasted_cell_is_graded_and_explained(course, graded):
    _, _, lines = graded
    assert "basic_block_answer" in lines["pasted_cell"][2]
    feedback = (course / "feedback" / "pasted_cell" / "mini" / "mini.html").read_text()
    assert "Only the first one is graded" in feedback


def test_rerun_still_reports_the_failures(course, graded):
    proc, _ = _grade_cli(course)
    assert proc.returncode == len(REFUSED)
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"0 graded, {len(EXPECTED)} unchanged"), summary
    assert _scores(course) == EXPECTED


# ------------------------------------------------------------------ the launcher alone


def _sandboxed(tmp_path: Path, code: str, **config) -> subprocess.CompletedProcess:
    """Run `python -c code` through sandbox_kernel's bubblewrap command and limits."""
    job = tmp_path / "job"
    (job / "s").mkdir(parents=True)
    workdir = job / "work"
    workdir.mkdir()
    spec = JobSpec("s", "mini", b"", {}, {}, b"", {})
    sandbox = {**_sandbox_config(spec, job, workdir), **config}
    launcher = Path(sandbox_kernel.__file__)
    script = (f"import sys, os; sys.path.insert(0, {str(launcher.parent)!r})\n"
              "import json, sandbox_kernel as sk\n"
              f"config = json.loads({json.dumps(sandbox)!r})\n"
              f"cmd = sk.bwrap_argv(config, [{sys.executable!r}, '-c', {code!r}])\n"
              "sk.set_limits(config)\nos.execv(cmd[0], cmd)\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **{SECRET: "1"}))


def test_cpu_limit_kills_a_loop_that_ignores_signals(tmp_path):
    start = time.monotonic()
    proc = _sandboxed(tmp_path, "import signal\nfor s in (signal.SIGINT, signal.SIGTERM, "
                                "signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\n"
                                "while True:\n    pass", cpu_seconds=2)
    assert proc.returncode in (137, -9), proc  # SIGKILL at the hard limit: no handler helps
    assert time.monotonic() - start < 30


def test_sandbox_has_no_network_no_host_files_no_grader_env(tmp_path):
    code = ("import os, socket\n"
            "try:\n    socket.create_connection(('1.1.1.1', 443), timeout=3); print('NET up')\n"
            "except OSError:\n    print('NET down')\n"
            f"print('REPO', sorted(os.listdir({str(ROOT)!r})))\n"
            f"print('SECRET', os.environ.get({SECRET!r}))\n"
            "open('written.txt', 'w').write('ok')\n"
            "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print('RO', type(e).__name__)\n")
    proc = _sandboxed(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    assert "NET down" in proc.stdout
    assert "SECRET None" in proc.stdout
    assert "'solutions'" not in proc.stdout and "'.git'" not in proc.stdout
    assert "RO OSError" in proc.stdout
    assert (tmp_path / "job" / "work" / "written.txt").read_text() == "ok"


# ------------------------------------------------------------------ a zygote's forked kernels


@pytest.fixture(scope="module")
def zygote():
    os.environ[SECRET] = "1"  # in the grader's environment when the zygote starts
    try:
        forks = Zygote()
        assert forks.unavailable() is None
    finally:
        del os.environ[SECRET]
    yield forks
    forks.close()


class Forked:
    """A kernel forked by `zygote` into a sandbox for a job folder under `tmp_path`."""

    def __init__(self, zygote: Zygote, tmp_path: Path, **config) -> None:
        from jupyter_client import BlockingKernelClient
        from jupyter_core.utils import run_sync

        from course_utils.grading.judged import sandbox_kernel_manager

        self.job = Path(tempfile.mkdtemp(prefix="g-", dir="/tmp"))
        (self.job / "s").mkdir()
        self.workdir = tmp_path / "work"
        self.workdir.mkdir(exist_ok=True)
        spec = JobSpec("s", "mini", b"", {}, {}, b"", {})
        sandbox = {**_sandbox_config(spec, self.job, self.workdir), **config}
        (self.job / "sandbox.json").write_text(json.dumps(sandbox))
        self.km = sandbox_kernel_manager(zygote.kernel_argv(self.job / "sandbox.json"),
                                         str(self.job / "s" / "k"))
        run_sync(self.km.start_kernel)(cwd=str(self.workdir))
        self.client = BlockingKernelClient()
        self.client.load_connection_info(self.km.get_connection_info())
        self.client.start_channels()
        self.client.wait_for_ready(60)

    def run(self, code: str, timeout: float = 60) -> str:
        """What `code` printed (stdout and errors)."""
        printed = []

        def keep(msg):
            content = msg["content"]
            printed.append(content.get("text", "") + "\n".join(content.get("traceback", [])))

        self.client.execute_interactive(code, timeout=timeout, output_hook=keep)
        return "".join(printed)

    def exit_status(self, wait: float = 30) -> int | None:
        """The stand-in's exit status once the kernel ended (None if it did not)."""
        process = self.km.provisioner.process
        with contextlib.suppress(subprocess.TimeoutExpired):
            return process.wait(wait)
        return None

    def close(self) -> None:
        from jupyter_core.utils import run_sync

        self.client.stop_channels()
        run_sync(self.km.shutdown_kernel)(now=True)
        shutil.rmtree(self.job, ignore_errors=True)

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_a_forked_kernel_is_as_sealed_as_bubblewraps(zygote, tmp_path):
    with Forked(zygote, tmp_path) as kernel:
        out = kernel.run(
            "import os, socket, sys\n"
            "try:\n    socket.create_connection(('1.1.1.1', 443), timeout=3); print('NET up')\n"
            "except OSError:\n    print('NET down')\n"
            f"print('REPO', sorted(os.listdir({str(ROOT)!r})))\n"
            f"print('SECRET', os.environ.get({SECRET!r}), "
            f"{SECRET!r} in open('/proc/self/environ').read())\n"
            "print('PID', os.getpid(), socket.gethostname())\n"
            "print('CAPS', open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
            "print('PRELOADED', 'course_utils.checks' in sys.modules)\n"
            "open('written.txt', 'w').write('ok')\n"
            "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print('RO', type(e).__name__)\n"
            "try:\n    open('/x', 'w')\nexcept OSError as e:\n    print('ROOT', type(e).__name__)\n")
    assert "NET down" in out, out
    assert "SECRET None False" in out
    assert "'solutions'" not in out and "'.git'" not in out and "'course_utils'" in out
    assert "PID 2 grading-sandbox" in out
    assert "CAPS 0000000000000000" in out
    assert "PRELOADED True" in out
    assert "RO OSError" in out and "ROOT OSError" in out
    assert (tmp_path / "work" / "written.txt").read_text() == "ok"


def test_kernels_of_one_zygote_share_nothing(zygote, tmp_path):
    (tmp_path / "a").mkdir()
    with Forked(zygote, tmp_path / "a") as first:
        before = first.run("import numpy, os, random\n"
                           "open('/tmp/left.txt', 'w').write('secret')\n"
                           "print('RAND', random.random(), numpy.random.rand())\n"
                           "import subprocess\n"  # a process left running in its sandbox
                           "subprocess.Popen(['sleep', '600'], start_new_session=True)\n")
    (tmp_path / "b").mkdir()
    with Forked(zygote, tmp_path / "b") as second:
        after = second.run("import numpy, os, random, subprocess\n"
                           "print('LEFT', os.path.exists('/tmp/left.txt'))\n"
                           "print('RAND', random.random(), numpy.random.rand())\n"
                           "print('PS', sorted(p for p in os.listdir('/proc') if p.isdigit()))\n")
    assert "LEFT False" in after, after
    rand = [line for text in (before, after) for line in text.splitlines()
            if line.startswith("RAND")]
    assert len(rand) == 2 and rand[0] != rand[1]  # each fork reseeds
    assert "PS ['1', '2']" in after  # its init and itself: nothing of the first kernel's


def test_a_forked_kernel_past_its_cpu_limit_is_killed(zygote, tmp_path):
    start = time.monotonic()
    with Forked(zygote, tmp_path, cpu_seconds=2) as kernel:
        kernel.client.execute("import signal\nfor s in (signal.SIGINT, signal.SIGTERM, "
                              "signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\n"
                              "while True:\n    pass")
        assert kernel.exit_status() == 137  # SIGKILL at the hard limit, as with bubblewrap
    assert time.monotonic() - start < 30


def test_killing_the_stand_in_ends_the_forked_kernel(zygote, tmp_path):
    with Forked(zygote, tmp_path) as kernel:
        kernel.run("import subprocess\nsubprocess.Popen(['sleep', '600'])")
        workdir = os.path.realpath(kernel.workdir)
        assert len(_processes_in(workdir)) == 3  # the stand-in, the kernel, its sleep
        kernel.km.provisioner.process.kill()  # what Jupyter does to a dead or stuck kernel
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _processes_in(workdir):
            time.sleep(0.1)
        assert not _processes_in(workdir)  # the kernel and its child, with their namespace


def _processes_in(workdir: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/cwd") == workdir:
                found.append(pid)
    return found
