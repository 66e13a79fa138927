"""Predictions as files: palette PNGs, colour overlays and the VOC evaluation server's package.

``main.py test``/``crf`` (and ``trainaug_pred.py``) write each image's predicted
labels as a VOC-palette PNG when asked (``--save-png``; ``label/`` for test,
``label_<crf tag>/`` for crf, see :class:`~.utils.paths.RunPaths`). From those
PNGs this module writes, after every image is predicted:

* ``--save-overlay``: ``overlay[_<crf tag>]/<id>.jpg``, the image with the
  labels' colours blended in (:func:`nsrom.images.overlay`);
* ``--voc-server``: the labels in the VOC evaluation server's layout,
  ``voc_server[_<crf tag>]/results/VOC2012/Segmentation/comp6_<split>_cls/<id>.png``,
  and the same tree packed as ``voc_server[_<crf tag>].tar.gz``, ready to upload
  (the test split has no masks: it is predicted without scores).

Under torchrun the images are split over the processes; rank 0 packs the archive.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from nsrom import distributed
from nsrom.data import DataLayout
from nsrom.errors import DataError
from nsrom.files import atomic_path
from nsrom.images import overlay, read_label, read_rgb, write_rgb

from .datasets import split_ids
from .utils.paths import RunPaths

LOG = logging.getLogger(__name__)
OVERLAY_QUALITY = 90
"""JPEG quality of the overlays (they are for looking at; the PNGs hold the labels)."""


@dataclass(frozen=True)
class PredictionFiles:
    """Which files ``test``/``crf`` write besides logits and scores."""

    png: bool = False
    overlay: bool = False
    voc_server: bool = False

    @property
    def labels(self) -> bool:
        """Label PNGs are written whenever anything is asked for: the other files are made from them."""
        return self.png or self.overlay or self.voc_server

    @property
    def derived(self) -> bool:
        """Files made from the label PNGs once every image is predicted."""
        return self.overlay or self.voc_server


def write_prediction_files(paths: RunPaths, layout: DataLayout, split: str, crf: bool, files: PredictionFiles) -> None:
    """Overlays and the server package of ``split`` from its label PNGs (all ranks; rank 0 packs).

    Every image of the split must have its label PNG in ``paths.label_dir(split, crf)``.
    """
    if not files.derived:
        return
    label_dir = paths.label_dir(split, crf)
    ids = split_ids(layout, split)
    missing = [i for i in ids if not (label_dir / f"{i}.png").is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(ids)} label PNGs missing in {label_dir} (e.g. {missing[0]}.png)")
    overlay_dir, server_dir = paths.overlay_dir(split, crf), paths.server_label_dir(split, crf)
    info = distributed.current()
    for image_id in tqdm(distributed.shard(ids), desc=f"files {split}", dynamic_ncols=True, disable=not info.is_main):
        source = label_dir / f"{image_id}.png"
        if files.overlay:
            label = read_label(source, "predicted label")
            write_rgb(overlay_dir / f"{image_id}.jpg", overlay(read_rgb(layout.image_path(image_id)), label),
                      quality=OVERLAY_QUALITY)
        if files.voc_server:
            with atomic_path(server_dir / source.name) as tmp:
                shutil.copyfile(source, tmp)
    distributed.barrier()
    if files.overlay:
        LOG.info("overlays of %d images in %s", len(ids), overlay_dir)
    if files.voc_server and info.is_main:
        archive = paths.server_archive(split, crf)
        pack_server_archive(paths.server_dir(split, crf), server_dir, ids, archive)
        LOG.info("VOC evaluation server package: %s (%d PNGs in %s)", archive, len(ids), server_dir)
    distributed.barrier()


def pack_server_archive(root: Path, label_dir: Path, ids: list[str], archive: Path) -> None:
    """``archive`` (.tar.gz) holding ``label_dir/<id>.png`` for ``ids`` under their path relative to ``root``.

    The members are exactly the split's images, in list order (no stale file
    of an earlier run), named ``results/VOC2012/Segmentation/comp6_<split>_cls/<id>.png``.
    """
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for image_id in ids:
            path = label_dir / f"{image_id}.png"
            tar.add(path, arcname=path.relative_to(root).as_posix())
