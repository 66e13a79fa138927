"""``crf`` of main.py and trainaug_pred.py (docs/method.md, stage 4, "crf"; stages 5 and 7): the
logits that ``test`` saved, upsampled to image size, softmax, the dense CRF, the argmax scored
(scores_crf.json, or scores_crf_rgb.json for the 8-bit RGB CRF input) and, when asked, written as
palette PNGs (stage 5). The CRF runs with pydensecrf in joblib processes or, with ``CRF.BACKEND``
torch, in batches in this process (on the GPU under ``auto``). Under ``torchrun`` each rank takes
its share of the images with its own ``-j`` workers or GPU; the confusion matrices are summed (gloo).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import joblib
import numpy as np
import torch
from addict import Dict
from torch.nn import functional as F
from tqdm import tqdm

from nsrom import distributed
from nsrom.errors import DataError
from nsrom.images import image_size, read_label, read_rgb, write_label
from nsrom.metrics import ConfusionAccumulator, confusion_matrix, scores
from nsrom.provenance import Producer, prepare_output_dir, read_record

from .data_config import class_names, data_layout, mean_bgr
from .datasets import split_ids
from .evaluate import LABEL_PATTERN, check_split_for, read_logits, report_scores, upsample_logits
from .utils.crf import BACKEND_TORCH, DenseCRF, wrapped_image
from .utils.paths import RunPaths

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrfJob:
    """Everything one worker needs for one image (picklable for joblib)."""

    image_id: str
    logit_path: Path
    image_path: Path
    gt_path: Path | None
    label_path: Path | None
    n_classes: int
    wrapped_mean_bgr: tuple[float, float, float] | None
    overwrite: bool


def class_probabilities(logits: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Softmax over classes of the logits upsampled to the image ``size``: the CRF's input (on the logits' device)."""
    return F.softmax(upsample_logits(logits, size), dim=0)


def crf_input_image(rgb: np.ndarray, wrapped_mean_bgr: tuple[float, float, float] | None) -> np.ndarray:
    """The 8-bit image the CRF sees: ``rgb``, or with ``wrapped_mean_bgr`` deeplab-pytorch's wrapped one."""
    return rgb if wrapped_mean_bgr is None else wrapped_image(rgb, wrapped_mean_bgr)


def crf_label(
    rgb: np.ndarray,
    logits: np.ndarray | torch.Tensor,
    postprocessor: DenseCRF,
    wrapped_mean_bgr: tuple[float, float, float] | None,
) -> np.ndarray:
    """CRF labels ``(H, W)`` uint8 of one image from its stride-8 logits ``(C, h, w)``.

    The logits are upsampled to image size, turned into probabilities and refined
    by the CRF, which sees ``rgb`` or, with ``wrapped_mean_bgr``, deeplab-pytorch's
    wrapped mean-subtracted image (``CRF.WRAPPED_IMAGE``).
    """
    prob = class_probabilities(torch.as_tensor(logits).to(postprocessor.device), rgb.shape[:2])
    return postprocessor.labels([crf_input_image(rgb, wrapped_mean_bgr)], [prob])[0]


def _existing_label(job: CrfJob) -> np.ndarray | None:
    """The label PNG of an earlier run, kept unless ``job.overwrite`` (see :mod:`nsrom.provenance`); one of
    another size than its image (made for another image) is a :class:`DataError` naming it."""
    if job.label_path is None or job.overwrite or not job.label_path.is_file():
        return None
    label = read_label(job.label_path, "CRF label")
    width, height = image_size(job.image_path)
    if label.shape != (height, width):
        raise DataError(f"CRF label {job.label_path} of an earlier run is {label.shape[0]}x{label.shape[1]} (HxW), "
                        f"its image {job.image_path} {height}x{width}: made for another image; --overwrite redoes "
                        "the labels")
    return label


def _finish(job: CrfJob, label: np.ndarray, new: bool) -> np.ndarray | None:
    """Write a new label PNG when asked; the image's confusion matrix (None without ground truth)."""
    if new and job.label_path is not None:
        write_label(job.label_path, label)
    if job.gt_path is None:
        return None
    gt = read_label(job.gt_path, "ground-truth mask")
    if gt.shape != label.shape:
        raise DataError(f"ground-truth mask {job.gt_path} is {gt.shape}, its image {job.image_path} {label.shape}")
    return confusion_matrix(gt, label, job.n_classes)


def crf_one(job: CrfJob, postprocessor: DenseCRF) -> np.ndarray | None:
    """CRF of one image (pydensecrf backend, in a joblib worker); see :func:`_finish`."""
    label = _existing_label(job)
    if label is not None:
        return _finish(job, label, new=False)
    rgb = read_rgb(job.image_path)
    label = crf_label(rgb, read_logits(job.logit_path, rgb.shape[:2], job.n_classes), postprocessor,
                      job.wrapped_mean_bgr)
    return _finish(job, label, new=True)


def _inputs(job: CrfJob) -> tuple[np.ndarray, np.ndarray]:
    """(CRF image, logits) of one image."""
    rgb = read_rgb(job.image_path)
    return crf_input_image(rgb, job.wrapped_mean_bgr), read_logits(job.logit_path, rgb.shape[:2], job.n_classes)


def _load(job: CrfJob) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(existing label, None, None) or (None, CRF image, logits)."""
    label = _existing_label(job)
    if label is not None:
        return label, None, None
    return None, *_inputs(job)


def crf_batches(
    jobs: list[CrfJob], postprocessor: DenseCRF, batch_size: int, n_threads: int
) -> Iterator[np.ndarray | None]:
    """CRF of ``jobs`` in batches in this process (torch backend); yields each image's :func:`_finish`.

    Files are read and written by ``n_threads`` threads while the CRF runs:
    the next batch is read and the previous one written during each batch.
    A batch with a label still to make is computed whole, so that every label
    is computed with the batch neighbours of an uninterrupted run (a resumed run
    writes the same bytes); existing labels are kept as they are.
    """
    batches = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
    with ThreadPoolExecutor(max(1, n_threads)) as pool:
        loading = [pool.submit(_load, job) for job in batches[0]] if batches else []
        writing: list = []
        for k, batch in enumerate(batches):
            loaded = [f.result() for f in loading]
            loading = [pool.submit(_load, job) for job in batches[k + 1]] if k + 1 < len(batches) else []
            todo = list(range(len(loaded))) if any(label is None for label, _, _ in loaded) else []
            loaded = [(label, *_inputs(job)) if todo and label is not None else (label, image, logits)
                      for job, (label, image, logits) in zip(batch, loaded)]
            images = [loaded[i][1] for i in todo]
            probs = [
                class_probabilities(torch.from_numpy(loaded[i][2]).to(postprocessor.device), image.shape[:2])
                for i, image in zip(todo, images)
            ]
            labels = dict(zip(todo, postprocessor.labels(images, probs)))
            yield from (f.result() for f in writing)
            writing = [
                pool.submit(_finish, job, labels[i] if loaded[i][0] is None else loaded[i][0], loaded[i][0] is None)
                for i, job in enumerate(batch)
            ]
        yield from (f.result() for f in writing)


def crf(
    cfg: Dict,
    *,
    split: str | None = None,
    n_jobs: int = 1,
    label_dir: str | Path | None = None,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    model_path: str | Path | None = None,
    name: str | None = None,
    check_data: bool = True,
) -> dict | None:
    """Dense CRF on the logits of ``split`` (default DATASET.SPLIT.VAL); writes and returns its scores.

    The logits are those ``test`` wrote for the same ``model_path``/``name`` (only
    used to find them). With ``label_dir`` each CRF label is also saved there as
    ``<id>.png`` (stage 5, ``--save-png``); the score file is named by the CRF input.
    The CRF sees the original 8-bit image, or deeplab-pytorch's wrapped one with
    ``CRF.WRAPPED_IMAGE: true``. ``CRF.BACKEND`` is resolved for ``device``:
    pydensecrf runs the images in ``n_jobs`` processes, torch runs
    ``CRF.BATCH_SIZE`` images per call on ``device`` in this process (``n_jobs``
    threads read and write the files). Under torchrun the images are split over
    the processes (gloo sums the scores).
    """
    paths = RunPaths.for_evaluation(cfg, model_path, name)
    with distributed.session("cpu") as info:
        if check_data:
            check_split_for(cfg, split or cfg.DATASET.SPLIT.VAL, "crf")
        return _crf(cfg, paths, split, n_jobs, label_dir, overwrite, distributed.local_device(device), info)


def _crf(
    cfg: Dict,
    paths: RunPaths,
    split: str | None,
    n_jobs: int,
    label_dir: str | Path | None,
    overwrite: bool,
    device: torch.device,
    info: distributed.DistInfo,
) -> dict | None:
    split = split or cfg.DATASET.SPLIT.VAL
    layout, names = data_layout(cfg), class_names(cfg)
    logit_dir = paths.logit_dir(split)
    ids = split_ids(layout, split)
    missing = [i for i in ids if not (logit_dir / f"{i}.npy").is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(ids)} logits missing in {logit_dir} (e.g. {missing[0]}.npy); "
            "run the test command first (crf finds the logits of a --model-path/--name given to test "
            "only with the same option)"
        )
    _check_logit_images(logit_dir, layout.image_dir)
    postprocessor = DenseCRF.from_config(cfg.CRF, device)
    LOG.info("CRF backend %s on %s", postprocessor.backend, postprocessor.device)
    if label_dir is not None:
        # Labels of this producer are kept (resume); another's stop the run unless overwrite.
        crf_settings = {k: v for k, v in cfg.CRF.to_dict().items() if k not in ("BACKEND", "BATCH_SIZE")}
        producer = Producer("segmentation.crf", {"crf": crf_settings, "backend": postprocessor.backend},
                            inputs={"logits": logit_dir, "images": layout.image_dir})
        overwrite = distributed.run_on_main(
            lambda: prepare_output_dir(Path(label_dir), producer, overwrite, LABEL_PATTERN))
    wrapped = tuple(mean_bgr(cfg)) if cfg.CRF.WRAPPED_IMAGE else None
    if wrapped:
        LOG.info("CRF.WRAPPED_IMAGE: giving the CRF deeplab-pytorch's wrapped mean-subtracted image")
    jobs = [
        CrfJob(
            image_id=i, logit_path=logit_dir / f"{i}.npy", image_path=layout.image_path(i),
            gt_path=layout.mask_path(i) if layout.mask_path(i).is_file() else None,
            label_path=Path(label_dir) / f"{i}.png" if label_dir is not None else None,
            n_classes=len(names), wrapped_mean_bgr=wrapped, overwrite=overwrite,
        )
        for i in distributed.shard(ids)
    ]
    if postprocessor.backend == BACKEND_TORCH:
        results = crf_batches(jobs, postprocessor, cfg.CRF.BATCH_SIZE, n_jobs)
    else:
        results = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            joblib.delayed(crf_one)(job, postprocessor) for job in jobs
        )
    acc, missing_gt = ConfusionAccumulator(len(names)), 0
    for matrix in tqdm(results, total=len(jobs), desc=f"crf {split}", dynamic_ncols=True, disable=not info.is_main):
        if matrix is None:
            missing_gt += 1
        else:
            acc.matrix += matrix
    if info.enabled:  # every rank scored its shard: sum the matrices and counts
        missing_gt = int(distributed.all_reduce_sum(torch.tensor([missing_gt], dtype=torch.int64))[0])
        acc.matrix = distributed.all_reduce_sum(torch.from_numpy(acc.matrix)).numpy()
    if label_dir is not None:
        LOG.info("CRF labels of %d images in %s", len(ids), label_dir)
    result = scores(acc.matrix, names) if missing_gt < len(ids) else None
    if info.is_main:
        report_scores(result, paths.score_path(split, crf=True), f"{split} + CRF", missing_gt, layout.mask_dirs)
    distributed.barrier()
    return result


def _check_logit_images(logit_dir: Path, image_dir: Path) -> None:
    """A DataError when the logits of ``logit_dir`` were made from the images of another folder than
    ``image_dir`` (another DATASET.ROOT): the CRF would pair them with images and masks they are not of."""
    made_from = ((read_record(logit_dir) or {}).get("inputs") or {}).get("images", {}).get("path")
    if made_from is not None and Path(made_from) != Path(image_dir).resolve():
        raise DataError(f"the logits in {logit_dir} were made by test from the images of {made_from}, this crf "
                        f"reads {Path(image_dir).resolve()} (DATASET.ROOT): run test with this config first "
                        "(--overwrite redoes the logits), or give this dataset's run another --name")
