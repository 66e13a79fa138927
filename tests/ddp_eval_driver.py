"""torchrun entry for tests/test_ddp_training.py: ``main.py test`` then ``crf`` in one DDP job.

Like an in-process pipeline runner: one outer session, the commands reuse it.
Usage: torchrun ... tests/ddp_eval_driver.py CONFIG_ARGS...
"""

from __future__ import annotations

import sys

from nsrom import distributed
from segmentation import main as seg_main


def main(argv: list[str]) -> None:
    with distributed.session("cpu"):
        seg_main.main(["test", *argv, "--cpu"])
        seg_main.main(["crf", *argv, "-j", "1"])


if __name__ == "__main__":
    main(sys.argv[1:])
