"""Classification side of NSROM (stages 1, 1b, 2, 3 and 6 of NSROM.md).

OAA classifier with a graph reasoning unit, online attention accumulation, the
integral attention model (IAM), CAM / OA-CAM export, and pseudo-label
generation (``gen_label.py``, ``gen_masked_label.py``).
"""
