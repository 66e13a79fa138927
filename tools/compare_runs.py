"""Finished pipeline runs side by side, the table of an ablation (runner/compare.py).

    python tools/compare_runs.py work/demo work/demo_no_pom [--names paper,no-POM] [--json table.json]

Prints one row per score the runs hold (mIoU of every stage, the ignored shares, POM's
ablation, round 2 against round 1, the missed objects) and one column per work dir,
then the settings in which each run differs from the first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsrom.errors import ConfigError, exit_on_error
from nsrom.files import write_json
from runner.compare import comparison_rows, load_run, render_comparison


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work_dirs", nargs="+", type=Path, help="pipeline work dirs (each with its results.json)")
    p.add_argument("--names", help="column names, comma-separated (default: the folders' names)")
    p.add_argument("--json", type=Path, help="also write the table as JSON: {row: {run: value (fraction)}}")
    return p


@exit_on_error
def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    folders = [d.resolve() for d in args.work_dirs]
    if len(set(folders)) != len(folders):
        raise ConfigError("a work dir is given twice")
    names = [n.strip() for n in args.names.split(",")] if args.names else [d.name for d in folders]
    if len(names) != len(args.work_dirs):
        raise ConfigError(f"--names gives {len(names)} names for {len(args.work_dirs)} work dirs")
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"the columns need distinct names, not {', '.join(repr(n) for n in names)}: give --names")
    if args.json is not None and (args.json.name == "results.json" or
                                  any(f in args.json.resolve().parents for f in folders)):
        raise ConfigError(f"--json {args.json} would write into a run's work dir; write the table elsewhere")
    runs = [load_run(d) for d in args.work_dirs]
    table = render_comparison(names, runs)
    print(table, end="")
    if args.json:
        write_json(args.json, {row: dict(zip(names, values)) for row, values in comparison_rows(runs)})
    return table


if __name__ == "__main__":
    main()
