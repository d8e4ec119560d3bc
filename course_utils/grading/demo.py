"""A sample class, built from the student notebooks, graded end to end (`make grade-demo`).

Full-class students (every lesson): a complete correct submission, a partial one and an
empty one. On 03_resnet and 04_resnet_variants: one student per common mistake, and the nine
kinds of hostile or broken submission the grader must survive. Each of those is the correct
submission plus one act, so every point it loses is the act's doing. With them, three
students for the class report's similarity check: a BasicBlock of one's own, a copy of it
(names changed, methods reordered) and an independent one (``SIMILARITY``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import nbformat

from .runner import PACKAGE_REPO as REPO_ROOT
from .runner import ClassReport, grade_class

SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)

# ---------------------------------------------------------------------------------------
# Building submissions


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def student_copy(lesson: str, course_dir: Path = REPO_ROOT):
    return nbformat.read(course_dir / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)


def solution_sources(lesson: str, course_dir: Path = REPO_ROOT) -> dict[str, str]:
    """grade_id -> the reference answer as a student would type it (markers removed)."""
    nb = nbformat.read(course_dir / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return {_meta(c)["grade_id"]: SOLUTION_MARKERS.sub("", c.source)
            for c in nb.cells if _meta(c).get("solution")}


def filled(lesson: str, keep: Callable[[int, str], bool] = lambda i, gid: True,
           course_dir: Path = REPO_ROOT):
    """The student copy with the answers whose (index, grade_id) `keep` accepts filled in."""
    nb = student_copy(lesson, course_dir)
    answers = solution_sources(lesson, course_dir)
    index = 0
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if _meta(cell).get("solution") and gid in answers:
            if keep(index, gid):
                cell.source = answers[gid]
            index += 1
    return nb


def cell_defining(nb, name: str):
    """The answer cell that defines class or function `name`."""
    pattern = re.compile(rf"^(class|def) {re.escape(name)}\b", re.M)
    for cell in nb.cells:
        if _meta(cell).get("solution") and pattern.search(cell.source):
            return cell
    raise LookupError(f"no answer cell defines {name}")


def test_cell_for(nb, check_name: str):
    for cell in nb.cells:
        if _meta(cell).get("grade") and f'check("{check_name}"' in cell.source:
            return cell
    raise LookupError(f"no test cell checks {check_name}")


def insert_after_first_code_cell(nb, source: str) -> None:
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(source))


BASIC_BLOCK_RELU_BEFORE_ADD = '''\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))  # ReLU before the addition
        return out + self.shortcut(x)
'''

BASIC_BLOCK_NO_SKIP = BASIC_BLOCK_RELU_BEFORE_ADD.replace(
    "out = torch.relu(self.bn2(self.conv2(out)))  # ReLU before the addition\n"
    "        return out + self.shortcut(x)",
    "return torch.relu(self.bn2(self.conv2(out)))  # no skip connection")

BASIC_BLOCK_FROM_TORCHVISION = '''\
from torchvision.models.resnet import BasicBlock as _TorchvisionBlock


class BasicBlock(_TorchvisionBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        super().__init__(in_channels, out_channels, stride, downsample)
'''

SE_SOFTMAX_GATE = '''\
class SEBlock(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        s = x.mean(dim=(2, 3))
        gate = torch.softmax(self.fc2(torch.relu(self.fc1(s))), dim=1)  # softmax, not sigmoid
        return x * gate[:, :, None, None]
'''

VANDAL = '''\
import os, pathlib, shutil
attempts = {{
    "append to the checker": lambda: open(r"{checks}", "a").write("\\nraise SystemExit"),
    "delete the solutions": lambda: shutil.rmtree(r"{solutions}"),
    "overwrite the gradebook": lambda: open(r"{gradebook}", "w").write("gone"),
    "delete another student's work": lambda: shutil.rmtree(r"{other}"),
    "drop a file in the course": lambda: pathlib.Path(r"{course}/pwned.txt").write_text("x"),
    "read the reference solutions": lambda: open(r"{reference}").read(),
}}
for what, attempt in attempts.items():
    try:
        attempt()
        print(what, "-> SUCCEEDED")
    except Exception as exc:
        print(what, "-> blocked:", type(exc).__name__)
'''


def _edit_tests(nb, course_dir):
    cell_defining(nb, "BasicBlock").source = BASIC_BLOCK_RELU_BEFORE_ADD
    test_cell_for(nb, "basic_block").source = "pass  # the test is gone, full marks?"
    graded = [c for c in nb.cells if _meta(c).get("grade") and c.cell_type == "code"]
    nb.cells.remove(graded[-1])  # and one test cell deleted outright


def _loops(nb, course_dir):
    insert_after_first_code_cell(nb, "while True:\n    pass")
    insert_after_first_code_cell(nb, "import time\ntime.sleep(10**6)")


def _memory(nb, course_dir):
    insert_after_first_code_cell(nb, "hog = bytearray(64 * 2**30)  # 64 GiB on a 24 GiB machine")
    insert_after_first_code_cell(nb, "import torch\nbig = torch.ones(10**6, 10**6)")


def _monkeypatch(nb, course_dir):
    cell_defining(nb, "BasicBlock").source = BASIC_BLOCK_NO_SKIP + (
        "\nimport course_utils.checks, torch\n"
        "try:\n"
        "    course_utils.checks.check = lambda *a, **k: None\n"
        "except AttributeError:\n"
        "    pass  # the checker refuses; try the other tricks\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "get_ipython().showtraceback = lambda *a, **k: None  # hide failing tests\n")


def _vandal(nb, course_dir):
    insert_after_first_code_cell(nb, VANDAL.format(
        checks=REPO_ROOT / "course_utils" / "checks" / "__init__.py",
        solutions=course_dir / "solutions", gradebook=course_dir / "gradebook.db",
        other=course_dir / "submitted" / "alice_correct", course=course_dir,
        reference=REPO_ROOT / "solutions" / "03_resnet" / "03_resnet.ipynb"))


def _exits(nb, course_dir):
    insert_after_first_code_cell(nb, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    insert_after_first_code_cell(nb, "import os\nos._exit(0)")
    insert_after_first_code_cell(nb, "import sys\nsys.exit('bye')")


def _passoff(nb, course_dir):
    cell_defining(nb, "BasicBlock").source = BASIC_BLOCK_FROM_TORCHVISION


def _flood(nb, course_dir):
    insert_after_first_code_cell(nb, "print('spam ' * 60_000_000)  # ~300 MB")
    insert_after_first_code_cell(nb, "for i in range(2_000_000):\n    print(i)")


def _syntax_error(nb, course_dir):
    cell = cell_defining(nb, "BasicBlock")
    cell.source = cell.source.replace("def forward(self, x):", "def forward(self, x)", 1)


# The attacks on the verdict itself. Each hands in a block without a skip connection and tries
# to make the grader accept it anyway; the judge decides outside the kernel, so none works.
REBIND_CHECK = """
from course_utils.checks import check as _real_check
_real_check.__code__ = (lambda *a, **k: None).__code__  # the checker's own code, rebound
check = lambda *a, **k: None                              # and the name the test cells call
"""
INPUT_TRANSFORMER = """
def _skip_checks(lines):  # every later cell that starts with check( becomes `pass`
    return ["pass\\n" if line.startswith("check(") else line for line in lines]


get_ipython().input_transformers_cleanup.append(_skip_checks)
"""
PATCHED_BUILTINS = """
import builtins
builtins.abs = lambda x: 0
builtins.max = lambda *a, **k: 0
builtins.float = lambda *a: 0.0
builtins.AssertionError = type("NotAnError", (Exception,), {})
"""
FORGED_ORACLE = """
import torch
import course_utils.grading.oracle as _oracle

_honest = _oracle.op_forward


def _forged(obj, path, state, modes, inputs, **kwargs):  # answer relu(x) + garbage
    reply = _honest(obj, path, state, modes, inputs, **kwargs)
    out = reply["out"]
    if isinstance(out, torch.Tensor) and out.shape == inputs[0].shape:
        reply["out"] = torch.relu(inputs[0])
    return reply


_oracle.OPS["forward"] = _forged
"""
BASIC_BLOCK_OBFUSCATED_TORCHVISION = '''\
import importlib

_Base = getattr(importlib.import_module("torchvision.mo" + "dels.res" + "net"), "Basic" + "Block")


class BasicBlock(_Base):
    def __init__(self, in_channels, out_channels, stride=1):
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        super().__init__(in_channels, out_channels, stride, downsample)
'''


def _attack(code: str) -> Callable:
    def edit(nb, course_dir):
        cell_defining(nb, "BasicBlock").source = BASIC_BLOCK_NO_SKIP + code
    return edit


def _obfuscated(nb, course_dir):
    cell_defining(nb, "BasicBlock").source = BASIC_BLOCK_OBFUSCATED_TORCHVISION


def _mistake(name: str, source: str) -> Callable:
    def edit(nb, course_dir):
        cell_defining(nb, name).source = source
    return edit



# --- Answers for the class report and the similarity check (tests/test_report.py) ----------
# Independent BasicBlocks: the same correct idea, each written in its own way.
BASIC_BLOCK_SEQUENTIAL = """\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        if stride == 1 and in_channels == out_channels:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        return nn.functional.relu(self.residual(x) + self.skip(x))
"""
BASIC_BLOCK_DOWNSAMPLE = """\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv_a = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm_a = nn.BatchNorm2d(out_channels)
        self.conv_b = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm_b = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride > 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1,
                                                      stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x)
        h = self.conv_a(x)
        h = self.norm_a(h)
        h = h.relu()
        h = self.conv_b(h)
        h = self.norm_b(h)
        h += identity
        return h.relu()
"""
# The original of a copied answer: a conv + BN helper and a ModuleList.
BASIC_BLOCK_ORIGINAL = '''\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.layers = nn.ModuleList([
            self.conv_bn(in_channels, out_channels, 3, stride),
            self.conv_bn(out_channels, out_channels, 3, 1),
        ])
        self.project = None
        if (in_channels, stride) != (out_channels, 1):
            self.project = self.conv_bn(in_channels, out_channels, 1, stride)

    @staticmethod
    def conv_bn(cin, cout, k, s):
        """A k×k conv (no bias: BN follows) and its BatchNorm."""
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False),
                             nn.BatchNorm2d(cout))

    def shortcut(self, x):
        return x if self.project is None else self.project(x)

    def forward(self, x):
        first, second = self.layers
        y = torch.relu(first(x))
        y = second(y)
        return torch.relu(y + self.shortcut(x))
'''
# ... and its copy: every name changed, the methods in another order, a comment added.
BASIC_BLOCK_COPIED = '''\
class BasicBlock(nn.Module):
    def forward(self, inp):
        # two conv-BN layers, then add the skip path
        a, b = self.stack
        out = torch.relu(a(inp))
        out = b(out)
        return torch.relu(out + self.skip_path(inp))

    def skip_path(self, inp):
        return inp if self.proj is None else self.proj(inp)

    @staticmethod
    def make_layer(c_in, c_out, size, step):
        """conv + batchnorm"""
        return nn.Sequential(nn.Conv2d(c_in, c_out, size, step, size // 2, bias=False),
                             nn.BatchNorm2d(c_out))

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.stack = nn.ModuleList([
            self.make_layer(in_channels, out_channels, 3, stride),
            self.make_layer(out_channels, out_channels, 3, 1),
        ])
        self.proj = None
        if (in_channels, stride) != (out_channels, 1):
            self.proj = self.make_layer(in_channels, out_channels, 1, stride)
'''
# Two more mistakes, each in a style of its own (not a copy of another student's answer).
BASIC_BLOCK_RELU_FIRST = """\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.act = nn.ReLU()
        self.c1, self.b1 = nn.Conv2d(in_channels, out_channels, (3, 3), (stride, stride),
                                     (1, 1), bias=False), nn.BatchNorm2d(out_channels)
        self.c2, self.b2 = nn.Conv2d(out_channels, out_channels, (3, 3), (1, 1), (1, 1),
                                     bias=False), nn.BatchNorm2d(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.proj = (nn.Sequential(nn.Conv2d(in_channels, out_channels, (1, 1), (stride, stride),
                                             bias=False), nn.BatchNorm2d(out_channels))
                     if needs_projection else nn.Identity())

    def forward(self, inputs):
        main = self.act(self.b1(self.c1(inputs)))
        main = self.act(self.b2(self.c2(main)))
        shortcut = self.proj(inputs)
        return main + shortcut
"""
BASIC_BLOCK_RELU_IN_DICT = """\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.parts = nn.ModuleDict({
            "conv1": nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride,
                               bias=False),
            "bn1": nn.BatchNorm2d(out_channels),
            "conv2": nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            "bn2": nn.BatchNorm2d(out_channels),
        })
        self.down = nn.Identity()
        if stride != 1 or out_channels != in_channels:
            self.down = nn.Sequential()
            self.down.add_module("conv", nn.Conv2d(in_channels, out_channels, 1, stride=stride,
                                                   bias=False))
            self.down.add_module("bn", nn.BatchNorm2d(out_channels))

    def forward(self, x):
        p = self.parts
        y = torch.relu(p["bn1"](p["conv1"](x)))
        y = torch.relu(p["bn2"](p["conv2"](y)))
        return y + self.down(x)
"""
BASIC_BLOCK_PLAIN = """\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        layers = []
        for i, (cin, s) in enumerate([(in_channels, stride), (out_channels, 1)]):
            layers += [nn.Conv2d(cin, out_channels, 3, s, 1, bias=False),
                       nn.BatchNorm2d(out_channels)]
            if i == 0:
                layers.append(nn.ReLU())
        layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""
COUNT_ALL_PARAMETERS = """\
def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
"""
# student -> BasicBlock answer, for the similarity pairs of the demo class (03_resnet)
SIMILARITY = {
    "s1_original": BASIC_BLOCK_ORIGINAL,
    "s2_copied": BASIC_BLOCK_COPIED,       # s1's answer, renamed and reordered: flagged
    "s3_independent": BASIC_BLOCK_SEQUENTIAL,
}

# student -> edit applied to a correct submission of the hostile lesson
HOSTILE = {
    "h1_edited_tests": _edit_tests,
    "h2_infinite_loop": _loops,
    "h3_memory_bomb": _memory,
    "h4_monkeypatch": _monkeypatch,
    "h5_vandal": _vandal,
    "h6_exits": _exits,
    "h7_torchvision_passoff": _passoff,
    "h8_output_flood": _flood,
    "h9_syntax_error": _syntax_error,
    "j1_rebinds_check": _attack(REBIND_CHECK),
    "j2_input_transformer": _attack(INPUT_TRANSFORMER),
    "j3_patched_builtins": _attack(PATCHED_BUILTINS),
    "j4_forged_oracle": _attack(FORGED_ORACLE),
    "j5_hidden_torchvision": _obfuscated,
}
# student -> (lesson, edit)
MISTAKES = {
    "m1_relu_before_add": ("03_resnet", _mistake("BasicBlock", BASIC_BLOCK_RELU_BEFORE_ADD)),
    "m2_softmax_gate": ("04_resnet_variants", _mistake("SEBlock", SE_SOFTMAX_GATE)),
}
INVALID_JSON = "h9_invalid_json"
FULL_CLASS = ("alice_correct", "bob_partial", "carol_empty")


def save_submission(course_dir: Path, student: str, lesson: str, nb) -> None:
    path = course_dir / "submitted" / student / lesson / f"{lesson}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def add_hostile_students(course_dir: Path, lesson: str) -> list[str]:
    """The hostile or broken submissions of `lesson` (each: the correct one plus one act)."""
    for student, edit in HOSTILE.items():
        nb = filled(lesson, course_dir=course_dir)
        edit(nb, course_dir)
        save_submission(course_dir, student, lesson, nb)
    path = course_dir / "submitted" / INVALID_JSON / lesson / f"{lesson}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"cells": [ this is not JSON')
    return [*HOSTILE, INVALID_JSON]


def new_course(course_dir: Path) -> list[str]:
    """Create <course_dir> afresh as a copy of this course (config, sources, student copies).

    Returns its lessons.
    """
    if course_dir.exists():
        shutil.rmtree(course_dir)
    course_dir.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course_dir)
    shutil.copytree(REPO_ROOT / "solutions", course_dir / "solutions")
    shutil.copytree(REPO_ROOT / "notebooks", course_dir / "notebooks")
    return sorted(p.name for p in (course_dir / "solutions").iterdir() if p.is_dir())


def build_class(course_dir: Path, lessons: list[str] | None = None,
                hostile_lesson: str | None = "03_resnet") -> list[str]:
    """Create <course_dir> as an nbgrader course with a sample class; return the students."""
    all_lessons = new_course(course_dir)
    lessons = lessons or all_lessons

    for lesson in lessons:
        save_submission(course_dir, "alice_correct", lesson, filled(lesson, course_dir=course_dir))
        save_submission(course_dir, "bob_partial", lesson,
                        filled(lesson, lambda i, gid: i % 2 == 0, course_dir=course_dir))
        save_submission(course_dir, "carol_empty", lesson, student_copy(lesson, course_dir))
    students = list(FULL_CLASS)
    for student, (lesson, edit) in MISTAKES.items():
        nb = filled(lesson, course_dir=course_dir)
        edit(nb, course_dir)
        save_submission(course_dir, student, lesson, nb)
        students.append(student)
    if hostile_lesson:
        students += add_hostile_students(course_dir, hostile_lesson)
        # A copied answer (and an independent one) for the report's similarity check.
        for student, source in SIMILARITY.items():
            nb = filled(hostile_lesson, course_dir=course_dir)
            cell_defining(nb, "BasicBlock").source = source
            save_submission(course_dir, student, hostile_lesson, nb)
            students.append(student)
    return students


def run_demo(out: Path, workers: int | None = None, scheduler: str | None = None,
             cell_timeout: int | None = None, memory_bytes: int | None = None,
             lessons: list[str] | None = None) -> ClassReport:
    """Build the sample class in `out` and grade it (limits: None keeps the defaults)."""
    students = build_class(out, lessons)
    print(f"Sample class in {out}: {len(students)} students")
    return grade_class(out, workers=workers, scheduler=scheduler, cell_timeout=cell_timeout,
                       memory_bytes=memory_bytes)
