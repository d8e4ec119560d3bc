"""The training loop every lesson uses: fit() and evaluate(), returning a plottable History.

Faster than the textbook loop without being harder to read (benchmarks/train_speed.py
measures it side by side):

- conv nets train in channels-last memory format, on the CPU too: a training step of the
  lessons' CIFAR-sized conv nets took 1.1-1.7x less CPU time with oneDNN's NHWC kernels than
  in the default NCHW layout (1.4x for lesson 03's CifarResNet; a small ViT: no change).
  A model whose forward needs the default layout (e.g. `x.view(n, -1)` after a convolution)
  is detected before the first step and trained as it is;
- the default optimizer is Adam with fused=True (see default_optimizer);
- losses and accuracies are summed on the device and read once per epoch (no `.item()` sync
  per batch for the progress bar);
- on CUDA, automatic mixed precision (bfloat16 where supported); `compile=True` adds
  torch.compile. With a DeviceLoader (course_utils.device_loader) the data stays on the GPU.

torch.set_num_threads() is respected: fit never changes the number of threads. In GRADE mode
it stops each epoch after a few steps, so autograding a notebook takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .device import get_device
from .mode import Mode, get_mode, loader_settings


@dataclass
class History:
    """Per-epoch metrics of one training run (accuracies in [0, 1])."""

    name: str = "model"
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)  # per step, when tracked

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def __str__(self) -> str:
        if not self.epochs:
            return f"{self.name}: not trained yet"
        text = (f"{self.name}: {self.epochs} epoch(s), train loss {self.train_loss[-1]:.3f}, "
                f"train acc {self.train_acc[-1]:.1%}")
        if self.test_acc:
            text += f", test acc {self.test_acc[-1]:.1%}"
        return text + f", {sum(self.seconds):.1f} s"


def _batch_to(batch, device: torch.device, channels_last: bool):
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise TypeError("each batch must be (images, labels, ...) — got "
                        f"{type(batch).__name__}")
    images, labels = batch[0], batch[1]
    images = images.to(device, non_blocking=True)
    if channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def _forward(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """model(images), with the batch's shape in the message when the model rejects it."""
    try:
        logits = model(images)
    except NotImplementedError:
        raise  # an unfinished exercise: its own message says the most
    except RuntimeError as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"the model failed on a batch of images of shape "
                         f"{tuple(images.shape)}: {cause}") from exc
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(labels):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape (batch, classes) = "
                         f"({len(labels)}, C) for a batch of {len(labels)} images, got {got}")
    return logits


@contextmanager
def _eval_mode(model: nn.Module):
    """model.eval() inside, each module's own train/eval flag restored after (frozen BN stays)."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def _uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _runs_channels_last(model: nn.Module, images: torch.Tensor) -> bool:
    """Whether the model's forward accepts channels-last input (one image, eval, no grad).

    Eval mode changes no BatchNorm statistics and draws no dropout masks, so the probe leaves
    training exactly as it would have been.
    """
    try:
        with _eval_mode(model), torch.no_grad():
            model(images[:1].contiguous(memory_format=torch.channels_last))
    except Exception:  # noqa: BLE001 - e.g. x.view(n, -1) on NHWC memory; the real step reports
        return False
    return True


def _autocast(device: torch.device, amp: bool):
    if not amp or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _grad_source(model: nn.Module, track) -> Callable[[], torch.Tensor | None]:
    if callable(track):
        return lambda: track(model).grad
    params = dict(model.named_parameters())
    if track not in params:
        names = ", ".join(list(params)[:6])
        raise ValueError(f"track_grad_norm={track!r} is not a parameter of the model "
                         f"(its first parameters are: {names}, ...)")
    return lambda: params[track].grad


def default_optimizer(model: nn.Module, lr: float = 1e-3,
                      device: torch.device | None = None) -> torch.optim.Optimizer:
    """What fit() trains with when given no optimizer: Adam(lr), fused on CPU and CUDA.

    Fused: one kernel updates every parameter, instead of about ten small operations per
    parameter tensor (the same update rule).
    """
    device = device or next(model.parameters(), torch.empty(0)).device
    return torch.optim.Adam(model.parameters(), lr=lr,
                            fused=device.type in ("cpu", "cuda") or None)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device | None = None,
             loss_fn: nn.Module | None = None, max_steps: int | None = None) -> tuple[float, float]:
    """Mean loss and accuracy of `model` on `loader`."""
    device = device or next(model.parameters()).device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    with _eval_mode(model):
        for step, batch in enumerate(loader):
            if max_steps is not None and step >= max_steps:
                break
            images, labels = _batch_to(batch, device, channels_last=False)
            logits = _forward(model, images, labels)
            total_loss += loss_fn(logits.float(), labels) * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)
    if seen == 0:
        raise ValueError("the evaluation loader yielded no batches")
    return total_loss.item() / seen, correct.item() / seen


def fit(model: nn.Module, train_loader, test_loader=None, epochs: int = 1,
        optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
        loss_fn: nn.Module | None = None, device: torch.device | None = None,
        scheduler=None, scheduler_per_step: bool = False, grad_clip: float | None = None,
        track_grad_norm: str | Callable | None = None, max_steps_per_epoch: int | None = None,
        progress: bool | None = None, name: str | None = None, amp: bool = True,
        channels_last: bool | None = None, compile: bool = False,
        mode: Mode | str | None = None) -> History:
    """Train `model` and return its History.

    optimizer defaults to default_optimizer(model, lr) (fused Adam). `scheduler` steps once per epoch (or per batch with
    `scheduler_per_step=True`). `track_grad_norm` names a parameter (e.g. "conv1.weight") whose
    gradient L2 norm is recorded every step. `max_steps_per_epoch` defaults to the mode's cap.
    `channels_last` defaults to "yes for conv nets whose forward accepts it" on CPU and CUDA;
    `amp` (mixed precision) applies on CUDA; `compile=True` runs the model through
    torch.compile (worth it for long GPU runs: compiling takes a while).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, not {epochs}")
    current = get_mode(mode)
    device = device or get_device(verbose=False)
    probe_layout = channels_last is None  # checked on the first batch, before any step
    if channels_last is None:
        channels_last = device.type in ("cpu", "cuda") and _uses_conv(model)
    if max_steps_per_epoch is None:
        max_steps_per_epoch = loader_settings(current).max_steps_per_epoch
    progress = current is not Mode.GRADE if progress is None else progress
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = optimizer or default_optimizer(model, lr, device)
    forward_model = torch.compile(model) if compile else model
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    grad_of = _grad_source(model, track_grad_norm) if track_grad_norm is not None else None
    use_scaler = amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    history = History(name=name or type(model).__name__)

    try:
        steps = len(train_loader)
    except TypeError:
        steps = None
    if steps == 0:
        raise ValueError("the training loader yielded no batches")
    if steps is not None and max_steps_per_epoch is not None:
        steps = min(steps, max_steps_per_epoch)

    try:
        for epoch in range(epochs):
            start = time.perf_counter()
            model.train()
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            bar = tqdm(total=steps, desc=f"{history.name} epoch {epoch + 1}/{epochs}",
                       disable=not progress, leave=False)
            for step, batch in enumerate(train_loader):
                if max_steps_per_epoch is not None and step >= max_steps_per_epoch:
                    break
                images, labels = _batch_to(batch, device, channels_last)
                if probe_layout and channels_last:
                    probe_layout = False
                    if not _runs_channels_last(model, images):
                        channels_last = False
                        model.to(memory_format=torch.contiguous_format)
                        images = images.contiguous()
                with _autocast(device, amp):
                    logits = _forward(forward_model, images, labels)
                    loss = loss_fn(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if grad_of is not None:
                    grad = grad_of()
                    history.grad_norms.append(float(grad.norm()) if grad is not None else 0.0)
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if scheduler is not None and scheduler_per_step:
                    scheduler.step()
                total_loss += loss.detach() * len(labels)
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += len(labels)
                bar.update(1)
            bar.close()
            if seen == 0:
                raise ValueError("the training loader yielded no batches")
            if scheduler is not None and not scheduler_per_step:
                scheduler.step()
            history.train_loss.append(total_loss.item() / seen)
            history.train_acc.append(correct.item() / seen)
            if test_loader is not None:
                test_loss, test_acc = evaluate(forward_model, test_loader, device, loss_fn)
                history.test_loss.append(test_loss)
                history.test_acc.append(test_acc)
            history.seconds.append(time.perf_counter() - start)
            if progress:
                line = (f"{history.name} epoch {epoch + 1}/{epochs}: "
                        f"train loss {history.train_loss[-1]:.3f}, acc {history.train_acc[-1]:.1%}")
                if test_loader is not None:
                    line += f" | test acc {history.test_acc[-1]:.1%}"
                print(line + f" ({history.seconds[-1]:.1f} s)")
    finally:  # the caller gets the model back in the default layout, even after an error
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    return history
