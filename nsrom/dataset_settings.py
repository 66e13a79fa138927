"""The choices a dataset makes within the VOC layout, read from ``ROOT/dataset.yaml``.

A dataset root may hold an optional ``dataset.yaml`` that every stage reads
through :class:`nsrom.data.DataLayout` (one source of truth)::

    image_dir: JPEGImages          # folder of the images
    image_ext: auto                # .jpg, .png or auto (.jpg, then .jpeg, then .png, then .JPG..., per image)
    mask_dir: [SegmentationClassAug, SegmentationClass]   # ground truth; the first holding <id>.png wins
    saliency_dir: saliency         # saliency maps <id>.png
    train_split: train_aug         # ImageSets/Segmentation/<train_split>.txt
    val_split: val                 # ImageSets/Segmentation/<val_split>.txt

Every key is optional; the values above are the defaults (PASCAL VOC). A
flag of a stage script (``--image-ext``, ``--mask-dir``, ``--train-split``,
``--val-split``) or a ``DATASET.*`` key of the segmentation config overrides
the file for that run. Folder names are relative to ROOT (an absolute path
works too).
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import DataError
from .files import read_text

SETTINGS_FILE = "dataset.yaml"
"""Name of the optional settings file in the dataset root."""
AUTO_EXT = "auto"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
"""The values of ``image_ext`` besides ``auto``, tried in this order by ``auto``."""
AUTO_IMAGE_EXTS = (*IMAGE_EXTS, *(ext.upper() for ext in IMAGE_EXTS))
"""What ``image_ext: auto`` tries per image: the lower-case extensions, then the same in capitals (``.JPG``)."""
DEFAULT_SOURCE = "default"
FILE_SOURCE = SETTINGS_FILE
OVERRIDE_SOURCE = "override"


@dataclass(frozen=True)
class DatasetSettings:
    """Folder names, image extension and split names of one dataset root.

    ``sources`` says where each value came from: ``default``, ``dataset.yaml``
    or ``override`` (a flag or config key of this run).
    """

    image_dir: str = "JPEGImages"
    image_ext: str = AUTO_EXT
    mask_dir: tuple[str, ...] = ("SegmentationClassAug", "SegmentationClass")
    saliency_dir: str = "saliency"
    train_split: str = "train_aug"
    val_split: str = "val"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def image_exts(self) -> tuple[str, ...]:
        """Extensions an image may have, in the order they are tried (a fixed one also in capitals)."""
        return AUTO_IMAGE_EXTS if self.image_ext == AUTO_EXT else (self.image_ext, self.image_ext.upper())

    def source(self, name: str) -> str:
        return self.sources.get(name, DEFAULT_SOURCE)

    def values(self) -> dict[str, Any]:
        """The settings as a plain dict (``mask_dir`` as a list), e.g. to write dataset.yaml."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
        out["mask_dir"] = list(self.mask_dir)
        return out

    def describe(self) -> str:
        """One line per setting with its source, for logs and ``--dry-run`` output."""
        return "\n".join(f"{name}: {value} ({self.source(name)})" for name, value in self.values().items())


SETTING_NAMES = tuple(f.name for f in fields(DatasetSettings) if f.name != "sources")


def _normalise(name: str, value: Any, where: str) -> Any:
    """Check one setting's value; returns it in canonical form (``.png``, a tuple of mask dirs)."""
    if name == "mask_dir":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) and v for v in items):
            raise DataError(f"{where}: mask_dir must be a folder name or a list of folder names, got {value!r}")
        return tuple(items)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {name} must be a non-empty text, got {value!r}")
    value = value.strip()
    if name == "image_ext":
        value = value.lower()
        if value != AUTO_EXT and not value.startswith("."):
            value = "." + value
        if value not in (AUTO_EXT, *IMAGE_EXTS):
            raise DataError(f"{where}: image_ext must be one of {AUTO_EXT}, {', '.join(IMAGE_EXTS)}; got {value!r}")
    return value


def _check_names(data: Mapping[str, Any], where: str) -> None:
    for key in data:
        if key not in SETTING_NAMES:
            close = difflib.get_close_matches(str(key), SETTING_NAMES, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise DataError(f"{where}: unknown setting {key!r}{hint}; valid settings: {', '.join(SETTING_NAMES)}")


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings of a ``dataset.yaml`` file, checked (unknown key or bad value: DataError naming it)."""
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise DataError(f"{path} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a mapping such as 'image_ext: png'")
    _check_names(data, str(path))
    return {name: _normalise(name, value, f"{path}: {name}") for name, value in data.items()}


def load_settings(root: str | Path, overrides: Mapping[str, Any] | None = None) -> DatasetSettings:
    """Settings of the dataset at ``root``: defaults < ``ROOT/dataset.yaml`` < ``overrides``.

    ``overrides`` values of None are ignored (not set); the keys are the
    setting names.
    """
    path = Path(root) / SETTINGS_FILE
    layers = [(read_settings_file(path), FILE_SOURCE)] if path.is_file() else []
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_names(given, "dataset override")
    layers.append(({k: _normalise(k, v, f"override {k}") for k, v in given.items()}, OVERRIDE_SOURCE))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer, source in layers:
        values.update(layer)
        sources.update({k: source for k in layer})
    return replace(DatasetSettings(), **values, sources=sources)


def settings_text(root: str | Path, values: Mapping[str, Any]) -> tuple[Path, str]:
    """``(path, text)`` of ``ROOT/dataset.yaml`` updated with ``values``, for the tools that write it with the
    lists they make (:func:`nsrom.files.atomic_write_texts`)."""
    path = Path(root) / SETTINGS_FILE
    current = read_settings_file(path) if path.is_file() else {}
    _check_names(values, "dataset settings")
    current.update({k: _normalise(k, v, k) for k, v in values.items()})
    text = {k: list(v) if isinstance(v, tuple) else v for k, v in current.items()}
    header = "# Dataset settings read by every stage (see README, 'Data layout').\n"
    return path, header + yaml.safe_dump(text, sort_keys=False)


# --- the same settings as command-line flags ------------------------------------


STAGE_FLAGS = ("image_ext", "mask_dir", "train_split")
"""The layout flags of the classification scripts (the pipeline also has ``val_split``)."""
LABEL_FLAGS = ("mask_dir", "train_split")
"""The layout flags of gen_label.py / gen_masked_label.py, which read no image."""
_FLAG_HELP = {
    "image_ext": ("EXT", "image extension: jpg, png or auto (.jpg, then .jpeg, then .png, then the same in capitals, per image)"),
    "mask_dir": ("DIR", "ground-truth folder in ROOT (default SegmentationClassAug, then SegmentationClass)"),
    "train_split": ("NAME", "training image list ImageSets/Segmentation/NAME.txt (default train_aug)"),
    "val_split": ("NAME", "validation image list ImageSets/Segmentation/NAME.txt (default val)"),
}


def add_layout_args(p: argparse.ArgumentParser, names: tuple[str, ...] = STAGE_FLAGS) -> None:
    """Flags ``--image-ext``, ``--mask-dir``, ``--train-split``, ``--val-split`` (those in ``names``)
    that override ``ROOT/dataset.yaml`` for one run."""
    g = p.add_argument_group("dataset layout (default: ROOT/dataset.yaml, else VOC's)")
    for name in names:
        metavar, text = _FLAG_HELP[name]
        g.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar=metavar, help=text)


def layout_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :func:`add_layout_args` that were given, as setting overrides."""
    return {name: getattr(args, name) for name in _FLAG_HELP if getattr(args, name, None) is not None}


def layout_flags(overrides: Mapping[str, Any], names: tuple[str, ...] = STAGE_FLAGS) -> list[str]:
    """The inverse of :func:`layout_overrides`: ``["--image-ext", "png", ...]`` for the flags ``names``."""
    flags = []
    for name in names:
        if overrides.get(name) is not None:
            flags += ["--" + name.replace("_", "-"), str(overrides[name])]
    return flags
