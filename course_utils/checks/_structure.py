"""Behavioural structure tests for whole networks: conv layers, skip connections, blocks.

Skip connections are found by behaviour, not by names: zero one conv layer's weights (eval
mode) and see whether the output still depends on the input. In a plain stack every conv
layer is a bottleneck every signal must pass through, so zeroing any of them makes the
output the same for every image; a skip connection around a layer keeps the dependence.
A *residual block* is a submodule inside which every conv layer can be bypassed that way
(and none of whose own submodules already is one) — e.g. a BasicBlock, with or without a
projection shortcut, but not a stage holding several blocks or a conv-BN-ReLU unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules import module as module_mod
from torch.nn.modules.module import register_module_forward_hook

from . import _tensors
from ._calls import call, call_str, describe, fail, instance_of, shape_str
from ._cheating import ACTIVE_WATCHES, Watch


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def run_classifier(model: nn.Module, x: Tensor, num_classes: int | None, what: str,
                   name: str) -> Tensor:
    """Forward (no torchvision model code allowed); output must be one plain tensor, of shape
    (batch, num_classes) unless ``num_classes`` is None (the caller checks it)."""
    with Watch() as watch:
        out = call(what, model, x)
    watch.reject(name)
    if type(out) is not Tensor:
        kind = (f"a {type(out).__qualname__} (a subclass of torch.Tensor)"
                if isinstance(out, Tensor) else describe(out))
        fail(f"{what} returned {kind}; forward must return one plain tensor of logits.")
    expected = (tuple(x.shape)[0], num_classes)
    if num_classes is not None and tuple(out.shape) != expected:
        fail(f"{what} returned shape {shape_str(tuple(out.shape))}; expected {shape_str(expected)}"
             f" (batch, num_classes): one logit per class for each image.")
    if _tensors.max_abs(out) == float("inf"):
        fail(f"{what} returned NaN or infinite logits.")
    return out


def _depends_on_input(out: object) -> bool:
    """Do the batch's two samples (different images) give different outputs?"""
    if type(out) is not Tensor or tuple(out.shape)[0] < 2:
        return True
    scale = _tensors.max_abs(out)
    return _tensors.max_abs_diff(torch.select(out, 0, 0), torch.select(out, 0, 1)) > 1e-6 * max(1.0, scale)


def _run_zeroed(module: nn.Module, conv: nn.Conv2d, x: Tensor) -> object:
    saved = torch.clone(conv.weight)
    with torch.no_grad():
        conv.weight.zero_()
        try:
            return module(torch.clone(x))
        except Exception:
            return None
        finally:
            conv.weight.copy_(saved)


def _zeroed_outputs(module: nn.Module, convs: list[nn.Conv2d], x: Tensor) -> list[object]:
    """``module(x)`` with each of ``convs`` zeroed in turn (None where forward raised).

    A module whose forward runs in the student's kernel (a grading mirror) does them all in
    one request (``zeroed_outputs``)."""
    batched = getattr(module, "zeroed_outputs", None)
    if (batched is not None and getattr(module, "_course_handle", None) is not None
            and not ACTIVE_WATCHES and not module_mod._global_forward_hooks
            and not module_mod._global_forward_pre_hooks):  # (hooks see module calls)
        names = {id(m): name for name, m in module.named_modules()}
        return batched([names[id(c)] for c in convs], x)
    return [_run_zeroed(module, c, x) for c in convs]


def bypassed_conv(model: nn.Module, x: Tensor) -> str | None:
    """The first conv layer the output does not need (a skip connection around it), or None."""
    model.eval()
    for name, conv in conv_layers(model):
        if _depends_on_input(_run_zeroed(model, conv, x)):
            return name
    return None


@dataclass
class Block:
    name: str
    module: nn.Module
    x: Tensor            # its input in a forward pass of the whole model
    out_shape: tuple[int, ...]


def run_hooked(model: nn.Module, x: Tensor, hook, shapes_only: bool = False) -> None:
    """Run ``model(x)`` without gradients, calling ``hook`` after every module's forward.

    A crash only ends the run early: what the hook saw up to there is what the caller reads,
    and the checks report crashes themselves, with their own message. ``shapes_only``: the
    hook gets each tensor as a meta tensor (shape and dtype, no values), so a module whose
    forward runs in the student's kernel (a grading mirror) sends shapes, not activations.
    """
    if shapes_only:
        full = hook

        def hook(module: nn.Module, args: tuple, output: object) -> None:
            full(module, tuple(_meta(a) for a in args), _meta(output))

        hook._course_shapes_only = True
    handle = register_module_forward_hook(hook)
    try:
        with torch.no_grad():
            model(torch.clone(x))
    except Exception:  # see the docstring
        pass
    finally:
        handle.remove()


def _meta(value: object) -> object:
    return value.to("meta") if type(value) is Tensor else value


def _inputs(model: nn.Module, x: Tensor) -> dict[int, tuple[Tensor, tuple[int, ...]]]:
    seen: dict[int, tuple[Tensor, tuple[int, ...]]] = {}

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        if (id(module) not in seen and len(args) == 1 and type(args[0]) is Tensor
                and type(output) is Tensor):
            seen[id(module)] = (torch.clone(args[0]), tuple(output.shape))

    run_hooked(model, x, hook)
    return seen


def residual_blocks(model: nn.Module, x: Tensor) -> list[Block]:
    """The smallest submodules with a skip connection around each of their conv layers."""
    model.eval()
    inputs = _inputs(model, x)
    blocks: list[Block] = []
    has_block: set[int] = set()   # ids of modules that are or contain a block

    def visit(name: str, module: nn.Module) -> None:
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)
        if any(id(c) in has_block for c in module.children()):
            has_block.add(id(module))
            return
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        if not convs or isinstance(module, nn.Conv2d) or id(module) not in inputs:
            return
        block_x, out_shape = inputs[id(module)]
        if all(_depends_on_input(out) for out in _zeroed_outputs(module, convs, block_x)):
            blocks.append(Block(name or "(the model itself)", module, block_x, out_shape))
            has_block.add(id(module))

    visit("", model)
    return blocks


def unused_parameters(model: nn.Module, x: Tensor) -> list[str]:
    """Names of parameters that get no gradient from the output (defined but never used)."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        return []
    model.eval()
    with torch.enable_grad():
        out = model(torch.clone(x))
        if type(out) is not Tensor or not out.requires_grad:
            return [name for name, _ in params]
        grads = torch.autograd.grad(torch.sum(out), [p for _, p in params], allow_unused=True)
    return [name for (name, _), g in zip(params, grads, strict=True) if g is None]


def check_all_used(model: nn.Module, x: Tensor, what: str) -> None:
    unused = unused_parameters(model, x)
    if unused:
        shown = ", ".join(f"`{u}`" for u in unused[:4]) + (" ..." if len(unused) > 4 else "")
        fail(f"{what}: these parameters get no gradient, so they never learn: {shown}. A layer "
             "is created in __init__ but not used in forward (or its output is detached).")


def build(cls: type, name: str, *args: object, hint: str = "", **kwargs: object) -> nn.Module:
    ctor = call_str(name, *args, **kwargs)
    def hint_fn(exc: BaseException) -> str:
        return hint if isinstance(exc, TypeError) else ""

    model = call(ctor, cls, *args, hint=hint_fn, **kwargs)
    instance_of(model, ctor)
    return model
