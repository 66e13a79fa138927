"""Quality of intermediate outputs against the pixel ground truth: CAMs and pseudo labels.

What WSSS papers report for their intermediate steps (docs/method.md, stages 1b, 2, 3
and 6), scored with the same confusion matrix as segmentation (nsrom.metrics).
The ground truth is used here only to score, never to choose classes: CAMs are
read for the image-level labels of the split (``DataLayout.labels_for``).
Images without a ground-truth mask are not scored (results say how many);
a split with none is a :class:`DataError`.

* CAM / OA-CAM folders (``<id>_<c>.png``, 0-based class c): the background
  score is a constant threshold ``thr``; a pixel's label is the argmax over
  ``[thr, cam_c / 255 for each present class c]`` (ties to the lower index, so
  ``cam == thr`` is background). mIoU for each ``thr`` of a sweep; the result is
  the best one, with the whole curve.
* Label folders (``<id>.png``, 0 background, k+1, 255 ignore): mIoU over the
  pixels the labels do not ignore, and the share of ignored pixels.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from .cam import class_map_name, resize_to_image
from .classes import IGNORE_INDEX, values_outside_classes
from .data import DataLayout
from .error_kinds import describe, error_kinds, far_background
from .errors import ConfigError, DataError
from .images import read_grey, read_label
from .metrics import confusion_matrix, format_table, scores
from .parallel import parallel_map

DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Background-score thresholds swept for CAMs: 0.05, 0.10, ..., 0.95."""
CAM_LEVELS = 256
"""CAM PNGs are 8-bit: a pixel's top score takes one of these values (v / 255)."""


def _read_gt(layout: DataLayout, image_id: str, num_classes: int) -> np.ndarray:
    path = layout.mask_path(image_id)
    gt = read_label(path, "ground-truth mask")
    if (bad := values_outside_classes(gt, num_classes)):
        raise DataError(f"ground-truth mask {path} holds values {bad} outside 0..{num_classes} and {IGNORE_INDEX}")
    return gt


def scored_ids(layout: DataLayout, split: str) -> tuple[list[str], int]:
    """The ids of ``split`` that have a mask, and how many do not; DataError when none has one."""
    ids = layout.ids(split)
    with_mask = layout.ids_with_masks(split)
    if not with_mask:
        raise DataError(
            f"no image of split {split} has a ground-truth mask (<id>.png in "
            f"{' or '.join(str(d) for d in layout.mask_dirs)}): nothing to score"
        )
    return with_mask, len(ids) - len(with_mask)


def _check_shape(array: np.ndarray, path: Path, gt: np.ndarray, gt_path: Path, hint: str = "") -> None:
    if array.shape != gt.shape:
        raise DataError(
            f"sizes differ: {path} is {array.shape[1]}x{array.shape[0]} (WxH), "
            f"its ground truth {gt_path} is {gt.shape[1]}x{gt.shape[0]}{hint}"
        )


RESIZE_HINT = ("; maps kept at another size than the image, such as stage 1's accumulated maps (accu_att), "
               "are scored with --resize-maps (resized to the image as the export does)")
"""Added to the size error of a map (not of a label): how tools/eval_labels.py scores such maps."""


def cam_top_scores(cams: dict[int, np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the label of the best present class (``c + 1``) and its 8-bit score.

    ``cams`` maps 0-based classes to uint8 maps; ties go to the lower class.
    Without classes every pixel gets label 0 and score 0 (always background).
    """
    if not cams:
        return np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    classes = sorted(cams)
    stack = np.stack([np.asarray(cams[c], dtype=np.int64) for c in classes])
    top = stack.argmax(axis=0)
    return np.asarray(classes, dtype=np.int64)[top] + 1, np.take_along_axis(stack, top[None], 0)[0]


def cam_histogram(gt: np.ndarray, top_label: np.ndarray, top_score: np.ndarray, n: int) -> np.ndarray:
    """``(n, n, 256)`` counts of (ground truth g, best class label k, its score v) over valid pixels."""
    gt = np.asarray(gt, dtype=np.int64).ravel()
    valid = gt < n
    index = (gt[valid] * n + top_label.ravel()[valid]) * CAM_LEVELS + top_score.ravel()[valid]
    return np.bincount(index, minlength=n * n * CAM_LEVELS).reshape(n, n, CAM_LEVELS)


def levels_above(threshold: float) -> np.ndarray:
    """Bool over the 256 CAM levels v: True where ``v / 255 > threshold`` (the pixel takes its best class)."""
    return np.arange(CAM_LEVELS) / 255.0 > threshold


def confusion_at_threshold(histogram: np.ndarray, threshold: float) -> np.ndarray:
    """Confusion matrix of the CAM labels at one background threshold, from :func:`cam_histogram`.

    A pixel is its best class when ``v / 255 > threshold`` (:func:`levels_above`), else background (0).
    """
    above = levels_above(threshold)
    matrix = histogram[:, :, above].sum(axis=2)
    matrix[:, 0] += histogram[:, :, ~above].sum(axis=(1, 2))
    return matrix


def _cam_image(
    args: tuple[str, list[int]], layout: DataLayout, cam_dir: Path, n: int, resize: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`cam_histogram` of one image, the 256-bin histogram of its far background's top scores
    (:func:`~nsrom.error_kinds.far_background`) and how many of its CAM files are missing."""
    image_id, classes = args
    gt = _read_gt(layout, image_id, n - 1)
    cams, missing = {}, 0
    for c in classes:
        path = cam_dir / class_map_name(image_id, c)
        if not path.is_file():
            missing += 1
            continue
        cams[c] = read_grey(path, "CAM")
        if resize and cams[c].shape != gt.shape:
            cams[c] = resize_to_image(cams[c], *gt.shape)
        _check_shape(cams[c], path, gt, layout.mask_path(image_id), "" if resize else RESIZE_HINT)
    top_label, top_score = cam_top_scores(cams, gt.shape)
    far = np.bincount(top_score[far_background(gt, n)], minlength=CAM_LEVELS)
    return cam_histogram(gt, top_label, top_score, n), far, missing


def evaluate_cams(
    layout: DataLayout,
    split: str,
    cam_dir: str | Path,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    workers: int = 1,
    resize: bool = False,
) -> dict:
    """mIoU of a CAM / OA-CAM folder at the best background threshold of a sweep.

    With ``resize``, maps of another size than their mask are first resized to
    it as the export does (bicubic): the accumulated maps of stage 1, kept at
    CAM resolution, can then be scored like the exported maps.

    Returns ``miou`` (fraction), ``best_threshold``, ``curve`` (``"thr" -> miou``),
    ``class_iou`` (by class name), ``scores`` (nsrom.metrics.scores at the best
    threshold), ``num_images`` (scored), ``num_without_mask`` (images of the
    split without ground truth, not scored), ``missing_maps`` (present
    classes whose CAM file is absent; scored as all-zero maps) and
    ``error_kinds`` (:func:`nsrom.error_kinds.error_kinds` at the best threshold).
    """
    thresholds = sorted(float(t) for t in thresholds)
    if not thresholds or not all(0.0 <= t < 1.0 for t in thresholds):
        raise ConfigError(f"CAM thresholds must lie in [0, 1), got {thresholds}")
    cam_dir = Path(cam_dir)
    if not cam_dir.is_dir():
        raise DataError(f"CAM folder not found: {cam_dir}")
    names = layout.class_names()
    n = len(names)
    ids, without_mask = scored_ids(layout, split)
    image_labels = layout.labels_for(ids)
    for path in sorted(cam_dir.glob("*_*.png")):  # a folder numbered from 1 would score as missing maps
        cls = path.stem.rpartition("_")[2]
        if cls.isascii() and cls.isdigit() and int(cls) >= n - 1:
            raise DataError(f"{path} names class {cls}, but the classes are 0..{n - 2} (0-based: <id>_0.png is "
                            f"{names[1]!r}); maps numbered from 1 need renaming")
    job = functools.partial(_cam_image, layout=layout, cam_dir=cam_dir, n=n, resize=resize)
    histogram = np.zeros((n, n, CAM_LEVELS), dtype=np.int64)
    far_scores = np.zeros(CAM_LEVELS, dtype=np.int64)
    missing = 0
    for hist, far, miss in parallel_map(job, list(image_labels.items()), workers=workers,
                                        desc=f"eval CAMs {cam_dir.name}"):
        histogram += hist
        far_scores += far
        missing += miss
    if missing == sum(len(c) for c in image_labels.values()) and missing:
        raise DataError(f"no CAM of {split} found in {cam_dir} (expected <id>_<class>.png, 0-based class)")
    confusions = [confusion_at_threshold(histogram, t) for t in thresholds]
    results = [scores(confusion, names) for confusion in confusions]
    curve = {f"{t:g}": r["Mean IoU"] for t, r in zip(thresholds, results)}
    best = int(np.argmax([r["Mean IoU"] for r in results]))  # first best: the lowest threshold
    far_labelled = int(far_scores[levels_above(thresholds[best])].sum())
    return {
        "kind": "cams", "dir": str(cam_dir), "split": split, "num_images": len(image_labels),
        "num_without_mask": without_mask, "missing_maps": missing, "miou": results[best]["Mean IoU"],
        "best_threshold": thresholds[best], "curve": curve, "class_iou": results[best]["Class IoU"],
        "scores": results[best],
        "error_kinds": error_kinds(confusions[best], far_labelled),
    }


def _label_image(
    image_id: str, layout: DataLayout, label_dir: Path, n: int
) -> tuple[str, tuple[np.ndarray, int, int, int, int] | None]:
    """``(id, (confusion, valid pixels, ignored valid pixels, far background labelled with a class,
    ignored object pixels))``, or ``(id, None)`` without a label."""
    path = label_dir / f"{image_id}.png"
    if not path.is_file():
        return image_id, None
    label = read_label(path, "label")
    if (bad := values_outside_classes(label, n - 1)):
        raise DataError(f"label {path} holds values {bad} outside 0..{n - 1} and {IGNORE_INDEX}")
    gt = _read_gt(layout, image_id, n - 1)
    _check_shape(label, path, gt, layout.mask_path(image_id))
    valid = gt < n
    ignored = label == IGNORE_INDEX
    far_labelled = far_background(gt, n) & (label >= 1) & (label < n)
    objects_ignored = (gt >= 1) & valid & ignored
    return image_id, (confusion_matrix(gt, label, n), int(valid.sum()), int((valid & ignored).sum()),
                      int(far_labelled.sum()), int(objects_ignored.sum()))


def evaluate_labels(layout: DataLayout, split: str, label_dir: str | Path, workers: int = 1) -> dict:
    """mIoU of a pseudo-label folder over the pixels it does not ignore.

    Returns ``miou`` (fraction), ``class_iou`` (by class name), ``scores``
    (nsrom.metrics.scores), ``ignored_fraction`` (share of the pixels with a
    valid ground truth that the labels ignore), ``num_images`` (scored),
    ``num_without_mask`` (images of the split without ground truth, not scored),
    ``missing`` (ids with a mask but no label file; not scored) and
    ``error_kinds`` (:func:`nsrom.error_kinds.error_kinds`, ignored object pixels included).
    """
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise DataError(f"label folder not found: {label_dir}")
    names = layout.class_names()
    n = len(names)
    ids, without_mask = scored_ids(layout, split)
    matrix = np.zeros((n, n), dtype=np.int64)
    valid_pixels = ignored_pixels = far_labelled = objects_ignored = 0
    job = functools.partial(_label_image, layout=layout, label_dir=label_dir, n=n)
    outcomes = dict(parallel_map(job, ids, workers=workers, desc=f"eval labels {label_dir.name}"))
    missing = [i for i in ids if outcomes[i] is None]
    if len(missing) == len(ids):
        raise DataError(f"no label of {split} found in {label_dir} (expected <id>.png)")
    for outcome in outcomes.values():
        if outcome is not None:
            matrix += outcome[0]
            valid_pixels += outcome[1]
            ignored_pixels += outcome[2]
            far_labelled += outcome[3]
            objects_ignored += outcome[4]
    result = scores(matrix, names)
    return {
        "kind": "labels", "dir": str(label_dir), "split": split, "num_images": len(ids) - len(missing),
        "num_without_mask": without_mask, "missing": missing, "miou": result["Mean IoU"],
        "ignored_fraction": ignored_pixels / valid_pixels if valid_pixels else 0.0,
        "class_iou": result["Class IoU"], "scores": result,
        "error_kinds": error_kinds(matrix, far_labelled, objects_ignored),
    }


def report(result: dict) -> str:
    """A printable table of one :func:`evaluate_cams` / :func:`evaluate_labels` result."""
    lines = [format_table(result["scores"], f"{result['kind']} {result['dir']} ({result['split']}, "
                                            f"{result['num_images']} images)")]
    if result["kind"] == "cams":
        lines.append(f"{'best background threshold':<22}  {result['best_threshold']:g}")
        lines.append("threshold -> mIoU (%): " + ", ".join(f"{t}: {100 * v:.2f}" for t, v in result["curve"].items()))
        if result["missing_maps"]:
            lines.append(f"{result['missing_maps']} CAM files missing (scored as zero maps)")
    else:
        lines.append(f"{'Ignored pixels (%)':<22}  {100 * result['ignored_fraction']:6.2f}")
        if result["missing"]:
            lines.append(f"{len(result['missing'])} label files missing (not scored): {', '.join(result['missing'][:10])}")
    if "error_kinds" in result:
        lines.append(describe(result["error_kinds"]))
    if result.get("num_without_mask"):
        lines.append(f"{result['num_without_mask']} images of {result['split']} have no ground-truth mask (not scored)")
    return "\n".join(lines)
