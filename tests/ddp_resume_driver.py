"""torchrun entry for tests/test_ddp_training.py: exact resume under DDP, in one job of N processes.

Trains a model twice: once straight through, once interrupted by an exception
raised on every rank during step CRASH_AT and then resumed with ``--resume``,
all inside one process group, as a pipeline runner would. ``{out}`` in the
arguments becomes ``straight`` or ``resumed``; the test compares the two final
checkpoints. The resumed run must train exactly LEFT steps on every rank (from
the most recent checkpoint on), else the job fails.

Usage: torchrun ... tests/ddp_resume_driver.py KIND CRASH_AT LEFT ARGS... [:: KIND CRASH_AT LEFT ARGS...]
with KIND seg (main.py train) or cls (classification.train).
"""

from __future__ import annotations

import sys

from classification import train as cls_train
from classification import training
from nsrom import distributed
from segmentation import main as seg_main
from segmentation.libs import train as seg_train

ENTRY = {"seg": (seg_main.main, seg_train), "cls": (cls_train.main, training)}


class Interrupted(Exception):
    pass


def run(kind: str, crash_at: int, left: int, template: list[str]) -> None:
    entry, module = ENTRY[kind]
    entry([a.replace("{out}", "straight") for a in template])
    resumed = [a.replace("{out}", "resumed") for a in template]
    real, calls = module.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == crash_at:
            raise Interrupted
        return real(*args, **kwargs)

    module.train_step = step
    try:
        entry(resumed)
    except Interrupted:
        pass
    else:
        raise SystemExit(f"{kind}: training ended without the interruption at call {crash_at}")
    finally:
        module.train_step = real
    calls.clear()

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    module.train_step = counted
    try:
        entry([*resumed, "--resume"])
    finally:
        module.train_step = real
    if len(calls) != left:
        raise SystemExit(f"{kind}: the resumed run trained {len(calls)} steps, not the {left} left after the "
                         "most recent checkpoint")


def main(argv: list[str]) -> None:
    with distributed.session("cpu"):
        while argv:
            block = argv[: argv.index("::")] if "::" in argv else argv
            argv = argv[len(block) + 1:]
            run(block[0], int(block[1]), int(block[2]), block[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
