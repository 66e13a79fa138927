"""Run the whole NSROM method (docs/method.md, stages 1-7) with one command.

    python pipeline.py --data-root ROOT --work-dir W [--preset demo|voc12] [--from STAGE] [--to STAGE]
    torchrun --nproc_per_node N pipeline.py ...

``python pipeline.py --help`` lists every flag; the code is :mod:`runner.cli`.
"""

from runner.cli import main

if __name__ == "__main__":
    main()
