"""The exercise checker: ``from course_utils.checks import check``.

``check(name, obj, **options)`` judges one graded item (``obj`` is the student's class or
function) by behaviour against a trusted reference:

- it returns ``None`` and prints one ✓ line saying what was verified (plus ``note:`` lines
  for harmless deviations, e.g. a redundant conv bias before BatchNorm);
- it raises ``AssertionError`` with a plain-words message naming the mistake and why it
  matters; when the student's own code raises, the message names the call that failed, the
  exception and the student's line of code (never a raw traceback from the checker);
- ``check(name, None)`` and bodies that still raise ``NotImplementedError`` fail with a
  "not implemented yet" message; an unknown ``name`` raises ``ValueError`` listing the valid
  names, an unknown option raises ``TypeError``.

Names, by lesson (``available_checks()`` gives the API each one expects, e.g.
``"ex1_plain_cnn": "PlainCNN(depth=6, num_classes=10)"``): 01 ``practice_conv2d_im2col``,
``practice_conv_cost``; 02 ``practice_vgg_num_params``, ``practice_vgg_conv_macs``; 03
``basic_block`` (option ``configs``), ``ex1_plain_cnn``, ``ex1_cifar_resnet``,
``ex1_grad_norm``, ``ex2_small_resnet``, ``ex2_count_parameters``; 04 ``se_block`` (option
``configs``), ``ex3_se_net``, ``ex5_lenet_style``, ``ex5_vgg_style``, ``ex5_resnet_style``,
``ex5_plot``; 05 ``ex4_efficiency_table`` (option ``rows``: the table the notebook already
computed), ``ex4_best``; 06 ``practice_interpolate_pos_embedding``,
``practice_attention_distance``; 07 ``box_cxcywh_to_xyxy``, ``box_xyxy_to_cxcywh``,
``param_groups``, ``practice_grad_cam``. ``summary()`` lists a lesson's graded items with their verdicts.

Why a conv bias right before BatchNorm is only a note: in train mode BatchNorm subtracts the
per-channel batch mean, which removes a per-channel constant exactly (the bias's gradient is
zero, so it never learns); in eval mode the running mean, learned from those same batches,
absorbs it. The function the network can represent is unchanged — only parameters are wasted.
(Copying torchvision's statistics into a block whose conv has a *random* bias would make eval
outputs differ, but that is an artefact of the copy, not a mistake; the checker zeroes such
biases when copying and says so in a note.)

Where the verdict is decided
----------------------------
In the notebook, ``check`` runs here, next to the student's code: it is instant feedback, and
code that patches torch or the checker only fools its own author. Grades are decided by the
grader's judge (``course_utils.grading.judge``): it runs these same check functions in the
grading process on mirrors of the student's objects, with the kernel answering requests as
data, and adds the hidden configurations (``_registry.grading()``). So this package holds no
in-process defences; it is plain torch. What it still refuses everywhere: torchvision's own
block handed in as the student's (its class, a subclass, a module holding one, a method
copied from it, or torchvision code running in the forward pass; tests/test_checks_hostile.py).
The student's global random state, default dtype and grad mode are restored around every
check.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

# Importing the check modules registers them.
from . import (  # noqa: E402,F401,I001
    basic_block,
    ex1,
    ex2,
    ex3,
    ex4,
    ex5,
    practice01,
    practice02,
    practice06,
    practice07,
    se_block,
)
from ._calls import CheckFailure, Unanswered, UsageError, exception_str
from ._registry import REGISTRY

_MISSING = object()


class Result(NamedTuple):
    """A verdict as data: passed, the ✓ line or the message, the mistake's id (if named)."""

    passed: bool
    text: str
    mistake: str | None = None


class CheckError(AssertionError):
    """A failed check in the notebook: IPython shows the message alone, not the checker's
    frames; nbgrader still sees an error."""

    def _render_traceback_(self) -> list[str]:
        return ["\x1b[31m✗\x1b[0m " + str(self)]


def available_checks() -> dict[str, str]:
    """{name: the student-facing API it expects}."""
    return {name: entry.expects for name, entry in sorted(REGISTRY.items())}


def check(name: str, obj: Any = _MISSING, **options: Any) -> None:
    """Check a graded item; print a ✓ line or raise AssertionError saying what is wrong."""
    __tracebackhide__ = True  # pytest shows the message, not the checker's frames
    result = judge(name, obj, **options)
    if not result.passed:
        raise CheckError(result.text)  # outside any except: no chained traceback
    print(result.text)


def judge(name: str, obj: Any = _MISSING, **options: Any) -> Result:
    """The verdict ``check`` shows, as data.

    The grader calls this in its own process with ``obj`` a mirror of the student's object
    (see course_utils.grading.mirror); ``check`` calls it in the notebook with the object itself.
    """
    entry = REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        names = ", ".join(sorted(REGISTRY))
        raise ValueError(f"check() has no item named {name!r}; valid names: {names}")
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        allowed = ", ".join(entry.options) or "none"
        raise TypeError(f"check({name!r}, ...) got unknown option(s) {', '.join(unknown)}; "
                        f"it accepts: {allowed}")
    if obj is _MISSING:
        raise TypeError(f"check({name!r}, obj): pass the object to check ({entry.expects})")
    try:
        with _session():
            return Result(True, entry.func(obj, **options))
    except CheckFailure as exc:
        return Result(False, str(exc), exc.mistake)
    except (UsageError, Unanswered):
        raise
    except Exception as exc:  # a bug in the checker: say so instead of a raw traceback
        return Result(False, _internal_error(name, exc), "checker_error")


def _internal_error(name: str, exc: Exception) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return (f"The checker could not judge {name!r}: it failed itself with "
            f"{exception_str(exc)}{where}. This is a bug in the checker, not necessarily in "
            "your code; please tell the course staff (and include this message).")


class _session:  # noqa: N801
    """Keep the student's random state, default dtype and grad mode as they were."""

    def __enter__(self) -> None:
        self._rng = torch.random.get_rng_state()
        self._dtype = torch.get_default_dtype()
        self._grad = torch.is_grad_enabled()
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)

    def __exit__(self, *exc: object) -> None:
        torch.random.set_rng_state(self._rng)
        torch.set_default_dtype(self._dtype)
        torch.set_grad_enabled(self._grad)


from .summary import summary as summary  # noqa: E402 - lesson-end overview (uses judge)

__all__ = ["CheckError", "Result", "available_checks", "check", "judge"]
