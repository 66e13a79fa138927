"""Library code behind ``segmentation/main.py`` and ``segmentation/trainaug_pred.py``."""
