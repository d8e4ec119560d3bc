"""The oracle: the kernel-side half of grading, answering the judge's requests as data.

When an instructor grades, the checks run in the grading process (the *judge*,
``course_utils.grading.judge``), never in the student's kernel. The judge sends requests here
— "look up the global ``BasicBlock``", "build it with (64, 128, stride=2)", "load these tensors
into its layers and run forward on this input in eval mode", "call this function with these
arguments" — and reads the answers back with ``torch.load(..., weights_only=True)``: tensors,
numbers, strings, lists and dicts, nothing that can run code.

Nothing here is trusted. The student can replace this module, torch or builtins in their
kernel; the worst they get is answers the judge does not accept, because the judge computes
every expected value itself, from inputs and weights the kernel has never seen.

Messages about a student's exception are worded here, where its traceback is, by the same
``course_utils.checks._calls`` functions the notebook's ``check`` uses.
"""

from __future__ import annotations

import inspect
import io
import numbers
import sys
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)

from course_utils.checks._calls import describe, exception_str, student_frame, where_str
from course_utils.checks._cheating import _members, _mro_names

KIND = "__course_kind__"  # tags the dicts that stand for something other than plain data
_objects: dict[int, Any] = {}
# (object id, submodule path, "state" or "inputs") -> the tensors the judge has sent for it;
# a request carries only those that changed since its last one (see mirror._Handle.send)
_sent: dict[tuple[int, str, str], dict] = {}

# Layers the judge rebuilds as the real torch class (so isinstance(m, nn.Conv2d) holds there).
STANDARD = {cls.__name__: cls for cls in (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm1d,
    nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.Dropout, nn.Dropout2d,
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.Hardswish,
    nn.Hardsigmoid, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity,
    nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Embedding, nn.MultiheadAttention)}


# --- answers as plain data ----------------------------------------------------------------

def error_info(exc: BaseException) -> dict:
    """A student's exception, worded here where its traceback is."""
    frame = student_frame(exc)
    base = next((b.__name__ for b in type(exc).__mro__
                 if b.__module__ == "builtins" and issubclass(b, BaseException)), "Exception")
    return {"type": type(exc).__name__, "base": base, "text": exception_str(exc),
            "where": where_str(exc), "func": frame[2] if frame else None,
            "message": _safe_str(exc)}


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:2000]
    except Exception:
        return ""


def _class_facts(klass: type) -> dict:
    """Names along the MRO and where the class's own methods come from (for the judge's
    "is it torchvision's class in disguise?" rule, which reads the same facts locally)."""
    return {"name": klass.__name__, "qualname": klass.__qualname__,
            "module": klass.__module__ or "", "members": _members(klass),
            "mro": _mro_names(klass)}


def _figure(fig: Any) -> dict:
    axes = []
    for ax in fig.axes:
        legend = ax.get_legend()
        axes.append({
            "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "legend": [t.get_text() for t in legend.get_texts()] if legend else None,
            "lines": [{"x": [float(v) for v in line.get_xdata()],
                       "y": [float(v) for v in line.get_ydata()],
                       "label": str(line.get_label())} for line in ax.get_lines()],
        })
    return {KIND: "figure", "suptitle": fig._suptitle.get_text() if fig._suptitle else "",
            "axes": axes,
            "legends": [[t.get_text() for t in legend.get_texts()] for legend in fig.legends]}


def to_data(value: Any, depth: int = 0) -> Any:
    """``value`` as something ``torch.load(weights_only=True)`` reads back."""
    if depth > 20:
        return {KIND: "object", "type": type(value).__name__, "repr": "(nested too deeply)"}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.Tensor):
        plain = value.detach().clone().as_subclass(torch.Tensor)
        if type(value) is torch.Tensor:
            return plain
        return {KIND: "tensor_subclass", "type": type(value).__qualname__, "tensor": plain}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        items = [to_data(v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str | int) for k in value):
        return {k: to_data(v, depth + 1) for k, v in value.items()}
    if type(value).__name__ == "Figure" and hasattr(value, "axes"):
        return _figure(value)
    if isinstance(value, nn.Module):
        return {KIND: "object", "type": type(value).__name__, "repr": describe(value),
                "module": True}
    return {KIND: "object", "type": type(value).__qualname__, "repr": describe(value)}


# --- the student's objects ----------------------------------------------------------------

def _register(obj: Any) -> int:
    _objects[id(obj)] = obj
    return id(obj)


def _describe_tree(module: nn.Module) -> list[dict]:
    """Every submodule with its class, its own tensors and its children, in order."""
    tree = []
    for path, m in module.named_modules():
        cls = type(m)
        standard = cls.__name__ if STANDARD.get(cls.__name__) is cls else None
        attrs = {k: v for k, v in vars(m).items() if not k.startswith("_")
                 and isinstance(v, bool | int | float | str | type(None) | tuple)
                 and all(isinstance(i, int | float) for i in (v if isinstance(v, tuple) else ()))}
        tree.append({
            "path": path, "standard": standard, "attrs": attrs,
            "class": _class_facts(cls),
            # None entries too: nn.Conv2d(bias=False) has a `bias` that is None
            "params": [(k, None if p is None else p.detach().clone(),
                        p is not None and p.requires_grad) for k, p in m._parameters.items()],
            "buffers": [(k, None if b is None else b.detach().clone())
                        for k, b in m._buffers.items()],
            "children": [k for k, c in m._modules.items() if c is not None],
        })
    return tree


def _signature(obj: Any) -> list | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [(p.name, int(p.kind), p.default is not inspect.Parameter.empty)
            for p in sig.parameters.values()]


def describe_object(obj: Any) -> dict:
    if obj is None:
        return {"kind": "none"}
    if inspect.isclass(obj):
        return {"kind": "class", "id": _register(obj), "class": _class_facts(obj),
                "is_module": issubclass(obj, nn.Module), "signature": _signature(obj)}
    if isinstance(obj, nn.Module):
        return {"kind": "module", "id": _register(obj), "tree": _describe_tree(obj)}
    if callable(obj) and not isinstance(obj, torch.Tensor):
        code = getattr(getattr(obj, "__func__", obj), "__code__", None)
        return {"kind": "function", "id": _register(obj),
                "name": getattr(obj, "__name__", type(obj).__name__),
                "qualname": getattr(obj, "__qualname__", type(obj).__qualname__),
                "module": getattr(obj, "__module__", None) or "",
                "file": code.co_filename if code is not None else "",
                "signature": _signature(obj)}
    return {"kind": "value", "value": to_data(obj)}


def _user_namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            return shell.user_ns
    except ImportError:
        pass
    return vars(sys.modules["__main__"])


# --- the requests ---------------------------------------------------------------------------

def op_lookup(name: str) -> dict:
    namespace = _user_namespace()
    if name not in namespace:
        return {"kind": "missing"}
    return describe_object(namespace[name])


def op_new(obj: int, args: tuple, kwargs: dict) -> dict:
    return describe_object(_objects[obj](*args, **kwargs))


class _Recorder:
    """The calls of the submodules of ``root`` during one forward (for the judge's hooks):
    ``kinds`` holds "pre" (the order of calls only) and/or "post" (each call's first input
    and output, which the judge's forward hooks read) or "post_shapes" (their shapes only)."""

    def __init__(self, root: nn.Module, kinds: tuple = ("pre", "post")) -> None:
        self.paths = {id(m): p for p, m in root.named_modules()}
        self.kinds = kinds
        self.shapes_only = "post_shapes" in kinds  # the judge's hooks read shapes only
        self.events: list = []
        # each tensor copied once: a layer's output is the next layer's input and its
        # parent's output (a third of the bytes); events hold indices into ``tensors``
        self.tensors: list[torch.Tensor] = []
        self._index: dict[tuple[int, int], int] = {}
        self._alive: list[torch.Tensor] = []  # keeps the ids in _index unique

    def _ref(self, value: Any) -> int | dict | None:
        if type(value) is not torch.Tensor:
            return None
        if self.shapes_only:
            return {"shape": tuple(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        try:
            key = (id(value), value._version)  # an in-place change makes a new version
        except RuntimeError:  # an inference tensor has no version counter
            key = None
        if key is not None and key in self._index:
            return self._index[key]
        self.tensors.append(value.detach().clone())
        if key is not None:
            self._index[key] = len(self.tensors) - 1
            self._alive.append(value)
        return len(self.tensors) - 1

    def pre(self, module: nn.Module, args: tuple) -> None:
        if id(module) in self.paths:
            self.events.append(("pre", self.paths[id(module)], None, len(args)))

    def post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if id(module) in self.paths:
            self.events.append(("post", self.paths[id(module)],
                                self._ref(args[0]) if args else None, len(args),
                                self._ref(output)))

    def __enter__(self) -> _Recorder:
        self._handles = ([register_module_forward_pre_hook(self.pre)] if "pre" in self.kinds
                         else []) + \
            ([register_module_forward_hook(self.post)]
             if "post" in self.kinds or self.shapes_only else [])
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters()) | dict(module.named_buffers())


def _prepare(obj: int, path: str, state: dict, modes: dict,
             inputs: tuple) -> tuple[nn.Module, dict, tuple]:
    """The module at ``path`` with the judge's tensors and modes, its full state and inputs
    (what was sent now, and before for what was not)."""
    full = _sent.setdefault((obj, path, "state"), {})
    full.update(state)
    last = _sent.setdefault((obj, path, "inputs"), {})
    last.update({i: t for i, t in enumerate(inputs) if t is not None})
    inputs = tuple(last[i].clone() for i in range(len(inputs)))  # forward may change them
    module = _objects[obj].get_submodule(path) if path else _objects[obj]
    tensors = _tensors(module)
    with torch.no_grad():
        for name, value in full.items():
            tensors[name].copy_(value)
    for sub_path, m in module.named_modules():
        if sub_path in modes:
            m.training = modes[sub_path]
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0  # deterministic outputs in train mode, as the notebook checker does
    return module, full, inputs


def op_forward(obj: int, path: str, state: dict, modes: dict, inputs: tuple,
               record: tuple = (), watch: tuple | None = None, grad: dict | None = None
               ) -> dict:
    """Load ``state``, run forward on ``inputs``; the output and what happened on the way.
    Without ``grad``, gradients are off; with it (op_vjp's flags), forward runs with them on,
    as in the notebook, and the reply says whether the output needs a gradient."""
    from course_utils.checks._cheating import Watch

    module, state, inputs = _prepare(obj, path, state, modes, inputs)
    if grad is not None:
        inputs, _ = _with_grad_flags(module, inputs, grad["input_grads"], grad["param_flags"])
    before = [t.detach().clone() for t in inputs]
    recorder = _Recorder(module, tuple(record)) if record else None
    watcher = Watch(also_forbid=watch) if watch is not None else None
    try:
        if recorder:
            recorder.__enter__()
        if watcher:
            watcher.__enter__()
        with torch.set_grad_enabled(grad is not None):
            out = module(*inputs)
    finally:
        if watcher:
            watcher.__exit__(None, None, None)
        if recorder:
            recorder.__exit__()
    changed = [None if torch.equal(a, b) else a.detach().clone() for a, b in zip(inputs, before,
                                                                              strict=True)]
    # e.g. BatchNorm's running statistics after a train-mode forward
    updated = {k: t.detach().clone() for k, t in _tensors(module).items()
               if k in state and not torch.equal(t, state[k])}
    requires_grad = type(out) is torch.Tensor and out.requires_grad
    return {"out": to_data(out), "changed": changed, "updated": updated,
            "requires_grad": requires_grad,
            "events": recorder.events if recorder else [],
            "event_tensors": recorder.tensors if recorder else [],
            "forbidden": watcher.forbidden if watcher else []}


def _with_grad_flags(module: nn.Module, inputs: tuple, input_grads: list,
                     param_flags: dict) -> tuple[tuple, list]:
    """Copies of ``inputs`` and the module's parameters with the judge's requires_grad flags;
    (inputs, the parameters that require a gradient)."""
    inputs = tuple(t.detach().clone().requires_grad_(bool(want))
                   for t, want in zip(inputs, input_grads, strict=True))
    params = []
    for name, p in module.named_parameters():
        p.requires_grad_(bool(param_flags.get(name, p.requires_grad)))
        if p.requires_grad:
            params.append(p)
    return inputs, params


def op_vjp(obj: int, path: str, state: dict, modes: dict, inputs: tuple, input_grads: list,
           param_flags: dict, grad_output: torch.Tensor) -> dict:
    """Forward with gradients on, then the gradients of sum(output * grad_output): one per
    input (None where not wanted), then one per parameter that requires a gradient, in
    registration order. (Whether the output needs a gradient at all comes with op_forward.)"""
    module, _, inputs = _prepare(obj, path, state, modes, inputs)
    inputs, params = _with_grad_flags(module, inputs, input_grads, param_flags)
    with torch.enable_grad():
        out = module(*inputs)
        if type(out) is not torch.Tensor or not out.requires_grad:
            return {"requires_grad": False, "grads": None}
        wanted = [t for t in inputs if t.requires_grad] + params
        found = iter(torch.autograd.grad(out, wanted, grad_output, allow_unused=True))
    grads = [next(found) if t.requires_grad else None for t in inputs]
    grads += [next(found) for _ in params]
    return {"requires_grad": True, "grads": [None if g is None else g.detach() for g in grads]}


def op_zeroed(obj: int, path: str, state: dict, modes: dict, inputs: tuple,
              zero: list[str]) -> list:
    """The outputs of forward on ``inputs`` with each tensor in ``zero`` zeroed in turn
    (restored after each; None where forward raised), without gradients."""
    module, _, inputs = _prepare(obj, path, state, modes, inputs)
    tensors = _tensors(module)
    outs = []
    with torch.no_grad():
        for key in zero:
            saved = tensors[key].clone()
            tensors[key].zero_()
            try:
                out = module(*(t.clone() for t in inputs))
            except Exception:  # noqa: BLE001 - as the notebook checker: no output
                out = None
            finally:
                tensors[key].copy_(saved)
            outs.append(to_data(out))
    return outs


def _after(value: Any) -> Any:
    """What the judge needs to mirror a call's side effects on one argument."""
    if isinstance(value, nn.Module):
        return {KIND: "module_state",
                "state": {k: v.detach().clone() for k, v in value.state_dict().items()},
                "grads": {k: None if p.grad is None else p.grad.detach().clone()
                          for k, p in value.named_parameters()},
                "requires_grad": {k: p.requires_grad for k, p in value.named_parameters()},
                "training": value.training}
    if isinstance(value, torch.Tensor | list | dict):
        return to_data(value)
    return None


def op_call(obj: int, args: tuple, kwargs: dict, watch: tuple | None = None,
            grads: dict | None = None) -> dict:
    from course_utils.checks._cheating import Watch

    for index, by_name in (grads or {}).items():
        for name, p in args[index].named_parameters():
            if name in by_name:
                p.grad = by_name[name]

    watcher = Watch(also_forbid=watch) if watch is not None else None
    if watcher:
        with watcher:
            value = _objects[obj](*args, **kwargs)
    else:
        value = _objects[obj](*args, **kwargs)
    return {"value": to_data(value),
            "args": [_after(a) for a in args], "kwargs": {k: _after(v) for k, v in kwargs.items()},
            "forbidden": watcher.forbidden if watcher else []}


OPS = {"lookup": op_lookup, "new": op_new, "forward": op_forward, "vjp": op_vjp,
       "zeroed": op_zeroed, "call": op_call}


def answer(request: dict) -> dict:
    """One request -> one reply; an exception in student code is part of the reply."""
    try:
        return {"ok": True, "value": OPS[request["op"]](**request["args"])}
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: the kernel must keep answering
        return {"ok": False, "error": error_info(exc)}


FRAME_HEADER = 8  # bytes of big-endian length before each message on the judge's socket


def send_frame(sock: Any, data: bytes) -> None:
    sock.sendall(len(data).to_bytes(FRAME_HEADER, "big") + data)


def serve(path: str, token: str) -> str:
    """The judge's session, the entry point it executes in the kernel: connect to its Unix
    socket at ``path``, send ``token``, then answer requests (torch.save bytes, one frame
    each) until the judge closes the socket. One Jupyter request per graded cell, not one
    per question: no JSON, base64 or HMAC around each tensor."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        send_frame(sock, token.encode("ascii"))
        while True:
            try:
                request = receive(sock, int.from_bytes(receive(sock, FRAME_HEADER), "big"))
            except EOFError:
                return "closed"  # the judge ended the session
            payload = torch.load(io.BytesIO(request), weights_only=False)
            buffer = io.BytesIO()
            torch.save(answer(payload), buffer)
            send_frame(sock, buffer.getvalue())


def receive(sock: Any, size: int, deadline: float | None = None) -> bytes:
    """Exactly ``size`` bytes; EOFError when the other side closed the socket first,
    TimeoutError past ``deadline`` (time.monotonic; None waits)."""
    import time

    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError("the connection was closed")
        got += n
    return bytes(data)
