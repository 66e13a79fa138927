"""Segmentation side of NSROM (stages 4, 5 and 7 of NSROM.md).

DeepLab-v2 ResNet-101 with multi-scale inputs (MSC), trained on pseudo labels,
with ``main.py train|test|crf`` and ``trainaug_pred.py``.
"""
