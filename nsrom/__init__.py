"""Shared core of the NSROM project.

Everything that both packages (``classification`` and ``segmentation``) and the
``tools`` need lives here, once: class names and palette, the data layout
contract, image lists, PNG reading/writing, CAM normalisation and metrics.
"""

__version__ = "0.1.0"
