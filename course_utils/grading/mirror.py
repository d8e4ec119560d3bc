"""The judge's view of a student's objects that live in another process (the kernel).

A check receives what the student handed in and uses it as the notebook would: it calls a
class to build a module, reads the module's layers, copies weights into them, runs forward,
takes gradients, calls functions. When grading, the student's objects live in the kernel,
which the judge never trusts, so here they are *mirrors*:

- :class:`RemoteClass` (a real ``nn.Module`` subclass, so ``issubclass`` and the checks'
  class tests work) builds the module in the kernel and returns a mirror of it;
- a mirror module is an ``nn.Module`` tree rebuilt from data: the same submodule names, the
  standard layers as real ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ... with parameters of the
  reported shapes. Its ``forward`` is a request: "load the mirror's current tensors into your
  module, run forward on this input in this mode, send back the output". Gradients go through
  an autograd function whose backward is a request too;
- :class:`RemoteFunction` calls a student function in the kernel with the judge's arguments
  and mirrors its side effects on them (a model's weights and gradients, a list's items).

Every answer is read with ``torch.load(..., weights_only=True)``. Whatever the kernel has
been made to do, a check passes only if the answers equal what the judge computes itself for
weights and inputs the kernel has never seen.
"""

from __future__ import annotations

import builtins
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as module_mod

from course_utils.checks._cheating import ACTIVE_WATCHES, _restore_profiler

from .oracle import KIND, STANDARD

Channel = Callable[[str, dict], Any]  # (op, args) -> value; raises RemoteError


class RemoteError(Exception):
    """An exception raised by student code in the kernel, as the kernel described it."""

    def __init__(self, info: dict) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


_REMOTE_ERRORS: dict[str, type] = {}


def remote_error(info: dict) -> RemoteError:
    """A RemoteError that is also an instance of the student's builtin exception type, so
    the checks' ``isinstance(exc, TypeError)`` hints work as in the notebook."""
    builtin = getattr(builtins, str(info.get("base", "Exception")), Exception)
    if not (isinstance(builtin, type) and issubclass(builtin, Exception)):
        builtin = Exception
    cls = _REMOTE_ERRORS.get(builtin.__name__)
    if cls is None:
        cls = type(f"Remote{builtin.__name__}", (RemoteError, builtin), {
            "__init__": RemoteError.__init__,
            "__str__": lambda self: str(self.info.get("message", ""))})
        _REMOTE_ERRORS[builtin.__name__] = cls
    return cls(info)


class _Handle:
    """Where a mirror's original lives: the channel, the kernel's object id and the path of
    this submodule inside it. Shared, not copied, by ``copy.deepcopy``.

    ``sent`` (shared by every handle of one kernel) holds a copy of the tensors and inputs
    last sent for each (object, path): a request carries only those that changed since, and
    the kernel keeps the rest (``oracle._prepare``). A check zeroing one conv layer at a time
    sends that layer, not the network and the input again.
    """

    def __init__(self, channel: Channel, obj: int, path: str, sent: dict) -> None:
        self.channel, self.obj, self.path, self.sent = channel, obj, path, sent

    def __deepcopy__(self, memo: dict) -> _Handle:
        return self

    def send(self, op: str, request: dict) -> Any:
        """``channel(op, request)``, where ``request``'s state and inputs carry only the
        tensors that differ from the ones last sent for this object and path (an input the
        kernel already holds goes as None)."""
        # Only the judge's own code runs here (no student code: that runs in the kernel), so
        # a Watch's profiler, which would see every call of the pickling, is paused: 8 % of
        # judging lesson 03.
        previous = sys.getprofile()
        sys.setprofile(None)
        try:
            inputs = self._changed("inputs", dict(enumerate(request["inputs"])))
            return self.channel(op, dict(
                request, state=self._changed("state", request["state"]),
                inputs=tuple(inputs.get(i) for i in range(len(request["inputs"])))))
        finally:
            _restore_profiler(previous)

    def _changed(self, kind: str, tensors: dict) -> dict:
        last = self.sent.setdefault((self.obj, self.path, kind), {})
        changed = {}
        for key, value in tensors.items():
            old = last.get(key)
            if (old is None or old.shape != value.shape or old.dtype != value.dtype
                    or not torch.equal(old, value)):
                changed[key] = value
                last[key] = value.detach().clone()
        return changed


class Names:
    """What the kernel said about a class: its name, its MRO's names, its methods' origins."""

    def __init__(self, facts: dict) -> None:
        self.name = facts["name"]
        self.qualname = facts["qualname"]
        self.module = facts["module"]
        self.mro = [tuple(pair) for pair in facts["mro"]]
        self.members = [tuple(m) for m in facts["members"]]


# --- values coming back ---------------------------------------------------------------------

class Opaque:
    """An object the kernel could only describe (e.g. a custom class instance)."""

    def __init__(self, type_name: str, text: str, module: bool = False) -> None:
        self.type_name, self.text, self.is_module = type_name, text, module

    def __repr__(self) -> str:
        return self.text


def _figure(data: dict) -> Any:
    import matplotlib.pyplot as plt

    fig = plt.figure()
    for spec in data["axes"]:
        ax = fig.add_subplot(len(data["axes"]), 1, len(fig.axes) + 1)
        for line in spec["lines"]:
            ax.plot(line["x"], line["y"], label=line["label"])
        ax.set_title(spec["title"])
        ax.set_xlabel(spec["xlabel"])
        ax.set_ylabel(spec["ylabel"])
        if spec["legend"] is not None:
            ax.legend(spec["legend"])
    if data["suptitle"]:
        fig.suptitle(data["suptitle"])
    for labels in data.get("legends", []):  # fig.legend(...): a legend for the whole figure
        fig.legend(labels)
    return fig


class _StudentTensor(torch.Tensor):
    """Stands for a tensor subclass the student's code returned."""


def from_data(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get(KIND)
        if kind == "figure":
            return _figure(value)
        if kind == "object":
            return Opaque(value["type"], value["repr"], bool(value.get("module")))
        if kind == "tensor_subclass":
            cls = type(value["type"].rsplit(".", 1)[-1], (_StudentTensor,), {})
            return value["tensor"].as_subclass(cls)
        return {k: from_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(from_data(v) for v in value)
    return value


# --- mirror modules ---------------------------------------------------------------------------

class _Mirror:
    """Mixin: forward (and backward) happen in the kernel, on the mirror's current tensors."""

    _course_handle: _Handle

    def forward(self, *inputs: Any) -> Any:
        if not all(isinstance(t, torch.Tensor) for t in inputs):
            raise TypeError("the grader passes tensors only")
        handle = self._course_handle
        where = self._where()
        # which of the judge's global hooks the kernel must report calls for; only forward
        # hooks read tensors (pre hooks watch the call order), so only they cost a copy
        hooks = list(module_mod._global_forward_hooks.values())
        shapes = hooks and all(getattr(h, "_course_shapes_only", False) for h in hooks)
        record = (("pre",) if module_mod._global_forward_pre_hooks else ()) + \
            (("post_shapes",) if shapes else ("post",) if hooks else ())
        watches = list(ACTIVE_WATCHES)
        watch = tuple(sorted({f for w in watches for f in w.also})) if watches else None
        params = [(k, p) for k, p in self.named_parameters() if p.requires_grad]
        grad = None
        if torch.is_grad_enabled() and (params or any(t.requires_grad for t in inputs)):
            grad = {"input_grads": [t.requires_grad for t in inputs],
                    "param_flags": {k: p.requires_grad for k, p in self.named_parameters()}}
        reply = handle.send("forward", dict(
            where, inputs=tuple(t.detach() for t in inputs), record=record, watch=watch,
            grad=grad))
        for w in watches:
            w.forbidden.extend(reply["forbidden"])
        with torch.no_grad():
            for mine, theirs in zip(inputs, reply["changed"], strict=True):
                if theirs is not None:
                    mine.copy_(theirs)  # the student's forward changed its input in place
            tensors = _tensors(self)
            for key, value in reply["updated"].items():
                if key in tensors and tensors[key].shape == value.shape:
                    tensors[key].copy_(value)  # e.g. BatchNorm's running statistics
        if reply["events"]:
            _replay(self, reply["events"], reply["event_tensors"])
        out = from_data(reply["out"])
        if type(out) is not torch.Tensor or grad is None or not reply["requires_grad"]:
            return out  # (no gradient wanted, or the student's forward detached its output)
        request = dict(where, inputs=tuple(t.detach() for t in inputs), **grad)
        return _RemoteFunction.apply((handle, request, out), *inputs, *[p for _, p in params])


    def _where(self) -> dict:
        """What every request about this module carries: where it lives in the kernel, its
        tensors (as views: ``_Handle.send`` keeps the changed ones) and its modes."""
        handle = self._course_handle
        return {"obj": handle.obj, "path": handle.path,
                "state": {k: v.detach() for k, v in _tensors(self).items()},
                "modes": {path: m.training for path, m in self.named_modules()}}

    def zeroed_outputs(self, convs: list[str], x: torch.Tensor) -> list[Any]:
        """The outputs on ``x`` with the weight of each conv in ``convs`` (submodule names)
        zeroed in turn, without gradients, from one request (the checks' skip-connection
        test asks this for every conv of every block)."""
        handle = self._course_handle
        reply = handle.send("zeroed", dict(
            self._where(), inputs=(x.detach(),),
            zero=[f"{c}.weight" if c else "weight" for c in convs]))
        return [from_data(out) for out in reply]


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters()) | dict(module.named_buffers())


class _RemoteFunction(torch.autograd.Function):
    """out = student_forward(inputs, params); backward asks the kernel for the gradients."""

    @staticmethod
    def forward(ctx, spec, *tensors):  # noqa: ANN001, ANN205
        ctx.spec = spec
        return spec[2].clone()

    @staticmethod
    def backward(ctx, grad_output):  # noqa: ANN001, ANN205
        handle, request, _ = ctx.spec
        reply = handle.send("vjp", dict(request, grad_output=grad_output.detach()))
        grads = [None if g is None else g for g in (reply["grads"] or [])]
        return (None, *grads)




def _replay(root: nn.Module, events: list, tensors: list) -> None:
    """Call the judge's global module hooks for the calls the kernel recorded inside forward
    (an event names its input and output by their index in ``tensors``)."""
    modules = dict(root.named_modules())
    for event in events:
        kind, path = event[0], event[1]
        module = modules.get(path)
        if module is None or path == "":
            continue
        if kind == "pre":
            for hook in list(module_mod._global_forward_pre_hooks.values()):
                hook(module, ())
        else:
            args = (_event_tensor(event[2], tensors),) if event[2] is not None else ()
            for hook in list(module_mod._global_forward_hooks.values()):
                hook(module, args, _event_tensor(event[4], tensors))


_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
    torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.bool)}


def _event_tensor(ref: Any, tensors: list) -> torch.Tensor | None:
    """A recorded tensor: an index into ``tensors``, or a shape and dtype (a meta tensor)."""
    if ref is None:
        return None
    if isinstance(ref, dict):
        return torch.empty(tuple(int(n) for n in ref["shape"]),
                           dtype=_DTYPES[ref["dtype"]], device="meta")
    return tensors[ref]


class _Factory:
    """Builds mirror classes (one per reported class) and mirror trees for one kernel."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.classes: dict[tuple, type] = {}
        self.sent: dict[tuple[int, str], dict[str, torch.Tensor]] = {}

    def mirror_class(self, facts: dict, standard: str | None) -> type:
        key = (facts["module"], facts["qualname"], standard)
        cls = self.classes.get(key)
        if cls is None:
            base = STANDARD[standard] if standard else nn.Module
            cls = type(facts["name"], (_Mirror, base), {
                "__module__": facts["module"], "__qualname__": facts["qualname"],
                "__course_names__": Names(facts)})
            self.classes[key] = cls
        return cls

    def module(self, obj: int, tree: list[dict], root_class: type | None = None) -> nn.Module:
        built: dict[str, nn.Module] = {}
        for entry in tree:
            cls = (root_class if entry["path"] == "" and root_class is not None
                   else self.mirror_class(entry["class"], entry["standard"]))
            m = cls.__new__(cls)
            nn.Module.__init__(m)
            for key, value in entry["attrs"].items():
                if key != "training":
                    object.__setattr__(m, key, value)
            m.training = entry["attrs"].get("training", True)
            for name, value, requires_grad in entry["params"]:
                m.register_parameter(name, None if value is None else nn.Parameter(
                    value, requires_grad=requires_grad and value.is_floating_point()))
            for name, value in entry["buffers"]:
                m.register_buffer(name, value)
            m._course_handle = _Handle(self.channel, obj, entry["path"], self.sent)
            built[entry["path"]] = m
        for entry in tree:
            parent = built[entry["path"]]
            for child in entry["children"]:
                path = f"{entry['path']}.{child}" if entry["path"] else child
                if path in built:
                    parent._modules[child] = built[path]
        return built[""]

    def value(self, reply: dict, name: str = "") -> Any:
        """The judge's stand-in for what a global (or a constructor) gave."""
        kind = reply["kind"]
        if kind in ("missing", "none"):
            return None
        if kind == "class":
            return self.remote_class(reply)
        if kind == "module":
            return self.module(reply["id"], reply["tree"])
        if kind == "function":
            return RemoteFunction(self.channel, reply)
        return from_data(reply["value"])

    def remote_class(self, reply: dict) -> type:
        facts, channel, factory = reply["class"], self.channel, self

        def construct(cls: type, *args: Any, **kwargs: Any) -> Any:
            answer = channel("new", {"obj": reply["id"], "args": args, "kwargs": kwargs})
            if answer["kind"] == "module":
                root = cls if answer["tree"][0]["class"]["qualname"] == facts["qualname"] \
                    else None
                return factory.module(answer["id"], answer["tree"], root)
            return factory.value(answer)

        base = nn.Module if reply["is_module"] else object
        meta = type("RemoteClassMeta", (type,), {"__call__": construct})
        cls = meta(facts["name"], (_Mirror, base) if reply["is_module"] else (base,), {
            "__module__": facts["module"], "__qualname__": facts["qualname"],
            "__course_names__": Names(facts),
            "__signature__": _signature(reply.get("signature"))})
        return cls


def _signature(params: list | None) -> inspect.Signature | None:
    if params is None:
        return None
    try:
        return inspect.Signature([
            inspect.Parameter(name, inspect._ParameterKind(kind),
                              default=None if has_default else inspect.Parameter.empty)
            for name, kind, has_default in params])
    except (TypeError, ValueError):
        return None


class RemoteFunction:
    """A student's function living in the kernel; calls mirror their effects on arguments."""

    def __init__(self, channel: Channel, reply: dict) -> None:
        self._channel, self._id = channel, reply["id"]
        self.__name__ = reply["name"]
        self.__qualname__ = reply["qualname"]
        self.__module__ = reply["module"]
        self.__course_file__ = reply["file"]
        self.__signature__ = _signature(reply["signature"])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        watches = list(ACTIVE_WATCHES)
        watch = tuple(sorted({f for w in watches for f in w.also})) if watches else None
        reply = self._channel("call", {
            "obj": self._id, "args": args, "kwargs": kwargs, "watch": watch,
            # pickling a module drops .grad: the stale gradients a check sets must arrive too
            "grads": {i: _grads(a) for i, a in enumerate(args) if isinstance(a, nn.Module)}})
        for w in watches:
            w.forbidden.extend(reply["forbidden"])
        for mine, after in zip(args, reply["args"], strict=True):
            _apply_after(mine, after)
        for key, after in reply["kwargs"].items():
            _apply_after(kwargs[key], after)
        return from_data(reply["value"])

    def __repr__(self) -> str:
        return f"<function {self.__qualname__}>"


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad for k, p in module.named_parameters() if p.grad is not None}


def _apply_after(mine: Any, after: Any) -> None:
    """Give the judge's argument the changes the student's function made to its copy."""
    if after is None:
        return
    if isinstance(mine, nn.Module) and isinstance(after, dict):
        with torch.no_grad():
            tensors = mine.state_dict(keep_vars=True)
            for key, value in after["state"].items():
                if key in tensors and tensors[key].shape == value.shape:
                    tensors[key].copy_(value)
        for key, p in mine.named_parameters():
            grad = after["grads"].get(key)
            p.grad = None if grad is None else grad.clone()
            p.requires_grad_(bool(after["requires_grad"].get(key, p.requires_grad)))
        mine.train(after["training"])
    elif isinstance(mine, torch.Tensor) and isinstance(after, torch.Tensor):
        if mine.shape == after.shape and not torch.equal(mine, after):
            with torch.no_grad():
                mine.copy_(after)  # (an unchanged expanded view cannot be written to)
    elif isinstance(mine, list) and isinstance(after, list):
        mine[:] = from_data(after)
    elif isinstance(mine, dict) and isinstance(after, dict):
        mine.clear()
        mine.update(from_data(after))


def names_of(klass: Any) -> Names | None:
    """What the kernel reported about a mirrored class (None for a local class)."""
    return getattr(klass, "__course_names__", None) if isinstance(klass, type) else None


def factory(channel: Channel) -> _Factory:
    return _Factory(channel)
