"""Segmentation side of NSROM (docs/method.md, stages 4, 5 and 7).

DeepLab-v2 ResNet-101 with multi-scale inputs (MSC), trained on pseudo labels,
with ``main.py train|test|crf`` and ``trainaug_pred.py``.
"""
