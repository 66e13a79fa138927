"""``test`` of main.py and trainaug_pred.py (docs/method.md, stages 4, 5 and 7), and what ``crf``
(:mod:`segmentation.libs.crf_run`) shares with it: the upsampling of logits, the split check, the
scores files.

``test`` runs the model on whole images at native size (batch 1), saves each image's stride-8
logits for the CRF, scores the bilinearly upsampled argmax and writes scores.json. Under
``torchrun`` it splits the image list over the processes (each writes its own logits), sums the
confusion matrices and lets rank 0 write the scores.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from addict import Dict
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from nsrom import distributed
from nsrom.errors import DataError
from nsrom.files import atomic_path, write_json
from nsrom.images import write_label
from nsrom.metrics import ConfusionAccumulator, format_table, scores
from nsrom.provenance import Producer, StaleOutputError, files_digest, prepare_output_dir

from .data_config import check_split, class_names, data_layout, mean_bgr
from .datasets import EvalDataset, split_ids
from .models import build_model
from .models.init_weights import load_checkpoint
from .models.msc import check_input_size
from .models.resnet import output_size
from .utils.paths import RunPaths

LOG = logging.getLogger(__name__)


def upsample_logits(logits: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(C, h, w)`` logits -> ``(C, H, W)`` by bilinear interpolation (align_corners False)."""
    logits = torch.as_tensor(logits, dtype=torch.float32)
    return F.interpolate(logits[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


REDO_LOGITS = "main.py test --overwrite redoes the split's logits (pipeline.py: --from the round's test stage)"


def read_logits(path: Path, image_size: tuple[int, int], n_classes: int) -> np.ndarray:
    """The ``(C, h, w)`` logits that ``test`` saved for an image of ``image_size`` ``(H, W)``.

    A file that cannot be read (cut short, empty), or whose shape is not that of this network's output for
    this image (:func:`~segmentation.libs.models.resnet.output_size`) and class count (logits of another
    image, dataset or model), is a :class:`DataError` naming it: upsampled, it would be scored as if it fit.
    """
    try:
        logits = np.load(path)
    except (OSError, ValueError, EOFError) as exc:  # click would take an EOFError for Ctrl-C
        raise DataError(f"cannot read the logits {path} ({exc or 'empty file'}); {REDO_LOGITS}") from None
    expected = (n_classes, *output_size(*image_size))
    if logits.shape != expected:
        raise DataError(f"logits {path} have shape {logits.shape}, but an image of {image_size[0]}x{image_size[1]} "
                        f"(HxW) with {n_classes} classes gives {expected}: made for another image, dataset or "
                        f"model; {REDO_LOGITS}")
    return logits


def _first(batch: list):
    return batch[0]


LOGIT_PATTERN = "*.npy"
LABEL_PATTERN = "*.png"
"""Outputs of test (logits) and of crf with a label folder (labels): what --overwrite deletes and redoes."""


def _prepare_logit_dir(logit_dir: Path, cfg: Dict, split: str, model_path: Path, overwrite: bool) -> None:
    """Record what makes the logits (checkpoint, images, split, mean): logits of this very
    producer are kept (resume); another producer's stop the run unless ``overwrite``
    (:func:`nsrom.provenance.prepare_output_dir`)."""
    layout = data_layout(cfg)
    settings = {"split": split, "model": cfg.MODEL.NAME, "image_mean_bgr": mean_bgr(cfg),
                # the network's shape beyond its weights' (the dilations are no weight), and the images
                # themselves: a dataset made again in place has new images under the same ids
                "atrous_rates": list(cfg.MODEL.ATROUS_RATES), "classes": len(class_names(cfg)),
                "images_digest": files_digest([layout.image_path(i) for i in split_ids(layout, split)])}
    producer = Producer("segmentation.test", settings, checkpoint=model_path, inputs={"images": layout.image_dir})
    try:
        prepare_output_dir(logit_dir, producer, overwrite, LOGIT_PATTERN)
    except StaleOutputError as exc:  # the other folder of main.py is another --name
        raise StaleOutputError(f"{exc} (main.py test: --name NAME writes under <EXP.ID>@NAME and keeps these)") from None


def report_scores(result: dict | None, path: Path, title: str, missing_gt: int, mask_dirs: list[Path]) -> None:
    """Print the scores table and write it to ``path`` (scores.json / scores_crf.json); say how many images
    had no ground truth; without any scored image, write nothing."""
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
            check_split_for(cfg, split or cfg.DATASET.SPLIT.VAL, "test")
        return _test(cfg, paths, model_path, split, distributed.local_device(device), overwrite, save_labels, info)


def check_split_for(cfg: Dict, split: str, what: str) -> None:
    """The data check of ``split`` of the config's dataset before ``what`` (test or crf) reads it."""
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
                logits = torch.from_numpy(read_logits(out, image.shape[1:], len(names)))
            else:
                check_input_size(*image.shape[1:], f"image {layout.image_path(image_id)}")
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
        report_scores(result, paths.score_path(split, crf=False), f"{split}: {model_path.name}", missing_gt, layout.mask_dirs)
    distributed.barrier()
    return result
