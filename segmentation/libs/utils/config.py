"""YAML configuration with ``--set KEY=VALUE`` overrides, validated against voc12.yaml.

The packaged ``configs/voc12.yaml`` is the schema: every key of a config file
or of an override must exist there, with a value of a compatible type, else a
:class:`~nsrom.errors.ConfigError` names the key. A few keys added by this
project (``OPTIONAL_DEFAULTS``) may be left out, so deeplab-pytorch's own
voc12.yaml still loads.

A config file either holds every key, or names a base config with
``BASE: voc12.yaml`` (a path relative to the file, or a packaged config
name) and only the keys it changes. :func:`resolve_config` also returns
where each value came from, which ``main.py config`` prints.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from addict import Dict

from nsrom.errors import ConfigError
from nsrom.files import read_text
from nsrom.precision import AMP_MODES, AMP_OFF

from .crf import BACKEND_AUTO, BACKENDS as CRF_BACKENDS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "voc12.yaml"
"""The paper's settings and the schema of every config."""

OPTIONAL_DEFAULTS: dict[str, Any] = {
    "DATASET.LABELS": None,
    "DATASET.IMAGE_EXT": None,
    "DATASET.MASK_DIR": None,
    "DATASET.LABEL_DIR": None,
    "MODEL.WIDTH_DIV": 1,
    "CRF.WRAPPED_IMAGE": True,  # a config without it is deeplab-pytorch's, whose CRF input wraps
    "CRF.BACKEND": BACKEND_AUTO,
    "CRF.BATCH_SIZE": 8,
    "SOLVER.AMP": AMP_OFF,
    "MODEL.CHANNELS_LAST": False,
    "SOLVER.ITER_VAL": 0,  # val mIoU during training: off
    "SOLVER.VAL_IMAGES": 0,
    "SOLVER.ITER_SAVE_RECENT": 0,
    "SOLVER.MINUTES_SAVE_RECENT": 10.0,
}
"""Keys this project added to deeplab-pytorch's schema, with their value when absent."""

DATASET_SETTING_KEYS = {
    "DATASET.IMAGE_EXT": "image_ext",
    "DATASET.MASK_DIR": "mask_dir",
    "DATASET.SPLIT.TRAIN": "train_split",
    "DATASET.SPLIT.VAL": "val_split",
}
"""Config keys that override a setting of ROOT/dataset.yaml (nsrom.dataset_settings); null: the dataset's."""

NULLABLE = {"DATASET.LABELS", "DATASET.LABEL_DIR", "DATASET.N_CLASSES", "IMAGE.SIZE.BASE", "MODEL.INIT_MODEL",
            *DATASET_SETTING_KEYS}
"""Keys whose value may be null (YAML empty or ``null``)."""

TYPES_OF_NULL_KEYS: dict[str, type] = {"DATASET.LABELS": str, "DATASET.N_CLASSES": int, "IMAGE.SIZE.BASE": int,
                                       **{key: str for key in DATASET_SETTING_KEYS}}
"""Expected type of keys whose schema value is null."""

BASE_KEY = "BASE"
"""Top-level key of a config file that names the config it changes."""
SET_ORIGIN = "--set"
ABSENT_ORIGIN = "built-in default (key absent from the config)"


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections (EXP, DATASET, ...)")
    return data


def schema() -> dict[str, Any]:
    """Flat ``{"SECTION.KEY": default}`` of the packaged voc12.yaml."""
    return _flatten(_read_yaml(DEFAULT_CONFIG))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


_ACCEPTS = {"bool": {"bool"}, "int": {"int"}, "float": {"float", "int"}, "str": {"str"}, "list": {"list"}}


def check_value(key: str, value: Any, default: Any, where: str) -> None:
    """Raise :class:`ConfigError` when ``value`` does not fit the type of ``default``."""
    expected = _kind(default)
    if default is None:
        expected = {str: "str", int: "int"}.get(TYPES_OF_NULL_KEYS.get(key), "null")
    got = _kind(value)
    if got == "null":
        if key in NULLABLE:
            return
        raise ConfigError(f"{where}: {key} must not be empty (expected {expected})")
    if expected == "null" or got in _ACCEPTS.get(expected, {expected}):
        if expected == "list" and default and value:
            item = _kind(default[0])
            if any(_kind(v) not in _ACCEPTS.get(item, {item}) for v in value):
                raise ConfigError(f"{where}: {key} must be a list of {item} values, got {value!r}")
        return
    raise ConfigError(f"{where}: {key} must be {expected}, got {value!r} ({got})")


OFF_SWITCH_KEYS = {"SOLVER.AMP"}
"""Text keys whose value ``off`` YAML 1.1 reads as the boolean false."""


def coerce_numbers(flat: dict[str, Any]) -> dict[str, Any]:
    """Read numeric strings as numbers where the schema has a number (YAML reads ``1e-3`` as text).

    Also reads YAML's ``off`` (the boolean false) back as the text ``"off"`` for :data:`OFF_SWITCH_KEYS`.
    """
    known = schema()
    out = dict(flat)
    for key, value in flat.items():
        default = known.get(key)
        if key in OFF_SWITCH_KEYS and value is False:
            out[key] = AMP_OFF
            continue
        if isinstance(value, str) and _kind(default) in ("int", "float"):
            try:
                number = float(value)
            except ValueError:
                continue
            out[key] = int(number) if _kind(default) == "int" and number.is_integer() else number
    return out


def check_keys(flat: Mapping[str, Any], where: str) -> None:
    """Every key known to the schema, every value of a compatible type."""
    known = schema()
    for key, value in flat.items():
        if key not in known:
            close = [k for k in known if k.upper() == key.upper()]  # keys are capitals: crf.iter_max
            close += [k for k in known if k.split(".")[-1] == key.split(".")[-1]]
            close += difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}: unknown config key {key}{hint}; valid keys are those of {DEFAULT_CONFIG}")
        check_value(key, value, known[key], where)


def validate(flat: Mapping[str, Any], where: str) -> None:
    """:func:`check_keys`, and none missing."""
    check_keys(flat, where)
    missing = [k for k in schema() if k not in flat and k not in OPTIONAL_DEFAULTS]
    if missing:
        raise ConfigError(
            f"{where}: missing config keys {', '.join(missing)} (see {DEFAULT_CONFIG}; "
            f"or write only the keys you change below '{BASE_KEY}: voc12.yaml')"
        )


def parse_override(text: str) -> tuple[str, Any]:
    """``"SOLVER.ITER_MAX=100"`` -> ``("SOLVER.ITER_MAX", 100)``; the value is read as YAML, but a ``#``
    is kept as text: on a command line it is part of a path or name (``runs/exp #2``), which YAML would
    cut there as a comment."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like KEY=VALUE, e.g. SOLVER.ITER_MAX=100")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from None
    if "#" in raw and not (isinstance(value, str) and "#" in value):
        value = raw.strip()
    return key.strip(), value


def _unflatten(flat: Mapping[str, Any]) -> Dict:
    tree = Dict()
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return tree


def _display(path: Path) -> str:
    """``path`` relative to the current folder when below it (how origins are shown)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _base_path(base: Any, child: Path) -> Path:
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{child}: {BASE_KEY} must name a config file, got {base!r}")
    for candidate in (child.parent / base, CONFIG_DIR / base):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{child}: {BASE_KEY} {base!r} not found next to it nor among the packaged configs in {CONFIG_DIR}"
    )


def config_layers(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, flat keys)`` of ``path`` and its ``BASE`` chain, base first; keys checked per file."""
    layers: list[tuple[Path, dict[str, Any]]] = []
    seen: list[Path] = []
    while True:
        if path.resolve() in seen:
            chain = " -> ".join(str(p) for p in [*seen, path.resolve()])
            raise ConfigError(f"{BASE_KEY} chain loops: {chain}")
        seen.append(path.resolve())
        data = _read_yaml(path)
        base = data.pop(BASE_KEY, None)
        flat = coerce_numbers(_flatten(data))
        check_keys(flat, str(path))
        layers.insert(0, (path, flat))
        if base is None:
            return layers
        path = _base_path(base, path)


@dataclass(frozen=True)
class ResolvedConfig:
    """A loaded config and, per flat key, where its value came from (file, ``--set``, dataset, default)."""

    cfg: Dict
    origins: dict[str, str]


def resolve_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> ResolvedConfig:
    """Read ``path`` (default: the packaged voc12.yaml) over its ``BASE`` chain, apply overrides, validate.

    Null ``DATASET.SPLIT.TRAIN`` / ``VAL`` become the dataset's split names
    (``DATASET.ROOT/dataset.yaml``, else train_aug / val).
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG
    flat: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer_path, layer in config_layers(path):
        flat.update(layer)
        origins.update({key: _display(layer_path) for key in layer})
    validate(flat, str(path))
    overrides = list(overrides)  # read twice: applied here, named in a value's error below
    for text in overrides:
        key, value = parse_override(text)
        candidate = coerce_numbers({**flat, key: value})
        validate(candidate, f"override {text!r}")
        flat = candidate
        origins[key] = SET_ORIGIN
    for key, value in OPTIONAL_DEFAULTS.items():
        if key not in flat:
            flat[key] = value
            origins[key] = ABSENT_ORIGIN
    _resolve_splits(flat, origins)
    cfg = _unflatten(flat)
    try:
        _check_semantics(cfg, str(path))
    except ConfigError as exc:  # a value an override set: name the override, not the file
        text = str(exc).removeprefix(f"{path}: ")
        named = [o for o in overrides if text.startswith(parse_override(o)[0] + " ")]  # messages start with the key
        raise ConfigError(f"override {named[-1]!r}: {text}" if named else str(exc)) from None
    return ResolvedConfig(cfg, origins)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Dict:
    """Read ``path`` (default: the packaged voc12.yaml), apply ``KEY=VALUE`` overrides, validate.

    Returns an :class:`addict.Dict`, e.g. ``cfg.SOLVER.ITER_MAX``.
    """
    return resolve_config(path, overrides).cfg


def dataset_overrides(flat_or_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset settings the config sets (``DATASET.IMAGE_EXT`` ...), for ``nsrom.data.DataLayout``."""
    flat = flat_or_cfg if "DATASET.ROOT" in flat_or_cfg else _flatten(flat_or_cfg)
    return {name: flat.get(key) for key, name in DATASET_SETTING_KEYS.items()}


def _resolve_splits(flat: dict[str, Any], origins: dict[str, str]) -> None:
    from nsrom.dataset_settings import FILE_SOURCE, load_settings

    split_keys = ("DATASET.SPLIT.TRAIN", "DATASET.SPLIT.VAL")
    if all(flat.get(key) is not None for key in split_keys):
        return
    settings = load_settings(flat["DATASET.ROOT"], dataset_overrides(flat))
    for key in split_keys:
        if flat.get(key) is None:
            name = DATASET_SETTING_KEYS[key]
            flat[key] = getattr(settings, name)
            source = settings.source(name)
            where = f"{flat['DATASET.ROOT']}/dataset.yaml" if source == FILE_SOURCE else f"dataset {source}"
            origins[key] = f"{where} (null in {origins.get(key, 'the config')})"


def render_config(resolved: ResolvedConfig, notes: Mapping[str, str] | None = None) -> str:
    """The effective config as YAML, each value followed by ``# <where it came from>``.

    ``notes`` adds text after the origin of a key (e.g. what a null resolves to).
    The output is itself a complete config file.
    """
    notes = notes or {}
    rows: list[tuple[str, str]] = []

    def walk(tree: Mapping, prefix: str, depth: int) -> None:
        for key, value in tree.items():
            name = f"{prefix}{key}"
            indent = "    " * depth
            if isinstance(value, Mapping):
                rows.append((f"{indent}{key}:", ""))
                walk(value, name + ".", depth + 1)
            else:
                text = yaml.safe_dump(value, default_flow_style=True).strip()
                text = text.removesuffix("...").strip()
                comment = resolved.origins.get(name, "")
                if name in notes:
                    comment += f"; {notes[name]}"
                rows.append((f"{indent}{key}: {text}", comment))

    walk(resolved.cfg.to_dict(), "", 0)
    width = max(len(line) for line, _ in rows) + 2
    return "\n".join(f"{line:<{width}}# {comment}" if comment else line for line, comment in rows) + "\n"


def _check_semantics(cfg: Dict, where: str) -> None:
    if len(cfg.MODEL.N_BLOCKS) != 4 or min(cfg.MODEL.N_BLOCKS) < 1:
        raise ConfigError(f"{where}: MODEL.N_BLOCKS needs 4 positive entries, got {cfg.MODEL.N_BLOCKS}")
    rates = cfg.MODEL.ATROUS_RATES
    if not rates or min(rates) < 1:
        raise ConfigError(f"{where}: MODEL.ATROUS_RATES needs positive dilations (one per ASPP branch), got {rates}")
    if cfg.MODEL.WIDTH_DIV < 1:
        raise ConfigError(f"{where}: MODEL.WIDTH_DIV must be >= 1, got {cfg.MODEL.WIDTH_DIV}")
    for key in ("ITER_MAX", "ITER_SIZE", "ITER_SAVE", "ITER_TB", "LR_DECAY", "AVERAGE_LOSS"):
        if cfg.SOLVER[key] < 1:
            raise ConfigError(f"{where}: SOLVER.{key} must be >= 1, got {cfg.SOLVER[key]}")
    for key in ("ITER_VAL", "VAL_IMAGES"):
        if cfg.SOLVER[key] < 0:
            raise ConfigError(f"{where}: SOLVER.{key} must be >= 0 (0: off / all images), got {cfg.SOLVER[key]}")
    for key in ("ITER_SAVE_RECENT", "MINUTES_SAVE_RECENT"):
        if cfg.SOLVER[key] < 0:
            raise ConfigError(f"{where}: SOLVER.{key} must be >= 0 (0: off), got {cfg.SOLVER[key]}")
    if cfg.SOLVER.OPTIMIZER.lower() != "sgd":
        raise ConfigError(f"{where}: SOLVER.OPTIMIZER {cfg.SOLVER.OPTIMIZER!r} not supported (only sgd)")
    if cfg.SOLVER.AMP not in AMP_MODES:
        raise ConfigError(f"{where}: SOLVER.AMP must be one of {', '.join(AMP_MODES)}, got {cfg.SOLVER.AMP!r}")
    if cfg.CRF.BACKEND not in CRF_BACKENDS:
        raise ConfigError(f"{where}: CRF.BACKEND must be one of {', '.join(CRF_BACKENDS)}, got {cfg.CRF.BACKEND!r}")
    if cfg.CRF.BATCH_SIZE < 1:
        raise ConfigError(f"{where}: CRF.BATCH_SIZE must be >= 1, got {cfg.CRF.BATCH_SIZE}")
    scales = cfg.DATASET.SCALES
    if not scales or min(scales) <= 0:
        raise ConfigError(f"{where}: DATASET.SCALES needs at least one positive factor, got {scales}")
    if not 0 <= cfg.DATASET.IGNORE_LABEL <= 255:
        raise ConfigError(f"{where}: DATASET.IGNORE_LABEL must be in 0..255 (labels are 8-bit), "
                          f"got {cfg.DATASET.IGNORE_LABEL}")
    if cfg.IMAGE.SIZE.TRAIN < 1:
        raise ConfigError(f"{where}: IMAGE.SIZE.TRAIN (the crop side) must be >= 1, got {cfg.IMAGE.SIZE.TRAIN}")
    if cfg.SOLVER.LR <= 0:
        raise ConfigError(f"{where}: SOLVER.LR must be > 0, got {cfg.SOLVER.LR}")
    for key in ("POLY_POWER", "WEIGHT_DECAY", "MOMENTUM"):
        if cfg.SOLVER[key] < 0:
            raise ConfigError(f"{where}: SOLVER.{key} must be >= 0, got {cfg.SOLVER[key]}")
    if cfg.CRF.ITER_MAX < 1:
        raise ConfigError(f"{where}: CRF.ITER_MAX must be >= 1, got {cfg.CRF.ITER_MAX}")
    for key in ("POS_XY_STD", "BI_XY_STD", "BI_RGB_STD", "POS_W", "BI_W"):
        if cfg.CRF[key] <= 0:
            raise ConfigError(f"{where}: CRF.{key} must be > 0, got {cfg.CRF[key]}")
    if cfg.SOLVER.BATCH_SIZE.TRAIN < 1:
        raise ConfigError(f"{where}: SOLVER.BATCH_SIZE.TRAIN must be >= 1, got {cfg.SOLVER.BATCH_SIZE.TRAIN}")
    if cfg.DATALOADER.NUM_WORKERS < 0:
        raise ConfigError(f"{where}: DATALOADER.NUM_WORKERS must be >= 0 (0: load in the main process), "
                          f"got {cfg.DATALOADER.NUM_WORKERS}")
    if cfg.SOLVER.BATCH_SIZE.TEST != 1:
        raise ConfigError(f"{where}: SOLVER.BATCH_SIZE.TEST must be 1 (test runs whole images at native size)")


def to_yaml(cfg: Dict) -> str:
    """The resolved config as YAML text (written next to the checkpoints)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
