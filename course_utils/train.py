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

import numbers
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice

import torch
from torch import nn
from tqdm.auto import tqdm

from .device import get_device
from .eval_mode import eval_mode
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


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class FitSettings:
    """fit()'s plain settings, checked once: a bad value is a clear error before any training.

    fit() builds it from its keywords, with the mode's defaults already filled in
    (`max_steps_per_epoch`, `progress`). `channels_last=None` means "yes for conv nets on CPU
    and CUDA whose forward accepts it".
    """

    epochs: int = 1
    lr: float = 1e-3
    grad_clip: float | None = None
    max_steps_per_epoch: int | None = None  # None: the whole loader every epoch
    scheduler_per_step: bool = False
    track_grad_norm: str | Callable[[nn.Module], nn.Parameter] | None = None
    progress: bool = True
    amp: bool = True
    channels_last: bool | None = None
    compile: bool = False

    def __post_init__(self):
        if not _is_int(self.epochs) or self.epochs < 0:
            raise ValueError(f"epochs must be a whole number >= 0, not {self.epochs!r}")
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a number > 0, not {self.lr!r}")
        if self.grad_clip is not None and (not _is_number(self.grad_clip) or self.grad_clip <= 0):
            raise ValueError(f"grad_clip must be a number > 0 (or None), not {self.grad_clip!r}")
        steps = self.max_steps_per_epoch
        if steps is not None and (not _is_int(steps) or steps < 1):
            raise ValueError(f"max_steps_per_epoch must be a whole number >= 1 (or None), "
                             f"not {steps!r}")
        track = self.track_grad_norm
        if not (track is None or isinstance(track, str) or callable(track)):
            raise ValueError(f"track_grad_norm must be a parameter's name (e.g. 'conv1.weight'), "
                             f"a function model -> parameter, or None, not {track!r}")


def _batch_to(batch, device: torch.device):
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise TypeError("each batch must be (images, labels, ...) — got "
                        f"{type(batch).__name__}")
    return batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)


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


def _prefers_channels_last(model: nn.Module, device: torch.device) -> bool:
    """Conv nets on CPU and CUDA: NHWC kernels are faster there (see the module docstring)."""
    return (device.type in ("cpu", "cuda")
            and any(isinstance(m, nn.Conv2d) for m in model.modules()))


def _keep_channels_last(model: nn.Module, images: torch.Tensor) -> bool:
    """Whether the model's forward accepts channels-last input; if not, back to the default layout.

    The probe runs one image in eval mode without gradients: it changes no BatchNorm statistics
    and draws no dropout masks, so training goes on exactly as it would have.
    """
    try:
        with eval_mode(model), torch.no_grad():
            model(images[:1].contiguous(memory_format=torch.channels_last))
    except Exception:  # noqa: BLE001 - e.g. x.view(n, -1) on NHWC memory
        model.to(memory_format=torch.contiguous_format)
        return False
    return True


def _autocast(device: torch.device, amp: bool):
    """Mixed precision on CUDA (bfloat16 where supported, else float16); nothing elsewhere."""
    if not amp or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """Loss scaling for float16, whose small gradients would underflow; disabled otherwise.

    A disabled scaler passes everything through, so the step has no "if scaler" branches.
    """
    float16 = amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=float16)


def _grad_norm_tracker(model: nn.Module, track, norms: list[float]) -> Callable[[], None] | None:
    """A function appending the L2 norm of one parameter's gradient to `norms` (None: untracked).

    `track` names the parameter ("conv1.weight") or is a function model -> parameter, called
    every step; a parameter without a gradient counts 0.
    """
    if track is None:
        return None
    params = dict(model.named_parameters())
    if isinstance(track, str) and track not in params:
        names = ", ".join(list(params)[:6])
        raise ValueError(f"track_grad_norm={track!r} is not a parameter of the model "
                         f"(its first parameters are: {names}, ...)")

    def record():
        grad = (params[track] if isinstance(track, str) else track(model)).grad
        norms.append(float(grad.norm()) if grad is not None else 0.0)

    return record


def _train_step(model, images, labels, optimizer, loss_fn, autocast, scaler,
                grad_clip: float | None, track_grad: Callable[[], None] | None):
    """One optimisation step; returns the loss and logits detached (summed up per epoch)."""
    with autocast:
        logits = _forward(model, images, labels)
        loss = loss_fn(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # the true gradients, for their norm and for clipping
    if track_grad is not None:
        track_grad()  # before clipping: the gradient the loss produced
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach()


def _steps_per_epoch(loader, max_steps: int | None) -> int | None:
    """For the progress bar: len(loader) capped at max_steps (None for a loader without len)."""
    try:
        steps = len(loader)
    except TypeError:
        return None
    if steps == 0:
        raise ValueError("the training loader yielded no batches")
    return steps if max_steps is None else min(steps, max_steps)


def _epoch_line(history: History, epochs: int) -> str:
    line = (f"{history.name} epoch {history.epochs}/{epochs}: train loss "
            f"{history.train_loss[-1]:.3f}, acc {history.train_acc[-1]:.1%}")
    if history.test_acc:
        line += f" | test acc {history.test_acc[-1]:.1%}"
    return line + f" ({history.seconds[-1]:.1f} s)"


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
    with eval_mode(model):
        for batch in islice(loader, max_steps):
            images, labels = _batch_to(batch, device)
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

    optimizer defaults to default_optimizer(model, lr) (fused Adam). `scheduler` steps once per
    epoch (or per batch with `scheduler_per_step=True`). `track_grad_norm` names a parameter
    (e.g. "conv1.weight") whose gradient L2 norm is recorded every step. `max_steps_per_epoch`
    defaults to the mode's cap. `channels_last` defaults to "yes for conv nets whose forward
    accepts it" on CPU and CUDA; `amp` (mixed precision) applies on CUDA; `compile=True` runs
    the model through torch.compile (worth it for long GPU runs: compiling takes a while).
    The plain settings are checked up front (FitSettings).
    """
    current = get_mode(mode)  # GRADE: a few steps per epoch, no progress bar
    cfg = FitSettings(
        epochs=epochs, lr=lr, grad_clip=grad_clip, scheduler_per_step=scheduler_per_step,
        track_grad_norm=track_grad_norm, amp=amp, channels_last=channels_last, compile=compile,
        max_steps_per_epoch=(loader_settings(current).max_steps_per_epoch
                             if max_steps_per_epoch is None else max_steps_per_epoch),
        progress=current is not Mode.GRADE if progress is None else progress)
    device = device or get_device(verbose=False)
    model.to(device)
    history = History(name=name or type(model).__name__)
    track_grad = _grad_norm_tracker(model, cfg.track_grad_norm, history.grad_norms)
    steps = _steps_per_epoch(train_loader, cfg.max_steps_per_epoch)
    # Channels-last as asked; by default for conv nets, until the first batch shows that the
    # forward needs the default layout (probe: see _keep_channels_last).
    probe = cfg.channels_last is None and _prefers_channels_last(model, device)
    channels_last = probe or bool(cfg.channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = optimizer or default_optimizer(model, cfg.lr, device)
    forward_model = torch.compile(model) if cfg.compile else model
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    autocast, scaler = _autocast(device, cfg.amp), _grad_scaler(device, cfg.amp)

    try:
        for epoch in range(cfg.epochs):
            start = time.perf_counter()
            model.train()
            # Summed on the device and read once per epoch: no .item() sync per batch.
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            with tqdm(total=steps, desc=f"{history.name} epoch {epoch + 1}/{cfg.epochs}",
                      disable=not cfg.progress, leave=False) as bar:
                for batch in islice(train_loader, cfg.max_steps_per_epoch):
                    images, labels = _batch_to(batch, device)
                    if probe:
                        probe = False
                        channels_last = _keep_channels_last(model, images)
                    if channels_last and images.dim() == 4:
                        images = images.contiguous(memory_format=torch.channels_last)
                    loss, logits = _train_step(forward_model, images, labels, optimizer,
                                               loss_fn, autocast, scaler, cfg.grad_clip,
                                               track_grad)
                    if scheduler is not None and cfg.scheduler_per_step:
                        scheduler.step()
                    total_loss += loss * len(labels)
                    correct += (logits.argmax(1) == labels).sum()
                    seen += len(labels)
                    bar.update(1)
            if seen == 0:
                raise ValueError("the training loader yielded no batches")
            if scheduler is not None and not cfg.scheduler_per_step:
                scheduler.step()
            history.train_loss.append(total_loss.item() / seen)
            history.train_acc.append(correct.item() / seen)
            if test_loader is not None:
                test_loss, test_acc = evaluate(forward_model, test_loader, device, loss_fn)
                history.test_loss.append(test_loss)
                history.test_acc.append(test_acc)
            history.seconds.append(time.perf_counter() - start)
            if cfg.progress:
                print(_epoch_line(history, cfg.epochs))
    finally:  # the caller gets the model back in the default layout, even after an error
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    return history
