"""Exercise 1 (lesson 03, skip connections): PlainCNN, CifarResNet, first_layer_grad_norm."""

from __future__ import annotations

import copy
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from . import _tensors
from ._calls import call, expect_class, expect_function, fail
from ._cheating import reject_reference
from ._registry import grading, register
from ._structure import (
    build,
    bypassed_conv,
    check_all_used,
    conv_layers,
    residual_blocks,
    run_classifier,
)

PLAIN = "class PlainCNN(nn.Module) with __init__(self, depth=6), 3×32×32 images → 10 logits"
RESNET = "class CifarResNet(nn.Module) with __init__(self, num_blocks=6), 3×32×32 → 10 logits"
GRAD = "def first_layer_grad_norm(model, images, labels) -> float"


def _images(batch: int = 2, seed: int = 0):
    return torch.randn((batch, 3, 32, 32), generator=_tensors.generator(seed))


@register("ex1_plain_cnn", "PlainCNN(depth=6)")
def check_plain_cnn(obj: object) -> str:
    expect_class(obj, "PlainCNN", PLAIN)
    reject_reference(obj, "PlainCNN")
    x = _images()
    for depth in (6, 20):
        model = build(obj, "PlainCNN", depth=depth, hint=f"Expected: {PLAIN}.")
        reject_reference(model, "PlainCNN")
        what = f"PlainCNN(depth={depth})(x) with x of shape (2, 3, 32, 32)"
        convs = conv_layers(model)
        if len(convs) != depth:
            fail(f"PlainCNN(depth={depth}) has {len(convs)} nn.Conv2d layers; `depth` is the "
                 f"number of conv layers, so it should have {depth}.")
        run_classifier(model, x, 10, what, "PlainCNN")
        if depth == 6:
            skipped = bypassed_conv(model, x)
            if skipped is not None:
                fail(f"PlainCNN(depth=6) has a skip connection: with conv layer `{skipped}` "
                     "zeroed, its output still depends on the input, so something goes around "
                     "that layer. The plain network is the baseline without skip connections: "
                     "every layer must feed only the next one.")
            check_all_used(model, x, what)
    default = build(obj, "PlainCNN", hint=f"Expected: {PLAIN}.")
    if len(conv_layers(default)) != 6:
        fail(f"PlainCNN() has {len(conv_layers(default))} conv layers; the default depth is 6.")
    if grading():
        _hidden_plain(obj, default)
    return ("✓ PlainCNN: 3×32×32 → 10 logits, `depth` conv layers (checked 6, 20 and the "
            "default), no skip connection.")


def _hidden_plain(obj: object, default: nn.Module) -> None:
    """Grading only: very shallow and odd depths, and BatchNorm after the convolutions."""
    x = _images(3, seed=1)
    for depth in (1, 2, 9):
        model = build(obj, "PlainCNN", depth=depth, hint=f"Expected: {PLAIN}.")
        convs = conv_layers(model)
        if len(convs) != depth:
            fail(f"PlainCNN(depth={depth}) has {len(convs)} nn.Conv2d layers; `depth` is the "
                 f"number of conv layers (the 3→16 conv counts), so it should have {depth}.")
        run_classifier(model, x, 10, f"PlainCNN(depth={depth})(x) with x of shape (3, 3, 32, 32)",
                       "PlainCNN")
    if not any(isinstance(m, nn.BatchNorm2d) for m in default.modules()):
        fail("PlainCNN() has no nn.BatchNorm2d: every layer is a 3×3 conv → BatchNorm → ReLU, "
             "as in the ResNet it is compared with (otherwise the comparison measures "
             "BatchNorm, not skip connections).")


@register("ex1_cifar_resnet", "CifarResNet(num_blocks=6)")
def check_cifar_resnet(obj: object) -> str:
    expect_class(obj, "CifarResNet", RESNET)
    reject_reference(obj, "CifarResNet")
    x = _images()
    for num_blocks in (6, 12, None):
        kwargs = {} if num_blocks is None else {"num_blocks": num_blocks}
        expected = 6 if num_blocks is None else num_blocks
        model = build(obj, "CifarResNet", hint=f"Expected: {RESNET}.", **kwargs)
        reject_reference(model, "CifarResNet")
        ctor = "CifarResNet()" if num_blocks is None else f"CifarResNet(num_blocks={num_blocks})"
        what = f"{ctor}(x) with x of shape (2, 3, 32, 32)"
        run_classifier(model, x, 10, what, "CifarResNet")
        blocks = residual_blocks(model, x)
        if len(blocks) != expected:
            found = ", ".join(f"`{b.name}`" for b in blocks[:8]) or "none"
            extra = ""
            if blocks and len(blocks) % expected == 0:
                extra = (" (`num_blocks` is the total number of blocks, not the number per "
                         "stage)")
            elif not blocks:
                extra = (" Each residual block must be its own nn.Module (e.g. your "
                         "BasicBlock) whose forward adds its input (or its projection) to "
                         "the output of its convolutions.")
            fail(f"{ctor} has {len(blocks)} residual blocks ({found}); expected {expected}."
                 f"{extra}")
        if num_blocks == 6:
            check_all_used(model, x, what)
    if grading():
        _hidden_resnet(obj)
    return ("✓ CifarResNet: 3×32×32 → 10 logits with `num_blocks` residual blocks (checked 6, "
            "12 and the default).")


def _hidden_resnet(obj: object) -> None:
    """Grading only: 1, 3 and 9 blocks, each with 2·num_blocks + 1 3×3 convs (its plain twin)."""
    x = _images(2, seed=1)
    for num_blocks in (1, 3, 9):
        ctor = f"CifarResNet(num_blocks={num_blocks})"
        model = build(obj, "CifarResNet", num_blocks=num_blocks, hint=f"Expected: {RESNET}.")
        run_classifier(model, x, 10, f"{ctor}(x) with x of shape (2, 3, 32, 32)", "CifarResNet")
        blocks = residual_blocks(model, x)
        if len(blocks) != num_blocks:
            fail(f"{ctor} has {len(blocks)} residual blocks; expected {num_blocks} "
                 "(`num_blocks` is the total number of blocks over the three stages).")
        convs = [name for name, m in conv_layers(model) if tuple(m.kernel_size) == (3, 3)]
        if len(convs) != 2 * num_blocks + 1:
            fail(f"{ctor} has {len(convs)} 3×3 conv layers; expected 2·{num_blocks} + 1 = "
                 f"{2 * num_blocks + 1}: the 3→16 stem conv plus two per block, so that its "
                 f"plain twin is PlainCNN(depth={2 * num_blocks + 1}).")


# --- first_layer_grad_norm ---------------------------------------------------------------------


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.features(x))


class _Residual(nn.Module):
    """The classifier is registered before the stem: the first *conv* is `stem.0`."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(8, 10)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.conv_b(self.conv_a(x).relu())
        return self.classifier(x.mean((2, 3)))


class _Sequential(nn.Sequential):
    """Grading only: an nn.Sequential whose first module is not the conv (index 1 is)."""

    def __init__(self) -> None:
        super().__init__(nn.Identity(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def _grads(model: nn.Module, images, labels, reduction: str = "mean") -> dict[str, object]:
    """{parameter name: gradient} after one backward of cross-entropy (mean, or sum)."""
    params = dict(model.named_parameters())
    with torch.enable_grad():
        loss = F.cross_entropy(model(images), labels, reduction=reduction)
        grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, grads, strict=True))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(abs(b), 1e-8)


def _one_case(fn: object, make: type, seed: int, stale: bool) -> str | None:
    torch_model = make()
    g = _tensors.generator(seed)
    with torch.no_grad():
        for p in torch_model.parameters():
            p.copy_(torch.mul(torch.randn(tuple(p.shape), generator=g), 0.2))
    images = torch.randn((8, 3, 16, 16), generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    torch_model.train()
    first = next(name for name, m in torch_model.named_modules() if isinstance(m, nn.Conv2d))
    first_w = f"{first}.weight"
    reference = copy.deepcopy(torch_model)
    grads = _grads(reference, images, labels)
    expected = _tensors.norm(grads[first_w])

    model = copy.deepcopy(torch_model)
    stale_grads = {}
    if stale:
        for name, p in model.named_parameters():
            p.grad = torch.randn(tuple(p.shape), generator=g)
            stale_grads[name] = torch.clone(p.grad)
    before = {k: torch.clone(v) for k, v in model.state_dict().items()}
    images_in, labels_in = torch.clone(images), torch.clone(labels)
    what = (f"first_layer_grad_norm(model, images, labels) with images of shape (8, 3, 16, 16) "
            f"and a model whose first conv layer is `{first}`")
    hint = ("Hint: the function must work for any model: find the first conv layer with "
            "`next(m for m in model.modules() if isinstance(m, nn.Conv2d))`.")
    value = call(what, fn, model, images_in, labels_in,
                 hint=lambda e: hint if isinstance(e, AttributeError | TypeError | KeyError |
                                                   IndexError | StopIteration) else "")
    if isinstance(value, torch.Tensor):
        fail(f"{what} returned a tensor; return a Python float (e.g. `grad.norm().item()`).")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        fail(f"{what} returned {value!r}; expected a float, the L2 norm of the gradient.")
    value = float(value)
    changed = [k for k, v in model.state_dict().items()
               if k in before and _tensors.max_abs_diff(v, before[k]) != 0.0
               and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    if changed:
        return (f"{what} changed the model's weights (`{changed[0]}`): it should only compute the"
                " gradient, not take an optimizer step.")
    if _close(value, expected):
        return None
    # Known wrong answers, most specific first.
    candidates = []
    if stale:
        summed = torch.add(grads[first_w], stale_grads[first_w])
        candidates.append((_tensors.norm(summed), "it includes gradients left over from earlier "
                           "backward passes: call model.zero_grad() before loss.backward() (the "
                           ".grad fields accumulate)"))
    candidates.append((expected ** 2, "it is the squared norm; take the square root "
                       "(grad.norm())"))
    candidates.append((_tensors.norm(_grads(copy.deepcopy(torch_model), images, labels, "sum")[first_w]),
                       "it uses the summed loss; use the mean cross-entropy "
                       "(F.cross_entropy's default)"))
    candidates.append((_tensors.norm(torch_model.state_dict()[first_w]),
                       "it is the norm of the weight itself, not of its gradient"))
    eval_model = copy.deepcopy(torch_model).eval()
    candidates.append((_tensors.norm(_grads(eval_model, images, labels)[first_w]),
                       "it was computed in eval mode; leave the model's mode as it is"))
    for name, grad in grads.items():
        if name != first_w:
            candidates.append((_tensors.norm(grad), f"it is the gradient norm of `{name}`, not of "
                               f"the first conv layer's weight `{first_w}`"))
    for candidate, reason in candidates:
        if _close(value, candidate):
            return f"{what} returned {value:.6g}; expected {expected:.6g}: {reason}."
    return (f"{what} returned {value:.6g}; expected {expected:.6g}, the L2 norm of "
            f"`{first_w}.grad` after one backward of the mean cross-entropy loss.")


@register("ex1_grad_norm", "first_layer_grad_norm(model, images, labels) -> float")
def check_grad_norm(obj: object) -> str:
    expect_function(obj, "first_layer_grad_norm", GRAD)
    cases = [(_Plain, False), (_Residual, False), (_Plain, True), (_Residual, True)]
    if grading():
        cases += [(_Sequential, False), (_Sequential, True)]
    for seed, (make, stale) in enumerate(cases):
        problem = _one_case(obj, make, seed, stale)
        if problem:
            fail(problem)
    return ("✓ first_layer_grad_norm equals a reference computation on 4 model/data pairs "
            "(first conv found by type, stale gradients ignored).")
