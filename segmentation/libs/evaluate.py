"""``test`` and ``crf`` of main.py and trainaug_pred.py (docs/method.md, stages 4, 5 and 7).

``test`` runs the model on whole images at native size (batch 1), saves each
image's stride-8 logits for the CRF, scores the bilinearly upsampled argmax
and writes scores.json. ``crf`` upsamples the saved logits to image size,
applies softmax and the dense CRF, scores the argmax (scores_crf.json, or
scores_crf_rgb.json for the 8-bit RGB CRF input) and,
when asked, writes the labels as palette PNGs (stage 5). The CRF runs with
pydensecrf in joblib processes or, with ``CRF.BACKEND`` torch, in batches in
this process (on the GPU under ``auto``).

Under ``torchrun`` ``test`` splits the image list over the processes (each
writes its own logits), sums the confusion matrices and lets rank 0 write the
scores; ``crf`` does the same with its images (gloo), each rank with ``-j`` workers
or its own GPU.
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
from torch.utils.data import DataLoader
from tqdm import tqdm

from nsrom import distributed
from nsrom.errors import DataError
from nsrom.files import atomic_path, write_json
from nsrom.images import read_label, read_rgb, write_label
from nsrom.metrics import ConfusionAccumulator, confusion_matrix, format_table, scores
from nsrom.provenance import Producer, StaleOutputError, prepare_output_dir, read_record

from .datasets import EvalDataset, check_split, class_names, data_layout, mean_bgr, split_ids
from .models import build_model
from .models.init_weights import load_checkpoint
from .utils.crf import BACKEND_TORCH, DenseCRF, wrapped_image
from .utils.paths import RunPaths

LOG = logging.getLogger(__name__)


def upsample_logits(logits: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(C, h, w)`` logits -> ``(C, H, W)`` by bilinear interpolation (align_corners False)."""
    logits = torch.as_tensor(logits, dtype=torch.float32)
    return F.interpolate(logits[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def _first(batch: list):
    return batch[0]


LOGIT_PATTERN = "*.npy"
LABEL_PATTERN = "*.png"
"""Outputs of test (logits) and of crf with a label folder (labels): what --overwrite deletes and redoes."""


def _prepare_logit_dir(logit_dir: Path, cfg: Dict, split: str, model_path: Path, overwrite: bool) -> None:
    """Record what makes the logits (checkpoint, images, split, mean): logits of this very
    producer are kept (resume); another producer's stop the run unless ``overwrite``
    (:func:`nsrom.provenance.prepare_output_dir`)."""
    settings = {"split": split, "model": cfg.MODEL.NAME, "image_mean_bgr": mean_bgr(cfg)}
    producer = Producer("segmentation.test", settings, checkpoint=model_path,
                        inputs={"images": data_layout(cfg).image_dir})
    try:
        prepare_output_dir(logit_dir, producer, overwrite, LOGIT_PATTERN)
    except StaleOutputError as exc:  # the other folder of main.py is another --name
        raise StaleOutputError(f"{exc} (main.py test: --name NAME writes under <EXP.ID>@NAME and keeps these)") from None


def _check_logit_images(logit_dir: Path, image_dir: Path) -> None:
    """A DataError when the logits of ``logit_dir`` were made from the images of another folder than
    ``image_dir`` (another DATASET.ROOT): the CRF would pair them with images and masks they are not of."""
    made_from = ((read_record(logit_dir) or {}).get("inputs") or {}).get("images", {}).get("path")
    if made_from is not None and Path(made_from) != Path(image_dir).resolve():
        raise DataError(f"the logits in {logit_dir} were made by test from the images of {made_from}, this crf "
                        f"reads {Path(image_dir).resolve()} (DATASET.ROOT): run test with this config first "
                        "(--overwrite redoes the logits), or give this dataset's run another --name")


def _report(result: dict | None, path: Path, title: str, missing_gt: int, mask_dirs: list[Path]) -> None:
    if missing_gt:
        LOG.warning("%d images have no ground truth (<id>.png in %s); not scored", missing_gt,
                    " or ".join(str(d) for d in mask_dirs))
    if result is None:
        LOG.warning("no image of the split has ground truth; %s not written", path.name)
        return
    write_json(path, result)
    print(format_table(result, title))
    LOG.info("scores written to %s", path)


def test(
    cfg: Dict,
    model_path: str | Path | None = None,
    *,
    split: str | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    name: str | None = None,
    save_labels: bool = False,
    check_data: bool = True,
) -> dict | None:
    """Predict ``split`` (default DATASET.SPLIT.VAL), save logits, write and return scores.json.

    ``model_path`` defaults to the run's checkpoint_final.pth; another checkpoint's
    outputs go under ``name`` (default: its file stem; see RunPaths.for_evaluation).
    Logits already made by the same checkpoint are reused unless ``overwrite``.
    ``save_labels`` also writes each prediction as a palette PNG in ``label/``.
    ``check_data``: check the split's images and masks first.
    """
    paths = RunPaths.for_evaluation(cfg, model_path, name)
    with distributed.session(device) as info:
        if check_data:
            _check_split(cfg, split or cfg.DATASET.SPLIT.VAL, "test")
        return _test(cfg, paths, model_path, split, distributed.local_device(device), overwrite, save_labels, info)


def _check_split(cfg: Dict, split: str, what: str) -> None:
    layout = data_layout(cfg)
    check_split(layout, split, split_ids(layout, split), len(class_names(cfg)), f"{what} on {split}")


def _test(
    cfg: Dict,
    paths: RunPaths,
    model_path: str | Path | None,
    split: str | None,
    device: torch.device,
    overwrite: bool,
    save_labels: bool,
    info: distributed.DistInfo,
) -> dict | None:
    split = split or cfg.DATASET.SPLIT.VAL
    model_path = Path(model_path) if model_path else paths.final_checkpoint
    layout, names = data_layout(cfg), class_names(cfg)
    LOG.info("evaluating checkpoint %s on split %s", model_path, split)
    model = build_model(cfg.MODEL, len(names))
    load_checkpoint(model, model_path)
    model.eval().to(device)

    dataset = EvalDataset(layout, split, mean_bgr=mean_bgr(cfg))
    n_images = len(dataset)
    dataset.ids = distributed.shard(dataset.ids)
    logit_dir = paths.logit_dir(split)
    distributed.run_on_main(lambda: _prepare_logit_dir(logit_dir, cfg, split, model_path, overwrite))
    loader = DataLoader(dataset, batch_size=1, num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=_first)
    label_dir = paths.label_dir(split, crf=False)
    acc, scored, missing_gt = ConfusionAccumulator(len(names)), 0, 0
    with torch.no_grad():
        for image_id, image, gt in tqdm(loader, desc=f"test {split}", dynamic_ncols=True, disable=not info.is_main):
            out = logit_dir / f"{image_id}.npy"
            if out.is_file():
                logits = torch.from_numpy(np.load(out))
            else:
                logits = model(torch.from_numpy(image)[None].to(device))[0].float().cpu()
                with atomic_path(out) as tmp:
                    np.save(tmp, logits.numpy())
            if gt is not None or save_labels:
                pred = upsample_logits(logits, image.shape[1:]).argmax(dim=0).numpy()
            if save_labels:
                write_label(label_dir / f"{image_id}.png", pred)
            if gt is None:
                missing_gt += 1
                continue
            if gt.shape != image.shape[1:]:
                raise DataError(f"ground-truth mask {layout.mask_path(image_id)} is {tuple(gt.shape)}, its image "
                                f"{layout.image_path(image_id)} {tuple(image.shape[1:])}")
            acc.update(gt, pred)
            scored += 1
    if info.enabled:  # every rank scored its shard: sum the matrices and counts
        totals = distributed.all_reduce_sum(torch.tensor([scored, missing_gt], dtype=torch.int64))
        scored, missing_gt = (int(v) for v in totals)
        acc.matrix = distributed.all_reduce_sum(torch.from_numpy(acc.matrix)).numpy()
    LOG.info("logits of %d images in %s", n_images, logit_dir)
    if save_labels:
        LOG.info("predicted labels of %d images in %s", n_images, label_dir)
    result = scores(acc.matrix, names) if scored else None
    if info.is_main:
        _report(result, paths.score_path(split, crf=False), f"{split}: {model_path.name}", missing_gt, layout.mask_dirs)
    distributed.barrier()
    return result


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
    """The label PNG of an earlier run, kept unless ``job.overwrite`` (see :mod:`nsrom.provenance`)."""
    if job.label_path is not None and not job.overwrite and job.label_path.is_file():
        return read_label(job.label_path, "CRF label")
    return None


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
    label = crf_label(read_rgb(job.image_path), np.load(job.logit_path), postprocessor, job.wrapped_mean_bgr)
    return _finish(job, label, new=True)


def _inputs(job: CrfJob) -> tuple[np.ndarray, np.ndarray]:
    """(CRF image, logits) of one image."""
    return crf_input_image(read_rgb(job.image_path), job.wrapped_mean_bgr), np.load(job.logit_path)


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
            _check_split(cfg, split or cfg.DATASET.SPLIT.VAL, "crf")
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
        _report(result, paths.score_path(split, crf=True), f"{split} + CRF", missing_gt, layout.mask_dirs)
    distributed.barrier()
    return result
