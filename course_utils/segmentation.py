"""Scores for semantic segmentation: per-class IoU and Dice from a confusion matrix.

For one class, with P the predicted pixels and T the true pixels of that class:

    IoU  = |P ∩ T| / |P ∪ T|            (Jaccard index)
    Dice = 2 |P ∩ T| / (|P| + |T|)      (F1 score of the pixel classification)

Dice = 2 IoU / (1 + IoU), so Dice >= IoU, with equality only at 0 and 1. A class that appears
in neither the prediction nor the target has no score (NaN) and is left out of the means.
"""

from __future__ import annotations

import torch

__all__ = ["confusion_matrix", "dice_per_class", "iou_per_class", "segmentation_scores"]


def _check(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("pred and target must be tensors of class indices")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the "
                         "same shape (pass class indices, e.g. logits.argmax(1), not logits)")
    if pred.is_floating_point() or target.is_floating_point():
        raise TypeError("pred and target must hold integer class indices, not floats")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, not {num_classes}")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} has class indices outside [0, {num_classes})")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    _check(pred, target, num_classes)
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def _from_confusion(cm: torch.Tensor, dice: bool) -> torch.Tensor:
    cm = cm.double()
    intersection = cm.diag()
    true_pixels, predicted_pixels = cm.sum(1), cm.sum(0)
    if dice:
        denominator = true_pixels + predicted_pixels
        score = 2 * intersection / denominator
    else:
        denominator = true_pixels + predicted_pixels - intersection
        score = intersection / denominator
    return torch.where(denominator > 0, score, torch.full_like(score, float("nan")))


def iou_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IoU of each class over all pixels of the batch; NaN where a class is absent from both."""
    return _from_confusion(confusion_matrix(pred, target, num_classes), dice=False)


def dice_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice of each class over all pixels of the batch; NaN where a class is absent from both."""
    return _from_confusion(confusion_matrix(pred, target, num_classes), dice=True)


def segmentation_scores(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                        background: int | None = 0) -> dict[str, float]:
    """Summary scores: mean IoU / Dice over the classes present, foreground IoU / Dice, pixel accuracy.

    The means leave out `background` (class 0 by default; None keeps it). "Foreground" merges
    every non-background class into one: did the model find *where* the objects are, whatever
    their class?
    """
    cm = confusion_matrix(pred, target, num_classes)
    keep = torch.ones(num_classes, dtype=torch.bool)
    if background is not None:
        keep[background] = False
    iou, dice = _from_confusion(cm, dice=False)[keep], _from_confusion(cm, dice=True)[keep]
    scores = {"mean_iou": float(iou.nanmean()), "mean_dice": float(dice.nanmean()),
              "pixel_accuracy": float(cm.diag().sum() / cm.sum().clamp(min=1))}
    if background is not None:
        fg_cm = confusion_matrix((pred != background).long(), (target != background).long(), 2)
        scores["foreground_iou"] = float(_from_confusion(fg_cm, dice=False)[1])
        scores["foreground_dice"] = float(_from_confusion(fg_cm, dice=True)[1])
    return scores
