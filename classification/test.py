"""Stage 1b: export the CAMs of the trained OAA classifier (test.sh).

    python -m classification.test --data-root ROOT [--exp exp1] [...]

Reads ``runs/<exp>/model/checkpoint_final.pth``, writes ``runs/<exp>/attention/<id>_<c>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsrom.errors import exit_on_error

from .export import make_parser, run
from .run_layout import CLASSIFIER_EXP


def build_parser() -> argparse.ArgumentParser:
    return make_parser("vgg", CLASSIFIER_EXP, "CAMs of the OAA classifier (stage 1b)")


@exit_on_error
def main(argv: list[str] | None = None) -> Path:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
