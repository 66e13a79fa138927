"""Run the stages in order, skipping completed ones; time each; keep results current.

Under ``torchrun`` (the caller holds a ``distributed.session``) every process runs
this loop: parallel stages run on every rank, the others on rank 0 alone while
the rest wait; rank 0 decides which stages are done and alone writes the
markers, results.json and results.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import torch

from nsrom import distributed
from nsrom.data_check import MASKS, SALIENCY, DataReport, check_dataset
from nsrom.errors import ConfigError, DataError, NsromError
from nsrom.files import remove_leftover_temporaries, write_json
from nsrom.provenance import StaleOutputError
from .context import FIGURES, RunContext
from .results import (
    NOT_DONE_KEY, OTHER_SETTINGS_KEY, RESULT_KEYS, SETTINGS_KEY, SPLITS_KEY, load_results, render_markdown,
    setting_differences, update_results, weak_class_line, write_markdown,
)
from .flag_check import SEG_STAGES, check_stage_flags
from .stages import STAGE_NAMES, STAGES, Stage
from .state import StageState

LOG = logging.getLogger(__name__)

DATA_CHECK_FILE = "data_check.json"
"""The data check's report in the work dir (every problem, saliency coverage per image)."""
MAX_LOGGED_WARNINGS = 20


def select_stages(from_stage: str | None, to_stage: str | None) -> list[str]:
    """Stage names from ``from_stage`` to ``to_stage`` inclusive (default: all)."""
    for name in (from_stage, to_stage):
        if name is not None and name not in STAGE_NAMES:
            raise ConfigError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
    start = STAGE_NAMES.index(from_stage) if from_stage else 0
    stop = STAGE_NAMES.index(to_stage) + 1 if to_stage else len(STAGE_NAMES)
    if start >= stop:
        raise ConfigError(f"--from {from_stage} comes after --to {to_stage}")
    return STAGE_NAMES[start:stop]


def run_pipeline(ctx: RunContext, from_stage: str | None = None, to_stage: str | None = None) -> dict:
    """Run the selected stages; returns results.json's content.

    A stage whose marker exists is skipped. ``from_stage`` forces that stage
    and every later one to run again (their markers are removed and the stage
    scripts redo their outputs); without it, an interrupted stage resumes.
    """
    selected = select_stages(from_stage, to_stage)
    state = StageState(ctx.work_dir)
    # Every check first (settings, flags, data), so that a refused run leaves the work dir as it was.
    distributed.run_on_main(lambda: _check_work_dir(state, ctx, from_stage))
    done = distributed.run_on_main(lambda: _done_stages(state, from_stage))  # one decision for every rank
    distributed.run_on_main(lambda: _prepare(ctx, [s for s in STAGES if s.name in selected and s.name not in done]))
    distributed.run_on_main(lambda: _restore_results(ctx, state))
    distributed.run_on_main(lambda: _start(state, ctx, from_stage))
    redo = distributed.run_on_main(lambda: set(state.redo()))
    main = distributed.current().is_main
    settings = run_settings(ctx) if main else None  # as _start stored them: each done stage's marker keeps them
    for stage in STAGES:
        if stage.name not in selected:
            continue
        if stage.name in done:
            LOG.info("[%s] done earlier, skipped (re-run with --from %s)", stage.name, stage.name)
            continue
        LOG.info("[%s] %s", stage.name, stage.description)
        ctx.overwrite = stage.name in redo  # cleared by this or an earlier --from: outputs are redone
        start = time.perf_counter()
        try:
            if stage.parallel:
                entries = stage.run(ctx) or {}
            else:
                entries = distributed.run_on_main(lambda: stage.run(ctx) or {})
        except StaleOutputError as exc:  # the stage scripts name their --overwrite; say how here
            raise StaleOutputError(f"{exc}\nWith pipeline.py: --from {stage.name} redoes this stage "
                                   "and every later one.") from None
        seconds = time.perf_counter() - start
        if main:
            update_results(ctx.results_path, entries)
            _warn_weak_classes(entries)
            state.mark_done(stage.name, seconds, {"result_keys": sorted(entries), ENTRIES_KEY: entries,
                                                  SETTINGS_KEY: settings})
            state.redone(stage.name)
            LOG.info("[%s] finished in %.1f s", stage.name, seconds)
            _write_summary(ctx, state, settings)
        distributed.wait_for_all()
    return load_results(ctx.results_path)


def _warn_weak_classes(entries: dict) -> None:
    """Log the classes of a stage's scores that lie far below the others (a class not learnt)."""
    for key in (k for k in RESULT_KEYS if entries.get(k) is not None):
        if line := weak_class_line(key, entries[key]):
            LOG.warning("far below the other classes: %s", line)


DATASET_KEY = "dataset"
"""The key of :func:`run_settings` that holds the dataset's settings as this run resolved them."""
LISTS_KEY = "lists"
"""The key of :func:`run_settings` that holds a digest of each list file the stages read."""
LATER_KEYS = (DATASET_KEY, LISTS_KEY)
"""Keys added to the settings after work dirs were made without them: absent there, not compared."""

_DATA_STAGES = frozenset(STAGE_NAMES) - {"pretrain"}
SETTING_READERS: dict[str, frozenset[str]] = {
    "data_root": _DATA_STAGES, DATASET_KEY: _DATA_STAGES, LISTS_KEY: _DATA_STAGES, "layout": _DATA_STAGES,
    "seg_set": SEG_STAGES | {"pretrain", "report"},
    "seg_config": SEG_STAGES | {"pretrain", "report"},
    "cls_arg": frozenset({"pretrain", "cam_train", "iam_train"}),
    "cam_arg": frozenset({"cam_train"}),
    "stage1_attempts": frozenset({"cam_train"}),
    "pseudo_label_arg": frozenset({"pseudo_label"}),
    "masked_label_arg": frozenset({"masked_label"}),
    "seed": frozenset({"seg1_train", "seg2_train"}),
}
"""The stages whose outputs depend on each key of :func:`run_settings` (the preset and any key not
listed here: every stage)."""


def readers(key: str) -> frozenset[str]:
    """The stages that read the setting ``key`` (:data:`SETTING_READERS`)."""
    return SETTING_READERS.get(key, frozenset(STAGE_NAMES))


def list_digests(ctx: RunContext) -> dict[str, str]:
    """A short SHA-256 of each list file the stages read (the two splits, train_cls.txt, labels.txt), by
    file name: a dataset made again in place under the same path is then another dataset."""
    layout = ctx.layout
    files = [layout.list_path(ctx.train_split), layout.list_path(ctx.val_split), layout.cls_list_path,
             layout.labels_path]
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in files if path.is_file()}


def run_settings(ctx: RunContext) -> dict:
    """What a run's outputs depend on besides the code: the dataset, the preset and every extra flag."""
    return {
        "data_root": str(ctx.data_root),
        "preset": ctx.preset.name,
        "seg_set": list(ctx.seg_overrides),
        "seg_config": str(Path(ctx.seg_config).resolve()) if ctx.seg_config else None,
        "cls_arg": list(ctx.classifier_extra),
        "cam_arg": list(ctx.cam_extra),
        "pseudo_label_arg": list(ctx.pseudo_label_extra),
        "masked_label_arg": list(ctx.masked_label_extra),
        "layout": {k: v for k, v in sorted(ctx.layout_overrides.items()) if v is not None},
        DATASET_KEY: ctx.layout.settings.values(),  # ROOT/dataset.yaml's choices too (another saliency_dir)
        LISTS_KEY: list_digests(ctx),
        "seed": ctx.seed,
        # only when given: work dirs made before the flag existed keep matching
        **({"stage1_attempts": ctx.stage1_attempts} if ctx.stage1_attempts is not None else {}),
    }


def _check_work_dir(state: StageState, ctx: RunContext, from_stage: str | None) -> None:
    """Refuse a run that would mix settings or skip stages (nothing is written here).

    Without ``--from``, a work dir with finished stages must have been made with
    the same :func:`run_settings` (another dataset, other flags or another
    ``dataset.yaml`` would be mixed with its outputs). With ``--from STAGE``
    every earlier stage must be done.
    """
    if from_stage is not None:
        missing = [n for n in STAGE_NAMES[:STAGE_NAMES.index(from_stage)] if not state.is_done(n)]
        if missing:
            raise ConfigError(
                f"--from {from_stage}: the stages before it have not all run in {ctx.work_dir} "
                f"(not done: {', '.join(missing)}); run without --from, which resumes where the last run stopped")
    now, before = run_settings(ctx), state.settings()
    for key in LATER_KEYS:
        if before is not None and key not in before:  # a work dir made before the key was stored
            now.pop(key)
    if from_stage is not None and before is not None:
        _check_from_reaches_changes(from_stage, before, now)
    if from_stage is None and before is not None and before != now and not _nothing_written(ctx, state, before):
        changed = setting_differences(before, now)
        if all(c.startswith(f"{LISTS_KEY}.") for c in changed):
            same = "restore the dataset's lists (the dataset was made again or edited in place)"
        elif all(c.startswith((f"{DATASET_KEY}.", f"{LISTS_KEY}.")) for c in changed):
            same = "restore the dataset's ROOT/dataset.yaml"
        else:
            same = "give the same flags"
        raise ConfigError(
            f"{ctx.work_dir} holds a run made with other settings ({'; '.join(changed)}); {same} to "
            "continue it, --from STAGE to redo the stages the change affects (--from pretrain: all of "
            "them), or another --work-dir")


def _check_from_reaches_changes(from_stage: str, before: dict, now: dict) -> None:
    """Refuse ``--from STAGE`` with a changed setting that no stage from STAGE on reads: the run would
    change nothing, yet record the setting as its own."""
    later = set(STAGE_NAMES[STAGE_NAMES.index(from_stage):])
    for key in sorted(set(before) | set(now)):
        if before.get(key) == now.get(key) or readers(key) & later:
            continue
        first = next(name for name in STAGE_NAMES if name in readers(key))
        change = "; ".join(setting_differences({key: before.get(key)}, {key: now.get(key)}))
        raise ConfigError(f"--from {from_stage}: {change}, but only stages before {from_stage} read it "
                          f"({', '.join(n for n in STAGE_NAMES if n in readers(key))}); --from {first} "
                          "redoes them with it, or give the run's earlier value")


def _start(state: StageState, ctx: RunContext, from_stage: str | None) -> None:
    """Once every check has passed: store this run's settings, and clear the markers of ``from_stage``
    and every later stage (they run again) with their scores in results.json."""
    state.store_settings(run_settings(ctx))
    if from_stage is None:
        return
    cleared = [name for name in STAGE_NAMES[STAGE_NAMES.index(from_stage):] if state.is_done(name)]
    keys = {key for name in cleared for key in state.info(name).get("result_keys", [])}
    state.clear(STAGE_NAMES[STAGE_NAMES.index(from_stage):])
    if ctx.results_path.is_file():  # scores of the stages to redo are no longer this run's
        update_results(ctx.results_path, {key: None for key in keys})
        _write_summary(ctx, state)


ENTRIES_KEY = "entries"
"""The key of a stage marker that holds what the stage added to results.json."""


def _restore_results(ctx: RunContext, state: StageState) -> None:
    """Rebuild results.json from the markers of the done stages when it is missing or not valid JSON (deleted
    or edited by hand): every marker keeps what its stage added, so no stage has to run again for its scores."""
    done = [name for name in STAGE_NAMES if state.is_done(name)]
    if not done:
        return
    if ctx.results_path.is_file():
        try:
            load_results(ctx.results_path)
            return
        except DataError:
            damaged = ctx.results_path.with_name(ctx.results_path.name + ".damaged")
            ctx.results_path.replace(damaged)
            reason = f"it was not valid JSON; kept as {damaged.name}"
    else:
        reason = "it was missing"
    lacking = [name for name in done if ENTRIES_KEY not in state.info(name)]
    for name in done:
        update_results(ctx.results_path, state.info(name).get(ENTRIES_KEY) or {})
    _write_summary(ctx, state)
    LOG.warning("results.json rebuilt from the stage markers (%s)%s", reason,
                f"; stages done before markers kept their scores have none there: {', '.join(lacking)} "
                f"(--from {lacking[0]} redoes them)" if lacking else "")


def _nothing_written(ctx: RunContext, state: StageState, before: dict) -> bool:
    """True for a work dir of the same preset, one that makes no stand-ins, where no stage but its no-op
    ``pretrain`` is done and no weights or maps exist (a run stopped before stage 1 trained, e.g. for a missing
    download): other flags cannot mix with anything there."""
    done = [name for name in STAGE_NAMES if state.is_done(name)]
    return (ctx.preset.standin is None and before.get("preset") == ctx.preset.name and done in ([], ["pretrain"])
            and not any(ctx.work_dir.rglob("*.pth")) and not any(ctx.work_dir.rglob("*.png")))


def _done_stages(state: StageState, from_stage: str | None) -> set[str]:
    """Stages with a marker, but ``from_stage`` and the later ones (which :func:`_start` clears)."""
    again = set(STAGE_NAMES[STAGE_NAMES.index(from_stage):]) if from_stage is not None else set()
    return {name for name in STAGE_NAMES if state.is_done(name) and name not in again}


def machine_info(device: str) -> dict:
    """Where the stages were timed: CPU cores of the machine, torch's threads, the device asked for."""
    return {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device}


def _prepare(ctx: RunContext, stages: list[Stage]) -> None:
    """Before the first stage (rank 0): delete temporaries a killed run left, check the data."""
    removed = remove_leftover_temporaries(ctx.work_dir, recursive=True)
    if removed:
        LOG.info("removed %d temporary files left by an interrupted run", removed)
    missing_init = check_stage_flags(ctx, {stage.name for stage in stages})  # a flag typo stops the run here
    problems = [missing_init] if missing_init is not None else []  # the rest at once, not one per run
    try:
        check_data(ctx, stages)
    except NsromError as exc:
        problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError("before the first stage:\n" + "\n".join(f"- {exc}" for exc in problems))


def check_data(ctx: RunContext, stages: list[Stage]) -> DataReport | None:
    """Check the dataset once before the first stage (nsrom.data_check); stop on what the stages to run need.

    Writes ``W/data_check.json`` (every problem, the saliency coverage per
    image) and logs the warnings and saliency statistics. Nothing to run,
    nothing checked.
    """
    if not stages:
        return None
    report = check_dataset(ctx.layout, [ctx.train_split, ctx.val_split], workers=ctx.preset.label_workers)
    write_json(ctx.work_dir / DATA_CHECK_FILE, report.to_dict())
    for problem in report.warnings[:MAX_LOGGED_WARNINGS]:
        LOG.warning("data check: %s", problem.line())
    if len(report.warnings) > MAX_LOGGED_WARNINGS:
        LOG.warning("data check: %d more warnings in %s", len(report.warnings) - MAX_LOGGED_WARNINGS,
                    ctx.work_dir / DATA_CHECK_FILE)
    for line in report.saliency_summary():
        LOG.info("data check: %s", line)
    LOG.info("data check: %d images, %d errors, %d warnings in %.1f s", report.images, len(report.errors),
             len(report.warnings), report.seconds)
    roles = {"train": ctx.train_split, "val": ctx.val_split, None: None}
    needs = {(part, roles[role]) for stage in stages for part, role in stage.needs}
    errors = []
    for check in (lambda: report.raise_for(needs, f"the pipeline (stages {', '.join(s.name for s in stages)})"),
                  lambda: _require_some(ctx, report, needs)):
        try:
            check()
        except DataError as exc:
            errors.append(str(exc))
    if errors:
        raise DataError("\n".join(errors))
    return report


def _require_some(ctx: RunContext, report: DataReport, needs: set[tuple[str, str | None]]) -> None:
    """Stop before the first stage when no image has the saliency maps or val masks a stage to run needs.

    One missing file is a warning (stage 3 skips the image, an unscored val
    image is left out); none at all would fail hours later, in stage 3 or at
    the first test on val.
    """
    remedies = {
        SALIENCY: ("saliency map", "stage 3 (pseudo_label) needs them: one grey PNG per training image "
                   "(README, 'Saliency maps'; for PASCAL VOC the released saliency_aug.tar.gz), in ROOT/saliency "
                   "or the folder that saliency_dir of ROOT/dataset.yaml names"),
        MASKS: ("mask", "the DeepLab-v2 rounds are scored on them: put the masks there, set mask_dir in "
                "ROOT/dataset.yaml (or --mask-dir), or name a split that has them with --val-split"),
    }
    # Training masks only score stages 1-3 (own data may have none); saliency is for training images.
    for part, split in ((SALIENCY, ctx.train_split), (MASKS, ctx.val_split)):
        if (part, split) not in needs:
            continue
        ids = ctx.layout.ids(split)
        missing = report.missing_everywhere(part, split, len(ids))
        if missing:
            what, remedy = remedies[part]
            folder = Path(missing[0].path).parent
            hints = [p.message for p in report.warnings if p.general and (p.part, p.split) == (part, split)]
            raise DataError(f"none of the {len(missing)} images of split {split} has a {what} in {folder}; {remedy}"
                            + "".join(f". {hint}" for hint in hints))


def stages_made_otherwise(state: StageState, now: dict) -> dict[str, list[str]]:
    """Done stages that ran under other values of a setting they read than ``now`` (a later ``--from``
    changed it for the stages after them): stage -> the differences, its value -> now's."""
    out = {}
    for name in STAGE_NAMES:
        made = state.info(name).get(SETTINGS_KEY) if state.is_done(name) else None
        if made is None:  # not done, or done before markers kept the settings
            continue
        changes = [change for key in sorted(set(made) | set(now)) if name in readers(key) and key in made
                   and made.get(key) != now.get(key)
                   for change in setting_differences({key: made.get(key)}, {key: now.get(key)})]
        if changes:
            out[name] = changes
    return out


DESCRIPTIONS = {s.name: s.description for s in STAGES}
"""Each stage's line in results.md."""


def _write_summary(ctx: RunContext, state: StageState, settings: dict | None = None) -> None:
    """results.json's run-wide keys and results.md, from the markers; ``settings``: :func:`run_settings` when
    the caller has them."""
    seconds = {name: state.seconds(name) for name in STAGE_NAMES if state.is_done(name)}
    now = settings if settings is not None else run_settings(ctx)
    results = update_results(ctx.results_path, {"stage_seconds": seconds, "machine": machine_info(ctx.device),
                                                SPLITS_KEY: {"train": ctx.train_split, "val": ctx.val_split},
                                                SETTINGS_KEY: now,
                                                NOT_DONE_KEY: [n for n in STAGE_NAMES if n not in seconds] or None,
                                                OTHER_SETTINGS_KEY: stages_made_otherwise(state, now) or None})
    figures = [(caption, ctx.figure_path(name).relative_to(ctx.work_dir).as_posix())
               for name, caption in FIGURES.items() if ctx.figure_path(name).is_file()]
    write_markdown(ctx.work_dir / "results.md", render_markdown(results, seconds, DESCRIPTIONS, figures))
