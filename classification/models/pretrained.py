"""Loading ImageNet VGG16 weights and NSROM checkpoints into an :class:`AttentionNet`.

ImageNet weights (docs/method.md, stage 1, "Network", and stage 2) are
torchvision's ``vgg16-397923af.pth``; only its ``features.*`` tensors are used,
the head stays randomly initialised. Every failure is an
:class:`~nsrom.errors.NsromError` that says what to download and where to put
it, or which flag avoids it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from nsrom.errors import ConfigError, NsromError
from nsrom.training_state import load_torch_file, state_dict_mismatch

log = logging.getLogger(__name__)

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_FILE = "vgg16-397923af.pth"
BACKBONE_PREFIX = "features."


@dataclass
class LoadReport:
    """What a partial load did: tensors loaded, model tensors left as they were, file tensors unused."""

    loaded: list[str] = field(default_factory=list)
    not_loaded: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self, what: str) -> str:
        def names(keys: list[str]) -> str:
            shown = ", ".join(keys[:6])
            return shown + (f", ... ({len(keys) - 6} more)" if len(keys) > 6 else "")

        lines = [f"loaded {len(self.loaded)} tensors from {what}"]
        if self.not_loaded:
            lines.append(f"not loaded (randomly initialised): {len(self.not_loaded)}: {names(self.not_loaded)}")
        if self.unused:
            lines.append(f"unused in the file: {len(self.unused)}: {names(self.unused)}")
        return "; ".join(lines)


def unwrap_state_dict(obj: object, what: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: ``obj['state_dict']``, ``obj['model']`` or ``obj``.

    A ``module.`` prefix (the original code saved DataParallel models) is removed.
    """
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise NsromError(f"{what} holds no state dict (expected tensors, or a 'state_dict'/'model' entry)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def fetch_imagenet_vgg16(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """ImageNet VGG16 state dict from ``path``, else from torch's hub cache / the download URL."""
    if path is not None:
        return unwrap_state_dict(load_torch_file(Path(path), "ImageNet VGG16 weights"), str(path))
    cache = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    try:
        state = torch.hub.load_state_dict_from_url(VGG16_URL, map_location="cpu", progress=False)
    except Exception as exc:  # offline, proxy, partial download: all end in the same advice
        raise NsromError(
            f"cannot get the ImageNet VGG16 weights ({exc.__class__.__name__}: {exc}). "
            f"Download {VGG16_URL} and either put it at {cache} or pass --pretrained-path FILE; "
            "or train from random init with --no-pretrained (with pipeline.py: --cls-arg=--pretrained-path=FILE "
            "or --cls-arg=--no-pretrained)"
        ) from None
    return unwrap_state_dict(state, VGG16_URL)


def load_backbone(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> LoadReport:
    """Copy the ``features.*`` tensors of ``state`` into ``model`` (shapes must match)."""
    own = model.state_dict()
    report = LoadReport()
    to_load = {}
    for key, value in state.items():
        if key.startswith(BACKBONE_PREFIX) and key in own:
            if own[key].shape != value.shape:
                raise ConfigError(
                    f"{what}: {key} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(own[key].shape)}: the weights were made for another width "
                    f"(the ImageNet file fits --width-div 1; a narrower network needs a file of its width)"
                )
            to_load[key] = value
            report.loaded.append(key)
        else:
            report.unused.append(key)
    if not to_load:
        raise NsromError(f"{what} has no {BACKBONE_PREFIX}* tensors of a VGG16; is it the right file?")
    model.load_state_dict(to_load, strict=False)
    report.not_loaded = [k for k in own if k not in to_load and not k.endswith("num_batches_tracked")]
    return report


def load_imagenet_vgg16(model: nn.Module, path: str | Path | None = None) -> LoadReport:
    """Load ImageNet VGG16 weights into ``model.features`` and log what was (not) loaded."""
    what = str(path) if path is not None else VGG16_FILE
    report = load_backbone(model, fetch_imagenet_vgg16(path), what)
    log.info(report.summary(what))
    return report


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (ours or the original code's) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise NsromError(f"checkpoint not found: {path}; train first (train.sh / train_iam.sh) or pass --checkpoint FILE")
    obj = load_torch_file(path, "checkpoint")
    return obj if isinstance(obj, dict) else {"state_dict": obj}


def load_model_state(model: nn.Module, checkpoint: Mapping, what: str) -> None:
    """Load the state dict of ``checkpoint`` strictly into ``model``, with a clear error on a mismatch."""
    state = unwrap_state_dict(checkpoint, what)
    missing, unexpected, wrong = state_dict_mismatch(state, model.state_dict())
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected or wrong:
        raise ConfigError(
            f"checkpoint {what} does not fit this network: missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}, other shapes {wrong[:4]}. Check --arch (vgg: classifier, vgg1: IAM), "
            "--width-div and --num-classes"
        )
    model.load_state_dict(state, strict=False)


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Read a checkpoint, load its weights into ``model``; returns the whole checkpoint."""
    checkpoint = read_checkpoint(path)
    load_model_state(model, checkpoint, str(path))
    return checkpoint
