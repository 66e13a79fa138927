"""The flags of every stage to run, checked before the first one: a typo, a value out of its range
or an unknown network then stops the run at once instead of when its stage starts, hours into a
VOC run."""

from __future__ import annotations

import argparse
from pathlib import Path

from nsrom.errors import ConfigError
from .context import RunContext
from .stage_argv import cam_train_argv, gen_label_argv, iam_train_argv, masked_label_argv

SEG_STAGES = frozenset({"seg1_train", "seg1_test", "seg1_crf", "trainaug_pred", "seg2_train", "seg2_test",
                        "seg2_crf", "seg2_trainaug_pred"})
"""The stages that read the segmentation config."""

RUNNER_SEG_KEYS = {
    "DATASET.ROOT": "--data-root",
    "DATASET.SPLIT.TRAIN": "--train-split",
    "DATASET.SPLIT.VAL": "--val-split",
    "DATASET.IMAGE_EXT": "--image-ext",
    "DATASET.MASK_DIR": "--mask-dir",
    "DATASET.LABEL_DIR": "nothing: each round trains on the labels of its stage (3 or 6)",
    "EXP.OUTPUT_DIR": "--work-dir",
    "EXP.ID": "nothing: the rounds are round1 and round2",
}
"""Config keys the runner sets for each DeepLab-v2 round, and the flag that chooses them instead."""


def check_runner_keys(overrides: list[str]) -> None:
    """Refuse a ``--seg-set`` of a key that the runner sets for each round (:data:`RUNNER_SEG_KEYS`):
    coming last, it would win, and both rounds would share one folder or one set of labels."""
    for item in overrides:
        key = item.partition("=")[0].strip().upper()
        hit = [k for k in RUNNER_SEG_KEYS if k == key or k.startswith(key + ".")]
        if hit:
            raise ConfigError(f"--seg-set {item}: the pipeline sets {', '.join(hit)} for each round; use "
                              + "; ".join(f"for {k}: {RUNNER_SEG_KEYS[k]}" for k in hit))


def check_stage_flags(ctx: RunContext, names: set[str]) -> ConfigError | None:
    """Parse the flags of each stage in ``names`` with its script's parser, before the first stage runs.

    A typo in ``--cls-arg``, ``--cam-arg``, ``--pseudo-label-arg``,
    ``--masked-label-arg``, ``--seg-set`` or ``--seg-config`` then stops the run
    at once instead of when its stage starts, hours into a VOC run. Returns the
    problem of a missing COCO init file of a preset that loads the real one
    (None when there is none), which the runner names with the data's problems.
    """
    from classification import gen_label, gen_masked_label, train, train_iam
    from classification.labeling.nsrm import NsrmRules
    from classification.labeling.pom import PomRules
    from classification.labeling.settings import rules_from_args
    from segmentation.libs.models import check_model_name
    from segmentation.libs.models.init_weights import COCO_INIT_HELP
    from segmentation.libs.utils.config import load_config

    check_runner_keys(list(ctx.seg_overrides))
    if "pretrain" in names and ctx.preset.standin is not None:
        names = names | {"cam_train", "seg1_train"}  # the stand-ins are made with the networks' settings
    scripts = {
        "cam_train": (train, cam_train_argv, "--cls-arg / --cam-arg", None),
        "iam_train": (train_iam, iam_train_argv, "--cls-arg", None),
        "pseudo_label": (gen_label, lambda c: gen_label_argv(c, c.pseudo_dir), "--pseudo-label-arg", PomRules),
        "masked_label": (gen_masked_label, masked_label_argv, "--masked-label-arg", NsrmRules),
    }
    for name, (module, argv, flags, rules) in scripts.items():
        if name not in names:
            continue
        parser = module.build_parser()
        parser.exit_on_error = False  # a bad value raises instead of printing the script's usage
        try:
            parsed, unknown = parser.parse_known_args(argv(ctx))
        except argparse.ArgumentError as exc:
            raise ConfigError(f"stage {name} ({flags}): {exc}") from None
        if unknown:
            raise ConfigError(f"stage {name} ({flags}): {module.__name__} has no flag {' '.join(unknown)}"
                              + flag_hint(unknown))
        if rules is not None:
            try:
                rules_from_args(parsed, rules)  # a value out of its range stops the run here too
            except ConfigError as exc:
                raise ConfigError(f"stage {name} ({flags}): {exc}") from None
    if names & SEG_STAGES:
        cfg = load_config(ctx.seg_config_path, ctx.seg_sets("round1", ctx.pseudo_dir))  # names a bad --seg-set key
        check_model_name(cfg.MODEL.NAME)
        init = cfg.MODEL.INIT_MODEL
        if ctx.preset.standin is None and init and not Path(init).is_file():
            return ConfigError(f"MODEL.INIT_MODEL: {init} not found; {COCO_INIT_HELP.replace('--set', '--seg-set')}"
                               "; with pipeline.py: --seg-set MODEL.INIT_MODEL=null to train from scratch")
    return None


def flag_hint(unknown: list[str]) -> str:
    """For ``--x 0.7`` given as one token (``--pseudo-label-arg="--x 0.7"``): the ``--x=0.7`` form."""
    spaced = next((token for token in unknown if token.startswith("--") and " " in token), None)
    if spaced is None:
        return ""
    flag, _, value = spaced.partition(" ")
    return f" (a flag and its value go in one argument as {flag}={value.strip()})"
