"""Stage 2 export: the OA-CAMs of the integral attention model (test_iam.sh).

    python -m classification.test_iam --data-root ROOT [--exp exp2] [...]

Reads ``runs/<exp>/model/checkpoint_final.pth``, writes ``runs/<exp>/attention/<id>_<c>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsrom.errors import exit_on_error

from .export import make_parser, run
from .run_layout import IAM_EXP


def build_parser() -> argparse.ArgumentParser:
    return make_parser("vgg1", IAM_EXP, "OA-CAMs of the integral attention model (stage 2)")


@exit_on_error
def main(argv: list[str] | None = None) -> Path:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
