"""Timing helpers shared by the benchmark scripts (not a test; nothing runs at import)."""

from __future__ import annotations

import time
from typing import Callable

import torch

from nsrom.files import write_json


def best_of_interleaved(modes: dict[str, Callable[[], object]], rounds: int, device: str = "cpu") -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` calls of each mode, the modes taking turns.

    Taking turns and keeping the best call makes the ratios robust to other
    work on a shared machine; each mode is called once untimed first (warm-up).
    """
    for fn in modes.values():
        fn()
    best = {name: float("inf") for name in modes}
    for _ in range(rounds):
        for name, fn in modes.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))  # the device timed (cuda:1 too), not the current one


def report(title: str, rows: dict[str, float], unit: str, baseline: str | None = None) -> dict:
    """Print ``name: value unit`` lines (and each row's ratio to ``baseline``); returns them as a dict."""
    print(f"== {title}")
    for name, value in rows.items():
        ratio = f"   x{value / rows[baseline]:.2f} vs {baseline}" if baseline and rows[baseline] > 0 else ""
        print(f"  {name:<28} {value:10.2f} {unit}{ratio}")
    return {"title": title, "unit": unit, "baseline": baseline, "values": rows}


def dump(path: str | None, results: list[dict]) -> None:
    """Write the results as JSON when ``--json PATH`` was given."""
    if path:
        write_json(path, results)
