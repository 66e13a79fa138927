"""Stage 1b / stage-2 export: CAMs (test.sh) and OA-CAMs (test_iam.sh), docs/method.md, stage 1b.

For every image: the ``--input-size`` square (256, the paper's) without
augmentation, the map channel of every present class, negatives to 0, divided
by max (+1e-8), times 255 to uint8,
bicubic resize to the original image size, one grey PNG ``<id>_<c>.png``
(0-based class). The model is loaded once and run on batches. The output
folder records what produced it (checkpoint, images, settings:
:mod:`nsrom.provenance`); when that record is this run's (resume), the batches
whose PNGs all exist are skipped; another producer's maps stop the run unless
``--overwrite`` (which redoes the folder).

The batches are fixed slices of the whole image list, so an image is always
computed together with the same neighbours: a run that is interrupted and
started again (or one split over ``torchrun`` processes, which share the
batches out) writes the bytes an uninterrupted run writes, even where a
different batch would change the last bits of a CPU convolution. A batch
whose maps all exist is skipped and existing maps are not rewritten.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from nsrom.arg_types import positive_int
from nsrom.cam import class_map_name, max_normalize, resize_to_image, to_uint8
from nsrom.errors import NsromError
from nsrom.images import write_grey
from nsrom import distributed
from nsrom.provenance import Producer, prepare_output_dir

from .datasets import ImageLabelDataset, Sample
from .iam_targets import check_checkpoint_targets
from .models import ARCHS
from .models.attention_net import AttentionNet
from .models.pretrained import load_model_state, read_checkpoint
from .run_layout import run_dirs
from .cli_args import add_data_args, resolve_device, samples_from_args
from .transforms import export_transform

log = logging.getLogger(__name__)

DEFAULT_EXPORT_BATCH = 8
MAP_PATTERN = "*_*.png"
"""The export's outputs in its folder, ``<id>_<c>.png`` (what ``--overwrite`` deletes and redoes)."""


def make_parser(arch: str, exp: str, what: str) -> argparse.ArgumentParser:
    """Parser of test.py (arch vgg, exp1) and test_iam.py (arch vgg1, exp2)."""
    p = argparse.ArgumentParser(description=f"NSROM: export {what} of the training images")
    p.add_argument("--exp", default=exp, help="experiment: reads runs/<exp>/model, writes runs/<exp>/attention")
    p.add_argument("--arch", default=arch, choices=sorted(ARCHS), help="vgg = OAA classifier, vgg1 = IAM")
    add_data_args(p)
    p.add_argument("--checkpoint", "--restore-from", dest="checkpoint", default=None,
                   help="model to export (default runs/<exp>/model/checkpoint_final.pth)")
    p.add_argument("--attention-dir", "--save-dir", dest="attention_dir", default=None,
                   help="output folder (default runs/<exp>/attention)")
    p.add_argument("--width-div", type=positive_int, default=None, help="channel divisor (default: the checkpoint's)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_EXPORT_BATCH)
    p.add_argument("--overwrite", action="store_true",
                   help="delete the maps in the output folder and redo them all (needed when they were made "
                        "by another checkpoint or settings)")
    return p


def attention_maps(cam: np.ndarray, classes: tuple[int, ...], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """8-bit maps at image size ``(H, W)`` of ``classes`` from one ``(C, h, w)`` output (stage 1b)."""
    height, width = size
    out = {}
    for c in classes:
        att = to_uint8(max_normalize(cam[c]))
        out[c] = resize_to_image(att, height, width)
    return out


def pending_batches(samples: list[Sample], out_dir: Path, batch_size: int, overwrite: bool) -> list[list[Sample]]:
    """The fixed batches (slices of ``batch_size`` of the whole list) with at least one map still to write.

    All of them with ``overwrite``.
    """
    batches = [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
    if overwrite:
        return batches
    return [b for b in batches
            if not all((out_dir / class_map_name(s.image_id, c)).is_file() for s in b for c in s.classes)]


@torch.no_grad()
def export_attention(
    model: AttentionNet,
    dataset: ImageLabelDataset,
    out_dir: str | Path,
    batch_size: int = DEFAULT_EXPORT_BATCH,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    overwrite: bool = True,
) -> int:
    """Write the maps of every image of ``dataset`` (existing ones only with ``overwrite``); returns how many."""
    out_dir = Path(out_dir)
    device = torch.device(device)
    model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    written = 0
    bar = tqdm(loader, desc=f"export -> {out_dir.name}", dynamic_ncols=True, disable=not distributed.current().is_main)
    for batch in bar:
        cams = model(batch["image"].to(device)).float().cpu().numpy()
        for image_id, label, size, cam in zip(batch["id"], batch["label"], batch["size"].tolist(), cams):
            classes = tuple(torch.nonzero(label).flatten().tolist())
            if not np.isfinite(cam[list(classes)]).all():  # max-normalised, one NaN would blank the whole map
                raise NsromError(f"the network's maps of image {image_id} hold NaN or infinite values: its "
                                 "weights are damaged (a diverged training run); train it again")
            for c, att in attention_maps(cam, classes, tuple(size)).items():
                path = out_dir / class_map_name(image_id, c)
                if overwrite or not path.is_file():
                    write_grey(path, att)
                    written += 1
    return written


def run(args: argparse.Namespace) -> Path:
    """Export the maps; returns the output folder."""
    with distributed.session(resolve_device(args.device)):
        return _run(args)


def export_producer(
    args: argparse.Namespace, checkpoint: Path, samples: list[Sample], num_classes: int, width_div: int
) -> Producer:
    """What makes the maps: the checkpoint, the image folder and the settings that change a map
    (``width_div``: the width the network is built with, from ``--width-div`` or the checkpoint)."""
    inputs = {"images": samples[0].image_path.parent} if samples else {}
    settings = {"arch": args.arch, "input_size": args.input_size, "num_classes": num_classes,
                "width_div": width_div}
    return Producer("classification.export", settings, checkpoint=checkpoint, inputs=inputs)


def _run(args: argparse.Namespace) -> Path:
    dirs = run_dirs(args.exp, args.runs_dir, attention_dir=args.attention_dir)
    distributed.setup_rank_logging(dirs.logs / "export.log")
    checkpoint = Path(args.checkpoint) if args.checkpoint else dirs.checkpoint_final
    samples, num_classes = samples_from_args(args)
    ckpt = read_checkpoint(checkpoint)
    check_checkpoint_targets(ckpt, checkpoint)  # an IAM whose stage-1 maps changed since is stale
    width_div = args.width_div if args.width_div is not None else int(ckpt.get("width_div", 1))
    producer = export_producer(args, checkpoint, samples, num_classes, width_div)
    # the checkpoint must fit the network before --overwrite deletes the maps of an earlier export
    model = ARCHS[args.arch](pretrained=False, num_classes=num_classes, width_div=width_div)
    load_model_state(model, ckpt, str(checkpoint))
    distributed.run_on_main(lambda: prepare_output_dir(dirs.attention, producer, args.overwrite, MAP_PATTERN))
    todo = distributed.broadcast_from_main(pending_batches(samples, dirs.attention, args.batch_size, args.overwrite))
    log.info("%d of %d batches of %d images to export into %s", len(todo),
             -(-len(samples) // args.batch_size), args.batch_size, dirs.attention)
    if not todo:
        return dirs.attention
    device = distributed.local_device(resolve_device(args.device))
    mine = [sample for batch in distributed.shard(todo) for sample in batch]  # whole batches per rank, in order
    dataset = ImageLabelDataset(mine, num_classes, export_transform(args.input_size))
    written = export_attention(model, dataset, dirs.attention, args.batch_size, device, args.num_workers,
                               args.overwrite)
    log.info("wrote %d maps to %s", written, dirs.attention)
    distributed.barrier()  # every rank returns once all maps exist
    return dirs.attention
