"""The torch operations the checker computes with, taken from torch's C extension.

A notebook can rebind public names before a check runs (``torch.allclose = lambda *a, **k:
True``, ``torch.Tensor.__eq__ = ...``, ``F.relu = ...``, ``nn.Conv2d.forward = ...``). The
checker never calls those. Everything it computes itself (reference outputs, differences,
norms) goes through the objects below, which come from ``torch._C._VariableFunctions``,
``torch._C._nn`` and ``torch._C.TensorBase``: immutable C types whose attributes Python code
cannot reassign. They are looked up once at import and :func:`verify` confirms, before every
check, that each one is still one of torch's own builtins (so even a patch made before this
module was imported, e.g. replacing the whole ``torch._C._VariableFunctions`` object, is
refused rather than trusted).
"""

from __future__ import annotations

import builtins
import os
import types

import torch
import torch.autograd

_VF = torch._C._VariableFunctions
_NN = torch._C._nn
_TB = torch._C.TensorBase
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))

Tensor = torch.Tensor
float32 = torch.float32

# Free functions (builtins of torch's C extension).
conv2d = _VF.conv2d
batch_norm = _VF.batch_norm
max_pool2d = _VF.max_pool2d
relu = _VF.relu
sigmoid = _VF.sigmoid
tanh = _VF.tanh
softmax = _VF.softmax
add = _VF.add
sub = _VF.sub
mul = _VF.mul
div = _VF.div
abs = _VF.abs  # noqa: A001 - mirrors torch's name on purpose
sqrt = _VF.sqrt
mean = _VF.mean
amax = _VF.amax
tsum = _VF.sum
flatten = _VF.flatten
isfinite = _VF.isfinite
randn = _VF.randn
rand = _VF.rand
randint = _VF.randint
zeros = _VF.zeros
ones = _VF.ones
zeros_like = _VF.zeros_like
where = _VF.where
linear = _NN.linear
hardsigmoid = _NN.hardsigmoid
cross_entropy = _NN.cross_entropy_loss

# Tensor methods, called as functions on the C base class so that nothing assigned to
# ``torch.Tensor`` (a Python class) is involved.
item = _TB.item
size = _TB.size
clone = _TB.clone
detach = _TB.detach
reshape = _TB.reshape
expand = _TB.expand
copy_ = _TB.copy_
zero_ = _TB.zero_
fill_ = _TB.fill_
numel = _TB.numel
requires_grad_ = _TB.requires_grad_
to = _TB.to
select = _TB.select
set_grad_enabled = torch._C._set_grad_enabled
is_grad_enabled = torch._C.is_grad_enabled

# autograd.grad is Python; verify() checks it still is torch's own function.
autograd_grad = torch.autograd.grad

_CAPTURED = {
    "conv2d": conv2d, "batch_norm": batch_norm, "max_pool2d": max_pool2d, "relu": relu,
    "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax, "add": add, "sub": sub, "mul": mul,
    "div": div, "abs": abs, "sqrt": sqrt, "mean": mean, "amax": amax, "sum": tsum,
    "flatten": flatten, "isfinite": isfinite, "randn": randn, "rand": rand,
    "randint": randint, "zeros": zeros, "ones": ones, "zeros_like": zeros_like,
    "where": where, "all": _VF.all, "linear": linear, "hardsigmoid": hardsigmoid,
    "cross_entropy_loss": cross_entropy, "item": item, "size": size, "clone": clone,
    "detach": detach, "reshape": reshape, "expand": expand, "copy_": copy_, "zero_": zero_,
    "fill_": fill_, "numel": numel, "select": select, "requires_grad_": requires_grad_, "to": to,
    "_set_grad_enabled": set_grad_enabled, "is_grad_enabled": is_grad_enabled,
}
_C_TYPES = (types.BuiltinFunctionType, types.MethodDescriptorType)


class TamperedError(RuntimeError):
    """torch itself was modified in this Python process."""


def verify() -> None:
    """Raise :class:`TamperedError` unless every captured operation is torch's own."""
    for name, obj in _CAPTURED.items():
        if (
            not isinstance(obj, _C_TYPES)
            or getattr(obj, "__name__", None) != name
            or getattr(obj, "__self__", None) is builtins
        ):
            raise TamperedError(f"torch operation {name!r} is not torch's own")
    code = getattr(autograd_grad, "__code__", None)
    if code is None or not os.path.abspath(code.co_filename).startswith(_TORCH_DIR):
        raise TamperedError("torch.autograd.grad is not torch's own")
    if type(_VF).__name__ != "_VariableFunctionsClass" or type(_TB).__module__ != "torch._C":
        raise TamperedError("torch._C was replaced")
    if torch._C._len_torch_function_stack() or torch._C._len_torch_dispatch_stack():
        raise TamperedError(
            "a TorchFunctionMode or TorchDispatchMode is active, so torch operations may "
            "not compute what they say"
        )


class no_grad:  # noqa: N801 - used like torch.no_grad
    """``torch.no_grad`` built on the captured switch."""

    def __enter__(self) -> None:
        self._prev = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc: object) -> None:
        set_grad_enabled(self._prev)


class enable_grad(no_grad):  # noqa: N801
    def __enter__(self) -> None:
        self._prev = is_grad_enabled()
        set_grad_enabled(True)


def shape(t: Tensor) -> tuple[int, ...]:
    return builtins.tuple(size(t))


def max_abs(t: Tensor) -> float:
    """max |t| as a float; inf when t has NaN or inf."""
    t = detach(t)
    if numel(t) == 0:
        return 0.0
    if not item(_VF.all(isfinite(t))):
        return float("inf")
    return float(item(amax(abs(t))))


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    """max |a - b| (inf for NaN/inf or different shapes)."""
    if shape(a) != shape(b):
        return float("inf")
    return max_abs(sub(to(detach(a), float32), to(detach(b), float32)))


def close(a: Tensor, b: Tensor, tol: float = 1e-5) -> bool:
    """a equals b up to ``tol`` relative to the size of b (at least absolute ``tol``)."""
    return max_abs_diff(a, b) <= tol * builtins.max(1.0, max_abs(b))


def norm(t: Tensor) -> float:
    """The L2 norm of all of t's entries (float64 accumulation)."""
    t = to(detach(t), torch.float64)
    return float(item(sqrt(tsum(mul(t, t)))))


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
