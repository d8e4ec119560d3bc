"""eval_mode(model) / train_mode(model): a mode for a block, each submodule's own flag back after.

`model.train()` afterwards would not do: it would also switch on a layer the student froze
(e.g. a BatchNorm kept in eval mode while fine-tuning). fit(), evaluate(), profile_model()
and course_utils.compare all use these helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from torch import nn


@contextmanager
def train_mode(model: nn.Module, training: bool = True) -> Iterator[nn.Module]:
    """Run the block with `model.train(training)`; restore every submodule's `training` flag
    after, also when the block raises."""
    flags = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def eval_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Run the block with `model.eval()`; restore every submodule's flag after."""
    return train_mode(model, False)
