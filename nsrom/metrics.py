"""Segmentation scores from a confusion matrix: one implementation for all stages.

Used for segmentation test/crf (docs/method.md, stage 4), for pseudo-label and CAM
evaluation, and by the pipeline's results table. Pixels whose ground truth is
not a valid class (255) are excluded; so are pixels whose prediction is not a
valid class (an ignored pseudo-label pixel), whose share is reported apart.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n, n)`` int64 counts, rows = ground truth, columns = prediction.

    Only pixels where both ``gt`` and ``pred`` lie in ``0..n_classes-1`` count;
    the two must have the same shape (``ValueError`` otherwise).
    """
    if np.shape(gt) != np.shape(pred):  # a transposed mask of the same size must not be scored
        raise ValueError(f"ground truth and prediction differ in shape: {np.shape(gt)} vs {np.shape(pred)}")
    gt = np.asarray(gt).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    valid = (gt >= 0) & (gt < n_classes) & (pred >= 0) & (pred < n_classes)
    return np.bincount(n_classes * gt[valid] + pred[valid], minlength=n_classes**2).reshape(
        n_classes, n_classes
    )


class ConfusionAccumulator:
    """Sums confusion matrices over images; ``+`` merges two (parallel workers)."""

    def __init__(self, n_classes: int):
        self.n_classes = n_classes
        self.matrix = np.zeros((n_classes, n_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        self.matrix += confusion_matrix(gt, pred, self.n_classes)

    def __add__(self, other: "ConfusionAccumulator") -> "ConfusionAccumulator":
        out = ConfusionAccumulator(self.n_classes)
        out.matrix = self.matrix + other.matrix
        return out


def scores(matrix: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """Pixel accuracy, mean class accuracy, frequency-weighted IoU, mean IoU, per-class IoU and accuracy.

    Mean accuracy and mean IoU average over the classes present in the ground
    truth (row sum > 0). A class absent from the ground truth has IoU ``None``
    (JSON null) when it is never predicted either, else 0; its accuracy (the
    share of the class's pixels predicted as it) is always ``None``.
    Keys follow deeplab-pytorch's ``scores.json``.
    """
    hist = np.asarray(matrix, dtype=np.float64)
    n = hist.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}-class confusion matrix")
    tp = np.diag(hist)
    gt_count = hist.sum(axis=1)
    pred_count = hist.sum(axis=0)
    union = gt_count + pred_count - tp
    present = gt_count > 0
    total = hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(present, tp / gt_count, np.nan)
    freq = gt_count / total if total > 0 else np.zeros(n)
    return {
        "Pixel Accuracy": float(tp.sum() / total) if total > 0 else 0.0,
        "Mean Accuracy": float(acc[present].mean()) if present.any() else 0.0,
        "Frequency Weighted IoU": float((freq[present] * iou[present]).sum()),
        "Mean IoU": float(iou[present].mean()) if present.any() else 0.0,
        "Class IoU": {name: (None if np.isnan(v) else float(v)) for name, v in zip(names, iou)},
        "Class Accuracy": {name: (None if np.isnan(v) else float(v)) for name, v in zip(names, acc)},
    }


def format_table(result: dict, title: str = "") -> str:
    """Per-class IoU and the summary scores of :func:`scores` as a text table."""
    lines = [title] if title else []
    width = max([len(k) for k in result["Class IoU"]] + [22])
    lines.append(f"{'class':<{width}}  IoU (%)")
    lines.append("-" * (width + 9))
    for name, value in result["Class IoU"].items():
        lines.append(f"{name:<{width}}  {'   -' if value is None else f'{100 * value:6.2f}'}")
    lines.append("-" * (width + 9))
    for key in ("Pixel Accuracy", "Mean Accuracy", "Frequency Weighted IoU", "Mean IoU"):
        if key in result:
            lines.append(f"{key:<{width}}  {100 * result[key]:6.2f}")
    return "\n".join(lines)


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Average precision of ranking items by ``scores`` (highest first) against binary ``labels``.

    The sum, over the distinct scores from the highest down, of the recall gained at that
    score times the precision of all items scored at or above it (non-interpolated). Without
    ties this is the mean, over the positives, of the precision at each one; items of equal
    score count as one step, so the order the items are given in changes nothing (a
    classifier that scores every item alike gets the share of positives, not 1). None when no
    item is positive.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores for {labels.size} labels")
    if not labels.any():
        return None
    order = np.argsort(-scores, kind="stable")
    ranked, ranked_scores = labels[order], scores[order]
    last_of_score = np.r_[ranked_scores[1:] != ranked_scores[:-1], True]  # the end of each run of equal scores
    hits = np.cumsum(ranked)[last_of_score]
    seen = np.arange(1, ranked.size + 1)[last_of_score]
    recall_gain = np.diff(np.r_[0, hits]) / labels.sum()
    return float((recall_gain * hits / seen).sum())
