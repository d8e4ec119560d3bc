"""The references as :class:`Variant` lists: the correct one first, then known mistakes.

Each mistake is the correct functional reference with one switch flipped (see
``_reference``), described in the words a student would use for their own code, with why it
matters. When a student's module reproduces one of them exactly (after weight copying), the
check names that mistake.
"""

from __future__ import annotations

import functools

from . import _reference as ref
from ._behaviour import Variant
from ._weights import Slot, Unit

# --- BasicBlock -----------------------------------------------------------------------------


def _block_slots(cin: int, cout: int, shortcut: str | None, use_bn: bool = True
                 ) -> tuple[Slot, ...]:
    slots = [Slot("conv1", "conv", (cout, cin, 3, 3), False, "the first 3×3 conv")]
    if use_bn:
        slots.append(Slot("bn1", "bn", (cout,), label="the BatchNorm after the first conv"))
    slots.append(Slot("conv2", "conv", (cout, cout, 3, 3), False, "the second 3×3 conv"))
    if use_bn:
        slots.append(Slot("bn2", "bn", (cout,), label="the BatchNorm after the second conv"))
    if shortcut is not None:
        k = 3 if shortcut == "3x3" else 1
        slots.append(Slot("down_conv", "conv", (cout, cin, k, k), False,
                          f"the shortcut's {k}×{k} conv"))
        if shortcut != "nobn":
            slots.append(Slot("down_bn", "bn", (cout,), label="the shortcut's BatchNorm"))
    return tuple(slots)


def basic_block_variants(cin: int, cout: int, stride: int) -> list[Variant]:
    needs_projection = stride != 1 or cin != cout
    proper = "bn" if needs_projection else None

    def v(key: str, mistake: str, why: str, shortcut: str | None = proper,
          use_bn: bool = True, short: str = "", **switches: object) -> Variant:
        forward = functools.partial(ref.basic_block, stride=stride, shortcut=shortcut,
                                    use_bn=use_bn, **switches)
        return Variant(key, _block_slots(cin, cout, shortcut, use_bn), forward, mistake, why,
                       short)

    variants = [
        v("correct", "", ""),
        v("no_skip", "there is no skip connection (the block's input is never added to the "
          "output)", "without `out += identity` this is just two stacked convolutions; the "
          "skip connection is what lets the gradient reach the early layers of a deep ResNet "
          "(dL/dx = dL/dH · (dF/dx + 1)).", shortcut=None, identity="none"),
        v("relu_before_add", "the ReLU comes before the addition (relu(bn2(conv2(out))) + "
          "identity) instead of after it", "the residual branch can then only add positive "
          "values, and the block's output is no longer rectified; the block computes "
          "relu(bn2(conv2(out)) + identity).", relu_before_add=True, final_relu=False),
        v("relu_before_and_after_add", "there is an extra ReLU before the addition", "the "
          "residual branch can then only add positive values (it can never lower a feature); "
          "the block computes relu(bn2(conv2(out)) + identity) with no ReLU before the '+'.",
          relu_before_add=True),
        v("no_final_relu", "the ReLU after the addition is missing", "torchvision's and the "
          "paper's BasicBlock end with relu(out + identity); without it the next block "
          "receives unrectified features.", final_relu=False),
        v("no_inner_relu", "the ReLU between the two convolutions (after bn1) is missing",
          "without it conv1 → BN → conv2 → BN is one linear map: the block loses its "
          "non-linearity.", inner_relu=False),
        v("relu_before_bn", "the first layer applies ReLU before BatchNorm (conv → ReLU → BN)",
          "the block uses conv → BN → ReLU, so BatchNorm normalises the convolution's output "
          "and ReLU acts on normalised values.", relu_before_bn=True),
        v("no_bn", "the block has no BatchNorm layers", "BatchNorm after each convolution is "
          "what keeps activations well scaled, so deep ResNets train with large learning "
          "rates.", shortcut="nobn" if needs_projection else None, use_bn=False),
        v("identity_after_conv1", "the skip connection adds the output of the first conv "
          "instead of the block's input x", "the shortcut must carry the block's input "
          "unchanged (identity = x before any layer) — that untouched path is what makes "
          "the block residual.", shortcut=None, identity="conv1"),
        v("identity_after_bn1", "the skip connection adds the output of conv1 + BN instead of "
          "the block's input x", "the shortcut must carry the block's input unchanged "
          "(identity = x before any layer).", shortcut=None, identity="bn1"),
        v("identity_after_relu1", "the skip connection adds the output of the first "
          "conv-BN-ReLU instead of the block's input x", "the shortcut must carry the block's "
          "input unchanged (identity = x before any layer).", shortcut=None, identity="relu1"),
    ]
    if stride != 1:
        variants.append(v("stride_on_conv2", "the stride is on the second conv instead of the "
                          "first", "torchvision's BasicBlock downsamples in conv1, so conv2 "
                          "already works on the smaller map (4× less compute for stride 2).",
                          stride_on_conv2=True))
    if needs_projection:
        variants += [
            v("shortcut_no_bn", "the shortcut has no BatchNorm", "the projected identity is then "
              "not normalised like the main path; torchvision's downsample is a 1×1 conv "
              "followed by BatchNorm.", shortcut="nobn"),
            v("shortcut_3x3", "the shortcut uses a 3×3 conv instead of a 1×1 conv", "the "
              "projection only has to match shapes: a 1×1 conv does that with 9× fewer "
              "parameters, as in torchvision.", shortcut="3x3"),
        ]
    else:
        variants.append(v("always_project", "it uses a projection shortcut (conv + BN) even "
                          "though the shapes match (same channels, stride 1)", "when shapes "
                          "match the shortcut must be the identity itself: it is free and keeps "
                          "a clean path for the gradient; torchvision projects only when the "
                          "stride or the channel count changes.", shortcut="bn",
                          short="a projection shortcut where the identity suffices"))
    return variants


def basic_block_params(cin: int, cout: int, stride: int) -> int:
    return basic_block_variants(cin, cout, stride)[0].nparams


# --- Squeeze-and-Excitation -----------------------------------------------------------------


def _se_slots(c: int, hidden: int, prefix: str = "") -> tuple[Slot, ...]:
    return (
        Slot(prefix + "fc1", "conv", (hidden, c, 1, 1), True,
             f"the first excitation layer ({c} → {hidden})"),
        Slot(prefix + "fc2", "conv", (c, hidden, 1, 1), True,
             f"the second excitation layer ({hidden} → {c})"),
    )


SE_MISTAKES: list[tuple[str, str, str, dict]] = [
    ("softmax_gate", "the gate is a softmax over the channels instead of a sigmoid",
     "softmax makes the channels compete (the scales sum to 1, so most are tiny); SE gates "
     "every channel independently with a sigmoid in (0, 1).", {"gate": "softmax"}),
    ("no_gate", "there is no sigmoid gate: the excitation's raw output scales the channels",
     "without the sigmoid the scales are unbounded and can be negative, flipping or blowing "
     "up feature maps; the sigmoid keeps each scale in (0, 1).", {"gate": "none"}),
    ("tanh_gate", "the gate is tanh instead of sigmoid", "tanh lies in (-1, 1): it can flip a "
     "channel's sign; SE scales each channel by a sigmoid in (0, 1).", {"gate": "tanh"}),
    ("relu_gate", "the gate is ReLU instead of sigmoid", "ReLU scales are unbounded and often "
     "exactly 0; SE scales each channel by a sigmoid in (0, 1).", {"gate": "relu"}),
    ("hardsigmoid_gate", "the gate is hardsigmoid (as in MobileNetV3) instead of sigmoid",
     "the SE block of this lesson (and of the SE paper) uses the sigmoid.",
     {"gate": "hardsigmoid"}),
    ("no_hidden_relu", "there is no ReLU between the two excitation layers", "without it the "
     "two layers collapse into a single linear map, so the excitation can't model non-linear "
     "interactions between channels.", {"hidden_relu": False}),
    ("max_pool", "the squeeze uses max pooling instead of global average pooling", "SE "
     "summarises each channel by its mean over all positions; a max reacts to a single pixel.",
     {"pool": "max"}),
    ("returns_gates", "forward returns the gates (the per-channel scales) instead of the input "
     "scaled by them", "the block must return x * scale, a feature map of x's shape, so it can "
     "sit inside a network.", {"combine": "gates"}),
    ("adds_gates", "the gates are added to the input instead of multiplying it", "SE "
     "recalibrates channels by scaling them (x * scale); adding a constant per channel only "
     "shifts them.", {"combine": "add"}),
    ("residual", "the block adds its input back: it returns x + x * s (a residual SE) instead "
     "of x * s", "SE is a gate, not a residual branch: x + x·s scales every channel by 1 + s, "
     "a factor between 1 and 2, so it can only amplify a channel, never suppress one. The skip "
     "connection of SE-ResNet belongs to the residual block around the SE block, not inside "
     "it.", {"combine": "residual"}),
    ("pool_over_channels", "the squeeze averages over the channels instead of over space "
     "(mean over dim 1 instead of dims 2 and 3)", "the squeeze must give one number per "
     "channel: the mean of that channel's feature map over its height and width.",
     {"pool": "channels"}),
    ("batch_statistics", "the squeeze also averages over the batch (dims 0, 2, 3), so every "
     "image gets the same gates", "SE recalibrates each image's channels from that image's "
     "own statistics; mixing the batch makes one image's output depend on the others.",
     {"pool": "batch"}),
]


def se_variants(c: int, reduction: int, units: list[Unit] | None = None) -> list[Variant]:
    hidden = c // reduction
    slots = _se_slots(c, hidden)
    variants = [Variant("correct", slots, ref.squeeze_excitation)]
    for key, mistake, why, switches in SE_MISTAKES:
        forward = functools.partial(ref.squeeze_excitation, **switches)
        variants.append(Variant(key, slots, forward, mistake, why))
    for width in _other_hidden_widths(c, hidden, units or []):
        mistake = (f"the hidden layer has {width} units; it should have channels // reduction"
                   f" = {c} // {reduction} = {hidden}")
        if width == reduction:
            mistake += " (you used `reduction` itself as the width)"
        variants.append(Variant("hidden_width", _se_slots(c, width), ref.squeeze_excitation,
                                mistake, "the reduction ratio sets the bottleneck: it keeps the "
                                "block cheap and forces it to summarise the channels.",
                                f"the hidden layer has {width} units instead of {hidden}"))
    return variants


def _other_hidden_widths(c: int, hidden: int, units: list[Unit]) -> list[int]:
    firsts = {u.matrix[0] for u in units if u.kind in ("conv", "linear") and u.matrix[1:] ==
              (c, 1, 1)}
    seconds = {u.matrix[1] for u in units if u.kind in ("conv", "linear") and
               u.matrix[0] == c and u.matrix[2:] == (1, 1)}
    return sorted(w for w in firsts & seconds if w != hidden)


def se_params(c: int, reduction: int) -> int:
    return se_variants(c, reduction)[0].nparams


# --- whole networks -------------------------------------------------------------------------
# Mistakes a network exercise can make whatever its layers: {key: (mistake, why)}. The texts
# may hold {slot} fields, which the message fills with the student's own layer names, and
# {format} fields, filled when the program is built (see ``_nets``).

LOGITS = ("F.cross_entropy and nn.CrossEntropyLoss apply log-softmax themselves and expect "
          "raw scores (logits).")
NET_MISTAKES: dict[str, tuple[str, str]] = {
    "softmax_output": (
        "forward returns probabilities (a softmax over the classes) instead of logits",
        LOGITS + " On probabilities they take the softmax a second time, of numbers squeezed "
        "into [0, 1]: the loss can hardly move, gradients shrink and training is slow and "
        "worse. Return the last Linear layer's output; apply softmax only to read "
        "probabilities."),
    "relu_on_logits": (
        "a ReLU is applied to the last Linear layer's output, so no logit can be negative",
        LOGITS + " A ReLU clips every negative score to 0, where its gradient is zero: a class "
        "can no longer be pushed below the others, and whole rows of logits can get stuck at "
        "0. The last Linear layer's output is the network's output."),
    "no_relu": (
        "there is no nonlinearity (ReLU) between the layers, so the network is linear end to "
        "end",
        "convolutions, BatchNorm, average pooling and Linear layers are all linear (affine) "
        "maps, and a chain of linear maps is one linear map however many layers it has: "
        "without a ReLU after each layer the network can only draw linear decision "
        "boundaries, and depth buys nothing."),
    "no_relu_pooled": (
        "there is no nonlinearity (activation) after the layers: apart from the pooling the "
        "network is linear end to end",
        "convolutions and Linear layers are linear maps, and a chain of linear maps is one "
        "linear map however many layers it has: without an activation after each layer "
        "depth buys (almost) nothing."),
    "no_fc_relu": (
        "there is no nonlinearity between the fully connected layers",
        "two Linear layers with nothing in between compute one Linear map (W2·W1·x): the "
        "extra layers add parameters but no expressive power."),
    "no_conv_relu": (
        "the convolutions have no activation after them (only the classifier has one)",
        "a convolution followed only by pooling and another convolution is (apart from the "
        "pooling) one bigger linear filter: the feature extractor loses the nonlinearity that "
        "makes stacking layers worthwhile."),
    "missing_relu": (
        "there is no nonlinearity between {a} and {b}",
        "two layers with nothing nonlinear between them compute a single linear map: the "
        "second layer adds cost but no expressive power."),
    "relu_before_bn": (
        "the layers apply ReLU before BatchNorm (conv → ReLU → BN) instead of conv → BN → ReLU",
        "the notebook's architecture normalises each convolution's output and then rectifies "
        "it; BatchNorm after the ReLU normalises values that are already clipped at 0, which "
        "is a different network from the one specified and from the ResNet it is compared "
        "with."),
    "no_bn": (
        "there is no BatchNorm after the convolutions",
        "the notebook's layers are conv → BatchNorm → ReLU, as in the ResNet this network is "
        "compared with: without BatchNorm the comparison measures BatchNorm, not skip "
        "connections (the lesson's own 'with / without BN' experiment removes BatchNorm "
        "itself, from both networks)."),
    "no_downsampling": (
        "the network never downsamples: every layer keeps the {size}×{size} map",
        "the first layer of stages 2 and 3 must have stride 2 (32×32 → 16×16 → 8×8): at full "
        "resolution stages 2 and 3 cost 4× and 16× the compute, and each layer still sees "
        "only a small part of the image."),
    "maxpool_downsampling": (
        "it downsamples with max-pooling instead of stride-2 convolutions",
        "the notebook's design (the paper's) downsamples with the stride of the first conv of "
        "stages 2 and 3, exactly like its ResNet twin; a pooling layer makes the plain net a "
        "different network from the one it is compared with."),
    "flatten_head": (
        "the classifier flattens the whole {c}×{h}×{w} feature map ({n:,} values) instead of "
        "averaging each channel over space (global average pooling, {c} values)",
        "global average pooling gives one number per channel, so the Linear layer needs "
        "{c}·num_classes weights instead of {n:,}·num_classes, works for any input size, and "
        "matches the design this network is compared with."),
    "stem_no_bn": (
        "the stem has no BatchNorm (conv → ReLU)",
        "every conv of the design, the stem's included, is followed by BatchNorm before its "
        "ReLU."),
    "stem_no_relu": (
        "the stem has no ReLU after its BatchNorm",
        "without it the stem's conv and the first block's first conv are one linear map; the "
        "stem is conv → BN → ReLU."),
    "stem_relu_before_bn": (
        "the stem applies ReLU before BatchNorm (conv → ReLU → BN)",
        "the stem is conv → BN → ReLU, like every layer of the residual blocks."),
}
