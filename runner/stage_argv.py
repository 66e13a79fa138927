"""The command lines the pipeline's stages hand to the stage scripts (``train.py``, ``test.py``,
``gen_label.py``, ``gen_masked_label.py``): the dataset, the run's folders, the preset's flags
and the flags given to pipeline.py, in the order in which later ones win."""

from __future__ import annotations

from classification.labeling.pom import PomRules
from nsrom.dataset_settings import LABEL_FLAGS, layout_flags
from .context import CLASSIFIER_EXP, IAM_EXP, RunContext
from .seg_rounds import seg_paths

NO_CHECK = "--no-check-data"
"""The runner checks the data once before the first stage; the stage scripts need not again."""


def overwrite_flag(ctx: RunContext) -> list[str]:
    """``--overwrite`` when the stage is being redone (``--from``), else nothing."""
    return ["--overwrite"] if ctx.overwrite else []


def classification_args(ctx: RunContext, exp: str) -> list[str]:
    """The flags every classification script takes: the dataset, its layout flags, the run folder, the device."""
    return ["--data-root", str(ctx.data_root), *layout_flags(ctx.layout_overrides),
            "--runs-dir", str(ctx.runs_dir), "--exp", exp, "--device", ctx.device]


def classifier_argv(ctx: RunContext, exp: str, extra: list[str], preset_extra: list[str] = (),
                    own_extra: list[str] = (), restart: bool | None = None) -> list[str]:
    """The trainer's flags; ``restart`` (default: the stage is being redone) starts over, else it resumes."""
    restart = ctx.overwrite if restart is None else restart
    return [*classification_args(ctx, exp), *extra, *ctx.preset.classifier_args, *preset_extra,
            *ctx.standin_classifier_args, *ctx.classifier_extra, *own_extra, NO_CHECK,
            "--overwrite" if restart else "--resume"]


def cam_train_argv(ctx: RunContext, seed: int | None = None, restart: bool | None = None) -> list[str]:
    """Stage 1's flags; ``seed`` (a later attempt) comes after every other ``--seed``."""
    own = [*ctx.cam_extra, *(["--seed", str(seed)] if seed is not None else [])]
    return classifier_argv(ctx, CLASSIFIER_EXP, [], ctx.preset.cam_args, own, restart)


def iam_train_argv(ctx: RunContext) -> list[str]:
    """Stage 2's flags: the IAM learns the accumulated maps of stage 1's run."""
    return classifier_argv(ctx, IAM_EXP, ["--accu-exp", CLASSIFIER_EXP], ctx.preset.iam_args)


def pom_rules(ctx: RunContext) -> PomRules:
    """The stage-3 rules ``gen_label.py`` runs with: its own parser on the argv stage 3 hands it."""
    from classification import gen_label
    from classification.labeling.settings import rules_from_args

    return rules_from_args(gen_label.build_parser().parse_args(gen_label_argv(ctx, ctx.pseudo_dir)), PomRules)


def gen_label_argv(ctx: RunContext, out_dir, without_pom: bool = False) -> list[str]:
    """Stage 3's flags: the preset's rules, then ``--pseudo-label-arg``; ``without_pom``: ``--no-pom`` last."""
    from classification.labeling.settings import rules_to_argv

    return [
        "--data-root", str(ctx.data_root), *layout_flags(ctx.layout_overrides, LABEL_FLAGS),
        "--sal-dir", str(ctx.layout.saliency_dir),
        "--oacam-dir", str(ctx.attention_dir(IAM_EXP)), "--cam-dir", str(ctx.attention_dir(CLASSIFIER_EXP)),
        "--out-dir", str(out_dir), "--workers", str(ctx.preset.label_workers), NO_CHECK, *overwrite_flag(ctx),
        *rules_to_argv(ctx.preset.pom_rules), *ctx.pseudo_label_extra, *(["--no-pom"] if without_pom else []),
    ]


def masked_label_argv(ctx: RunContext) -> list[str]:
    """Stage 6's flags: round 1's CRF predictions of the training split, the preset's rules, then
    ``--masked-label-arg``."""
    from classification.labeling.settings import rules_to_argv

    return [
        "--data-root", str(ctx.data_root), *layout_flags(ctx.layout_overrides, LABEL_FLAGS),
        "--sal-dir", str(ctx.layout.saliency_dir),
        "--pred-dir", str(seg_paths(ctx, "round1").label_crf_dir(ctx.train_split)),
        "--pseudo-dir", str(ctx.pseudo_dir), "--out-dir", str(ctx.masked_dir),
        "--workers", str(ctx.preset.label_workers), NO_CHECK, *overwrite_flag(ctx),
        *rules_to_argv(ctx.preset.nsrm_rules), *ctx.masked_label_extra,
    ]
