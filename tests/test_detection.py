"""course_utils.detection: hand-written IoU/NMS against torchvision, YOLO encode/decode/loss."""

from __future__ import annotations

import matplotlib
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader

from course_utils.data import ShapesDataset
from course_utils.detection import (
    box_iou,
    collate_detection,
    decode_yolo,
    draw_boxes,
    encode_yolo_targets,
    nms,
    precision_recall,
    target_to_logits,
    yolo_loss,
)

matplotlib.use("Agg")


def random_boxes(n, size=64.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_box_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0],
                      [2.0, 0.0, 4.0, 2.0]])
    # overlap 1 of union 4 + 4 - 1; identical; disjoint; touching edges only
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 7, 1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("seed", range(3))
def test_box_iou_matches_torchvision(seed):
    b1, b2 = random_boxes(40, seed=seed), random_boxes(25, seed=seed + 10)
    ours = box_iou(b1, b2)
    assert ours.shape == (40, 25)
    torch.testing.assert_close(ours, torchvision.ops.box_iou(b1, b2))


@pytest.mark.parametrize("bad", [torch.zeros(3, 5), torch.zeros(4), [[0, 0, 1, 1]]])
def test_box_iou_rejects_bad_shapes(bad):
    with pytest.raises((ValueError, TypeError), match="boxes1"):
        box_iou(bad, torch.zeros(1, 4))


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", range(3))
def test_nms_matches_torchvision(threshold, seed):
    boxes = random_boxes(120, seed=seed)
    scores = torch.rand(120, generator=torch.Generator().manual_seed(seed + 100))
    assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    scores = torch.tensor([0.6, 0.9, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    with pytest.raises(ValueError, match="scores must have shape"):
        nms(boxes, torch.rand(2), 0.5)


def _shape_targets(n=32, size=64, seed=3):
    data = ShapesDataset(n=n, seed=seed, image_size=size, with_targets=True, max_objects=3)
    items = [data[i] for i in range(n)]
    return torch.stack([it[0] for it in items]), [it[2] for it in items]


ANCHORS = torch.tensor([[10.0, 10.0], [16.0, 16.0], [24.0, 24.0]])


def test_encode_then_decode_recovers_the_ground_truth():
    _, targets = _shape_targets()
    encoded = encode_yolo_targets(targets, ANCHORS, stride=8, grid_size=(8, 8), num_classes=10)
    assert encoded.shape == (32, 3, 8, 8, 15)
    decoded = decode_yolo(target_to_logits(encoded), ANCHORS, stride=8, conf_threshold=0.5,
                          iou_threshold=0.99)
    recovered = 0
    for found, truth in zip(decoded, targets, strict=True):
        # each found box is one ground-truth box with the same label, up to float rounding
        for box, label in zip(found["boxes"], found["labels"], strict=True):
            match = (truth["boxes"] - box).abs().max(1).values < 1e-2
            assert match.any() and label in truth["labels"][match]
        recovered += len(found["boxes"])
    total = sum(len(t["boxes"]) for t in targets)
    assert int(encoded[..., 4].sum()) == recovered  # only same-cell-and-anchor collisions are lost
    assert recovered >= 0.9 * total


def test_encode_puts_a_box_in_the_cell_of_its_centre_and_best_anchor():
    target = [{"boxes": torch.tensor([[20.0, 4.0, 36.0, 20.0]]), "labels": torch.tensor([7])}]
    encoded = encode_yolo_targets(target, ANCHORS, stride=8, grid_size=(8, 8), num_classes=10)
    a, i, j = (encoded[0, ..., 4] == 1).nonzero()[0].tolist()
    assert (a, i, j) == (1, 1, 3)  # 16 x 16 box -> anchor 16; centre (28, 12) -> row 1, column 3
    torch.testing.assert_close(encoded[0, a, i, j, :4], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    assert encoded[0, a, i, j, 5:].argmax() == 7 and encoded[..., 4].sum() == 1
    with pytest.raises(ValueError, match="labels must be in"):
        encode_yolo_targets([{"boxes": target[0]["boxes"], "labels": torch.tensor([10])}],
                            ANCHORS, 8, (8, 8), 10)


def test_decode_output_format_and_guarantees():
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 4, 4, 15) * 3
    out = decode_yolo(pred, ANCHORS, stride=16, conf_threshold=0.2, iou_threshold=0.4,
                      image_size=(64, 64))
    assert len(out) == 2
    for det in out:
        assert set(det) == {"boxes", "scores", "labels"}
        assert det["boxes"].shape == (len(det["scores"]), 4)
        assert (det["scores"] >= 0.2).all() and (det["scores"][:-1] >= det["scores"][1:]).all()
        assert det["boxes"].min() >= 0 and det["boxes"].max() <= 64
        for label in det["labels"].unique():
            same = det["boxes"][det["labels"] == label]
            iou = box_iou(same, same) - torch.eye(len(same))
            assert (iou <= 0.4 + 1e-6).all(), "NMS leaves no same-class pair above the threshold"


def test_decode_rejects_wrong_layouts():
    with pytest.raises(ValueError, match=r"\(B, A, H, W, 5 \+ C\)"):
        decode_yolo(torch.zeros(2, 45, 4, 4), ANCHORS, 8)
    with pytest.raises(ValueError, match="anchors must have shape"):
        decode_yolo(torch.zeros(2, 2, 4, 4, 15), ANCHORS, 8)


def test_yolo_loss_is_small_for_perfect_logits_and_trains():
    _, targets = _shape_targets(n=8)
    encoded = encode_yolo_targets(targets, ANCHORS, 8, (8, 8), 10)
    perfect, _ = yolo_loss(target_to_logits(encoded, confidence=0.9999), encoded)
    torch.manual_seed(0)
    pred = torch.randn_like(encoded, requires_grad=True)
    random_loss, parts = yolo_loss(pred, encoded)
    assert perfect < 0.05 < random_loss
    assert set(parts) == {"objectness", "box", "class"}
    random_loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="must match"):
        yolo_loss(pred[:1], encoded)


def test_collate_keeps_variable_numbers_of_boxes():
    data = ShapesDataset(n=6, seed=1, image_size=48, with_targets=True, max_objects=3)
    images, targets = next(iter(DataLoader(data, batch_size=6, collate_fn=collate_detection)))
    assert images.shape == (6, 3, 48, 48) and len(targets) == 6
    assert [len(t["boxes"]) for t in targets] == [len(data[i][2]["boxes"]) for i in range(6)]


def test_draw_boxes_draws_one_rectangle_per_box():
    import matplotlib.pyplot as plt

    images, targets = _shape_targets(n=1)
    fig, ax = plt.subplots()
    draw_boxes(ax, images[0], targets[0]["boxes"], targets[0]["labels"],
               class_names=ShapesDataset.classes, title="truth")
    assert len(ax.patches) == len(targets[0]["boxes"]) and len(ax.texts) == len(ax.patches)
    plt.close(fig)


def test_precision_recall_matches_greedily_by_score():
    truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 2])}]
    dets = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30],
                                    [40, 40, 50, 50]]),
             "scores": torch.tensor([0.9, 0.95, 0.8, 0.7]),
             "labels": torch.tensor([1, 1, 3, 1])}]
    # the 0.95 box claims truth 0 (IoU 0.81), the 0.9 duplicate finds it taken, the 0.8 box has
    # the wrong class, the 0.7 box overlaps nothing: 1 correct of 4 found, 1 of 2 true boxes.
    assert precision_recall(dets, truth) == (0.25, 0.5)
    assert precision_recall(dets, truth, iou_threshold=0.9) == (0.25, 0.5)  # 1.0 IoU duplicate
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}]
    assert precision_recall(empty, truth) == (0.0, 0.0)
    with pytest.raises(ValueError, match="detection lists"):
        precision_recall(dets + dets, truth)
