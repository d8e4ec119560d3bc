"""The judge's own rules: which test cells it runs, what it refuses to trust, how it gives up.

A real IPython kernel (conftest's `kernel`) plays the student's kernel; nothing here goes through nbgrader (the
grading tests do that end to end).
"""

from __future__ import annotations

import collections
import io
import time

import nbformat
import pytest
import torch

from course_utils.checks._calls import Unanswered
from course_utils.grading.judge import (
    CheckCall,
    KernelChannel,
    NotJudgeable,
    _decode,
    judge_cell,
    parse_checks,
    static_scan,
)


def test_parse_check_lines_and_their_options():
    calls = parse_checks('# graded\ncheck("basic_block", BasicBlock)\n'
                         'check("ex4_efficiency_table", efficiency_table, '
                         'rows=ex4_rows, size=224)\ncheck("se_block", None)')
    assert calls == [
        CheckCall("basic_block", "BasicBlock"),
        CheckCall("ex4_efficiency_table", "efficiency_table",
                  {"rows": ("global", "ex4_rows"), "size": ("literal", 224)}),
        CheckCall("se_block", None),
    ]


@pytest.mark.parametrize("source,words", [
    ("assert double(3) == 6", "line 1 is not a check"),
    ('check("basic_block", BasicBlock)\nprint("done")', "line 2 is not a check"),
    ('check("basic_block", make_block())', "must be a name"),
    ('check("basic_block", BasicBlock, configs=build())', "neither a literal nor a name"),
    ("check(", "not valid Python"),
    ("# nothing", "no check"),
])
def test_other_code_in_a_test_cell_is_not_judgeable(source, words):
    with pytest.raises(NotJudgeable, match=words):
        parse_checks(source)


def test_static_scan_finds_torchvision_in_the_defining_cell_only_for_its_items():
    source = "from torchvision.models.resnet import BasicBlock as TV\n\nclass BasicBlock(TV): ..."
    message = static_scan("basic_block", source, "BasicBlock")
    assert "found by reading your code, line 1" in message
    assert static_scan("ex1_plain_cnn", source, "PlainCNN") is None
    commented = "# unlike torchvision.models.resnet, this block is my own\nclass BasicBlock: ..."
    assert static_scan("basic_block", commented, "BasicBlock") is None


def _run(kc, code: str) -> None:
    assert kc.execute_interactive(code, timeout=60)["content"]["status"] == "ok"


def _cells(*sources: str) -> list:
    return [nbformat.v4.new_code_cell(s) for s in sources]


def test_answers_that_are_not_plain_data_are_refused(kernel):
    """The judge reads answers with weights_only=True: a pickled object is never built."""
    _, kc = kernel
    _run(kc, "import course_utils.grading.oracle as oracle\n"
             "class Payload:\n    def __reduce__(self):\n        return (print, ('pwned',))\n"
             "def forged(request):\n"
             "    return {'ok': True, 'value': Payload()}\n"
             "honest_answer, oracle.answer = oracle.answer, forged\n")
    try:
        with pytest.raises(Unanswered, match="not readable data"):
            KernelChannel(kc, timeout=30)("lookup", {"name": "x"})
        (verdict,) = judge_cell(_cells("def f(m): pass", "check('ex2_count_parameters', f)"),
                                1, KernelChannel(kc, timeout=30))
        assert not verdict.passed and "not readable data" in verdict.text
    finally:
        _run(kc, "oracle.answer = honest_answer")


def test_requests_are_not_rewritten_by_input_transformers(kernel):
    _, kc = kernel
    # Every cell becomes 1/0, except the one that removes the transformer again.
    _run(kc, "get_ipython().input_transformers_cleanup.append(\n"
             "    lambda lines: lines if 'UNDO' in ''.join(lines) else ['1/0\\n'])")
    try:
        assert kc.execute_interactive("1", timeout=30)["content"]["status"] == "error"
        assert KernelChannel(kc, timeout=30)("lookup", {"name": "no_such_name"}) == \
            {"kind": "missing"}
    finally:
        _run(kc, "get_ipython().input_transformers_cleanup.pop()  # UNDO")


def test_a_busy_kernel_costs_one_timeout_then_every_request_fails_at_once(kernel):
    km, kc = kernel
    kc.execute("import time\nwhile True: time.sleep(0.1)")
    channel = KernelChannel(kc, timeout=2)
    start = time.monotonic()
    with pytest.raises(Unanswered, match="did not answer within 2 s"):
        channel("lookup", {"name": "x"})
    with pytest.raises(Unanswered):
        channel("lookup", {"name": "x"})
    assert time.monotonic() - start < 10
    km.interrupt_kernel()
    kc.get_shell_msg(timeout=30)  # the interrupted loop's reply
    kc.get_shell_msg(timeout=30)  # and the unanswered request's, now answered


def test_answers_are_read_as_plain_data_only():
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": {"out": torch.ones(2), "n": 3}}, buffer)
    assert _decode(buffer.getvalue())["n"] == 3
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": collections.OrderedDict(a=print)}, buffer)
    with pytest.raises(Unanswered, match="not readable data"):
        _decode(buffer.getvalue())
    with pytest.raises(Unanswered, match="not readable data"):
        _decode(b"not a torch file")


def test_an_undefined_name_passed_to_a_check_fails_as_in_the_notebook(kernel):
    """The notebook stops at a NameError; the judge must not compute the rows itself."""
    _, kc = kernel
    channel = KernelChannel(kc, timeout=30)
    (verdict,) = judge_cell(_cells("def f(names, input_size=224): return []",
                                   "check('ex4_efficiency_table', f, rows=never_computed)"),
                            1, channel)
    channel.close()
    assert not verdict.passed and verdict.mistake == "undefined_option"
    assert verdict.text.startswith("name 'never_computed' is not defined")


def test_a_session_ends_with_the_graded_cell(kernel):
    """judge_cell closes its session: the kernel runs the next cell at once, and a later
    request on the same channel opens a new session."""
    _, kc = kernel
    channel = KernelChannel(kc, timeout=30)
    judge_cell(_cells("def f(m): pass", "check('ex2_count_parameters', f)"), 1, channel)
    assert kc.execute_interactive("x_after = 1", timeout=10)["content"]["status"] == "ok"
    assert channel("lookup", {"name": "x_after"})["value"] == 1
    channel.close()


def test_a_failed_check_in_the_notebook_shows_the_message_alone(kernel):
    """IPython renders CheckError's _render_traceback_: no checker frames above the message."""
    _, kc = kernel
    errors = []
    kc.execute_interactive(
        "from course_utils.checks import check\nfrom torch import nn\n"
        "class OneConv(nn.Module):\n"
        "    def __init__(self, cin, cout, stride=1):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)\n"
        "    def forward(self, x):\n        return self.conv(x)\n"
        "check('basic_block', OneConv)", timeout=60,
        output_hook=lambda msg: errors.append(msg["content"]) if msg["msg_type"] == "error"
        else None)
    (error,) = errors
    shown = "\n".join(error["traceback"])
    assert "does not behave like torchvision's BasicBlock" in shown
    assert "course_utils" not in shown and "File " not in shown and "raise " not in shown
