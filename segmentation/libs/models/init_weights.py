"""Loading initial weights and checkpoints into DeepLab-v2 (docs/method.md, stage 4).

Three source layouts are understood:

* deeplab-pytorch's, with or without the ``base.`` prefix: the COCO-pretrained
  ``deeplabv1_resnet101-coco.pth`` (the paper's 70.4 setting) or a caffe
  ImageNet ResNet-101 converted the same way;
* torchvision's ResNet-101 (``conv1``, ``bn1``, ``layerX.Y.convZ``,
  ``downsample.0/1``; the paper's 68.3 ImageNet setting): keys are mapped onto
  the caffe-style names, and the first conv is folded so that it takes the
  BGR, mean-subtracted, 0..255 input of this network (:func:`fold_torchvision_input`);
* this project's training checkpoints (a dict with ``model``/``optimizer``/``step``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from nsrom.errors import NsromError
from nsrom.training_state import load_torch_file, state_dict_mismatch

LOG = logging.getLogger(__name__)

MIN_INIT_MATCH = 0.5
"""An init file that fills fewer than this share of the base tensors is an error."""
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
"""Input normalisation a torchvision ResNet was trained with (RGB, 0..1 scale)."""
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (104.008, 116.669, 122.675)
"""The mean this network subtracts from its BGR 0..255 input: IMAGE.MEAN of the configs; the default of
:func:`fold_torchvision_input` and :func:`load_init`, which training calls with the config's own value."""

COCO_INIT_HELP = (
    "download deeplabv1_resnet101-coco.pth (COCO-pretrained DeepLab-v1 ResNet-101) from the "
    "NSROM release (https://nsrom-2.oss-cn-shanghai.aliyuncs.com/deeplabv1_resnet101-coco.pth) "
    "or make it with deeplab-pytorch (scripts/setup_caffemodels.sh, then "
    "`python convert.py --dataset coco`), and put it at that path or point MODEL.INIT_MODEL at it "
    "(--set MODEL.INIT_MODEL=PATH); to train from scratch use --no-init or MODEL.INIT_MODEL: null"
)
CHECKPOINT_HELP = (
    "train a model with `python main.py train ...`, or download the released model "
    "checkpoint_70.4.pth (https://nsrom-2.oss-cn-shanghai.aliyuncs.com/checkpoint_70.4.pth) "
    "into segmentation/data/models/ and pass --model-path data/models/checkpoint_70.4.pth"
)

_TV_LAYER = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")
_TV_PARTS = {
    "conv1": "reduce.conv", "bn1": "reduce.bn",
    "conv2": "conv3x3.conv", "bn2": "conv3x3.bn",
    "conv3": "increase.conv", "bn3": "increase.bn",
    "downsample.0": "shortcut.conv", "downsample.1": "shortcut.bn",
}


def read_weights(path: str | Path, help_text: str) -> dict[str, torch.Tensor]:
    """Load a weight file to CPU and unwrap it to a flat ``{key: tensor}`` dict.

    A missing file raises :class:`NsromError` with ``help_text`` (what to
    download and where). Training checkpoints (``{"model": ...}``) and
    ``{"state_dict": ...}`` wrappers are unwrapped.
    """
    path = Path(path)
    obj = load_torch_file(path, "weight file", missing_help=help_text)
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise NsromError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return dict(obj)


def is_torchvision_layout(state: Mapping[str, torch.Tensor]) -> bool:
    """True for torchvision ResNet keys (``conv1.weight``, ``layer1.0.conv1.weight``, ...)."""
    return "conv1.weight" in state or any(_TV_LAYER.match(k) for k in state)


def torchvision_to_deeplab(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename torchvision ResNet keys to deeplab-pytorch base keys.

    ``conv1``/``bn1`` -> ``layer1.conv1.conv``/``.bn``; ``layerX.Y.convZ/bnZ`` ->
    ``layer(X+1).block(Y+1).reduce|conv3x3|increase``; ``downsample.0/1`` ->
    ``shortcut.conv/bn``. Returns the renamed dict and the keys left unmapped
    (``fc.*``). Torchvision strides in the 3x3 conv, the caffe layout in the
    1x1 ``reduce``; the shapes are the same, so the weights transfer.
    """
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if key.startswith("conv1."):
            out["layer1.conv1.conv." + key[len("conv1."):]] = value
            continue
        if key.startswith("bn1."):
            out["layer1.conv1.bn." + key[len("bn1."):]] = value
            continue
        match = _TV_LAYER.match(key)
        if match:
            layer, block, rest = int(match.group(1)), int(match.group(2)), match.group(3)
            for tv_name, dl_name in _TV_PARTS.items():
                if rest.startswith(tv_name + "."):
                    out[f"layer{layer + 1}.block{block + 1}.{dl_name}.{rest[len(tv_name) + 1:]}"] = value
                    break
            else:
                unmapped.append(key)
            continue
        unmapped.append(key)
    return out, unmapped


def fold_torchvision_input(
    state: dict[str, torch.Tensor], mean_bgr: Sequence[float] = CAFFE_MEAN_BGR
) -> dict[str, torch.Tensor]:
    """Make a torchvision stem accept this network's input: BGR, 0..255, minus ``mean_bgr`` (IMAGE.MEAN).

    Torchvision's first conv sees ``(x/255 - m) / s`` in RGB order. Since
    ``x/255 - m = (x_bgr - M + (M - 255 m)) / 255`` per channel, the stem gives
    the same BatchNorm output when its weight is channel-reversed and divided by
    ``255 s``, and the BN running mean absorbs the small constant
    ``conv(M - 255 m)`` (exact away from the zero-padded border).
    Expects deeplab keys (after :func:`torchvision_to_deeplab`); returns a new dict.
    """
    state = dict(state)
    weight = state["layer1.conv1.conv.weight"].to(torch.float32)
    std_bgr = torch.tensor(TORCHVISION_STD_RGB[::-1]).view(1, 3, 1, 1)
    folded = weight.flip(1) / (255.0 * std_bgr)
    shift_bgr = torch.tensor(tuple(mean_bgr)) - 255.0 * torch.tensor(TORCHVISION_MEAN_RGB[::-1])
    offset = (folded * shift_bgr.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    state["layer1.conv1.conv.weight"] = folded
    key = "layer1.conv1.bn.running_mean"
    if key in state:
        state[key] = state[key] - offset
    return state


def load_init(
    base: nn.Module, path: str | Path, fold_input: bool = True, mean_bgr: Sequence[float] = CAFFE_MEAN_BGR
) -> dict:
    """Load an init file into the DeepLab base network (without the ASPP when it differs).

    A torchvision-layout file's stem is folded for this network's input, minus
    ``mean_bgr`` (:func:`fold_torchvision_input`; training passes IMAGE.MEAN).

    Every base tensor whose name and shape are found is copied; the rest keep
    their fresh initialisation. Logs how many tensors matched (``num_batches_tracked``
    not counted) and which were skipped; fewer than :data:`MIN_INIT_MATCH`
    matched raises :class:`NsromError`. Returns the report dict.
    """
    source = read_weights(path, COCO_INIT_HELP)
    source = {k[len("base."):] if k.startswith("base.") else k: v for k, v in source.items()}
    unused: list[str] = []
    layout = "deeplab"
    if is_torchvision_layout(source):
        layout = "torchvision"
        source, unused = torchvision_to_deeplab(source)
        if fold_input and "layer1.conv1.conv.weight" in source:
            source = fold_torchvision_input(source, mean_bgr)
    target = base.state_dict()
    counted = [k for k in target if not k.endswith("num_batches_tracked")]
    loadable = {k: v for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    skipped = [k for k in counted if k not in loadable]
    unused += [k for k in source if k not in target]
    mismatched = [k for k in source if k in target and k not in loadable]
    base.load_state_dict(loadable, strict=False)
    matched = len(counted) - len(skipped)
    report = {
        "path": str(path), "layout": layout, "matched": matched, "total": len(counted),
        "skipped": skipped, "unused": unused, "shape_mismatch": mismatched,
    }
    LOG.info("init %s (%s layout): %d of %d tensors matched", path, layout, matched, len(counted))
    for key in skipped:
        LOG.info("  skip init (kept fresh): %s", key)
    if unused:
        listed = ", ".join(unused[:10]) + (" ..." if len(unused) > 10 else "")
        LOG.info("  %d tensors of the file not used: %s", len(unused), listed)
    if matched < MIN_INIT_MATCH * len(counted):
        raise NsromError(
            f"init file {path} matched only {matched} of {len(counted)} tensors of the network "
            f"(shape mismatches: {len(mismatched)}); it is not a weight file for this MODEL.NAME / N_BLOCKS / "
            "WIDTH_DIV (a DeepLab/ResNet-101 one for the paper's network). Use deeplabv1_resnet101-coco.pth, or "
            "train from scratch: --no-init (pipeline.py: --seg-set MODEL.INIT_MODEL=null)"
        )
    return report


def checkpoint_mismatch(state: Mapping[str, torch.Tensor], model: nn.Module) -> str:
    """How a state dict differs from a model's: counts of missing and unexpected tensors, the first few names,
    and the first tensors whose shapes differ (the ASPP's first dimension is the class count)."""
    target = model.state_dict()
    missing, unexpected, other = state_dict_mismatch(state, target)
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(target[k].shape)} in the model" for k in other]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors of the model not in the file (e.g. {', '.join(missing[:2])})")
    if unexpected:
        parts.append(f"{len(unexpected)} tensors of the file not in the model (e.g. {', '.join(unexpected[:2])})")
    if shapes:
        parts.append(f"{len(shapes)} of other shapes (e.g. {'; '.join(shapes[:2])})")
    return "; ".join(parts)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a full model (``base.*`` keys) strictly: a released file or a training checkpoint.

    A file that does not fit says how (:func:`checkpoint_mismatch`) and, for a training checkpoint, that the
    config of its run is saved next to it (``config.yaml``), whose MODEL and DATASET keys it needs.
    """
    state = read_weights(path, CHECKPOINT_HELP)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        run_config = Path(path).parent / "config.yaml"
        remedy = (f"run with -c {run_config} (the config it was trained with), or --set the MODEL keys and "
                  "DATASET.LABELS of that file" if run_config.is_file() else
                  "check MODEL.NAME, MODEL.N_BLOCKS, MODEL.WIDTH_DIV and the class list (DATASET.LABELS or "
                  "DATASET.N_CLASSES)")
        raise NsromError(
            f"checkpoint {path} does not fit the configured model: {checkpoint_mismatch(state, model)}; {remedy}"
        ) from None
