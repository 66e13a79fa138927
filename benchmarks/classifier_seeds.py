"""How much stages 1 and 2 depend on the classifier's seed and rate, on one dataset.

    python benchmarks/classifier_seeds.py --data-root D --out DIR [--seeds 0 1 2 3] [--lrs 0.0007 0.0005]
                                          [--to cam_export|oacam_export] [--preset demo]
                                          [--cls-arg=--warmup-steps=60 ...]

For each stage-1 rate and seed: ``pipeline.py --preset P --to STAGE
--cls-arg=--lr=LR --cls-arg=--seed=S`` in its own work folder
``DIR/lr<LR>_seed<S>`` (the stand-in weights are made once, in ``DIR/standin``,
and copied into each), then one row: CAM (and OA-CAM) mIoU with the best
background threshold, the weakest class of the CAMs, the last epoch's mean
loss of stage 1 and the largest rise of that loss from one epoch to the next
(a rise means training left the minimum it was in: a class can be lost there).
The seed is the one of ``--seed`` in the classifier flags (init, shuffling,
jitter) and the rate is given to both classifiers (stage 1 and the IAM),
as a change of the preset's ``--lr`` would be; ``--cls-arg`` adds other
classifier flags to every run (give each setting its own ``--out``). A run that exists is read, not
redone (``--redo`` to run again). Minutes per run with the demo preset.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from classification import train
from nsrom.files import write_json
from runner.context import CLASSIFIER_EXP, RunContext
from runner.presets import PRESETS, get_preset

REPO = Path(__file__).resolve().parents[1]
STAGES = ("cam_export", "oacam_export")
EPOCH_LOSS = re.compile(r"epoch (\d+): mean loss ([0-9.]+)")
"""Stage 1's epoch line in ``logs/train.log`` (classification.training.fit)."""


def preset_lr(preset: str) -> float:
    """The stage-1 rate of ``preset``'s classifier flags (the trainer's default where it sets none)."""
    return train.build_parser().parse_args(get_preset(preset).classifier_args).lr


def run_dir(out: Path, lr: float, seed: int) -> Path:
    return out / f"lr{lr:g}_seed{seed}"


def epoch_losses(log: Path) -> list[float]:
    """Stage 1's mean loss of every epoch, in order, from its log (the last line of an epoch wins on a resume)."""
    losses: dict[int, float] = {}
    for match in EPOCH_LOSS.finditer(log.read_text()):
        losses[int(match.group(1))] = float(match.group(2))
    return [losses[e] for e in sorted(losses)]


def largest_rise(losses: list[float]) -> float:
    """The largest increase of the loss from one epoch to the next (0 when it never rises)."""
    return max([0.0, *(b - a for a, b in zip(losses, losses[1:]))])


def pipeline(data: Path, work: Path, preset: str, extra: list[str], log: Path) -> None:
    with open(log, "w") as out:
        subprocess.run([sys.executable, "pipeline.py", "--data-root", str(data), "--work-dir", str(work),
                        "--preset", preset, "--device", "cpu", *extra], cwd=REPO, check=True,
                       stdout=out, stderr=out)


def make_standin(data: Path, out: Path, preset: str) -> Path | None:
    """The preset's stand-in weights, made once in ``out/standin`` (None for presets that load real ones)."""
    if get_preset(preset).standin is None:
        return None
    ctx = RunContext(data, out / "standin", get_preset(preset))
    if not ctx.vgg_standin_path.is_file():
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        pipeline(data, ctx.work_dir, preset, ["--to", "pretrain"], out / "standin.out")
    return ctx.standin_dir


def run_one(data: Path, out: Path, preset: str, lr: float, seed: int, to: str, standin: Path | None,
            redo: bool, cls_args: list[str] = ()) -> dict:
    """One run's row (see the module docstring); runs the pipeline unless its results are there."""
    work = run_dir(out, lr, seed)
    ctx = RunContext(data, work, get_preset(preset))
    wanted = "oacam" if to == "oacam_export" else "cam"
    results = json.loads(ctx.results_path.read_text()) if ctx.results_path.is_file() else {}
    if redo or wanted not in results:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        if standin is not None:
            shutil.copytree(standin, ctx.standin_dir)
        pipeline(data, work, preset, ["--to", to, f"--cls-arg=--lr={lr}", f"--cls-arg=--seed={seed}",
                                             *(f"--cls-arg={a}" for a in cls_args)],
                 work.parent / f"{work.name}.out")
        results = json.loads(ctx.results_path.read_text())
    losses = epoch_losses(ctx.runs_dir / CLASSIFIER_EXP / "logs" / "train.log")
    class_iou = {k: v for k, v in results["cam"]["class_iou"].items() if k != "background" and v is not None}
    weakest = min(class_iou, key=class_iou.get)
    row = {"lr": lr, "seed": seed, "cam": 100 * results["cam"]["miou"], "weakest_class": weakest,
           "weakest_iou": 100 * class_iou[weakest], "last_loss": losses[-1], "largest_rise": largest_rise(losses),
           "epoch_losses": losses}
    if "oacam" in results:
        row["oacam"] = 100 * results["oacam"]["miou"]
    return row


def format_row(r: dict) -> str:
    oacam = f"{r['oacam']:.1f} | {r['oacam'] - r['cam']:+.1f}" if "oacam" in r else "- | -"
    return (f"| {r['lr']:g} | {r['seed']} | {r['cam']:.1f} | {oacam} | {r['weakest_class']} {r['weakest_iou']:.1f} | "
            f"{r['last_loss']:.3f} | {r['largest_rise']:+.3f} |")


def summary_rows(rows: list[dict]) -> list[str]:
    """Per rate: mean and lowest CAM, and in how many runs the OA-CAMs score below the CAMs."""
    lines = []
    for lr in dict.fromkeys(r["lr"] for r in rows):
        mine = [r for r in rows if r["lr"] == lr]
        cams = [r["cam"] for r in mine]
        below = [r for r in mine if "oacam" in r and r["oacam"] < r["cam"]]
        with_oacam = sum("oacam" in r for r in mine)
        lines.append(f"| {lr:g} | {len(mine)} | {statistics.fmean(cams):.1f} | {min(cams):.1f} | "
                     + (f"{len(below)} of {with_oacam}" if with_oacam else "-") + " |")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True, help="a VOC-format dataset (e.g. made by tools/blob_voc.py)")
    p.add_argument("--out", type=Path, required=True, help="folder of the runs")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="classifier seeds")
    p.add_argument("--lrs", type=float, nargs="+", default=None,
                   help="stage-1 (and IAM) rates (default: the preset's own)")
    p.add_argument("--to", default="cam_export", choices=STAGES,
                   help="last stage: the CAMs, or the OA-CAMs too (stage 2)")
    p.add_argument("--cls-arg", action="append", default=[], metavar="FLAG",
                   help="one more classifier flag for every run, e.g. --cls-arg=--warmup-steps=60 (repeatable)")
    p.add_argument("--redo", action="store_true", help="run again even when a run's results exist")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lrs = args.lrs or [preset_lr(args.preset)]
    args.out.mkdir(parents=True, exist_ok=True)
    standin = make_standin(args.data_root, args.out, args.preset)
    extra = f" + {' '.join(args.cls_arg)}" if args.cls_arg else ""
    print(f"{args.data_root}, preset {args.preset}{extra}; mIoU (%) of train_aug with the best background threshold")
    print("| lr | seed | CAM | OA-CAM | OA-CAM - CAM | weakest class (CAM IoU) | last loss | largest rise |\n|"
          + "---|" * 8, flush=True)
    rows = []
    for lr in lrs:
        for seed in args.seeds:
            rows.append(run_one(args.data_root, args.out, args.preset, lr, seed, args.to, standin, args.redo,
                                args.cls_arg))
            print(format_row(rows[-1]), flush=True)
    print("\n| lr | runs | mean CAM | lowest CAM | OA-CAM below CAM |\n|---|---|---|---|---|")
    print("\n".join(summary_rows(rows)))
    if args.json:
        write_json(args.json, {"data_root": str(args.data_root), "preset": args.preset, "runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
