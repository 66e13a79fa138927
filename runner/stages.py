"""The stages of docs/method.md 1-7 as calls of the stage scripts' own entry points.

Each stage function takes the :class:`RunContext` and returns the entries it
adds to ``results.json`` (or nothing). The stage scripts skip outputs that
exist and resume interrupted training, so re-running a stage after a crash
continues where it stopped.

Under ``torchrun`` a stage is either *parallel* (every process runs it: the
training, export, test and CRF scripts split their work over the ranks
themselves; scoring inside them runs on rank 0 via ``run_on_main``) or runs on
rank 0 alone (label generation, the report) while the others wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from classification.run_layout import run_dirs
from nsrom import distributed
from nsrom.data_check import IMAGES, LISTS, MASKS, SALIENCY
from nsrom.errors import NsromError
from nsrom.evaluation import evaluate_cams, evaluate_labels
from nsrom.files import read_json, write_json
from nsrom.objects import has_record
from .context import CLASSIFIER_EXP, IAM_EXP, RunContext
from .results import ACCUMULATED_KEY, KEPT, MISSED_OBJECTS_KEY, NOTES_KEY, POM_KEY, RECOGNITION_KEY
from .seg_rounds import round_label_dir, seg_config, seg_paths, seg_scores
from .stage_argv import (NO_CHECK, cam_train_argv, classification_args, gen_label_argv, iam_train_argv,
                         masked_label_argv, overwrite_flag, pom_rules)
from .stage1_attempts import (ARCHIVE_DIR, ATTEMPTS_FILE, best_attempt, bring_back, clear_attempts,
                              lowest_ap, set_aside)

LOG = logging.getLogger(__name__)

StageFn = Callable[[RunContext], "dict | None"]
Need = tuple[str, "str | None"]
"""``(part of the data check, "train" | "val" | None)``: data a stage reads (see nsrom.data_check)."""

CLASSIFIER_NEEDS: tuple[Need, ...] = ((LISTS, "train"), (IMAGES, "train"))
SCORED_ON_TRAIN: tuple[Need, ...] = (*CLASSIFIER_NEEDS, (MASKS, "train"))
LABEL_NEEDS: tuple[Need, ...] = (*SCORED_ON_TRAIN, (SALIENCY, "train"))
VAL_NEEDS: tuple[Need, ...] = ((LISTS, "val"), (IMAGES, "val"), (MASKS, "val"))


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: StageFn
    parallel: bool = False
    """Under torchrun: True, every process runs the stage; False, rank 0 alone (CPU work)."""
    needs: tuple[Need, ...] = ()
    """What the stage reads of the dataset: the pipeline stops before it when the data check finds an error there."""


# --- stand-in pretrained weights (presets that make their own) ---------------------


def pretrain(ctx: RunContext) -> None:
    """Make the preset's stand-ins for the ImageNet VGG16 and COCO DeepLab weights (see presets.Standin).

    Their sizes are those of the networks that load them: ``--width-div`` and
    ``--input-size`` of the classifier flags (or ``Standin.vgg_input_size``), ``MODEL.*`` and the crop of the
    segmentation config. Files that exist are kept (unless the stage is re-run).
    """
    spec = ctx.preset.standin
    if spec is None:
        LOG.info("preset %s starts from the real pretrained weights: nothing to make", ctx.preset.name)
        return
    from classification import train
    from classification.standin import make_vgg16_standin
    from segmentation.libs.data_config import mean_bgr
    from segmentation.libs.standin import make_deeplab_standin

    if ctx.overwrite or not ctx.vgg_standin_path.is_file():
        cls = train.build_parser().parse_args([*ctx.preset.classifier_args, *ctx.classifier_extra])
        size = spec.vgg_input_size or cls.input_size
        make_vgg16_standin(ctx.vgg_standin_path, cls.width_div, size, spec.images, spec.vgg_steps,
                           spec.batch_size, spec.lr, spec.seed)
    if ctx.overwrite or not ctx.deeplab_standin_path.is_file():
        cfg = seg_config(ctx, "round1")
        make_deeplab_standin(ctx.deeplab_standin_path, cfg.MODEL.N_BLOCKS, cfg.MODEL.ATROUS_RATES,
                             cfg.MODEL.WIDTH_DIV, cfg.IMAGE.SIZE.TRAIN, mean_bgr(cfg), spec.images,
                             spec.deeplab_steps, spec.batch_size, spec.lr, spec.seed)


# --- classification: stages 1, 1b, 2 ------------------------------------------------


def score_train_output(ctx: RunContext, key: str, score: Callable[[], dict]) -> dict:
    """results.json entries of an output of the training split: ``{key: score()}``.

    Scores need ground-truth masks, which a dataset may lack for its training
    images (its labels then come from train_cls.txt): without any, nothing is
    scored and a note says so; with some, those images are scored and the
    note says how many.
    """
    split = ctx.train_split
    total = len(ctx.layout.ids(split))
    with_mask = len(ctx.layout.ids_with_masks(split))
    if with_mask == 0:
        note = f"not scored: no {split} image has a ground-truth mask"
        LOG.info("%s: %s", key, note)
        return {NOTES_KEY: {key: note}}
    entries = {key: score()}
    if with_mask < total:
        note = f"scored on the {with_mask} of {total} {split} images that have a ground-truth mask"
        LOG.info("%s: %s", key, note)
        entries[NOTES_KEY] = {key: note}
    return entries


def _export(module, ctx: RunContext, exp: str, result_key: str) -> dict:
    args = [*classification_args(ctx, exp), *ctx.preset.export_args, NO_CHECK, *overwrite_flag(ctx)]
    module.run(module.build_parser().parse_args(args))
    return distributed.run_on_main(lambda: score_train_output(ctx, result_key, lambda: evaluate_cams(
        ctx.layout, ctx.train_split, ctx.attention_dir(exp), workers=ctx.preset.label_workers)))


def cam_train(ctx: RunContext) -> dict:
    """Stage 1, trained again with the next seed while its recognition check names an unlearnt class.

    At most ``ctx.max_stage1_attempts`` trainings (the preset's, or ``pipeline.py
    --stage1-attempts``; docs/method.md, stage 1, "Recognition check"). Attempt
    k > 0 passes ``--seed`` (the first attempt's, or 0) + k and starts over in
    empty folders, the attempt before set aside (:mod:`.stage1_attempts`). The
    run keeps the first attempt that learns every class, or else the one with
    the highest lowest class AP (``"kept": true`` in its entry). The attempts
    file records each finished check and the attempt under way, so that a
    killed run resumes that attempt with its own seed.
    """
    from classification import train
    from classification.recognition import REPORT_NAME, read_report, unlearnt_text

    run_root = ctx.runs_dir / CLASSIFIER_EXP
    attempts_path = run_root / ATTEMPTS_FILE
    state = distributed.broadcast_from_main(
        read_json(attempts_path) if distributed.current().is_main and attempts_path.is_file() and not ctx.overwrite
        else {})
    attempts: list[dict] = [{k: v for k, v in a.items() if k != KEPT} for a in state.get("attempts", [])]

    def record(running: int | None) -> None:
        run_root.mkdir(parents=True, exist_ok=True)
        distributed.run_on_main(lambda: write_json(attempts_path, {"attempts": attempts, "running": running}))

    if not attempts:
        distributed.run_on_main(lambda: clear_attempts(run_root))
    first_seed = train.build_parser().parse_args(cam_train_argv(ctx)).seed or 0
    limit = ctx.max_stage1_attempts
    while not attempts or (attempts[-1]["unlearnt"] and len(attempts) < limit):
        k = len(attempts)
        if k:
            LOG.warning("stage 1 did not learn %s: training it again with --seed %d (attempt %d of at most %d)",
                        unlearnt_text(attempts[-1]), first_seed + k, k + 1, limit)
            distributed.run_on_main(lambda: set_aside(run_root, k))
        restart = None if k == 0 else state.get("running") != k  # a retry starts over unless it was under way
        record(k)
        args = train.build_parser().parse_args(cam_train_argv(ctx, first_seed + k if k else None, restart))
        if _finished_with_other_seed(ctx.runs_dir, args.seed):  # an earlier attempt's finished run was kept
            args.overwrite, args.resume = True, False
        train.run(args)
        attempts.append(read_report(run_root / REPORT_NAME))
        record(None)
    kept = best_attempt(attempts)
    if kept != len(attempts) - 1:
        def keep() -> None:
            set_aside(run_root, len(attempts))
            bring_back(run_root, kept + 1)
        distributed.run_on_main(keep)
    if attempts[kept]["unlearnt"] and limit > 1:
        LOG.warning("stage 1 did not learn every class in %d attempts; the run goes on with attempt %d "
                    "(--seed %s, lowest class AP %.3f: %s), the others are in %s", len(attempts), kept + 1,
                    attempts[kept]["seed"], lowest_ap(attempts[kept]), unlearnt_text(attempts[kept]),
                    run_root / ARCHIVE_DIR)
    attempts[kept] = {**attempts[kept], KEPT: True}
    distributed.run_on_main(lambda: write_json(attempts_path, {"attempts": attempts, "running": None}))
    return {RECOGNITION_KEY: attempts}


def _finished_with_other_seed(runs_dir: Path, seed: int | None) -> bool:
    """Whether stage 1's folder holds a finished run trained with another ``--seed`` (its ``train_args.json``)."""
    dirs = run_dirs(CLASSIFIER_EXP, runs_dir)
    if not dirs.checkpoint_final.is_file() or not dirs.train_args.is_file():
        return False
    try:
        return read_json(dirs.train_args).get("seed") != seed
    except (NsromError, AttributeError):
        return False


def cam_export(ctx: RunContext) -> dict:
    """Stage 1b: the CAMs, scored; and stage 1's accumulated maps, scored as the IAM's targets.

    The accumulated maps (``runs/exp1/accu_att``, CAM resolution of the training
    input) are resized to each image as the export resizes the CAMs and scored
    alike (``accumulated``); a run without them (a classifier trained
    elsewhere) gets a note instead.
    """
    from classification import test

    entries = _export(test, ctx, CLASSIFIER_EXP, "cam")
    accu_dir = run_dirs(CLASSIFIER_EXP, ctx.runs_dir).accu_att

    def score_accumulated() -> dict:
        if not accu_dir.is_dir():
            return {ACCUMULATED_KEY: None,  # an earlier run's score would not be this run's
                    NOTES_KEY: {ACCUMULATED_KEY: f"not scored: no accumulated maps in {accu_dir}"}}
        return score_train_output(ctx, ACCUMULATED_KEY, lambda: evaluate_cams(
            ctx.layout, ctx.train_split, accu_dir, workers=ctx.preset.label_workers, resize=True))

    return merge_entries(entries, distributed.run_on_main(score_accumulated))


def merge_entries(first: dict | None, second: dict | None) -> dict:
    """Two sets of a stage's results.json entries as one, their notes joined (the second's win on a key)."""
    merged = {**(first or {}), **(second or {})}
    notes = {**(first or {}).get(NOTES_KEY, {}), **(second or {}).get(NOTES_KEY, {})}
    if notes:
        merged[NOTES_KEY] = notes
    return merged


def iam_train(ctx: RunContext) -> None:
    from classification import train_iam

    train_iam.run(train_iam.build_parser().parse_args(iam_train_argv(ctx)))


def oacam_export(ctx: RunContext) -> dict:
    from classification import test_iam

    return _export(test_iam, ctx, IAM_EXP, "oacam")


# --- pseudo labels: stages 3 and 6 --------------------------------------------------


def _check_status(status: int, what: str) -> None:
    if status != 0:
        raise NsromError(f"{what} did not finish for every image (see the summary above)")


def _gen_label(ctx: RunContext, out_dir, without_pom: bool = False) -> None:
    """gen_label.py with the preset's rules and the extra flags; ``without_pom``: ``--no-pom`` after them all."""
    from classification import gen_label

    status = gen_label.main(gen_label_argv(ctx, out_dir, without_pom))
    _check_status(status, "gen_label.py")


def pseudo_label(ctx: RunContext) -> dict:
    """Stage 3, and the same labels without POM (the ablation, ``W/pseudo_labels_no_pom``, scored too).

    A run whose stage 3 itself is without POM (``--pseudo-label-arg=--no-pom``)
    has no ablation: results.json records ``pom: false`` and no
    ``pseudo_label_no_pom``, and the report names its labels as without POM.
    """
    with_pom = pom_rules(ctx).pom
    _gen_label(ctx, ctx.pseudo_dir)
    entries = score_train_output(ctx, "pseudo_label", lambda: evaluate_labels(
        ctx.layout, ctx.train_split, ctx.pseudo_dir, ctx.preset.label_workers))
    entries[POM_KEY] = with_pom
    if not with_pom:
        entries["pseudo_label_no_pom"] = None  # an ablation of an earlier run would be this run's labels
        return entries
    _gen_label(ctx, ctx.pseudo_no_pom_dir, without_pom=True)
    ablation = score_train_output(ctx, "pseudo_label_no_pom", lambda: evaluate_labels(
        ctx.layout, ctx.train_split, ctx.pseudo_no_pom_dir, ctx.preset.label_workers))
    return merge_entries(entries, ablation)


def masked_label(ctx: RunContext) -> dict:
    from classification import gen_masked_label

    status = gen_masked_label.main(masked_label_argv(ctx))
    _check_status(status, "gen_masked_label.py")
    return score_train_output(ctx, "masked_label", lambda: evaluate_labels(
        ctx.layout, ctx.train_split, ctx.masked_dir, ctx.preset.label_workers))


# --- segmentation: stages 4, 5, 7 ---------------------------------------------------


def _seg_train(ctx: RunContext, round_id: str) -> None:
    from segmentation import main as seg_main
    from segmentation.libs.cli import run_group

    args = ["train", *ctx.seg_args(round_id, round_label_dir(ctx, round_id)), ctx.cuda_flag, NO_CHECK,
            *overwrite_flag(ctx)]
    seed = ctx.seed if ctx.seed is not None else ctx.preset.seed
    if seed is not None:
        args += ["--seed", str(seed)]
    paths = seg_paths(ctx, round_id)
    # A finished run is skipped by train itself; an interrupted one continues exactly from its most
    # advanced checkpoint (checkpoint_recent.pth or checkpoint_<step>.pth).
    interrupted = not paths.final_checkpoint.is_file() and any(paths.model_dir.glob("checkpoint_*.pth"))
    if not ctx.overwrite and distributed.broadcast_from_main(interrupted):  # every rank decides alike
        args.append("--resume")
    run_group(seg_main.cli, args, "main.py")


def _seg_eval(ctx: RunContext, round_id: str, crf: bool) -> dict:
    from segmentation import main as seg_main
    from segmentation.libs.cli import run_group

    round_args = ctx.seg_args(round_id, round_label_dir(ctx, round_id))
    if crf:
        run_group(seg_main.cli, ["crf", *round_args, ctx.cuda_flag, "-j", str(ctx.preset.crf_jobs), NO_CHECK],
                  "main.py")
    else:
        run_group(seg_main.cli, ["test", *round_args, ctx.cuda_flag, NO_CHECK, *overwrite_flag(ctx)], "main.py")
    path = seg_paths(ctx, round_id).score_path(ctx.val_split, crf=crf)
    if not path.is_file():
        raise NsromError(f"{path} was not written: does the val split have ground truth?")
    return {f"seg_{round_id}{'_crf' if crf else ''}": seg_scores(read_json(path))}


def _trainaug_pred(ctx: RunContext, round_id: str = "round1") -> None:
    from segmentation import trainaug_pred as tp
    from segmentation.libs.cli import run_group

    round_args = ctx.seg_args(round_id, round_label_dir(ctx, round_id))
    run_group(tp.cli, ["test", *round_args, ctx.cuda_flag, NO_CHECK, *overwrite_flag(ctx)], "trainaug_pred.py")
    run_group(
        tp.cli, ["crf", *round_args, ctx.cuda_flag, "-j", str(ctx.preset.crf_jobs), NO_CHECK, *overwrite_flag(ctx)],
        "trainaug_pred.py",
    )


# --- the paper's claim: where the objects the saliency map misses end up ----------

def _round2_trainaug_pred(ctx: RunContext) -> None:
    """Round-2 predictions + CRF on train_aug, for :func:`missed_objects` (only with an object record)."""
    if not has_record(ctx.data_root):
        LOG.info("no object record (objects.json) in %s: round-2 predictions on %s not needed",
                 ctx.data_root, ctx.train_split)
        return
    _trainaug_pred(ctx, "round2")


def missed_objects(ctx: RunContext) -> dict:
    """Where the pixels of the objects the saliency map misses end up, at each stage (nsrom/objects.py).

    Over train_aug, for the labels without and with POM (stage 3), the masked
    labels (stage 6) and the round-1 and round-2 predictions with CRF: the
    share labelled with the object's class, ignored, background or another
    class. Needs the dataset's object record; real VOC has none (nothing is added).
    """
    if not has_record(ctx.data_root):
        LOG.info("no object record (objects.json) in %s: no analysis of the missed objects", ctx.data_root)
        return {}
    from nsrom.objects import object_shares, read_record

    record = read_record(ctx.data_root)
    ids = ctx.layout.ids(ctx.train_split)
    folders = {
        **({"pseudo_label_no_pom": ctx.pseudo_no_pom_dir} if pom_rules(ctx).pom else {}),
        "pseudo_label": ctx.pseudo_dir,
        "masked_label": ctx.masked_dir,
        "seg_round1": seg_paths(ctx, "round1").label_crf_dir(ctx.train_split),
        "seg_round2": seg_paths(ctx, "round2").label_crf_dir(ctx.train_split),
    }
    return {MISSED_OBJECTS_KEY: {key: object_shares(ctx.layout, ids, folder, record=record)
                                 for key, folder in folders.items() if folder.is_dir()}}


def report(ctx: RunContext) -> None:
    from .figures import draw_figures, draw_missed_objects
    from .plots import draw_threshold_curves
    from .results import load_results

    draw_figures(ctx)
    draw_missed_objects(ctx)
    draw_threshold_curves(load_results(ctx.results_path), ctx.figure_path("cam_thresholds"))



STAGES: list[Stage] = [
    Stage("pretrain", "stand-in pretrained weights (presets that make their own)", pretrain),
    Stage("cam_train", "stage 1: OAA classifier + online attention accumulation", cam_train, parallel=True,
          needs=CLASSIFIER_NEEDS),
    Stage("cam_export", "stage 1b: CAMs of the training images", cam_export, parallel=True, needs=SCORED_ON_TRAIN),
    Stage("iam_train", "stage 2: integral attention model", iam_train, parallel=True, needs=CLASSIFIER_NEEDS),
    Stage("oacam_export", "stage 2: OA-CAMs of the training images", oacam_export, parallel=True,
          needs=SCORED_ON_TRAIN),
    Stage("pseudo_label", "stage 3: pseudo labels with POM (gen_label.py)", pseudo_label, needs=LABEL_NEEDS),
    Stage("seg1_train", "stage 4: DeepLab-v2 round 1, train", lambda ctx: _seg_train(ctx, "round1"), parallel=True,
          needs=CLASSIFIER_NEEDS),
    Stage("seg1_test", "stage 4: DeepLab-v2 round 1, test on val", lambda ctx: _seg_eval(ctx, "round1", False),
          parallel=True, needs=VAL_NEEDS),
    Stage("seg1_crf", "stage 4: DeepLab-v2 round 1, CRF on val", lambda ctx: _seg_eval(ctx, "round1", True),
          parallel=True, needs=VAL_NEEDS),
    Stage("trainaug_pred", "stage 5: round-1 predictions + CRF on train_aug", _trainaug_pred, parallel=True,
          needs=SCORED_ON_TRAIN),
    Stage("masked_label", "stage 6: masked pseudo labels, NSRM (gen_masked_label.py)", masked_label,
          needs=LABEL_NEEDS),
    Stage("seg2_train", "stage 7: DeepLab-v2 round 2, train", lambda ctx: _seg_train(ctx, "round2"), parallel=True,
          needs=CLASSIFIER_NEEDS),
    Stage("seg2_test", "stage 7: DeepLab-v2 round 2, test on val", lambda ctx: _seg_eval(ctx, "round2", False),
          parallel=True, needs=VAL_NEEDS),
    Stage("seg2_crf", "stage 7: DeepLab-v2 round 2, CRF on val", lambda ctx: _seg_eval(ctx, "round2", True),
          parallel=True, needs=VAL_NEEDS),
    Stage("seg2_trainaug_pred", "round-2 predictions + CRF on train_aug (datasets with an object record)",
          _round2_trainaug_pred, parallel=True, needs=SCORED_ON_TRAIN),
    Stage("missed_objects", "where the pixels of the objects the saliency map misses end up, per stage",
          missed_objects, needs=SCORED_ON_TRAIN),
    Stage("report", "results.md, the figure grids and the CAM threshold curves", report,
          needs=(*SCORED_ON_TRAIN, *VAL_NEEDS)),
]
STAGE_NAMES = [s.name for s in STAGES]
