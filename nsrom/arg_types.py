"""argparse types of the scripts' numeric flags: a value out of range is a one-line usage error naming
the flag (the pipeline's flag check runs them before the first stage), not a traceback later."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` to ``maximum`` (no upper bound without one)."""
    bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got {text!r}")
        return value
    return parse


non_negative_int = whole_number(0)
"""A whole number >= 0 (argparse type of --warmup-steps and --accu-start-epoch)."""
positive_int = whole_number(1)
"""A whole number >= 1 (argparse type of sizes and counts: --batch-size, --epochs, --input-size)."""


def real_number(minimum: float, maximum: float = math.inf, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from ``minimum`` (excluded with ``above``) to ``maximum``."""
    bounds = f"{'>' if above else '>='} {minimum:g}" + (f" and <= {maximum:g}" if maximum < math.inf else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > minimum if above else value >= minimum) and value <= maximum):
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text!r}")
        return value
    return parse
