"""Pseudo-label rules of docs/method.md, stages 3 (POM) and 6 (NSRM), and their file handling.

* :mod:`.pom` - stage 3, ``gen_label.py``: saliency + OA-CAMs + CAMs -> pseudo label;
* :mod:`.nsrm` - stage 6, ``gen_masked_label.py``: prediction + pseudo label +
  saliency -> masked pseudo label;
* :mod:`.foreground` - the 1% foreground rule both stages end with;
* :mod:`.io` - reading the per-image inputs, and running a stage over a list of
  images with a per-image report and a summary.

The rule modules are pure functions on arrays (no file I/O), so every rule can
be tested on hand-built arrays.

(The package is not called ``pseudo_labels``: that is the output folder of
``gen_label.py`` when run from ``classification/``.)
"""
