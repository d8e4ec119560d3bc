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

Names (``available_checks()`` lists them with the API each expects): ``basic_block``
(``BasicBlock(in_channels, out_channels, stride=1)``; option ``configs``), ``se_block``
(``SEBlock(channels, reduction=16)``; option ``configs``), ``ex1_plain_cnn``
(``PlainCNN(depth=6)``), ``ex1_cifar_resnet`` (``CifarResNet(num_blocks=6)``),
``ex1_grad_norm`` (``first_layer_grad_norm(model, images, labels) -> float``),
``ex2_small_resnet`` (``SmallResNet(in_channels=1, num_classes=10)``),
``ex2_count_parameters`` (``count_parameters(model) -> int``), ``ex3_se_net``
(``CIFAR10NetSE()``), ``ex4_efficiency_table`` (``efficiency_table(names, input_size=224)``;
option ``rows``: the table already computed in the notebook), ``ex4_best``
(``best_accuracy_per_parameter(rows) -> str``), ``ex5_lenet_style`` / ``ex5_vgg_style`` /
``ex5_resnet_style`` (``LeNetStyle()``, ``VGGStyle()``, ``ResNetStyle()``) and ``ex5_plot``
(``plot_learning_curves(histories) -> Figure``).

Why a conv bias right before BatchNorm is only a note: in train mode BatchNorm subtracts the
per-channel batch mean, which removes a per-channel constant exactly (the bias's gradient is
zero, so it never learns); in eval mode the running mean, learned from those same batches,
absorbs it. The function the network can represent is unchanged — only parameters are wasted.
(Copying torchvision's statistics into a block whose conv has a *random* bias would make eval
outputs differ, but that is an artefact of the copy, not a mistake; the checker zeroes such
biases when copying and says so in a note.)

What the checker defends against, and what it cannot
----------------------------------------------------
Defended (tests/test_checks_hostile.py):

- torchvision's reference handed in as the student's own: the class itself, a subclass, a
  module holding one, a method copied from it, or a forward that calls torchvision's model
  code or ``SqueezeExcitation`` (seen by a profiler hook while the forward runs) — refused
  with a message saying why;
- monkeypatching in the notebook: ``torch.allclose``, ``torch.equal``,
  ``torch.Tensor.__eq__``/``__sub__``/``abs``/``max``, ``F.relu``, ``nn.Conv2d.forward``, ... The
  checker computes references and differences only with operations taken from torch's
  immutable C types (``_ops``), so those patches change nothing but the student's own output
  (graded as what the code really does). A patch made before the checker was imported that
  replaces ``torch._C._VariableFunctions`` or ``torch.autograd.grad``, or an active
  ``TorchFunctionMode``/``TorchDispatchMode``, is detected and the check fails asking to
  restart the kernel;
- ``course_utils.checks.check = lambda *a, **k: None`` (and ``del``) raises
  ``AttributeError``, and so does rebinding anything in the checker's own modules
  (``course_utils.checks._ops.close = ...``): they are frozen once loaded, so the test cell's
  ``from course_utils.checks import check`` gets the real, unpatched checker;
- the student's global random state is saved and restored around every check.

Not defended in-process (Python can't sandbox code running in the same interpreter):
writing a module's ``__dict__`` directly or via ``types.ModuleType.__setattr__``, replacing
``sys.modules["course_utils.checks"]`` before the test cell imports it, registering aten
kernels with ``torch.library``, patching Python builtins, ctypes, or editing files on disk. The
instructor's grading (``course_utils.grading``) therefore runs every submission in a fresh,
isolated process with a read-only copy of the checker.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch

# Importing the check modules registers them.
from . import (  # noqa: E402,F401,I001
    _ops,
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


def available_checks() -> dict[str, str]:
    """{name: the student-facing API it expects}."""
    return {name: entry.expects for name, entry in sorted(REGISTRY.items())}


def check(name: str, obj: Any = _MISSING, **options: Any) -> None:
    """Check a graded item; print a ✓ line or raise AssertionError saying what is wrong."""
    __tracebackhide__ = True  # IPython and pytest show the message, not the checker's frames
    passed, text = judge(name, obj, **options)
    if not passed:
        raise AssertionError(text)  # outside any except: no chained traceback
    print(text)


def judge(name: str, obj: Any = _MISSING, **options: Any) -> tuple[bool, str]:
    """(passed, the ✓ line or the message): the verdict ``check`` shows, as data.

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
        _ops.verify()
    except _ops.TamperedError as exc:
        return False, (f"The checker can't trust torch in this kernel: {exc}. Something in "
                       "the notebook modified torch; restart the kernel and run all cells again.")
    try:
        with _session():
            return True, entry.func(obj, **options)
    except CheckFailure as exc:
        return False, str(exc)
    except (UsageError, Unanswered):
        raise
    except Exception as exc:  # a bug in the checker: say so instead of a raw traceback
        return False, _internal_error(name, exc)


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
        self._grad = _ops.is_grad_enabled()
        torch.set_default_dtype(torch.float32)
        _ops.set_grad_enabled(True)

    def __exit__(self, *exc: object) -> None:
        torch.random.set_rng_state(self._rng)
        torch.set_default_dtype(self._dtype)
        _ops.set_grad_enabled(self._grad)


class _FrozenModule(types.ModuleType):
    """A checker module whose attributes notebook code can't rebind or delete."""

    def __setattr__(self, attr: str, value: Any) -> None:
        if not attr.startswith("__"):
            raise AttributeError(f"{self.__name__}.{attr} is part of the checker and can't be "
                                 "replaced")
        super().__setattr__(attr, value)

    def __delattr__(self, attr: str) -> None:
        raise AttributeError(f"{self.__name__}.{attr} is part of the checker and can't be deleted")


# Every checker module is loaded by now; freeze them all (see "What the checker defends").
for _name, _module in list(sys.modules.items()):
    if _name == __name__ or _name.startswith(__name__ + "."):
        _module.__class__ = _FrozenModule

__all__ = ["available_checks", "check", "judge"]
