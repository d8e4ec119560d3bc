"""Images/s of the textbook training loop and of course_utils.train.fit, side by side.

Model: lesson 03's Exercise 1 ResNet, `CifarResNet(num_blocks=6)`, taken from the solution
notebook. Data: CIFAR-10 through `load_dataset` (offline: the `shapes` stand-in of the same
shape), a seeded subset read once into tensors, so the loops are measured and not the image
decoding. Every loop trains its own copy of the same initialisation with Adam at the same lr,
on the same batches (loaders from `make_loaders` with the same seed), the learning rate
annealed to zero along a cosine: test accuracy then settles by the last epoch instead of
swinging by several points from one epoch to the next, so the two loops' accuracies can be
compared (`--schedule none` for a constant lr):

- plain: the loop the seeds teach (DataLoader -> .to(device) -> zero_grad, forward, backward,
  step, `.item()` for the running loss and accuracy every batch);
- fit: `fit()` on the same DataLoader, with its defaults (its default optimizer is built
  here with `default_optimizer` only to attach the same schedule);
- fit + DeviceLoader: `fit()` on the same tensors held by a DeviceLoader (no DataLoader).

Only training is timed; test accuracy is measured afterwards with the same `evaluate()`.
On a CUDA machine the defaults become CIFAR-10's full size with batch 128 (Exercise 1 in
FULL mode) and `--augment` / `--compile` switch on the GPU extras of the fast path.

    python -m benchmarks.train_speed [--epochs 3] [--train 4096] [--batch 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.data import load_dataset, make_loaders
from course_utils.device import get_device
from course_utils.device_loader import DeviceLoader
from course_utils.train import default_optimizer, evaluate, fit

from .notebook_code import exercise1_resnet

TARGET = {"cpu": 1.15, "cuda": 1.0}  # the images/s ratio, fit vs plain
UVA_SECONDS = 6.2  # s/epoch of CIFAR-10 (50,000 images), the GPU anchor


def plain_epoch(model, loader, optimizer, scheduler, criterion, device) -> None:
    """One epoch of the textbook loop, as the seeds teach it (plus the per-step schedule)."""
    model.train()
    running_loss, correct, total = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running_loss += loss.item()
        correct += (outputs.argmax(1) == labels).sum().item()
        total += labels.size(0)


def tensors(dataset, n: int | None, seed: int) -> TensorDataset:
    """A seeded subset of `dataset` (all of it for None), read once into two tensors."""
    if n is not None and n < len(dataset):
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
        dataset = torch.utils.data.Subset(dataset, order[:n].tolist())
    images, labels = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    return TensorDataset(images, labels)


def loaders(train: TensorDataset, test: TensorDataset, batch: int):
    """Fresh loaders with the same seed: every loop sees the same batches in the same order."""
    with contextlib.redirect_stdout(io.StringIO()):
        return make_loaders(train, test, batch_size=batch, seed=0, train_subset=None,
                            test_subset=None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(kind: str, make_model, train, test, args, device) -> dict:
    """Train one fresh model with loop `kind`; return seconds per epoch and test accuracy."""
    torch.manual_seed(0)
    model = make_model().to(device)
    train_loader, test_loader = loaders(train, test, args.batch)
    if kind == "fit + DeviceLoader":
        train_loader = DeviceLoader(*train.tensors, batch_size=args.batch, augment=args.augment,
                                    drop_last=True, device=device)
    if kind == "plain":
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)  # as the seeds build it
    else:
        optimizer = default_optimizer(model, args.lr, device)
    steps = args.epochs * len(train_loader)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
                 if args.schedule == "cosine" else torch.optim.lr_scheduler.LambdaLR(
                     optimizer, lambda step: 1.0))
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    if kind == "plain":
        criterion = nn.CrossEntropyLoss()
        seconds = []
        for _ in range(args.epochs):
            plain_epoch(model, train_loader, optimizer, scheduler, criterion, device)
            synchronize(device)
            seconds.append(time.perf_counter() - start - sum(seconds))
    else:
        history = fit(model, train_loader, epochs=args.epochs, optimizer=optimizer,
                      scheduler=scheduler, scheduler_per_step=True, device=device,
                      progress=False, mode="quick", compile=args.compile)
        synchronize(device)
        seconds = history.seconds
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    images = args.epochs * (len(train) // args.batch) * args.batch  # drop_last: full batches
    _, accuracy = evaluate(model, test_loader, device)
    return {"kind": kind, "seconds": seconds, "images_per_s": images / total,
            "images_per_cpu_s": images / cpu, "accuracy": accuracy}


def parse(argv):
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=None if cuda else 4096,
                        help="training images (default: 4,096 on CPU, all 50,000 on CUDA)")
    parser.add_argument("--test", type=int, default=None if cuda else 4096)
    parser.add_argument("--batch", type=int, default=128 if cuda else 32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=["cosine", "none"], default="cosine")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=1,
                        help="run plain and fit this many times, alternating which goes first")
    parser.add_argument("--no-device-loader", action="store_true",
                        help="skip the fit + DeviceLoader row")
    parser.add_argument("--augment", action="store_true",
                        help="DeviceLoader: random crop + flip on the device (changes accuracy)")
    parser.add_argument("--compile", action="store_true", help="fit(compile=True)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    device = get_device(verbose=False)
    name = device.type if device.type != "cuda" else torch.cuda.get_device_name(0)
    print(f"device: {name}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    train_set, test_set = load_dataset("cifar10"), load_dataset("cifar10", train=False)
    train, test = tensors(train_set, args.train, 0), tensors(test_set, args.test, 1)
    Net = exercise1_resnet()  # noqa: N806 - a class
    params = sum(p.numel() for p in Net(num_blocks=6).parameters())
    print(f"model: lesson 03 Exercise 1 CifarResNet(num_blocks=6), {params:,} params; "
          f"{len(train):,} training images (in memory), {len(test):,} test images, batch "
          f"{args.batch}, {args.epochs} epoch(s), Adam lr {args.lr:g} "
          f"({'cosine to 0' if args.schedule == 'cosine' else 'constant'})")

    kinds = ["plain", "fit"]
    results = {kind: [] for kind in kinds}
    for i in range(args.repeat):  # alternate the order so a change in machine load hits both
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            results[kind].append(run(kind, lambda: Net(num_blocks=6), train, test, args, device))
    if not args.no_device_loader:
        kinds.append("fit + DeviceLoader")
        results[kinds[-1]] = [run(kinds[-1], lambda: Net(num_blocks=6), train, test, args,
                                  device)]

    # images per CPU-second: the work each loop does, robust to other programs taking the
    # cores (waiting OpenMP threads sleep with OMP_WAIT_POLICY=PASSIVE, as `make` sets it).
    print(f"{'loop':<20}{'images/s':>10}{'vs plain':>10}{'s/epoch':>9}{'img/CPU-s':>11}"
          f"{'vs plain':>10}{'test acc':>10}")
    rate, work = ({kind: sum(r[key] for r in rs) / len(rs) for kind, rs in results.items()}
                  for key in ("images_per_s", "images_per_cpu_s"))
    for kind in kinds:
        last = results[kind][-1]
        per_epoch = " ".join(f"{s:.1f}" for s in last["seconds"])
        print(f"{kind:<20}{rate[kind]:>10.1f}{rate[kind] / rate['plain']:>9.2f}x"
              f"{sum(last['seconds']) / args.epochs:>9.2f}{work[kind]:>11.1f}"
              f"{work[kind] / work['plain']:>9.2f}x{last['accuracy']:>10.1%}"
              f"   (epochs: {per_epoch} s)")
    ratio = rate["fit"] / rate["plain"]
    target = TARGET.get(device.type, 1.0)
    gap = 100 * abs(results["fit"][-1]["accuracy"] - results["plain"][-1]["accuracy"])
    print(f"fit vs plain: {ratio:.2f}x images/s (target >= {target:.2f}x: "
          f"{'met' if ratio >= target else 'MISSED'}); test accuracy {gap:.1f} points apart "
          f"(target <= 1: {'met' if gap <= 1 else 'MISSED'})")
    if device.type == "cuda" and not args.no_device_loader:
        fastest = min(results["fit + DeviceLoader"][-1]["seconds"])
        print(f"fit + DeviceLoader: fastest epoch {fastest:.2f} s for {len(train):,} images "
              f"(anchor: the UvA course's CIFAR ResNet, 272 K params, about {UVA_SECONDS} s per "
              "epoch on an RTX 3090)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
