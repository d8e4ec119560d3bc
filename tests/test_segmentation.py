"""course_utils.segmentation: IoU and Dice by hand, against scikit-learn, and their edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from course_utils.segmentation import (
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    segmentation_scores,
)


def test_by_hand():
    target = torch.tensor([[0, 1, 1], [0, 1, 1]])
    pred = torch.tensor([[0, 1, 1], [1, 1, 0]])
    # class 1: true 4 pixels, predicted 4, overlap 3 -> IoU 3/5, Dice 6/8
    # class 0: true 2, predicted 2, overlap 1 -> IoU 1/3, Dice 2/4
    torch.testing.assert_close(iou_per_class(pred, target, 2), torch.tensor([1 / 3, 3 / 5],
                               dtype=torch.float64))
    torch.testing.assert_close(dice_per_class(pred, target, 2), torch.tensor([0.5, 0.75],
                               dtype=torch.float64))
    assert confusion_matrix(pred, target, 2).tolist() == [[1, 1], [1, 3]]


def test_matches_scikit_learn_and_dice_formula():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 16, 16), generator=g)
    pred = torch.where(torch.rand(4, 16, 16, generator=g) < 0.6, target,
                       torch.randint(0, 5, (4, 16, 16), generator=g))
    iou, dice = iou_per_class(pred, target, 5), dice_per_class(pred, target, 5)
    y, p = target.flatten().numpy(), pred.flatten().numpy()
    torch.testing.assert_close(iou, torch.tensor(jaccard_score(y, p, average=None)))
    torch.testing.assert_close(dice, torch.tensor(f1_score(y, p, average=None)))
    torch.testing.assert_close(dice, 2 * iou / (1 + iou))


def test_absent_classes_are_nan_and_left_out_of_means():
    target = torch.tensor([[0, 0, 2, 2]])
    pred = torch.tensor([[0, 0, 2, 2]])
    iou = iou_per_class(pred, target, 4)
    assert iou[0] == 1 and iou[2] == 1 and math.isnan(iou[1]) and math.isnan(iou[3])
    scores = segmentation_scores(pred, target, 4)
    assert scores == {"mean_iou": 1.0, "mean_dice": 1.0, "pixel_accuracy": 1.0,
                      "foreground_iou": 1.0, "foreground_dice": 1.0}


def test_foreground_ignores_the_class():
    target = torch.tensor([[0, 1, 1, 0]])
    pred = torch.tensor([[0, 2, 2, 0]])  # right place, wrong class
    scores = segmentation_scores(pred, target, 3)
    assert scores["foreground_iou"] == 1.0 and scores["mean_iou"] == 0.0
    assert scores["pixel_accuracy"] == 0.5
    assert "foreground_iou" not in segmentation_scores(pred, target, 3, background=None)


@pytest.mark.parametrize("pred, target, error, words", [
    (torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), ValueError,
     "same shape"),
    (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), TypeError, "integer class indices"),
    (torch.full((2, 2), 5), torch.zeros(2, 2, dtype=torch.long), ValueError, "outside"),
])
def test_rejects_bad_input(pred, target, error, words):
    with pytest.raises(error, match=words):
        iou_per_class(pred, target, 3)
