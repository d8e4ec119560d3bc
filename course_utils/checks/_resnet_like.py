"""Networks of residual blocks (CifarResNet, SmallResNet, ResNetStyle), judged by behaviour.

1. the output: one logit per class, ``num_classes`` honoured;
2. the residual blocks, found by behaviour (``_structure.residual_blocks``): how many, and
   each one against the BasicBlock reference on the input it receives in the network (the
   BasicBlock catalogue names a block's mistake);
3. the layout, read from the shapes the blocks receive and return (widths, strides, the map
   the stem hands over) and the stem and head's layers, against the notebook's spec: an
   ImageNet stem or ImageNet widths, no downsampling, layers spread differently;
4. the whole network against the program stem → blocks → global average pooling → Linear,
   with each block's layers pinned to what step 2 matched: the known mistakes are a softmax
   or a ReLU on the logits, a head that flattens the map, and the stem's BN / ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import _nets as nets
from ._behaviour import Subject, probe
from ._calls import fail
from ._nets import BN, GAP, Act, Block, Conv, Linear, Pool
from ._structure import Block as FoundBlock
from ._structure import residual_blocks
from ._weights import Unit, units_of
from .basic_block import block_match

IMAGENET_WIDTHS = (64, 128, 256, 512)


@dataclass
class Spec:
    name: str                      # "CifarResNet"
    item: str                      # "ex1_cifar_resnet"
    in_channels: int
    size: int                      # the input's height and width
    num_classes: int
    count: int                     # the number of residual blocks
    blocks: list[tuple[int, int, int]] | None  # (in, out, stride) per block; None: free widths
    expected: str                  # the architecture in words ("Expected: ...")
    count_hint: str = ""           # why that many blocks, for the message
    spread: str = ""               # how the blocks are spread over the stages, for messages
    free_stem: bool = False        # stem conv's kernel/stride/width and a pooling are free

    @property
    def stem_width(self) -> int | None:
        return self.blocks[0][0] if self.blocks else None


def _stride(h_in: int, h_out: int) -> int | None:
    return next((s for s in (1, 2, 3, 4) if (h_in - 1) // s + 1 == h_out), None)


def verify(model: nn.Module, x: Tensor, ctor: str, spec: Spec) -> list[str]:
    """Fail unless ``model`` (built by ``ctor``) is the network ``spec`` describes; notes."""
    subject = Subject(model, x, f"{ctor}(x)")
    out = probe(subject, None, cheat_name=spec.name)
    nets.check_logits(out, subject, spec.name, spec.item, spec.num_classes)
    found = residual_blocks(model, x)
    _check_count(found, ctor, spec)
    notes: list[str] = []
    fixed: dict[str, Unit] = {}
    units = {id(u.module): u for u in units_of(model)}
    layout = []
    for i, block in enumerate(found):
        b, cin, h, _ = tuple(block.x.shape)
        cout, h_out = block.out_shape[1], block.out_shape[2]
        stride = _stride(h, h_out)
        label = (f"{ctor}'s block `{block.name}` ({cin} → {cout} channels, {h}×{h} → "
                 f"{h_out}×{h_out})")
        if stride is None or len(block.out_shape) != 4:
            fail(f"{label} doesn't keep or downsample the map like a BasicBlock.",
                 mistake=f"{spec.item}.block_shape")
        matched = block_match(Subject(block.module, block.x, f"{label}(x)"), cin, cout, stride)
        notes = notes or nets.bias_note(matched)
        for k, unit in matched.assignment.items():
            fixed[f"b{i}_{matched.variant.slots[k].name}"] = units[id(unit.module)]
        layout.append((cin, cout, stride, h))
    calls = nets.trace(model.eval(), x)
    _check_layout(found, layout, calls, ctor, spec)
    stem, head = _stem_and_head(found, calls)
    _check_stem_and_head(stem, head, found, ctor, spec)
    accepted, mistakes = _variants(spec, layout, stem, x)
    subject.x = torch.clone(x)
    verdict = nets.compare_net(subject, accepted, mistakes, fixed)
    if verdict.match is None or verdict.match.variant.key not in {v.key for v in accepted}:
        nets.fail_net(subject, verdict, spec.item, spec.name, spec.expected)
    nets.unused_layers(subject, verdict.match, spec.name, spec.item)
    notes = nets.bias_note(verdict.match) or notes
    return notes + nets.output_note(verdict.match)


def _check_count(found: list[FoundBlock], ctor: str, spec: Spec) -> None:
    if len(found) == spec.count:
        return
    names = ", ".join(f"`{b.name}`" for b in found[:8]) + (" ..." if len(found) > 8 else "")
    extra, key = spec.count_hint, "block_count"
    if not found:
        extra = (" Each residual block must be its own nn.Module (e.g. your BasicBlock) whose "
                 "forward adds its input (or its projection) to the output of its "
                 "convolutions.")
        key = "no_residual_blocks"
    elif len(found) % spec.count == 0 and spec.blocks is not None and len(found) > spec.count:
        extra = " (`num_blocks` is the total number of blocks, not the number per stage)"
        key = "blocks_per_stage"
    fail(f"{ctor} has {len(found)} residual blocks ({names or 'none'}); expected "
         f"{spec.count}.{extra}", mistake=f"{spec.item}.{key}")


def _check_layout(found: list[FoundBlock], layout: list, calls: list[nets.Call], ctor: str,
                  spec: Spec) -> None:
    first_h = layout[0][3]
    if first_h != spec.size and not spec.free_stem:
        _stem_downsamples(found, calls, first_h, ctor, spec)
    strides = [s for _, _, s, _ in layout]
    if all(s == 1 for s in strides) and (spec.blocks is None or
                                         any(s != 1 for _, _, s in spec.blocks)):
        want = ("at least one block must have stride 2" if spec.blocks is None else
                "the blocks that start a new stage must have stride 2")
        fail(f"{ctor} never downsamples: every block keeps the {first_h}×{first_h} map.\n"
             f"Why it matters: {want} (use stride 2 to downsample, as the notebook asks): at "
             "full resolution the later blocks cost 4× (and 16×) the compute, and each "
             "layer still sees only a small part of the image.",
             mistake=f"{spec.item}.no_downsampling")
    if spec.blocks is None:
        return
    widths = [cout for _, cout, _, _ in layout]
    if tuple(sorted(set(widths)))[:2] == IMAGENET_WIDTHS[:2]:
        spec_widths = "/".join(str(w) for w in dict.fromkeys(c for _, c, _ in spec.blocks))
        fail(f"{ctor} uses ImageNet's widths: its blocks output "
             f"{'/'.join(str(w) for w in dict.fromkeys(widths))} channels instead of "
             f"{spec_widths}.\nWhy it matters: ResNet-18/34's 64–512 channels are sized for "
             "ImageNet; the notebook's design uses "
             f"{spec_widths} channels (a 3×3 conv of 64 channels has 16× the weights of one "
             "of 16), like the network it is compared with.",
             mistake=f"{spec.item}.imagenet_widths")
    for i, ((cin, cout, stride, _), (w_in, w_out, w_stride)) in enumerate(
            zip(layout, spec.blocks, strict=True)):
        if (cin, cout) != (w_in, w_out) or stride != w_stride:
            fail(f"{ctor}'s {nets._ordinal(i + 1)} block `{found[i].name}` maps {cin} → {cout} "
                 f"channels with stride {stride}; the specified {nets._ordinal(i + 1)} block "
                 f"maps {w_in} → {w_out} channels with stride {w_stride}{spec.spread}.\n"
                 f"Expected: {spec.expected}", mistake=f"{spec.item}.layout")


def _stem_downsamples(found: list[FoundBlock], calls: list[nets.Call], first_h: int, ctor: str,
                      spec: Spec) -> None:
    first_block = {id(m) for m in found[0].module.modules()}
    stem = []
    for c in calls:
        if id(c.module) in first_block:
            break
        stem.append(c)
    convs = [c for c in stem if c.kind == "conv"]
    pools = [c for c in stem if c.kind == "pool"]
    big = [c for c in convs if tuple(c.module.kernel_size)[0] >= 5 and
           tuple(c.module.stride)[0] >= 2]
    where = f"the blocks start at {first_h}×{first_h} instead of {spec.size}×{spec.size}"
    if big and (pools or first_h * 4 <= spec.size):
        k, s = tuple(big[0].module.kernel_size)[0], tuple(big[0].module.stride)[0]
        pool = f" followed by max-pooling ({pools[0].label()})" if pools else ""
        fail(f"{ctor} has ImageNet's stem: {big[0].label()} is a {k}×{k} conv with stride {s}"
             f"{pool}, so {where}.\nWhy it matters: ImageNet's stem shrinks 224×224 images 4× "
             f"before the first block; on {spec.size}×{spec.size} images it leaves the blocks "
             "tiny maps and throws away most of the image's detail. The notebook's stem is one "
             "3×3 conv with stride 1 (+ BN + ReLU), no pooling.",
             mistake=f"{spec.item}.imagenet_stem")
    fail(f"{ctor}'s stem downsamples: {where}.\nWhy it matters: the stem of the notebook's "
         "design is one 3×3 conv with stride 1 (+ BN + ReLU) and no pooling: it keeps the full "
         "resolution, and only the stages downsample.", mistake=f"{spec.item}.stem_downsamples")


def _stem_and_head(found: list[FoundBlock], calls: list[nets.Call]
                   ) -> tuple[list[nets.Call], list[nets.Call]]:
    inside = {id(m) for b in found for m in b.module.modules()}
    first = next((i for i, c in enumerate(calls) if id(c.module) in inside), len(calls))
    last = max((i for i, c in enumerate(calls) if id(c.module) in inside), default=-1)
    return calls[:first], calls[last + 1:]


def _check_stem_and_head(stem: list[nets.Call], head: list[nets.Call],
                         found: list[FoundBlock], ctor: str, spec: Spec) -> None:
    convs = nets.weighted([c for c in stem if c.kind == "conv"])
    if len(convs) != 1:
        names = ", ".join(c.label() for c in convs) or "none"
        fail(f"{ctor}'s stem (the layers before the first block, `{found[0].name}`) has "
             f"{len(convs)} conv layers ({names}); the specified stem is one conv + BatchNorm "
             f"+ ReLU.\nExpected: {spec.expected}", mistake=f"{spec.item}.stem_layers")
    linears = nets.weighted([c for c in head if c.kind in ("linear", "conv")])
    if len(linears) != 1:
        names = ", ".join(c.label() for c in linears) or "none"
        fail(f"{ctor}'s head (the layers after the last block, `{found[-1].name}`) has "
             f"{len(linears)} layers with weights ({names}); the specified head is global "
             f"average pooling and one Linear layer.\nExpected: {spec.expected}",
             mistake=f"{spec.item}.head_layers")


def _variants(spec: Spec, layout: list, stem: list[nets.Call], x: Tensor):
    """(accepted variants, known mistakes): the specified network built on the layout found."""
    conv = nets.weighted([c for c in stem if c.kind == "conv"])[0]
    width = layout[0][0]
    if spec.free_stem:
        m = conv.module
        stem_conv = Conv("stem", spec.in_channels, width, tuple(m.kernel_size), tuple(m.stride),
                         m.padding if isinstance(m.padding, str) else tuple(m.padding), None,
                         "the stem conv", tuple(m.dilation))
    else:
        stem_conv = Conv("stem", spec.in_channels, width, 3, 1, 1, False, "the stem conv")
    stem_ops = (stem_conv, BN("stem_bn", width, "the stem's BatchNorm"), Act())
    pools: list[tuple[str, tuple]] = [("", ())]
    if spec.free_stem:
        h_conv = nets.shapes((stem_conv,), tuple(x.shape))[0][2]
        ratio = h_conv // layout[0][3] if layout[0][3] else 1
        if ratio > 1:
            pools = [("_maxpool", (Pool("max", ratio),)), ("_avgpool", (Pool("avg", ratio),))]
            if ratio == 2:
                pools.insert(1, ("_maxpool3", (Pool("max", 3, 2, 1),)))
    blocks = tuple(Block(f"b{i}", cin, cout, s, f"block {i + 1}")
                   for i, (cin, cout, s, _) in enumerate(layout))
    head = (GAP(), Linear("fc", layout[-1][1], spec.num_classes, label="the Linear layer"))
    accepted, mistakes = [], []
    for suffix, pool in pools:
        program = (*stem_ops, *pool, *blocks, *head)
        accepted += [nets.variant("correct" + suffix, program),
                     nets.variant("log_softmax" + suffix, nets.with_output(program,
                                                                           "log_softmax"))]
        shape = nets.shapes(program, tuple(x.shape))
        last = shape[len(stem_ops) + len(pool) + len(blocks) - 1]
        mistakes += [
            nets.mistake("softmax_output", nets.with_output(program, "softmax")),
            nets.mistake("relu_on_logits", nets.with_output(program, "relu")),
            nets.mistake("flatten_head", nets.flatten_head(program, tuple(x.shape)), c=last[1],
                         h=last[2], w=last[3], n=last[1] * last[2] * last[3]),
            nets.mistake("stem_no_bn", nets.without_bn(stem_ops) + (*pool, *blocks, *head)),
            nets.mistake("stem_relu_before_bn",
                         nets.relu_before_bn(stem_ops) + (*pool, *blocks, *head)),
            nets.mistake("stem_no_relu", stem_ops[:2] + (*pool, *blocks, *head)),
        ]
    return accepted, mistakes
