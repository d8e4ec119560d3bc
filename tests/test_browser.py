"""A student's path through JupyterLab, in a real (headless) Chromium.

The server is started the way `make lab` starts it (`course_utils.lab.lab_command`), on a free
port, on a fresh copy of notebooks/. The browser opens lesson 03, runs every cell above the
BasicBlock exercise from the Run menu, types a correct BasicBlock into the exercise cell, runs it
and its check cell and reads the ✓ line on the page; trains it for a moment with
`course_utils.train.fit` in a cell it adds, to see the progress bar as a widget; then types a
BasicBlock with the ReLU before the addition and reads the check's message naming that mistake.
Screenshots of the three moments (and failure.png when it fails) go to pytest's tmp_path and to
test-artifacts/browser/ (their paths are printed at the end: run with -s to see them).

Needs the Debian package chromium (`make system-deps`) and the playwright Python package
(requirements-dev.txt); it drives /usr/bin/chromium and downloads no browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from lab_server import copy_notebooks, serve_lab

from course_utils.lab import REPO_ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "course-browser-token"
LESSON = "03_resnet"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
MAKEFILE = (REPO_ROOT / "Makefile").read_text()
KERNEL = re.search(r"^KERNEL\s*:=\s*(\S+)", MAKEFILE, re.M).group(1)
KERNEL_DISPLAY = re.search(r'--display-name "([^"]+)"', MAKEFILE).group(1)

CORRECT_BLOCK = '''\
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)'''
# The classic slip: the second ReLU moved before the addition.
BUGGY_BLOCK = CORRECT_BLOCK.replace(
    "        out = self.bn2(self.conv2(out))\n        return F.relu(out + identity)",
    "        out = F.relu(self.bn2(self.conv2(out)))\n        return out + identity")
assert BUGGY_BLOCK != CORRECT_BLOCK
# A cell a student might add after the exercise: a short run of fit() on their block, long
# enough (a few seconds) to watch its tqdm.auto progress bar.
TRAIN_CELL = '''\
from torch.utils.data import DataLoader, TensorDataset

toy = TensorDataset(torch.randn(5120, 3, 16, 16), torch.randint(0, 10, (5120,)))
tiny = nn.Sequential(BasicBlock(3, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
history = fit(tiny, DataLoader(toy, batch_size=32), epochs=2, name="your BasicBlock")'''


def _student_notebooks() -> list[Path]:
    return sorted((REPO_ROOT / "notebooks").glob("*/*.ipynb"))


def test_student_notebooks_use_the_kernel_make_lab_registers():
    """What a student opens asks for `make setup`'s kernel and starts with a plain import."""
    notebooks = _student_notebooks()
    assert notebooks, "no student notebooks in notebooks/"
    for path in notebooks:
        nb = json.loads(path.read_text())
        spec = nb["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"]) == (KERNEL, KERNEL_DISPLAY), path.name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        first = "".join(code[0]["source"])
        assert re.search(r"^(from course_utils\b.* import |import course_utils\b)", first, re.M), (
            f"{path.name}: the first code cell must import course_utils")
        assert not any("sys.path" in "".join(c["source"]) for c in code), (
            f"{path.name}: no path hacks, course_utils is installed")


def _sync_playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install the Debian package chromium "
                    "(`make system-deps`) to run the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (`make dev`)")
    return sync_playwright


# JavaScript run in the page. Cells are addressed by index: in JupyterLab 4 every cell of the
# notebook is in the DOM (windowing mode 'contentVisibility'), in notebook order. Text is read
# with textContent: innerText is empty for cells scrolled out of view.
PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'))
    .map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '')"""
SOURCE_JS = """c => Array.from(c.querySelectorAll('.cm-line')).map(l => l.textContent).join('\\n')"""


class Notebook:
    """The open notebook in the page, cell by cell, driven as a student drives it."""

    def __init__(self, page):
        self.page = page
        self.cells = page.locator(".jp-Notebook .jp-Cell")

    def prompt(self, i: int) -> str:
        return self.page.evaluate(PROMPTS_JS)[i].strip()

    def count(self, i: int) -> int | None:
        m = re.fullmatch(r"\[(\d+)\]:", self.prompt(i))
        return int(m.group(1)) if m else None

    def output(self, i: int) -> str:
        return "\n".join(self.cells.nth(i).locator(".jp-OutputArea-output").all_text_contents())

    def select(self, i: int) -> None:
        """Click the cell's prompt: selects it in command mode, as a student's click does."""
        self.cells.nth(i).locator(".jp-InputPrompt").click()

    def type_into(self, i: int, source: str) -> None:
        """Replace cell i's source. insert_text sends one input event, like a paste:
        JupyterLab's auto-indent and bracket closing (which mangle key-by-key typing)
        do not fire. The text that ends up in the editor is read back."""
        editor = self.cells.nth(i).locator(".cm-content")
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(source)
        assert self.cells.nth(i).evaluate(SOURCE_JS) == source

    def wait_done(self, indices, before: dict[int, int | None], timeout: float) -> None:
        """Wait until every cell in `indices` shows an execution count other than `before`'s
        (JupyterLab sets it when the cell has finished, outputs included); fail as soon as
        one of them shows a traceback, since the queued cells after it never run."""
        deadline = time.monotonic() + timeout
        while True:
            prompts = self.page.evaluate(PROMPTS_JS)
            counts = {i: re.fullmatch(r"\[(\d+)\]:", prompts[i].strip()) for i in indices}
            done = [i for i, m in counts.items() if m and int(m.group(1)) != before.get(i)]
            if len(done) == len(indices):
                return
            for i in done:
                if "Traceback" in self.output(i):
                    pytest.fail(f"cell {i} raised an error:\n{self.output(i)}")
            if time.monotonic() > deadline:
                pending = {i: prompts[i].strip() for i in indices if i not in done}
                pytest.fail(f"cells still not run after {timeout:.0f} s (index: prompt): "
                            f"{pending}")
            self.page.wait_for_timeout(250)

    def run_and_wait(self, indices: list[int], timeout: float = 120) -> None:
        """Shift+Enter through consecutive cells, starting with indices[0] (selected)."""
        before = {i: self.count(i) for i in indices}
        for _ in indices:
            self.page.keyboard.press("Shift+Enter")
        self.wait_done(indices, before, timeout)

    def show(self, i: int) -> None:
        """Scroll cell i to the top of the notebook panel."""
        self.cells.nth(i).evaluate("c => c.scrollIntoView({block: 'start'})")
        self.page.wait_for_timeout(300)


def _shot(page, tmp_path: Path, name: str, shots: list[Path]) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots.append(Path(shutil.copy2(path, ARTIFACTS / name)))


def test_student_path_in_jupyterlab(tmp_path):
    sync_playwright = _sync_playwright()
    started = time.monotonic()
    notebooks = copy_notebooks(tmp_path / "notebooks")
    lesson_nb = json.loads((notebooks / LESSON / f"{LESSON}.ipynb").read_text())
    cells = lesson_nb["cells"]
    exercise = next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                    and "class BasicBlock(nn.Module)" in "".join(c["source"]))
    check_cell = exercise + 1
    assert "".join(cells[check_cell]["source"]).startswith('check("basic_block", BasicBlock)')
    above = [i for i in range(exercise) if cells[i]["cell_type"] == "code"]
    plots = [i for i in above if "plt.show()" in "".join(cells[i]["source"])]
    assert plots, "no plotting cell above the exercise any more: find another one to look at"

    # A clean JupyterLab user: no saved workspace or settings of whoever runs the tests. The
    # only setting: no "get notified about Jupyter news?" pop-up over the screenshots.
    settings = tmp_path / "lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"))
    env.pop("COURSE_MODE", None)  # QUICK, the default a student gets
    shots: list[Path] = []
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # only this run's screenshots

    with serve_lab(notebooks, TOKEN, env=env) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        nb = Notebook(page)
        try:
            page.goto(f"{base}/lab/tree/{LESSON}/{LESSON}.ipynb?token={TOKEN}")
            # The kernel the notebook asks for starts without a "Select Kernel" dialog.
            page.locator(".jp-StatusBar-TextItem",
                         has_text=f"{KERNEL_DISPLAY} | Idle").wait_for()
            page.wait_for_function(
                f"document.querySelectorAll('.jp-Notebook .jp-Cell').length == {len(cells)}")
            assert page.locator(".jp-Dialog").count() == 0
            assert page.locator("[data-jp-item-name='kernelName']").inner_text().strip() == (
                KERNEL_DISPLAY)
            sessions = requests.get(f"{base}/api/sessions", params={"token": TOKEN},
                                    timeout=10).json()
            assert [s["kernel"]["name"] for s in sessions] == [KERNEL]

            # Run → Run All Above Selected Cell, with the exercise cell selected.
            nb.select(exercise)
            page.locator(".lm-MenuBar-item", has_text="Run").click()
            page.locator(".lm-Menu-item", has_text="Run All Above Selected Cell").click()
            nb.wait_done(above, {}, timeout=240)
            for i in above:
                assert "Traceback" not in nb.output(i), f"cell {i} failed:\n{nb.output(i)}"
            first = nb.output(above[0])  # the imports and init(): no error, QUICK mode
            assert "Mode: QUICK" in first and "Seed: 0" in first, first
            for i in plots:  # matplotlib figures arrive as rendered PNG images
                img = nb.cells.nth(i).locator(".jp-OutputArea-output img")
                assert img.count() >= 1, f"cell {i} shows no figure:\n{nb.output(i)}"
                src, width = img.first.evaluate("e => [e.src.slice(0, 22), e.naturalWidth]")
                assert src == "data:image/png;base64," and width > 100, (src, width)

            # A correct BasicBlock: the check cell prints its ✓ line.
            nb.type_into(exercise, CORRECT_BLOCK)
            nb.run_and_wait([exercise, check_cell])
            passed = nb.output(check_cell)
            assert passed.startswith("✓ BasicBlock matches torchvision's BasicBlock"), passed
            assert "Traceback" not in passed, passed
            nb.show(exercise)
            _shot(page, tmp_path, "1_basic_block_passes.png", shots)

            # Training shows a progress bar widget (tqdm.auto → ipywidgets), not text.
            train = check_cell + 1
            nb.select(check_cell)
            page.keyboard.press("b")  # insert a cell below
            page.wait_for_function(
                f"document.querySelectorAll('.jp-Notebook .jp-Cell').length == {len(cells) + 1}")
            nb.type_into(train, TRAIN_CELL)
            page.keyboard.press("Shift+Enter")
            # tqdm.notebook draws an ipywidgets HBox: label, progress bar, counts.
            widget = nb.cells.nth(train).locator(".jp-OutputArea-output .widget-hbox")
            bar = widget.locator(".widget-hprogress .progress-bar")
            bar.first.wait_for(state="visible", timeout=90_000)  # visible while it trains
            label = re.sub(r"\s+", " ", widget.first.text_content())  # tqdm pads with U+2007
            nb.show(check_cell)
            _shot(page, tmp_path, "2_training_progress_bar.png", shots)
            assert re.search(r"your BasicBlock epoch [12]/2: \d+% \d+/160", label), label
            nb.wait_done([train], {}, timeout=120)
            trained = nb.output(train)
            assert "your BasicBlock epoch 2/2: train loss" in trained, trained
            # No text bars (tqdm's console fallback) and no widget shown as its text repr.
            stderr = nb.cells.nth(train).locator(
                "[data-mime-type='application/vnd.jupyter.stderr']").all_text_contents()
            assert not any("it/s" in text for text in stderr), stderr
            assert "HBox(" not in trained, trained

            # The ReLU before the addition: the check names that mistake.
            nb.type_into(exercise, BUGGY_BLOCK)
            nb.run_and_wait([exercise, check_cell])
            failed = nb.output(check_cell)
            assert "✓" not in failed, failed
            # The message alone, marked ✗: no checker frames or `raise` lines above it.
            assert failed.lstrip().startswith("✗"), failed
            assert "course_utils" not in failed and "Traceback" not in failed, failed
            assert "the ReLU comes before the addition" in failed, failed
            nb.show(exercise)
            _shot(page, tmp_path, "3_basic_block_relu_before_add.png", shots)
        except BaseException:
            with contextlib.suppress(Exception):  # the page as it was, for whoever debugs it
                _shot(page, tmp_path, "failure.png", shots)
            raise
        finally:
            browser.close()
            print(f"\nbrowser test: {time.monotonic() - started:.0f} s; screenshots:",
                  *shots, sep="\n  ")
