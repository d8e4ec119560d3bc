"""Parameters and GMACs of 12 torchvision models: documented, course_utils.profile, and thop.

The documented figures are torchvision's own (`weights.meta["_ops"]`, labelled GFLOPS but
really GMACs, and `num_params`), read from the weights metadata: nothing is downloaded. The
models are built on the meta device (shapes only), so the whole table takes seconds.

    python -m benchmarks.flops [--models resnet18,vit_b_16]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torchvision.models as tvm

from course_utils.profile import compare_counters

MODELS = ["alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "resnet152", "densenet121",
          "mobilenet_v2", "efficientnet_b0", "efficientnet_b7", "convnext_tiny", "vit_b_16"]



def build(name: str) -> torch.nn.Module:
    """The model on the meta device, as torchvision documents it."""
    with torch.device("meta"):
        if name == "googlenet":  # the documented figures exclude the auxiliary classifiers
            return tvm.googlenet(weights=None, aux_logits=False, init_weights=False)
        return tvm.get_model(name, weights=None)


def thop_blind_spots(model: torch.nn.Module) -> list[str]:
    """Module types holding parameters of their own that thop has no rule for.

    thop counts a module's parameters and MACs only through a rule for its exact type
    (`thop.profile.register_hooks`): anything else, subclasses included, counts as zero.
    """
    from thop.profile import register_hooks

    return sorted({type(m).__name__ for m in model.modules()
                   if type(m) not in register_hooks and any(True for _ in m.parameters(False))})


def row(name: str) -> dict:
    weights = tvm.get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    model = build(name)
    counts = compare_counters(model, (1, 3, size, size))
    return {"name": name, "size": size, "doc_params": weights.meta["num_params"],
            "doc_gmacs": weights.meta["_ops"], "blind": thop_blind_spots(model), **counts}


def flop_counter_traps() -> None:
    """What torch's FlopCounterMode alone reports for ViT-B/16 on real tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = tvm.vit_b_16(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    counts = {}
    for grad in (False, True):
        counter = FlopCounterMode(display=False)
        with torch.set_grad_enabled(grad), counter:
            model(x)
        counts[grad] = counter.get_total_flops() / 2e9
    print(f"torch FlopCounterMode alone on vit_b_16 (real CPU tensors): {counts[False]:.2f} "
          f"GMACs under no_grad (the fused MultiheadAttention fast path is not seen), "
          f"{counts[True]:.2f} with autograd on (the fused attention kernel's matmuls are not "
          "seen); course_utils.profile turns both fast paths off while counting.")


def error(value: float, reference: float) -> float:
    return 100 * (value - reference) / reference


def print_table(rows: list[dict]) -> None:
    print(f"{'model':<16}{'input':>6} | {'params (M): doc':>16}{'ours':>8}{'thop':>8} | "
          f"{'GMACs: doc':>11}{'ours':>8}{'err %':>7}{'thop':>8}{'err %':>8}")
    for r in rows:
        ours, thop = r["macs"] / 1e9, r["thop_macs"] / 1e9
        print(f"{r['name']:<16}{r['size']:>6} | {r['doc_params'] / 1e6:>16.2f}"
              f"{r['params'] / 1e6:>8.2f}{r['thop_params'] / 1e6:>8.2f} | {r['doc_gmacs']:>11.3f}"
              f"{ours:>8.3f}{error(ours, r['doc_gmacs']):>+7.2f}{thop:>8.3f}"
              f"{error(thop, r['doc_gmacs']):>+8.2f}")
    print("GMACs = 10^9 multiply-accumulates per image; FLOPs = 2 x MACs (torchvision's "
          "'GFLOPS' are GMACs).")
    print("Where thop differs, and why:")
    for r in rows:
        missed, macs_error = r["params"] - r["thop_params"], error(r["thop_macs"], r["macs"])
        if missed:
            print(f"  {r['name']}: thop counts nothing for modules it has no rule for "
                  f"({', '.join(r['blind'])}): {missed:,} parameters missed"
                  + (f", MACs {macs_error:+.1f} % (attention)." if macs_error < -1 else "."))
        if macs_error > 1:
            print(f"  {r['name']}: thop adds the element-wise work of BatchNorm and "
                  f"average pooling ({macs_error:+.1f} %); torchvision "
                  "counts the MACs of convolutions, linear layers and matmuls only.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated torchvision model names (default: all 12)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [row(name) for name in args.models.split(",")]
    print_table(rows)
    if "vit_b_16" in args.models.split(","):
        flop_counter_traps()
    worst = max(abs(error(r["macs"] / 1e9, r["doc_gmacs"])) for r in rows)
    exact = all(r["params"] == r["doc_params"] for r in rows)
    seconds = time.perf_counter() - start
    print(f"course_utils.profile: largest GMAC error {worst:.2f} % (budget 1 %), parameter "
          f"counts {'all exact' if exact else 'NOT all exact'} ({seconds:.1f} s)")
    return 0 if worst <= 1 and exact else 1


if __name__ == "__main__":
    sys.exit(main())
