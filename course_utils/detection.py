"""A YOLO-style detector's bookkeeping: IoU, non-maximum suppression, target encoding, decoding.

Layout used throughout (YOLOv2/v3 style, one feature map): the head predicts, for every image,
anchor and grid cell, `5 + C` numbers, stored as a tensor of shape (B, A, H, W, 5 + C):

    [tx, ty, tw, th, to, class logits c_0 ... c_{C-1}]

    box centre  cx = (sigmoid(tx) + j) * stride,  cy = (sigmoid(ty) + i) * stride   (cell i, j)
    box size    w  = anchor_w * exp(tw),          h  = anchor_h * exp(th)          (pixels)
    objectness  sigmoid(to): "is there an object whose centre falls in this cell?"
    class       softmax(c): which class, given that there is one

Boxes are (x1, y1, x2, y2) in pixels. `box_iou` and `nms` are short hand-written versions of
`torchvision.ops.box_iou` / `torchvision.ops.nms`, for reading; the decoder uses torchvision's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

__all__ = ["box_iou", "collate_detection", "decode_yolo", "draw_boxes", "encode_yolo_targets",
           "nms", "precision_recall", "target_to_logits", "yolo_loss"]


def _check_boxes(boxes: torch.Tensor, name: str) -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (N, 4), not {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x1, y1, x2, y2; got {tuple(boxes.shape)}")


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every box in boxes1 (N, 4) with every box in boxes2 (M, 4): an (N, M) matrix."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2) by broadcasting
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)  # no overlap -> width or height 0
    intersection = wh[..., 0] * wh[..., 1]
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    Repeatedly keep the best remaining box and drop every box overlapping it by more than
    `iou_threshold` (same rule and order as torchvision.ops.nms).
    """
    _check_boxes(boxes, "boxes")
    if scores.shape != (len(boxes),):
        raise ValueError(f"scores must have shape ({len(boxes)},), got {tuple(scores.shape)}")
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    keep = []
    while len(order):
        best = order[0]
        keep.append(best)
        order = order[1:][iou[best, order[1:]] <= iou_threshold]
    return torch.stack(keep) if keep else torch.empty(0, dtype=torch.long)


def _check_prediction(pred: torch.Tensor, anchors: torch.Tensor) -> None:
    if pred.dim() != 5 or pred.shape[-1] < 6:
        raise ValueError(f"expected predictions of shape (B, A, H, W, 5 + C), got {tuple(pred.shape)}")
    if anchors.shape != (pred.shape[1], 2):
        raise ValueError(f"anchors must have shape ({pred.shape[1]}, 2) for {pred.shape[1]} anchors, "
                         f"got {tuple(anchors.shape)}")


def decode_yolo(pred: torch.Tensor, anchors, stride: float, conf_threshold: float = 0.5,
                iou_threshold: float = 0.5, image_size: tuple[int, int] | None = None,
                max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Raw head output (B, A, H, W, 5 + C) -> per image {"boxes", "scores", "labels"}.

    score = objectness x class probability; boxes below `conf_threshold` are dropped, then
    class-wise NMS removes duplicates. `image_size` (height, width) clips boxes to the image.
    """
    anchors = torch.as_tensor(anchors, dtype=pred.dtype, device=pred.device)
    _check_prediction(pred, anchors)
    _, _, h, w, _ = pred.shape
    i, j = torch.meshgrid(torch.arange(h, device=pred.device), torch.arange(w, device=pred.device),
                          indexing="ij")
    cx = (pred[..., 0].sigmoid() + j) * stride  # (B, A, H, W): j, i broadcast over B and A
    cy = (pred[..., 1].sigmoid() + i) * stride
    bw = anchors[:, 0].view(1, -1, 1, 1) * pred[..., 2].clamp(max=10).exp()
    bh = anchors[:, 1].view(1, -1, 1, 1) * pred[..., 3].clamp(max=10).exp()
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
    if image_size is not None:
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, image_size[1])
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, image_size[0])
    class_prob, labels = pred[..., 5:].softmax(-1).max(-1)
    scores = pred[..., 4].sigmoid() * class_prob

    results = []
    for b in range(pred.shape[0]):
        keep = scores[b] >= conf_threshold
        bx, sc, lb = boxes[b][keep], scores[b][keep], labels[b][keep]
        kept = batched_nms(bx, sc, lb, iou_threshold)[:max_detections]
        results.append({"boxes": bx[kept], "scores": sc[kept], "labels": lb[kept]})
    return results


def _wh_iou(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """IoU of boxes and anchors as if they shared a centre: (N, 2) x (A, 2) -> (N, A)."""
    inter = torch.min(wh[:, None], anchors[None]).prod(-1)
    return inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)


def encode_yolo_targets(targets: list[dict[str, torch.Tensor]], anchors, stride: float,
                        grid_size: tuple[int, int], num_classes: int) -> torch.Tensor:
    """Ground-truth boxes -> a tensor laid out like the predictions, (B, A, H, W, 5 + C).

    Each box goes to the cell that contains its centre and to the anchor whose shape matches it
    best (IoU of centred boxes). There it stores the centre offset within the cell (in [0, 1),
    compared with sigmoid(tx), sigmoid(ty)), log(w / anchor_w), log(h / anchor_h), objectness 1
    and a one-hot class. All other cells have objectness 0. If two boxes claim the same cell and
    anchor, the later one wins (as in YOLOv2/v3).
    """
    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    h, w = grid_size
    out = torch.zeros(len(targets), len(anchors), h, w, 5 + num_classes)
    for b, target in enumerate(targets):
        boxes, labels = target["boxes"].float(), target["labels"]
        if len(boxes) == 0:
            continue
        _check_boxes(boxes, "target boxes")
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must be in [0, {num_classes}), got {labels.tolist()}")
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
        cell = centre.floor().long()
        cell[:, 0].clamp_(0, w - 1)
        cell[:, 1].clamp_(0, h - 1)
        best = _wh_iou(wh, anchors).argmax(1)
        for k in range(len(boxes)):
            a, j, i = best[k], cell[k, 0], cell[k, 1]
            out[b, a, i, j, 0:2] = (centre[k] - cell[k]).clamp(0, 1 - 1e-4)
            out[b, a, i, j, 2:4] = torch.log(wh[k] / anchors[a])
            out[b, a, i, j, 4] = 1.0
            out[b, a, i, j, 5:] = 0.0
            out[b, a, i, j, 5 + labels[k]] = 1.0
    return out


def yolo_loss(pred: torch.Tensor, target: torch.Tensor, noobj_weight: float = 0.5,
              box_weight: float = 5.0) -> tuple[torch.Tensor, dict[str, float]]:
    """A compact YOLO loss: objectness BCE everywhere, box and class terms where objects are.

    Box centres use MSE between sigmoid(tx, ty) and the target offsets, sizes use MSE in log
    space, classes use cross-entropy. Empty cells far outnumber full ones, hence noobj_weight.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must match")
    positive = target[..., 4] > 0.5
    bce = F.binary_cross_entropy_with_logits(pred[..., 4], target[..., 4], reduction="none")
    obj = bce[positive].sum() + noobj_weight * bce[~positive].sum()
    n = max(int(positive.sum()), 1)
    p, t = pred[positive], target[positive]
    box = (F.mse_loss(p[:, :2].sigmoid(), t[:, :2], reduction="sum")
           + F.mse_loss(p[:, 2:4], t[:, 2:4], reduction="sum"))
    cls = (F.cross_entropy(p[:, 5:], t[:, 5:].argmax(-1), reduction="sum") if len(p)
           else pred.sum() * 0)
    total = (obj + box_weight * box + cls) / n
    parts = {"objectness": obj.item() / n, "box": box.item() / n, "class": cls.item() / n}
    return total, parts


def precision_recall(detections: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
                     iou_threshold: float = 0.5) -> tuple[float, float]:
    """Precision and recall of detections over a set of images at one IoU threshold.

    A detection is correct when it has the right label and IoU >= iou_threshold with a
    ground-truth box not already claimed by a higher-scoring detection (greedy, as in VOC/COCO).
    """
    if len(detections) != len(targets):
        raise ValueError(f"{len(detections)} detection lists for {len(targets)} images")
    correct = found = truth = 0
    for det, target in zip(detections, targets, strict=True):
        found += len(det["boxes"])
        truth += len(target["boxes"])
        if not len(det["boxes"]) or not len(target["boxes"]):
            continue
        iou = box_iou(det["boxes"].float(), target["boxes"].float())
        iou[det["labels"][:, None] != target["labels"][None, :]] = 0  # wrong class never matches
        claimed = torch.zeros(len(target["boxes"]), dtype=torch.bool)
        for k in det["scores"].argsort(descending=True):
            candidates = iou[k].masked_fill(claimed, 0)
            best = candidates.argmax()
            if candidates[best] >= iou_threshold:
                claimed[best] = True
                correct += 1
    precision = correct / found if found else 0.0
    recall = correct / truth if truth else 0.0
    return precision, recall


def collate_detection(batch):
    """DataLoader collate for (image, label, target) items: stack images, keep targets a list.

    Images hold different numbers of boxes, so their targets cannot be stacked into one tensor.
    """
    images = torch.stack([item[0] for item in batch])
    return images, [item[-1] for item in batch]


def draw_boxes(ax, image: torch.Tensor, boxes: torch.Tensor, labels=None, scores=None,
               class_names=None, color: str = "yellow", title: str | None = None):
    """Show a (3, H, W) image in [0, 1] on a matplotlib axis with its boxes and captions."""
    from matplotlib.patches import Rectangle

    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        # imshow puts pixel centres at integers, so pixel edges sit at -0.5
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                               edgecolor=color, linewidth=1.5))
        caption = []
        if labels is not None:
            label = int(labels[k])
            caption.append(class_names[label] if class_names else str(label))
        if scores is not None:
            caption.append(f"{float(scores[k]):.2f}")
        if caption:
            ax.text(x1 - 0.5, y1 - 1, " ".join(caption), color="black", fontsize=7,
                    bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "linewidth": 0})
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def target_to_logits(target: torch.Tensor, confidence: float = 0.999) -> torch.Tensor:
    """The raw output a perfect head would produce for an encoded target (for round-trip checks).

    Inverts the decoder's squashing: logit of the centre offsets, logit(confidence) for
    objectness and for the true class (logit(1 - confidence) elsewhere); sizes are already logs.
    """
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    sure = math.log(confidence / (1 - confidence))
    out = target.clone()
    out[..., :2] = torch.logit(target[..., :2].clamp(1e-4, 1 - 1e-4))
    out[..., 4:] = torch.where(target[..., 4:] > 0.5, sure, -sure)
    return out
