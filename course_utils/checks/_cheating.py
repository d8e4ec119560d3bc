"""Refuse torchvision's own blocks handed in as the student's, and watch forward passes.

The checker compares a student's block against torchvision's, so submitting torchvision's
class (or a subclass, a wrapper holding one, a class whose ``forward`` *is* torchvision's, or a
forward that calls into torchvision's model code) would pass without proving anything.
:func:`reject_reference` looks at the class and its submodules; :class:`Watch` records, while
the student's forward runs, which modules run (their order is used to match weights) and
whether any code from ``torchvision/models`` or ``torchvision.ops.SqueezeExcitation`` ran.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import torchvision
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torchvision.ops.misc import SqueezeExcitation

from ._calls import fail

ACTIVE_WATCHES: list = []  # open Watch contexts (a mirrored forward reports what the kernel saw)

_TV_DIR = os.path.dirname(os.path.abspath(torchvision.__file__))
_TV_MODELS_DIR = os.path.join(_TV_DIR, "models") + os.sep
_TV_MISC = os.path.join(_TV_DIR, "ops", "misc.py")
_COURSE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # course_utils/


def _mro_names(klass: type) -> list[tuple[str, str]]:
    """(module, qualname) along the MRO; for a class mirrored from the student's kernel, the
    names the kernel reported (see course_utils.grading.mirror)."""
    names = getattr(klass, "__course_names__", None)
    if names is not None:
        return names.mro
    return [(getattr(b, "__module__", "") or "", b.__qualname__) for b in klass.__mro__]


def _members(klass: type) -> list[tuple[str, str, str]]:
    """(attribute, file, qualname) of the functions defined by the class and its non-torch
    bases."""
    names = getattr(klass, "__course_names__", None)
    if names is not None:
        return names.members
    members = []
    for base in klass.__mro__:
        if (base.__module__ or "").startswith("torch"):
            continue
        for attr, value in vars(base).items():
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None:
                members.append((attr, code.co_filename, code.co_qualname))
    return members


def _forbidden_base(klass: type) -> tuple[str, str] | None:
    """The torchvision model class (BasicBlock, Bottleneck, ResNet, ...) or SqueezeExcitation
    that ``klass`` is or derives from, as (module, qualname), if any."""
    for module, qualname in _mro_names(klass):
        if module.startswith("torchvision.models") or (
                module == SqueezeExcitation.__module__ and qualname == "SqueezeExcitation"):
            return module, qualname
    return None


def _forbidden_code(filename: str, qualname: str) -> bool:
    path = os.path.abspath(filename)
    if path.startswith(_TV_MODELS_DIR):
        return True
    return path == _TV_MISC and qualname.startswith("SqueezeExcitation")


def _why(what: str) -> str:
    return (
        f" The checker compares your {what} with torchvision's, so handing in torchvision's "
        "own code proves nothing: write the layers and the forward pass yourself."
    )


def reject_reference(obj: Any, what: str) -> None:
    """Fail if ``obj`` (a class or a module) is, subclasses, reuses or contains torchvision's."""
    klass = obj if inspect.isclass(obj) else type(obj)
    base = _forbidden_base(klass)
    if base is not None:
        relation = "is" if base == _mro_names(klass)[0] else "subclasses"
        fail(f"Your {what} {relation} {base[0]}.{base[1]}.{_why(what)}",
             mistake="torchvision_reference")
    for attr, filename, qualname in _members(klass):
        if _forbidden_code(filename, qualname):
            fail(f"Your {what}'s `{attr}` is torchvision's {qualname}.{_why(what)}",
                 mistake="torchvision_reference")
    if isinstance(obj, nn.Module):
        for name, sub in obj.named_modules():
            base = _forbidden_base(type(sub))
            if sub is not obj and base is not None:
                fail(f"Your {what} contains torchvision's {base[1]} (`{name}`)." + _why(what),
                     mistake="torchvision_reference")


def _restore_profiler(previous: Any) -> None:
    """Put back whatever profiler ran before (cProfile's is an object, not a function)."""
    try:
        sys.setprofile(previous)
    except TypeError:
        sys.setprofile(None)
        enable = getattr(previous, "enable", None)
        if callable(enable):
            enable()


def course_helper(module: str) -> str:
    """The file of a course_utils helper module, e.g. course_helper("plots")."""
    return os.path.join(_COURSE_DIR, f"{module}.py")


def reject_course_helper(func: Any, what: str, module: str) -> None:
    """Fail if ``func`` is (or is defined in) the course's own ``course_utils.<module>``."""
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    filename = getattr(func, "__course_file__", None) or (code.co_filename if code else "")
    defined_in = os.path.abspath(filename) if filename else ""
    if (getattr(func, "__module__", "") == f"course_utils.{module}"
            or defined_in == course_helper(module)):
        fail(f"Your {what} is course_utils.{module}.{getattr(func, '__name__', what)}, the "
             f"course's own helper: the exercise asks you to write {what} yourself.",
             mistake="course_helper")


class Watch:
    """Context manager: record module execution order and calls into torchvision's code
    (and into the course helper files in ``also_forbid``)."""

    def __init__(self, check_cheating: bool = True, also_forbid: tuple[str, ...] = ()) -> None:
        self.order: dict[int, int] = {}
        self.forbidden: list[str] = []
        self._check = check_cheating
        self._also = {os.path.abspath(f) for f in also_forbid}
        self.also = tuple(sorted(self._also))  # asked of the kernel too when grading
        self._hook = self._profile  # one bound method, so sys.getprofile() can be compared

    def _pre_hook(self, module: nn.Module, args: Any) -> None:
        self.order.setdefault(id(module), len(self.order))
        base = _forbidden_base(type(module)) if self._check else None
        if base is not None:
            self.forbidden.append(f"torchvision's {base[1]}")

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if _forbidden_code(code.co_filename, code.co_qualname):
                self.forbidden.append(f"torchvision's {code.co_qualname}")
            elif self._also and os.path.abspath(code.co_filename) in self._also:
                module = os.path.splitext(os.path.basename(code.co_filename))[0]
                self.forbidden.append(f"course_utils.{module}.{code.co_qualname}")

    def __enter__(self) -> Watch:
        ACTIVE_WATCHES.append(self)  # a mirrored module's forward reports to it (see course_utils.grading.mirror)
        self._handle = register_module_forward_pre_hook(self._pre_hook)
        self._previous = sys.getprofile()
        if self._check:
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        ACTIVE_WATCHES.remove(self)
        tampered = self._check and sys.getprofile() is not self._hook
        if self._check:
            _restore_profiler(self._previous)
        self._handle.remove()
        if tampered and exc[0] is None:
            fail("Your code changed sys.setprofile while the checker was running it.")

    def reject(self, what: str) -> None:
        if self.forbidden:
            if self.forbidden[0].startswith("course_utils."):
                fail(f"Your {what} calls {self.forbidden[0]}, the course's own helper: the "
                     f"exercise asks you to write {what} yourself.", mistake="course_helper")
            fail(f"Your {what}'s forward pass runs {self.forbidden[0]}." + _why(what),
                 mistake="torchvision_reference")
