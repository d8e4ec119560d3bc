"""A small nbgrader assignment ("mini") for the grading tests: lesson 03's BasicBlock exercise
and count_parameters, with 5 + 1 autograded points and one written answer."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from notebook_tools import run_nbgrader

ROOT = Path(__file__).resolve().parent.parent
BLOCK_POINTS, COUNT_POINTS = 5, 1

BASIC_BLOCK = '''\
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))
        ### END SOLUTION
'''


def _cell(kind, source, **nbgrader):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else \
        nbformat.v4.new_markdown_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "locked": False, "solution": False,
                                     "grade": False, **nbgrader}
    return cell


def mini_assignment() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[
        _cell("md", f"# Mini\n**Total points: {BLOCK_POINTS + COUNT_POINTS + 1}**"),
        _cell("code", "import torch\nfrom torch import nn\nfrom course_utils.checks import check"),
        _cell("code", BASIC_BLOCK, grade_id="basic_block_answer", solution=True),
        _cell("code", 'check("basic_block", BasicBlock)', grade_id="basic_block_check",
              grade=True, locked=True, points=BLOCK_POINTS),
        _cell("code", "def count_parameters(model):\n    ### BEGIN SOLUTION\n"
                      "    return sum(p.numel() for p in model.parameters() if p.requires_grad)\n"
                      "    ### END SOLUTION", grade_id="count_answer", solution=True),
        _cell("code", 'check("ex2_count_parameters", count_parameters)', grade_id="count_check",
              grade=True, locked=True, points=COUNT_POINTS),
        _cell("md", "Why does the skip connection help?", grade_id="why", solution=True,
              grade=True, points=1),
    ])
    nb.cells[-1].source = "Because the gradient flows through the identity."
    nb.metadata["kernelspec"] = {"name": "cnn-course", "display_name": "Python 3 (CNN course)",
                                 "language": "python"}
    return nb


def new_mini_course(course: Path) -> Path:
    """Make `course` an nbgrader course with the mini assignment and its student copy."""
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    (course / "solutions" / "mini").mkdir(parents=True)
    nbformat.write(mini_assignment(), course / "solutions" / "mini" / "mini.ipynb")
    proc = run_nbgrader(course, "generate_assignment", "mini", "--force")
    assert proc.returncode == 0, proc.stderr
    return course
