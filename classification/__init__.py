"""Classification side of NSROM (docs/method.md, stages 1, 1b, 2, 3 and 6).

OAA classifier with a graph reasoning unit, online attention accumulation, the
integral attention model (IAM), CAM / OA-CAM export, and pseudo-label
generation (``gen_label.py``, ``gen_masked_label.py``).
"""
