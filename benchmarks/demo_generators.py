"""The demo preset on data of both synthetic generators, or on datasets you bring: its figures, its claims, its time.

    python benchmarks/demo_generators.py [--out /tmp/demo_check] [--seeds 0 1] [--generators synthetic blob]
                                         [--deeplab-seeds 1 2] [--iam-seeds 1 2] [--full-supervision]
    python benchmarks/demo_generators.py --data-root mine=data/mydata other/VOC-like [--full-supervision] ...

For each generator and seed: make a dataset (``synthetic``: tools/make_synthetic_voc.py
with its defaults, the data of tools/demo.sh; ``blob``: tools/blob_voc.py, a
differently made generator, with 4 to 6 classes and image sides up to
``--blob-max-size``), run ``pipeline.py --preset demo`` on it in a fresh
process, read its results.json and print one row: CAM, stage 1's accumulated
maps (the IAM's targets), OA-CAM, pseudo labels
(and the share ignored), both DeepLab rounds with CRF, where the pixels of the
objects missing from the saliency map end up (background in the labels
without and with POM, own class in the round-2 predictions), wall and CPU
time, which of the demo's targets the run misses, and the classes whose CAM
IoU is under a quarter of the median of the classes (a class stage 1 did not
learn; runner/results.py). A run that exists is
read, not redone (``--redo`` to run again).

``--data-root`` runs the same preset on VOC-format datasets made elsewhere
(the layout of README, "Your own data": ``labels.txt``, the ``train_aug`` and
``val`` lists, masks, saliency maps), each as ``PATH`` or ``NAME=PATH``, instead
of the generators (or as well, when ``--generators`` is given too). The row
gives the same figures; where the dataset has no object record
(``objects.json``, nsrom/objects.py) the missed-object columns are ``-``, and a
target whose figure the run did not produce (no masks for train_aug, say) is
named "not scored", not missed. The run goes to ``OUT/data_NAME/work``; the
dataset is read where it is. A run that fails (a data-check error, say) gets a
row that names its log, what the pipeline said goes to stderr, and the next
run goes on; the exit status is then 1.

``--deeplab-seeds`` asks how much of the difference between the rounds is the
DeepLab seed's: for each run and each seed given, a copy of its work folder
runs the segmentation stages again (``pipeline.py --from seg1_train --seed S``,
same pseudo labels), and a second table prints round 1 + CRF, round 2 + CRF and
their difference per DeepLab seed (the preset's own, 0, first) with the mean.

``--full-supervision`` asks how far both rounds are from what the demo's DeepLab
can reach at all: for each run, the same DeepLab-v2 (preset, stand-in init,
steps, seed) is trained on the ground-truth masks of train_aug
(``main.py train --fully-supervised``, in ``full_supervision/`` next to the run's
work folder) and tested on val without and with CRF; a third table sets it
beside both rounds. Where round 1 is already within 2 points of it, no later
round can add 2 points.

``--iam-seeds`` asks the same of OA-CAM >= CAM: for each run and each seed given,
a copy of its work folder trains the IAM again and exports its OA-CAMs
(``pipeline.py --from iam_train --to oacam_export --cls-arg=--seed=S``, same
accumulated maps, same CAMs), and a fourth table prints the OA-CAMs per IAM
seed (the preset's classifier seed first) against the CAMs, with the mean and
how many fall below the CAMs.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from classification import train as cls_train
from nsrom.files import write_json
from runner.context import RunContext
from runner.presets import get_preset
from runner.results import ACCUMULATED_KEY, KEPT, RECOGNITION_KEY, kept_attempt, weak_classes
from segmentation.libs.utils.config import load_config
from segmentation.libs.utils.paths import RunPaths

REPO = Path(__file__).resolve().parents[1]
GENERATORS = ("synthetic", "blob")

TARGETS = (
    ("CAM >= 45", lambda r: r["cam"] >= 45),
    ("OA-CAM >= CAM", lambda r: r["oacam"] >= r["cam"]),
    ("pseudo >= 65", lambda r: r["pseudo"] >= 65),
    ("ignored <= 40%", lambda r: r["ignored"] <= 40),
    ("R1+CRF >= 50", lambda r: r["r1crf"] >= 50),
    ("R2+CRF >= R1+CRF+2", lambda r: r["r2crf"] >= r["r1crf"] + 2),
    ("final >= 60", lambda r: r["r2crf"] >= 60),
)
"""What the demo has to reach on such data (README, "Quick start")."""


def check_targets(r: dict) -> tuple[list[str], list[str]]:
    """The targets a run's summary misses, and those it cannot be checked on (a figure they need is NaN)."""
    figures = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
    missed, unscored = [], []
    for name, ok in TARGETS:
        try:
            if not ok(figures):
                missed.append(name)
        except TypeError:  # a comparison with None: the run did not produce that figure
            unscored.append(name)
    return missed, unscored


def make_data(generator: str, seed: int, root: Path, blob_max_size: int) -> None:
    """Generate one dataset into ``root``: into ``<root>.partial`` first, renamed when the generator
    has finished, so that a killed benchmark leaves no half-made ``root`` that a later run would take
    as made."""
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    if generator == "synthetic":
        cmd = [sys.executable, "tools/make_synthetic_voc.py", "--out", str(partial), "--seed", str(seed)]
    else:
        cmd = [sys.executable, "tools/blob_voc.py", "--out", str(partial), "--seed", str(seed),
               "--classes", str(4 + seed % 3), "--max-size", str(blob_max_size)]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    partial.rename(root)


def run_demo(data: Path, work: Path, extra: tuple[str, ...] = (),
             log_name: str = "pipeline.out") -> tuple[float, float]:
    """``pipeline.py --preset demo`` plus ``extra``; its wall and CPU seconds (user + system, children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    work.parent.mkdir(parents=True, exist_ok=True)
    with open(work.parent / log_name, "w") as log:
        subprocess.run([sys.executable, "pipeline.py", "--data-root", str(data), "--work-dir", str(work),
                        "--preset", "demo", "--device", "cpu", *extra], cwd=REPO, check=True, stdout=log, stderr=log)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(results: dict) -> dict:
    """A run's figures in %, from its results.json; NaN for one it did not produce (no masks to score on, say)."""
    def percent(key: str, field: str = "miou") -> float:
        value = (results.get(key) or {}).get(field)
        return float("nan") if value is None else 100 * value

    pct = {k: percent(key) for k, key in (
        ("cam", "cam"), ("accu", ACCUMULATED_KEY), ("oacam", "oacam"), ("pseudo", "pseudo_label"),
        ("r1crf", "seg_round1_crf"), ("masked", "masked_label"), ("r2crf", "seg_round2_crf"))}
    pct["ignored"] = percent("pseudo_label", "ignored_fraction")
    missed = results.get("missed_objects", {})
    share = lambda key, outcome: 100 * missed[key][outcome] if key in missed else float("nan")  # noqa: E731
    pct["bg_no_pom"] = share("pseudo_label_no_pom", "background")
    pct["bg_pom"] = share("pseudo_label", "background")
    pct["r1_own"] = share("seg_round1", "right_class")
    pct["r2_own"] = share("seg_round2", "right_class")
    return pct


PRESET_DEEPLAB_SEED = get_preset("demo").seed
"""The DeepLab seed of the main run (the demo preset's)."""


def rerun_on_copy(data: Path, work: Path, copy: Path, extra: tuple[str, ...], log_name: str, done: Path,
                  record: dict, redo: bool, ignore=None) -> None:
    """Run ``pipeline.py`` + ``extra`` on a fresh copy of ``work`` unless ``done`` marks an earlier such run."""
    if redo or not done.is_file():
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(work, copy, ignore=ignore)
        run_demo(data, copy, extra, log_name)
        write_json(done, record)


def rerun_rounds(data: Path, work: Path, seed: int, redo: bool) -> dict:
    """Both DeepLab rounds again with DeepLab seed ``seed`` on a copy of ``work``'s labels; its summary."""
    copy = work.parent / f"work_deeplab_seed{seed}"
    rerun_on_copy(data, work, copy, ("--from", "seg1_train", "--seed", str(seed)), f"pipeline_deeplab_seed{seed}.out",
                  copy / "segmentation_done.json", {"seed": seed}, redo)
    return summary(json.loads((copy / "results.json").read_text()))


def round_rows(name: str, per_seed: dict[int, dict]) -> list[str]:
    """Markdown rows: R1+CRF, R2+CRF and their difference for each DeepLab seed, then the mean."""
    rows, diffs = [], []
    for seed, r in per_seed.items():
        diffs.append(r["r2crf"] - r["r1crf"])
        rows.append(f"| {name} | {seed} | {r['r1crf']:.1f} | {r['r2crf']:.1f} | {diffs[-1]:+.1f} |")
    mean = lambda key: statistics.fmean(r[key] for r in per_seed.values())  # noqa: E731
    rows.append(f"| {name} | mean of {len(per_seed)} | {mean('r1crf'):.1f} | {mean('r2crf'):.1f} | "
                f"{statistics.fmean(diffs):+.1f} |")
    return rows


PRESET_IAM_SEED = cls_train.build_parser().parse_args(get_preset("demo").classifier_args).seed
"""The IAM seed of the main run (the demo preset's classifier seed)."""


def rerun_iam(data: Path, work: Path, seed: int, redo: bool) -> dict:
    """Stage 2 again with IAM seed ``seed`` on a copy of ``work`` (same accumulated maps); its CAM and OA-CAM mIoU (%)."""
    copy = work.parent / f"work_iam_seed{seed}"
    rerun_on_copy(data, work, copy, ("--from", "iam_train", "--to", "oacam_export", f"--cls-arg=--seed={seed}"),
                  f"pipeline_iam_seed{seed}.out", copy / "iam_done.json", {"seed": seed}, redo,
                  ignore=shutil.ignore_patterns("segmentation"))
    results = json.loads((copy / "results.json").read_text())
    return {"cam": 100 * results["cam"]["miou"], "oacam": 100 * results["oacam"]["miou"]}


def iam_rows(name: str, per_seed: dict[int, dict]) -> list[str]:
    """Markdown rows: CAM, OA-CAM and their difference for each IAM seed, then the mean and the count below the CAMs."""
    rows, diffs = [], []
    for seed, r in per_seed.items():
        diffs.append(r["oacam"] - r["cam"])
        rows.append(f"| {name} | {seed} | {r['cam']:.1f} | {r['oacam']:.1f} | {diffs[-1]:+.1f} |")
    below = sum(d < 0 for d in diffs)
    rows.append(f"| {name} | mean of {len(per_seed)} ({below} below CAM) | "
                f"{statistics.fmean(r['cam'] for r in per_seed.values()):.1f} | "
                f"{statistics.fmean(r['oacam'] for r in per_seed.values()):.1f} | {statistics.fmean(diffs):+.1f} |")
    return rows


FULL_SUPERVISION_ID = "full_supervision"
"""EXP.ID and folder (next to the run's work folder) of the fully supervised DeepLab-v2."""


def full_supervision_context(data: Path, work: Path) -> RunContext:
    """The demo run of ``work`` with its DeepLab-v2 output moved to ``work/../full_supervision``.

    Its ``seg_args`` / ``seg_sets`` for :data:`FULL_SUPERVISION_ID` and the
    ground-truth masks are the rounds' own config and stand-in init
    (``work/pretrained``) with the masks as training labels.
    """
    return RunContext(data, work, get_preset("demo"),
                      seg_overrides=[f"EXP.OUTPUT_DIR={work.parent / FULL_SUPERVISION_ID}"])


def full_supervision(data: Path, work: Path, redo: bool) -> dict:
    """Val mIoU (%) of the fully supervised DeepLab-v2 without (``full``) and with CRF (``full_crf``).

    Trained, tested and CRF-ed unless its CRF scores exist (``redo``: again).
    """
    ctx = full_supervision_context(data, work)
    masks = ctx.layout.mask_dir
    args = ctx.seg_args(FULL_SUPERVISION_ID, masks)
    paths = RunPaths.from_config(load_config(ctx.seg_config_path, ctx.seg_sets(FULL_SUPERVISION_ID, masks)))
    if redo or not paths.score_path("val", crf=True).is_file():
        steps = (["train", *args, "--cpu", "--fully-supervised", "--seed", str(PRESET_DEEPLAB_SEED), "--overwrite"],
                 ["test", *args, "--cpu", "--overwrite"], ["crf", *args, "--cpu", "--overwrite"])
        with open(work.parent / f"{FULL_SUPERVISION_ID}.out", "w") as log:
            for step in steps:
                subprocess.run([sys.executable, "-m", "segmentation.main", *step], cwd=REPO, check=True,
                               stdout=log, stderr=log)
    score = lambda crf: 100 * json.loads(paths.score_path("val", crf).read_text())["Mean IoU"]  # noqa: E731
    return {"full": score(False), "full_crf": score(True)}


def full_supervision_row(name: str, r: dict) -> str:
    """Markdown row: fully supervised without / with CRF, both rounds with CRF, and each round's distance to it."""
    return (f"| {name} | {r['full']:.1f} | {r['full_crf']:.1f} | {r['r1crf']:.1f} | {r['r2crf']:.1f} | "
            f"{r['r1crf'] - r['full_crf']:+.1f} | {r['r2crf'] - r['full_crf']:+.1f} |")


def attempts_cell(attempts: list[dict]) -> str:
    """How many times stage 1 was trained, the classes each attempt left unlearnt, and the kept seed if not the last."""
    if len(attempts) < 2:
        return str(len(attempts)) if attempts else "-"
    kept = kept_attempt(attempts)
    retried = "; ".join(f"seed {a['seed']}: {', '.join(a['unlearnt'])}" for a in attempts
                        if a["unlearnt"] and (a is not attempts[-1] or kept != len(attempts) - 1))
    tail = f"; kept seed {attempts[kept]['seed']}" if kept != len(attempts) - 1 else ""
    return f"{len(attempts)} ({retried}{tail})"


FAILURE_LINES = 6
"""How many lines of a failed run's log :func:`failure_reason` gives at most."""


def failure_reason(log: Path) -> str:
    """What a failed ``pipeline.py`` said: its log from the last line that starts with ``error`` (the
    pipeline's own messages: data check, config, missing weights), else its last lines; indented, at most
    :data:`FAILURE_LINES` lines."""
    lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.lower().startswith("error")]
    tail = lines[starts[-1]:] if starts else lines[-FAILURE_LINES:]
    return "\n".join("  " + line for line in tail[:FAILURE_LINES])


def figure_cell(value: float) -> str:
    """A figure in a table cell: one decimal, or ``-`` where the run has none (NaN)."""
    return "-" if math.isnan(value) else f"{value:.1f}"


@dataclass(frozen=True)
class PlannedRun:
    """One row of the table: its name, its folder under ``--out``, its dataset and how to make it (None: given)."""

    name: str
    base: Path
    data: Path
    make: Callable[[], None] | None
    record: dict
    """What identifies the run in the ``--json`` rows."""


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def data_root_run(spec: str, out: Path) -> PlannedRun:
    """``PATH`` or ``NAME=PATH`` of ``--data-root``: a dataset made elsewhere, run in ``out/data_NAME``."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).resolve().name, spec
    if not RUN_NAME.fullmatch(name):
        raise SystemExit(f"--data-root {spec}: the name {name!r} must be letters, digits, '.', '_' or '-' "
                         "(give one as NAME=PATH)")
    data = Path(path).resolve()
    if not data.is_dir():
        raise SystemExit(f"--data-root {spec}: {data} is not a folder")
    return PlannedRun(name, out / f"data_{name}", data, None, {"data_root": str(data), "name": name})


def planned_runs(args: argparse.Namespace) -> list[PlannedRun]:
    """The generators' runs (``--generators`` x ``--seeds``; none by default when ``--data-root`` is given), then
    those of ``--data-root``; two runs may not share a name."""
    out = Path(args.out)
    generators = args.generators if args.generators is not None else ([] if args.data_root else GENERATORS)
    runs = []
    for generator in generators:
        for seed in args.seeds:
            base = out / f"{generator}_seed{seed}"
            make = functools.partial(make_data, generator, seed, base / "data", args.blob_max_size)
            runs.append(PlannedRun(f"{generator} seed {seed}", base, base / "data", make,
                                   {"generator": generator, "seed": seed}))
    runs += [data_root_run(spec, out) for spec in args.data_root]
    names = [r.name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"--data-root: two datasets are named {', '.join(twice)}; name them apart with NAME=PATH")
    return runs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/nsrom_demo_generators", help="where datasets and runs go")
    p.add_argument("--generators", nargs="+", choices=GENERATORS,
                   help="default: both, or none when --data-root is given")
    p.add_argument("--data-root", nargs="+", default=[], metavar="[NAME=]PATH",
                   help="also (or, without --generators, only) run on these VOC-format datasets made elsewhere")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--blob-max-size", type=int, default=200, help="largest image side of the blob data")
    p.add_argument("--redo", action="store_true", help="run again even when a run's results exist")
    p.add_argument("--deeplab-seeds", nargs="*", type=int, default=[],
                   help="also run both DeepLab rounds of every run with these seeds (same labels)")
    p.add_argument("--iam-seeds", nargs="*", type=int, default=[],
                   help="also train the IAM of every run again with these seeds (same accumulated maps)")
    p.add_argument("--full-supervision", action="store_true",
                   help="also train the demo's DeepLab-v2 on the ground-truth masks of every run (the upper bound)")
    p.add_argument("--json", type=Path, help="also write every row's figures to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runs = planned_runs(args)
    header = ("data", "CAM", "accu", "OA-CAM", "pseudo", "ign%", "R1+CRF", "masked", "R2+CRF", "missed: bg noPOM",
              "bg POM", "own R1", "own R2", "wall s", "CPU s", "targets missed", "CAM: classes far below",
              "stage-1 attempts")
    print(f"{os.cpu_count()} CPU cores; columns are mIoU (%) except where named")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    failures = 0
    rows, round_tables, iam_table, full_table = [], [], [], []
    for run in runs:
        name, data, work = run.name, run.data, run.base / "work"
        timing_path = run.base / "timing.json"
        if args.redo or not timing_path.is_file():
            try:
                if run.make is not None and not data.is_dir():
                    run.make()
            except subprocess.CalledProcessError as exc:
                failures += 1
                rows.append({**run.record, "failed": f"making the data: {' '.join(exc.cmd)}"})
                print(f"| {name} | {rows[-1]['failed']} failed (exit {exc.returncode}) |", flush=True)
                continue
            try:
                wall, cpu = run_demo(data, work)
            except subprocess.CalledProcessError:
                failures += 1
                rows.append({**run.record, "failed": str(run.base / "pipeline.out")})
                print(f"| {name} | pipeline.py failed: see {rows[-1]['failed']} |", flush=True)
                print(failure_reason(run.base / "pipeline.out"), file=sys.stderr, flush=True)
                continue
            write_json(timing_path, {"wall": wall, "cpu": cpu})
        timing = json.loads(timing_path.read_text())
        results = json.loads((work / "results.json").read_text())
        r = summary(results)
        missed, unscored = check_targets(r)
        failures += bool(missed)
        lost = weak_classes(results.get("cam") or {})[0]  # a class stage 1 did not learn (runner/results.py)
        recognition = results.get(RECOGNITION_KEY, [])
        kept = kept_attempt(recognition)
        attempts = [{"seed": a.get("seed"), "unlearnt": a["unlearnt"], KEPT: i == kept}
                    for i, a in enumerate(recognition)]
        rows.append({**run.record, **r, **timing, "targets_missed": missed, "targets_not_scored": unscored,
                     "cam_classes_far_below": dict(lost), "stage1_attempts": attempts})
        cells = [figure_cell(r[k]) for k in ("cam", "accu", "oacam", "pseudo", "ignored", "r1crf", "masked", "r2crf",
                                             "bg_no_pom", "bg_pom", "r1_own", "r2_own")]
        targets = ", ".join(missed) or "none"
        if unscored:
            targets += "; not scored: " + ", ".join(unscored)
        print(f"| {name} | " + " | ".join(cells)
              + f" | {timing['wall']:.0f} | {timing['cpu']:.0f} | {targets} | "
              + (", ".join(f"{cls} {100 * iou:.1f}" for cls, iou in lost) or "none") + " | "
              + attempts_cell(attempts) + " |", flush=True)
        extra_seeds = [s for s in args.deeplab_seeds if s != PRESET_DEEPLAB_SEED]
        if extra_seeds:
            per_seed = {PRESET_DEEPLAB_SEED: r} | {s: rerun_rounds(data, work, s, args.redo) for s in extra_seeds}
            rows[-1]["deeplab_seeds"] = {str(s): {k: v[k] for k in ("r1crf", "r2crf")} for s, v in per_seed.items()}
            round_tables.extend(round_rows(name, per_seed))
        extra_iam = [s for s in args.iam_seeds if s != PRESET_IAM_SEED]
        if extra_iam:
            per_iam = {PRESET_IAM_SEED: r} | {s: rerun_iam(data, work, s, args.redo) for s in extra_iam}
            rows[-1]["iam_seeds"] = {str(s): {k: v[k] for k in ("cam", "oacam")} for s, v in per_iam.items()}
            iam_table.extend(iam_rows(name, per_iam))
        if args.full_supervision:
            full = full_supervision(data, work, args.redo)
            rows[-1].update(full)
            full_table.append(full_supervision_row(name, {**r, **full}))
    if round_tables:
        print("\nBoth DeepLab rounds with other seeds on the same labels (mIoU %, val, with CRF):")
        print("| data | DeepLab seed | R1+CRF | R2+CRF | R2 - R1 |\n|---|---|---|---|---|")
        print("\n".join(round_tables), flush=True)
    if iam_table:
        print("\nThe IAM (stage 2) with other seeds on the same accumulated maps (mIoU %, train_aug, best "
              "background threshold):")
        print("| data | IAM seed | CAM | OA-CAM | OA-CAM - CAM |\n|---|---|---|---|---|")
        print("\n".join(iam_table), flush=True)
    if full_table:
        print("\nThe same DeepLab-v2 trained on the ground-truth masks (mIoU %, val; last columns: each round "
              "with CRF minus it with CRF):")
        print("| data | full sup. | full sup. + CRF | R1+CRF | R2+CRF | R1 - full | R2 - full |\n|" + "---|" * 7)
        print("\n".join(full_table), flush=True)
    if args.json:
        write_json(args.json, {"cpu_cores": os.cpu_count(), "runs": rows})
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
