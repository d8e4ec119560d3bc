"""Exercise 1 (lesson 03, skip connections): PlainCNN, CifarResNet, first_layer_grad_norm.

Both networks are specified exactly in the notebook (``PLAIN_SPEC``, ``RESNET_SPEC``) and judged
by behaviour against that specification written as a program (``_nets``): the same random
weights in the student's layers and in the program, outputs compared in train and eval mode,
for several ``depth`` / ``num_blocks`` and ``num_classes`` (more when grading). A difference is
named when one of the catalogue's mistakes (``_mistakes.NET_MISTAKES``) reproduces it exactly;
CifarResNet's blocks are judged one by one against the BasicBlock reference first, and its
layout (ImageNet stem or widths, downsampling, the spread over the stages) is read from the
shapes its blocks receive (``_resnet_like``). Only the number of conv layers of PlainCNN is a
structural rule.
"""

from __future__ import annotations

import copy
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ..models import stage_sizes
from . import _nets as nets
from . import _resnet_like as resnet_like
from . import _tensors
from ._behaviour import Subject, probe
from ._calls import call, call_str, expect_class, expect_function, fail
from ._cheating import reject_reference
from ._registry import grading, register
from ._structure import build, bypassed_conv, conv_layers

PLAIN = ("class PlainCNN(nn.Module) with __init__(self, depth=6, num_classes=10), 3×32×32 "
         "images → num_classes logits")
RESNET = ("class CifarResNet(nn.Module) with __init__(self, num_blocks=6, num_classes=10), "
          "3×32×32 images → num_classes logits")
GRAD = "def first_layer_grad_norm(model, images, labels) -> float"
WIDTHS = (16, 32, 64)
PLAIN_SPEC = ("`depth` layers, each a 3×3 conv (padding 1, no bias) → BatchNorm → ReLU: the "
              "first 3 → 16 channels, the other depth − 1 spread over three stages of 16, 32 "
              "and 64 channels with stage_sizes(depth − 1), the first layer of stages 2 and 3 "
              "with stride 2 (no pooling layers); then global average pooling and "
              "nn.Linear(channels, num_classes); forward returns these logits. No skip "
              "connections.")
RESNET_SPEC = ("a stem of one 3×3 conv 3 → 16 (stride 1, padding 1, no bias) → BatchNorm → "
               "ReLU, no pooling; then `num_blocks` BasicBlocks spread over three stages of 16, "
               "32 and 64 channels with stage_sizes(num_blocks), the first block of stages 2 "
               "and 3 with stride 2; then global average pooling and nn.Linear(64, "
               "num_classes); forward returns these logits.")


def _images(batch: int = 2, seed: int = 0):
    return torch.randn((batch, 3, 32, 32), generator=_tensors.generator(seed))


# --- PlainCNN -----------------------------------------------------------------------------------


def plain_program(depth: int, num_classes: int) -> nets.Program:
    """The notebook's PlainCNN(depth, num_classes) as a program."""
    ops: list = [nets.Conv("c0", 3, WIDTHS[0], label="the 3 → 16 conv"),
                 nets.BN("n0", WIDTHS[0], "its BatchNorm"), nets.Act()]
    channels, k = WIDTHS[0], 1
    for stage, count in enumerate(stage_sizes(depth - 1)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            ops += [nets.Conv(f"c{k}", channels, WIDTHS[stage], 3, stride,
                              label=f"conv layer {k + 1}"),
                    nets.BN(f"n{k}", WIDTHS[stage], f"the BatchNorm of conv layer {k + 1}"),
                    nets.Act()]
            channels, k = WIDTHS[stage], k + 1
    return (*ops, nets.GAP(), nets.Linear("fc", channels, num_classes, label="the Linear layer"))


def plain_variants(depth: int, num_classes: int, x_shape: tuple[int, ...]
                   ) -> tuple[list, list]:
    p = plain_program(depth, num_classes)
    accepted = [nets.variant("correct", p), nets.variant("log_softmax",
                                                         nets.with_output(p, "log_softmax"))]
    last = nets.shapes(p, x_shape)[-3]
    mistakes = [
        nets.mistake("softmax_output", nets.with_output(p, "softmax")),
        nets.mistake("relu_on_logits", nets.with_output(p, "relu")),
        nets.mistake("no_bn", nets.without_bn(p)),
        nets.mistake("relu_before_bn", nets.relu_before_bn(p)),
        nets.mistake("no_relu", nets.without_relu(p)),
        nets.mistake("flatten_head", nets.flatten_head(p, x_shape), c=last[1], h=last[2],
                     w=last[3], n=last[1] * last[2] * last[3]),
    ]
    if depth > 2:
        mistakes += [
            nets.mistake("no_downsampling", nets.all_stride_one(p), size=x_shape[2]),
            nets.mistake("maxpool_downsampling", nets.pool_instead_of_stride(p, before=False)),
            nets.mistake("maxpool_downsampling", nets.pool_instead_of_stride(p, before=True)),
        ]
    return accepted, mistakes


def _verify_plain(obj: object, kwargs: dict, depth: int, num_classes: int, seed: int
                  ) -> list[str]:
    ctor = call_str("PlainCNN", **kwargs)
    model = build(obj, "PlainCNN", hint=f"Expected: {PLAIN}.", **kwargs)
    reject_reference(model, "PlainCNN")
    convs = conv_layers(model)
    if len(convs) != depth:
        what = "the default depth is 6" if not kwargs else "`depth` is the number of conv layers"
        fail(f"{ctor} has {len(convs)} nn.Conv2d layers; {what} (the 3 → 16 conv counts), so it "
             f"should have {depth}.", mistake="ex1_plain_cnn.conv_count")
    x = _images(2, seed)
    subject = Subject(model, x, f"{ctor}(x)")
    out = probe(subject, None, cheat_name="PlainCNN")
    nets.check_logits(out, subject, "PlainCNN", "ex1_plain_cnn", num_classes)
    accepted, mistakes = plain_variants(depth, num_classes, tuple(x.shape))
    verdict = nets.compare_net(subject, accepted, mistakes)
    if verdict.match is None or verdict.match.variant.key not in ("correct", "log_softmax"):
        extra = ""
        if verdict.match is None:
            skipped = bypassed_conv(model, x)
            if skipped is not None:
                fail(f"{ctor} has a skip connection: with its conv layer `{skipped}` zeroed, "
                     "the output still depends on the input, so something goes around that "
                     "layer.\nWhy it matters: the plain network is the baseline without skip "
                     "connections that the ResNet is compared with: every layer must feed only "
                     "the next one.", mistake="ex1_plain_cnn.skip_connection")
            extra = nets.shape_diff(nets.trace(model.eval(), x), plain_program(depth, num_classes),
                                    tuple(x.shape))
        nets.fail_net(subject, verdict, "ex1_plain_cnn", "PlainCNN", PLAIN_SPEC, extra)
    nets.unused_layers(subject, verdict.match, "PlainCNN", "ex1_plain_cnn")
    return nets.bias_note(verdict.match) + nets.output_note(verdict.match)


@register("ex1_plain_cnn", "PlainCNN(depth=6, num_classes=10)")
def check_plain_cnn(obj: object) -> str:
    expect_class(obj, "PlainCNN", PLAIN)
    reject_reference(obj, "PlainCNN")
    configs = [({}, 6, 10), ({"depth": 20}, 20, 10), ({"depth": 5, "num_classes": 5}, 5, 5)]
    if grading():  # very shallow and odd depths, another number of classes
        configs += [({"depth": 1}, 1, 10), ({"depth": 2, "num_classes": 7}, 2, 7),
                    ({"depth": 9}, 9, 10)]
    notes: list[str] = []
    for seed, (kwargs, depth, classes) in enumerate(configs):
        notes = notes or _verify_plain(obj, kwargs, depth, classes, seed)
    line = ("✓ PlainCNN is the specified conv → BN → ReLU stack (16/32/64 channels, stride-2 "
            "stage starts, global average pooling, Linear → logits) for depth 6 (the default), "
            "20 and 5 (with num_classes=5), in train and eval mode; no skip connection.")
    return "\n".join([line, *notes])


# --- CifarResNet --------------------------------------------------------------------------------


def cifar_spec(num_blocks: int, num_classes: int) -> resnet_like.Spec:
    sizes = stage_sizes(num_blocks)
    blocks, channels = [], WIDTHS[0]
    for stage, count in enumerate(sizes):
        for i in range(count):
            blocks.append((channels, WIDTHS[stage], 2 if stage > 0 and i == 0 else 1))
            channels = WIDTHS[stage]
    return resnet_like.Spec(
        "CifarResNet", "ex1_cifar_resnet", 3, 32, num_classes, num_blocks, blocks, RESNET_SPEC,
        count_hint=" (`num_blocks` is the total number of blocks over the three stages)",
        spread=(f" (num_blocks={num_blocks} spread over the three stages with stage_sizes: "
                f"{', '.join(map(str, sizes))} blocks)"))


@register("ex1_cifar_resnet", "CifarResNet(num_blocks=6, num_classes=10)")
def check_cifar_resnet(obj: object) -> str:
    expect_class(obj, "CifarResNet", RESNET)
    reject_reference(obj, "CifarResNet")
    configs = [({}, 6, 10), ({"num_blocks": 9}, 9, 10),
               ({"num_blocks": 5, "num_classes": 5}, 5, 5)]
    if grading():  # one block, few blocks, another number of classes
        configs += [({"num_blocks": 1}, 1, 10), ({"num_blocks": 3, "num_classes": 7}, 3, 7),
                    ({"num_blocks": 12}, 12, 10)]
    notes: list[str] = []
    for seed, (kwargs, num_blocks, classes) in enumerate(configs):
        ctor = call_str("CifarResNet", **kwargs)
        model = build(obj, "CifarResNet", hint=f"Expected: {RESNET}.", **kwargs)
        reject_reference(model, "CifarResNet")
        notes = notes or resnet_like.verify(model, _images(2, seed), ctor,
                                            cifar_spec(num_blocks, classes))
    line = ("✓ CifarResNet is the specified network (3×3 stem, BasicBlocks over 16/32/64-channel "
            "stages with stride-2 stage starts, global average pooling, Linear → logits) for "
            "num_blocks 6 (the default), 9 and 5 (with num_classes=5), in train and eval mode; "
            "every block behaves like torchvision's BasicBlock.")
    return "\n".join([line, *notes])


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


def _one_case(fn: object, make: type, seed: int, stale: bool) -> tuple[str, str] | None:
    """None if ``fn`` is right on this model, else (message, mistake key)."""
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
        fail(f"{what} returned a tensor; return a Python float (e.g. `grad.norm().item()`).",
             mistake="ex1_grad_norm.returns_tensor")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        fail(f"{what} returned {value!r}; expected a float, the L2 norm of the gradient.",
             mistake="ex1_grad_norm.not_a_float")
    value = float(value)
    changed = [k for k, v in model.state_dict().items()
               if k in before and _tensors.max_abs_diff(v, before[k]) != 0.0
               and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    if changed:
        return (f"{what} changed the model's weights (`{changed[0]}`): it should only compute the"
                " gradient, not take an optimizer step.", "changed_weights")
    if _close(value, expected):
        return None
    # Known wrong answers, most specific first.
    candidates = []
    if stale:
        summed = torch.add(grads[first_w], stale_grads[first_w])
        candidates.append((_tensors.norm(summed), "it includes gradients left over from earlier "
                           "backward passes: call model.zero_grad() before loss.backward() (the "
                           ".grad fields accumulate)", "stale_gradients"))
    candidates.append((expected ** 2, "it is the squared norm; take the square root "
                       "(grad.norm())", "squared_norm"))
    candidates.append((_tensors.norm(_grads(copy.deepcopy(torch_model), images, labels, "sum")[first_w]),
                       "it uses the summed loss; use the mean cross-entropy "
                       "(F.cross_entropy's default)", "summed_loss"))
    candidates.append((_tensors.norm(torch_model.state_dict()[first_w]),
                       "it is the norm of the weight itself, not of its gradient", "weight_norm"))
    eval_model = copy.deepcopy(torch_model).eval()
    candidates.append((_tensors.norm(_grads(eval_model, images, labels)[first_w]),
                       "it was computed in eval mode; leave the model's mode as it is",
                       "eval_mode"))
    for name, grad in grads.items():
        if name != first_w:
            candidates.append((_tensors.norm(grad), f"it is the gradient norm of `{name}`, not of "
                               f"the first conv layer's weight `{first_w}`", "wrong_layer"))
    for candidate, reason, key in candidates:
        if _close(value, candidate):
            return f"{what} returned {value:.6g}; expected {expected:.6g}: {reason}.", key
    return (f"{what} returned {value:.6g}; expected {expected:.6g}, the L2 norm of "
            f"`{first_w}.grad` after one backward of the mean cross-entropy loss.", "wrong_value")


@register("ex1_grad_norm", "first_layer_grad_norm(model, images, labels) -> float")
def check_grad_norm(obj: object) -> str:
    expect_function(obj, "first_layer_grad_norm", GRAD)
    cases = [(_Plain, False), (_Residual, False), (_Plain, True), (_Residual, True)]
    if grading():
        cases += [(_Sequential, False), (_Sequential, True)]
    for seed, (make, stale) in enumerate(cases):
        problem = _one_case(obj, make, seed, stale)
        if problem:
            fail(problem[0], mistake=f"ex1_grad_norm.{problem[1]}")
    return ("✓ first_layer_grad_norm equals a reference computation on 4 model/data pairs "
            "(first conv found by type, stale gradients ignored).")
