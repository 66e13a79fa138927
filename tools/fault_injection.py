"""Kill the pipeline with SIGKILL at random moments, resume it each time, and compare with an uninterrupted run.

    python tools/fault_injection.py --data-root ROOT --work-dir SCRATCH [--preset demo] [--kills 10] [--seed 0]

1. Runs ``pipeline.py`` once without interruption (work dir ``SCRATCH/run``,
   then moved to ``SCRATCH/reference``), timing each stage. With
   ``--reuse-reference`` a finished reference of an earlier call is kept.
2. Runs it again in ``SCRATCH/run`` (the same path, since outputs record their
   paths) and kills it ``--kills`` times with SIGKILL sent to its whole process
   group, as a crash or a power cut would; after each kill the same command is
   started again and resumes. Each kill comes after the start-up time plus a
   seeded random share of the work still to do (estimated from the
   reference's stage times and the stages already marked done), so the kills
   spread over all stages in proportion to their length. Then the last run
   is left to finish.
3. Compares ``results.json`` (without the stage times) and the SHA-256 of every
   output file with the reference, and prints every difference. Files that
   record times by nature are left out: logs, TensorBoard events, stage
   markers, ``results.md`` (it shows the times), the data-check report, the
   provenance records ``.producer.json`` (they hold the time they were written)
   and ``checkpoint_recent.pth`` (written every N minutes).

Exit status 0 when everything compared is identical, 1 otherwise. The presets
seed every stage, so the comparison is exact on one machine.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nsrom.files import TEMP_MARKER, write_json

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipeline.py"

VOLATILE = ("*.log", "events.out.tfevents.*", ".stages/*", "results.md", "data_check.json", ".producer.json",
            "checkpoint_recent.pth")
"""Outputs that record times (or are written at timed moments): not compared."""
VOLATILE_RESULT_KEYS = ("stage_seconds",)
TEMPORARY = f"*{TEMP_MARKER}*"
"""Names of the temporary files of atomic writes (nsrom.files): a kill may leave some; never under a final name."""
STAGE_START = re.compile(r"runner\.run: \[(\w+)\] (?!finished in|done earlier)")
"""The runner's line announcing a stage: ``runner.run: [<name>] <description>``."""
TIMING_FILE = "fault_injection_timing.json"


@dataclass
class RunLog:
    """One pipeline process: when it started, the stages it announced (time, name), how it ended."""

    started: float
    stages: list[tuple[float, str]] = field(default_factory=list)
    returncode: int | None = None

    def stage_at(self, moment: float) -> str:
        current = "start-up"
        for when, name in self.stages:
            if when <= moment:
                current = name
        return current


def pipeline_command(args: argparse.Namespace, work_dir: Path) -> list[str]:
    return [args.python, str(PIPELINE), "--data-root", str(args.data_root), "--work-dir", str(work_dir),
            "--preset", args.preset, "--device", args.device, *args.pipeline_arg]


def start(command: list[str], log_path: Path) -> tuple[subprocess.Popen, RunLog, threading.Thread]:
    """Start ``command`` in its own process group; a thread copies its output to ``log_path`` and notes stages."""
    log = RunLog(time.monotonic())
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=REPO, text=True, errors="replace")

    def pump() -> None:
        with open(log_path, "w") as out:
            for line in proc.stdout:
                out.write(line)
                match = STAGE_START.search(line)
                if match:
                    log.stages.append((time.monotonic() - log.started, match.group(1)))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return proc, log, reader


def finish(proc: subprocess.Popen, log: RunLog, reader: threading.Thread, timeout: float | None = None) -> RunLog:
    log.returncode = proc.wait(timeout=timeout)
    reader.join()
    return log


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the pipeline and every process it started (DataLoader, CRF and label workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_reference(args: argparse.Namespace, work: Path, logs: Path) -> dict:
    """The uninterrupted run; returns its timing: start-up seconds and the seconds of each stage."""
    proc, log, reader = start(pipeline_command(args, work), logs / "reference.log")
    finish(proc, log, reader)
    if log.returncode != 0:
        raise SystemExit(f"the reference run failed (exit {log.returncode}); see {logs / 'reference.log'}")
    stages = json.loads((work / "results.json").read_text())["stage_seconds"]
    timing = {"startup": log.stages[0][0] if log.stages else 0.0, "total": time.monotonic() - log.started,
              "stages": stages}
    write_json(work / TIMING_FILE, timing)
    return timing


def remaining_work(timing: dict, work: Path) -> float:
    """Seconds of the reference's stages that are not marked done in ``work`` yet."""
    done = {p.stem for p in (work / ".stages").glob("*.json")} if (work / ".stages").is_dir() else set()
    return sum(seconds for stage, seconds in timing["stages"].items() if stage not in done)


def run_with_kills(args: argparse.Namespace, work: Path, logs: Path, timing: dict) -> list[str]:
    """Kill the pipeline ``args.kills`` times at seeded moments, resuming each time; then let it finish.

    Kill ``i`` (1 to ``n``) comes ``startup + u * 2 * remaining / (n - i + 2)``
    seconds after the start, ``u`` uniform in [0, 1): on average the kills left and
    the final run divide the remaining work evenly.
    """
    rng = random.Random(args.seed)
    notes = []
    for number in range(1, args.kills + 1):
        share = 2.0 * remaining_work(timing, work) / (args.kills - number + 2)
        delay = timing["startup"] + rng.random() * share
        proc, log, reader = start(pipeline_command(args, work), logs / f"killed_{number:02d}.log")
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            kill(proc)
            finish(proc, log, reader)
            notes.append(f"kill {number}: SIGKILL after {delay:.1f} s, during {log.stage_at(delay)}")
            print(notes[-1], flush=True)
            continue
        finish(proc, log, reader)
        notes.append(f"run {number}: ended (exit {log.returncode}) before its kill at {delay:.1f} s")
        print(notes[-1], flush=True)
        if log.returncode == 0:
            break
    proc, log, reader = start(pipeline_command(args, work), logs / "final.log")
    finish(proc, log, reader)
    if log.returncode != 0:
        raise SystemExit(f"the resumed run failed (exit {log.returncode}); see {logs / 'final.log'}")
    return notes


def _volatile(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in VOLATILE)


def output_files(work: Path) -> tuple[dict[str, str], list[str]]:
    """SHA-256 of every compared file under ``work`` (by relative path), and the leftover temporaries."""
    hashes, temporaries = {}, []
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        relative = path.relative_to(work).as_posix()
        if fnmatch.fnmatch(path.name, TEMPORARY):
            temporaries.append(relative)
        elif not _volatile(relative) and relative not in (TIMING_FILE, "results.json"):  # results: compared apart
            hashes[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes, temporaries


def _results(work: Path) -> dict:
    results = json.loads((work / "results.json").read_text())
    return {k: v for k, v in results.items() if k not in VOLATILE_RESULT_KEYS}


def _diff(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{where}.{key}" if where else str(key))
        return out
    return [] if a == b else [f"results.json {where}: reference {a!r}, after the kills {b!r}"]


def compare(reference: Path, interrupted: Path) -> list[str]:
    """Every difference between the two work dirs, as lines."""
    differences = _diff(_results(reference), _results(interrupted))
    ref_files, _ = output_files(reference)
    got_files, temporaries = output_files(interrupted)
    for name in sorted(set(ref_files) - set(got_files)):
        differences.append(f"missing after the kills: {name}")
    for name in sorted(set(got_files) - set(ref_files)):
        differences.append(f"extra after the kills: {name}")
    for name in sorted(set(ref_files) & set(got_files)):
        if ref_files[name] != got_files[name]:
            differences.append(f"different bytes: {name}")
    if temporaries:
        print(f"{len(temporaries)} temporary file(s) left by kills (never under a final name): "
              + ", ".join(temporaries[:5]))
    print(f"compared results.json and {len(ref_files)} output files")
    return differences


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, type=Path, help="dataset ROOT (e.g. tools/make_synthetic_voc.py)")
    p.add_argument("--work-dir", required=True, type=Path, help="scratch folder for the two runs")
    p.add_argument("--preset", default="demo", help="pipeline preset (default demo)")
    p.add_argument("--kills", type=int, default=10, help="how many times to kill the run (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--reuse-reference", action="store_true", help="keep a finished reference run of an earlier call")
    p.add_argument("--pipeline-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for pipeline.py (repeatable), e.g. --pipeline-arg=--to=seg1_crf")
    p.add_argument("--python", default=sys.executable, help="Python interpreter for the pipeline")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.data_root = args.data_root.resolve()
    run, reference, logs = (args.work_dir.resolve() / name for name in ("run", "reference", "logs"))
    logs.mkdir(parents=True, exist_ok=True)
    timing_file = reference / TIMING_FILE
    if args.reuse_reference and (reference / "results.json").is_file() and timing_file.is_file():
        timing = json.loads(timing_file.read_text())
    else:
        shutil.rmtree(reference, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        timing = run_reference(args, run, logs)
        run.rename(reference)
    print(f"reference run: {timing['total']:.1f} s ({timing['startup']:.1f} s before the first stage)", flush=True)
    shutil.rmtree(run, ignore_errors=True)
    notes = run_with_kills(args, run, logs, timing)
    kills = sum(note.startswith("kill") for note in notes)
    differences = compare(reference, run)
    for line in differences:
        print(line)
    verdict = "identical" if not differences else f"{len(differences)} difference(s)"
    print(f"{kills} kills, then resumed to the end: {verdict} to the uninterrupted run")
    return 0 if not differences else 1


if __name__ == "__main__":
    raise SystemExit(main())
