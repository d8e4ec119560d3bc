"""eval_mode(model): model.eval() for a block, each submodule's own train/eval flag back after.

`model.train()` afterwards would not do: it would also switch on a layer the student froze
(e.g. a BatchNorm kept in eval mode while fine-tuning). fit(), evaluate() and profile_model()
all use this one helper.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with `model.eval()`; restore every submodule's `training` flag after,
    also when the block raises."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
