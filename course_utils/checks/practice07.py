"""Lesson 07 practice: box format conversions, optimizer parameter groups and Grad-CAM.

``box_cxcywh_to_xyxy`` / ``box_xyxy_to_cxcywh`` are judged against
``torchvision.ops.box_convert``. ``practice_grad_cam`` is judged against ``reference_cam``
(hooks on a copy of the model) on small classifiers; the same function with one switch flipped
names the known mistakes (no ReLU, no spatial mean, another class, softmax, scaled maps,
train mode). ``param_groups`` is judged on small models with ResNet's
module names: every parameter holds values no other parameter holds, so the groups it returns
are read by value (when grading, the tensors come back from the student's kernel as copies).
"""

from __future__ import annotations

import copy
import numbers

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert

from ._calls import (
    Unanswered,
    call,
    describe,
    exception_str,
    expect_function,
    fail,
    not_implemented_message,
    shape_str,
    where_str,
)
from ._functions import close, expect_tensor, first_match, max_diff
from ._registry import grading, register

TO_XYXY = "def cxcywh_to_xyxy(boxes) -> tensor of shape (N, 4)"
TO_CXCYWH = "def xyxy_to_cxcywh(boxes) -> tensor of shape (N, 4)"
GROUPS = "def param_groups(model, lrs) -> list of {'params': [...], 'lr': ...}"


def _random_xyxy(count: int, g: torch.Generator) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=g, dtype=torch.float64) * 100
    return torch.cat([corner, corner + torch.rand(count, 2, generator=g, dtype=torch.float64)
                      * 30], 1)


def _box_case(fn: object, name: str, source: str, target: str, boxes: torch.Tensor,
              label: str) -> None:
    what = f"{name}(boxes) with {label}"
    given = boxes.clone()
    got = expect_tensor(call(what, fn, given), what)
    if not torch.equal(given, boxes):
        fail(f"{what} changed boxes in place; return a new tensor (e.g. with torch.stack) and "
             "leave the input alone.")
    want = box_convert(boxes, source, target)
    if tuple(got.shape) != tuple(want.shape):
        hint = f"expected {shape_str(want.shape)}, one row of 4 numbers per box"
        if tuple(got.shape) == tuple(want.shape)[::-1]:
            hint += ": stack the four coordinates along the last dimension (dim=-1)"
        fail(f"{what} returned shape {shape_str(got.shape)}; {hint}.")
    if got.dtype != boxes.dtype:
        fail(f"{what} returned {got.dtype}; keep the input's dtype ({boxes.dtype}).")
    if close(got, want, rtol=1e-7, atol=1e-9):
        return
    a, b, c, d = boxes.unbind(-1)
    if target == "xyxy":
        candidates = [
            (lambda: torch.stack([a - c, b - d, a + c, b + d], -1),
             "the corners are half the width and height from the centre: x1 = cx − w/2, "
             "x2 = cx + w/2 (and the same for y with h)"),
            (lambda: torch.stack([a - c / 2, a + c / 2, b - d / 2, b + d / 2], -1),
             "the order is (x1, y1, x2, y2), not (x1, x2, y1, y2)"),
            (lambda: torch.stack([a, b, a + c, b + d], -1),
             "(cx, cy) is the box's centre, not its top-left corner"),
        ]
    else:
        candidates = [
            (lambda: torch.stack([(a + c) / 2, (b + d) / 2, a - c, b - d], -1),
             "width and height are x2 − x1 and y2 − y1 (positive), not x1 − x2"),
            (lambda: torch.stack([(c - a) / 2, (d - b) / 2, c - a, d - b], -1),
             "the centre is the midpoint (x1 + x2) / 2, not half the width"),
            (lambda: torch.stack([(a + c) / 2, (c - a), (b + d) / 2, (d - b)], -1),
             "the order is (cx, cy, w, h), not (cx, w, cy, h)"),
            (lambda: torch.stack([a, b, c - a, d - b], -1),
             "(cx, cy) is the box's centre, not its top-left corner"),
        ]
    reason = first_match(got, candidates, rtol=1e-7, atol=1e-9)
    fail(f"{what} differs from torchvision.ops.box_convert(boxes, '{source}', '{target}') "
         f"(largest difference {max_diff(got, want):.3g})" + (f": {reason}." if reason else "."))


def _check_boxes(fn: object, name: str, source: str, target: str, example: str) -> None:
    expect_function(fn, name, example)
    one = torch.tensor([[10.0, 20.0, 4.0, 6.0]]) if source == "cxcywh" else \
        torch.tensor([[8.0, 17.0, 12.0, 23.0]])
    _box_case(fn, name, source, target, one, f"boxes = {one.tolist()}")
    if grading():
        xyxy = _random_xyxy(50, torch.Generator().manual_seed(7))
        boxes = xyxy if source == "xyxy" else box_convert(xyxy, "xyxy", "cxcywh")
        _box_case(fn, name, source, target, boxes, "50 random float64 boxes")
        _box_case(fn, name, source, target, torch.zeros(0, 4), "no boxes (shape (0, 4))")


@register("box_cxcywh_to_xyxy", "cxcywh_to_xyxy(boxes) -> (N, 4) tensor")
def check_cxcywh_to_xyxy(obj: object) -> str:
    _check_boxes(obj, "cxcywh_to_xyxy", "cxcywh", "xyxy", TO_XYXY)
    return ("✓ cxcywh_to_xyxy: (cx, cy, w, h) = (10, 20, 4, 6) → (x1, y1, x2, y2) = "
            "(8, 17, 12, 23), as torchvision.ops.box_convert.")


@register("box_xyxy_to_cxcywh", "xyxy_to_cxcywh(boxes) -> (N, 4) tensor")
def check_xyxy_to_cxcywh(obj: object) -> str:
    _check_boxes(obj, "xyxy_to_cxcywh", "xyxy", "cxcywh", TO_CXCYWH)
    return ("✓ xyxy_to_cxcywh: (x1, y1, x2, y2) = (8, 17, 12, 23) → (cx, cy, w, h) = "
            "(10, 20, 4, 6), as torchvision.ops.box_convert.")


# --- param_groups ---------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, project: bool) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, bias=False), nn.BatchNorm2d(cout)
        if project:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                            nn.BatchNorm2d(cout))


class TinyResNet(nn.Module):
    """resnet18's parameter names (conv1, bn1, layer1-4 of two blocks, fc), tiny widths."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 2, 3, bias=False), nn.BatchNorm2d(2)
        widths = (2, 3, 4, 5)
        cin = 2
        for i, width in enumerate(widths, 1):
            setattr(self, f"layer{i}", nn.Sequential(_Block(cin, width, cin != width),
                                                     _Block(width, width, False)))
            cin = width
        self.fc = nn.Linear(cin, 3)


class Ten(nn.Module):
    """`layer1` and `layer10`: the prefix "layer1" must not take layer10's parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = nn.Linear(2, 2)
        self.layer10 = nn.Linear(2, 2)


def _marked(model: nn.Module) -> nn.Module:
    """Give every parameter element a value no other element has (to read groups by value)."""
    offset = 1.0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) + offset)
            offset += p.numel()
    return model


def _freeze_except(model: nn.Module, prefixes: tuple[str, ...]) -> nn.Module:
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))
    return model


def expected_groups(model: nn.Module, lrs: dict) -> list[tuple[str, list[str]]]:
    """[(prefix, [parameter names])] as param_groups should make them (the reference)."""
    members: dict[str, list[str]] = {prefix: [] for prefix in lrs}
    for name, p in model.named_parameters():
        if p.requires_grad:
            matches = [q for q in lrs if name == q or name.startswith(q + ".")]
            members[max(matches, key=len)].append(name)
    return [(prefix, names) for prefix, names in members.items() if names]


def _names_of(params: object, model: nn.Module, what: str) -> list[str]:
    """The model's parameter names for the tensors a group holds (read by value)."""
    by_first = {float(p.detach().reshape(-1)[0]): (name, p)
                for name, p in model.named_parameters()}
    if isinstance(params, torch.Tensor) or not isinstance(params, list | tuple):
        fail(f"{what}: 'params' is {describe(params)}; make it a list of the model's "
             "parameters (a generator would be used up after the first pass).")
    names = []
    for t in params:
        if not isinstance(t, torch.Tensor):
            fail(f"{what}: 'params' holds {describe(t)}; it must hold the model's parameter "
                 "tensors (from model.named_parameters()), not names or modules.")
        found = by_first.get(float(t.detach().reshape(-1)[0])) if t.numel() else None
        if found is None or found[1].shape != t.shape or not torch.equal(
                t.detach().as_subclass(torch.Tensor), found[1].detach()):
            fail(f"{what}: 'params' holds {describe(t)} that is none of the model's parameters; "
                 "put the parameters themselves in the groups (from model.named_parameters()).")
        names.append(found[0])
    return names


def _groups_case(fn: object, model: nn.Module, lrs: dict, label: str) -> None:
    what = f"param_groups(model, {lrs}) for {label}"
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]

    def hint(exc: BaseException) -> str:
        named = [name for name in frozen if name in str(exc)]
        if isinstance(exc, ValueError) and named:
            return (f"Hint: `{named[0]}` is frozen (requires_grad=False): leave frozen "
                    "parameters out before matching prefixes; only trainable ones need a group.")
        return ""

    groups = call(what, fn, model, dict(lrs), hint=hint)
    want = expected_groups(model, lrs)
    if not isinstance(groups, list | tuple) or not all(isinstance(g, dict) for g in groups):
        fail(f"{what} returned {describe(groups)}; return a list of dicts "
             "{'params': [...], 'lr': ...}, one per prefix.")
    for g in groups:
        if "params" not in g or "lr" not in g:
            fail(f"{what}: a group has the keys {sorted(map(str, g))}; each group needs "
                 "'params' and 'lr'.")
        if isinstance(g["lr"], torch.Tensor | bool) or not isinstance(g["lr"], numbers.Real):
            fail(f"{what}: a group's 'lr' is {describe(g['lr'])}; expected the number from lrs.")
    got = [(g["lr"], _names_of(g["params"], model, what)) for g in groups]
    frozen_names = set(frozen)
    seen: dict[str, int] = {}
    for i, (_, names) in enumerate(got):
        for name in names:
            if name in frozen_names:
                fail(f"{what}: group {i} holds `{name}`, which is frozen (requires_grad=False); "
                     "include only trainable parameters.")
            if name in seen:
                fail(f"{what}: `{name}` is in groups {seen[name]} and {i}; each parameter must "
                     "appear exactly once, in the group of its longest matching prefix.")
            seen[name] = i
    owner = {name: prefix for prefix, names in want for name in names}
    for lr, names in got:
        prefixes = [p for p in lrs if lrs[p] == lr]
        for name in names:
            right = owner.get(name)
            if right is not None and lrs[right] != lr:
                shorter = [p for p in lrs if (name == p or name.startswith(p + "."))
                           and lrs[p] == lr and len(p) < len(right)]
                loose = [p for p in prefixes if name.startswith(p) and not (
                    name == p or name.startswith(p + "."))]
                if loose:
                    fail(f"{what}: `{name}` got the lr of prefix {loose[0]!r}, which it does not "
                         f"match: a prefix matches a name only if the name equals it or "
                         f"continues with a dot ({loose[0]!r} matches '{loose[0]}.weight', not "
                         f"{name!r}).")
                if shorter:
                    fail(f"{what}: `{name}` is in the group of {shorter[0]!r}; it belongs to "
                         f"the longest matching prefix, {right!r}.")
                fail(f"{what}: `{name}` has lr {lr!r}; its longest matching prefix is {right!r} "
                     f"(lr {lrs[right]!r}).")
    missing = [name for name in owner if name not in seen]
    if missing:
        fail(f"{what}: `{missing[0]}` is in no group; every trainable parameter must be in the "
             f"group of its longest matching prefix ({owner[missing[0]]!r}).")
    got_order = [lr for lr, _ in got]
    want_order = [lrs[prefix] for prefix, _ in want]
    if got_order != want_order:
        empty = [lr for lr, names in got if not names]
        if empty:
            unused = [p for p in lrs if lrs[p] == empty[0] and p not in dict(want)]
            fail(f"{what}: a group has no parameters (prefix {unused[0] if unused else '?'!r} "
                 "matches no trainable parameter); leave such prefixes out.")
        fail(f"{what} gave the groups in the order of lrs {got_order}; expected {want_order}: "
             "one group per prefix that matches a trainable parameter, in the order of lrs.")


def _raises_naming(fn: object, model: nn.Module, lrs: dict, name: str, label: str,
                   why: str = "") -> None:
    what = f"param_groups(model, {lrs}) for {label}"
    try:
        value = fn(model, dict(lrs))
    except (KeyboardInterrupt, Unanswered):
        raise
    except ValueError as exc:
        if name not in str(exc):
            fail(f"{what} raised ValueError({str(exc)[:120]!r}); name the parameter that matches "
                 f"no prefix (`{name}`), so the user sees which one would be left untrained.")
        return
    except NotImplementedError as exc:
        fail(not_implemented_message(what, exc))
    except BaseException as exc:  # noqa: BLE001
        fail(f"{what} raised {exception_str(exc)}{where_str(exc)}\nExpected a ValueError naming "
             f"`{name}`, which matches no prefix.")
    fail(f"{what} returned {describe(value)}; `{name}` is trainable but matches no prefix{why}: "
         "raise a ValueError naming it (left out of the optimizer, it would silently stay "
         "untrained).")


@register("param_groups", "param_groups(model, lrs) -> list[dict]")
def check_param_groups(obj: object) -> str:
    expect_function(obj, "param_groups", GROUPS)
    model = _freeze_except(_marked(TinyResNet()), ("layer4.", "fc."))
    _groups_case(obj, model, {"layer4": 1e-4, "fc": 1e-3},
                 "a ResNet with everything frozen but layer4 and fc")
    if grading():
        model = _marked(TinyResNet())
        lrs = {"layer4": 1e-4, "layer4.1": 5e-4, "fc": 1e-3,
               **{name: 1e-5 for name in ("conv1", "bn1", "layer1", "layer2", "layer3")}}
        _groups_case(obj, model, lrs, "a fully trainable ResNet")
        frozen = _freeze_except(_marked(TinyResNet()), ("layer4.1.", "fc."))
        _groups_case(obj, frozen, {"conv1": 1e-5, "bn1": 1e-5, "layer1": 1e-5, "layer2": 1e-5,
                                   "layer3": 1e-5, "layer4": 1e-4, "fc": 1e-3},
                     "a ResNet with everything frozen but layer4.1 and fc")
        _raises_naming(obj, model, {"layer4": 1e-4, "fc": 1e-3}, "conv1.weight",
                       "a fully trainable ResNet")
        ten = _marked(Ten())
        _groups_case(obj, ten, {"layer10": 0.1, "layer1": 0.2, "unused": 0.3},
                     "a model with modules layer1 and layer10")
        _raises_naming(obj, ten, {"layer1": 0.2}, "layer10.weight",
                       "a model with modules layer1 and layer10",
                       " (a prefix matches a name only if the name equals it or continues with "
                       "a dot: 'layer1' matches 'layer1.weight', not 'layer10.weight')")
        ten.layer1.requires_grad_(False)
        _groups_case(obj, ten, {"layer10": 0.1}, "a model with layer1 frozen and layer10")
    return ("✓ param_groups: a ResNet with only layer4 and fc trainable gives two groups "
            "[layer4's parameters, lr 1e-4] and [fc's, lr 1e-3], frozen parameters left out.")


# --- grad_cam ---------------------------------------------------------------------------------

CAM = "def grad_cam(model, layer_name, images, classes=None) -> tensor of shape (N, h, w)"


class CamNet(nn.Module):
    """A small classifier with ResNet's ending (global average pooling + fc), stages named
    `stem`, `block1`, `block2` (stride 2 each)."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.BatchNorm2d(6), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(6, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(8, 10, 3, 2, 1), nn.BatchNorm2d(10), nn.ReLU())
        self.fc = nn.Linear(10, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block2(self.block1(self.stem(x))).mean(dim=(2, 3)))


def cam_net(seed: int) -> CamNet:
    """A CamNet with seeded weights and batch-norm statistics that are not the identity."""
    torch.manual_seed(seed)
    model = CamNet()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model.eval()


def reference_cam(model: nn.Module, layer_name: str, images: torch.Tensor,
                  classes: torch.Tensor | None = None, *, relu: bool = True,
                  spatial_mean: bool = True, target: str = "given", score: str = "logit",
                  normalise: bool = False, train: bool = False) -> torch.Tensor:
    """Grad-CAM (the defaults), or a known mistake: no ReLU, gradient × activation without the
    spatial mean, the predicted class or the sum of all classes instead of the given one, the
    softmax probability instead of the logit, maps scaled to [0, 1], batch-norm in train mode.
    Runs on a copy: the caller's model is left as it was."""
    model = copy.deepcopy(model).train(train)
    layer = model.get_submodule(layer_name)
    saved: dict[str, torch.Tensor] = {}
    handles = [layer.register_forward_hook(lambda m, i, o: saved.update(a=o)),
               layer.register_full_backward_hook(lambda m, gi, go: saved.update(g=go[0]))]
    try:
        logits = model(images.detach().clone().requires_grad_(True))
        outputs = logits.softmax(dim=1) if score == "softmax" else logits
        if target == "all":
            chosen = outputs.sum()
        else:
            picked = logits.argmax(dim=1) if classes is None or target == "predicted" else classes
            chosen = outputs.gather(1, picked[:, None]).sum()
        chosen.backward()
    finally:
        for h in handles:
            h.remove()
    a, g = saved["a"].detach(), saved["g"].detach()
    weighted = (g.mean(dim=(2, 3), keepdim=True) if spatial_mean else g) * a
    maps = weighted.sum(dim=1)
    if relu:
        maps = F.relu(maps)
    if normalise:
        maps = maps / maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return maps


_CAM_MISTAKES = [
    ("no_relu", {"relu": False}, "the map keeps negative values: Grad-CAM is ReLU(Σ_k α_k A_k), "
     "the positive evidence for the class only"),
    ("no_spatial_mean", {"spatial_mean": False}, "each channel is weighted by the gradient at "
     "every position (gradient × activation); Grad-CAM's weight α_k is one number per channel, "
     "the mean of the gradient over the layer's positions"),
    ("predicted_class", {"target": "predicted"}, "the map explains the predicted class, not the "
     "class asked for in `classes` (use the predicted one only when classes is None)"),
    ("all_classes", {"target": "all"}, "the gradient is that of the sum of all the logits; "
     "backpropagate each image's score of its own class (logits.gather(1, classes[:, None]))"),
    ("softmax_score", {"score": "softmax"}, "the gradient is that of the softmax probability; "
     "Grad-CAM differentiates the class score, the logit before softmax"),
    ("normalised", {"normalise": True}, "the maps are scaled to [0, 1]; return ReLU(Σ_k α_k A_k) "
     "itself (scale for display only, outside the function)"),
    ("train_mode", {"train": True}, "the model ran in train mode, so batch norm used the batch's "
     "statistics; call model.eval() first, as when the model predicts"),
]


def _cam_case(fn: object, model: nn.Module, layer: str, images: torch.Tensor,
              classes: torch.Tensor | None, label: str) -> None:
    what = f"grad_cam(model, {layer!r}, images, {'classes' if classes is not None else 'None'})" \
           f" for {label}"
    frozen = not any(p.requires_grad for p in model.parameters())

    def hint(exc: BaseException) -> str:
        if frozen and "does not require grad" in str(exc):
            return ("Hint: every parameter is frozen here, so nothing requires a gradient: "
                    "mark the input with images.requires_grad_(True) (on a detached copy) "
                    "before the forward pass.")
        return ""

    given = images.clone()
    args = (model, layer, given) if classes is None else (model, layer, given, classes.clone())
    got = expect_tensor(call(what, fn, *args, hint=hint), what)
    want = reference_cam(model, layer, images, classes)
    if tuple(got.shape) != tuple(want.shape):
        why = ""
        if got.dim() == 3 and tuple(got.shape[1:]) == tuple(images.shape[2:]):
            why = ": that is the image's size; return the map at the layer's resolution " \
                  "(upsample it for display only)"
        elif got.dim() == 4:
            why = ": sum the weighted channels (dim=1), one map per image"
        fail(f"{what} returned shape {shape_str(got.shape)}; expected "
             f"{shape_str(want.shape)}, one map per image at {layer}'s resolution{why}.",
             mistake="wrong_shape")
    if close(got.detach().float(), want, rtol=1e-4, atol=1e-6):
        return
    for key, switches, reason in _CAM_MISTAKES:
        try:
            wrong = reference_cam(model, layer, images, classes, **switches)
        except RuntimeError:
            continue
        if close(got.detach().float(), wrong, rtol=1e-4, atol=1e-6):
            fail(f"{what} differs from Grad-CAM (largest difference "
                 f"{max_diff(got.detach().float(), want):.3g}): {reason}.", mistake=key)
    fail(f"{what} differs from Grad-CAM, ReLU(Σ_k α_k A_k) with α_k the spatial mean of the "
         f"class score's gradient (largest difference {max_diff(got.detach().float(), want):.3g}).")


@register("practice_grad_cam", "grad_cam(model, layer_name, images, classes=None) -> (N, h, w)")
def check_grad_cam(obj: object) -> str:
    expect_function(obj, "grad_cam", CAM)
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 3, 16, 16, generator=g)
    classes = torch.tensor([0, 1, 2, 3])
    _cam_case(obj, cam_net(0), "block1", images, classes, "a small classifier (4 images)")
    if grading():
        _cam_case(obj, cam_net(1), "block2", images, torch.tensor([3, 3, 0, 1]),
                  "the last stage")
        _cam_case(obj, cam_net(2), "block2", images, None, "the predicted classes")
        _cam_case(obj, cam_net(3).train(), "block1", images, classes,
                  "a model handed over in train mode")
        _cam_case(obj, cam_net(4).requires_grad_(False), "block2", images, classes,
                  "a frozen model (no parameter requires a gradient)")
    return ("✓ grad_cam: ReLU(Σ_k α_k A_k) with α_k the mean gradient of each image's class "
            "score, at the layer's resolution, as the reference computes it.")
