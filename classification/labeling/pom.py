"""docs/method.md, stage 3: pseudo labels from saliency, OA-CAMs and CAMs, with POM.

Pure functions on arrays, one per step of stage 3, and :func:`make_pseudo_label`
that chains them. Index conventions: ``classes`` are 0-based foreground classes;
the score volume and the label use 0 = background, ``c + 1`` for class ``c``,
255 = ignore.

Inputs are maps at image size: the saliency map ``S`` (uint8 0..255), and for
each present class its OA-CAM ``A_c`` and CAM ``M_c`` (any range; each is
min-max normalised to [0, 1] here, as the opening of docs/method.md, stage 3
asks). A present class without an OA-CAM or a CAM is left out of
the step that needs that map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from nsrom.cam import minmax_normalize
from nsrom.classes import IGNORE_INDEX

from .foreground import MIN_FOREGROUND_FRACTION, apply_min_foreground
from .settings import check_fraction, rule_error

SALIENCY_MAX = 255.0
"""Step 1: saliency maps are 8-bit; channel 0 (background score) is ``1 - S / 255``."""
ATTENTION_SEED_THRESHOLD = 0.8
"""Step 1: OA-CAM values above this mark confident object pixels in the map T."""
T_OBJECT_VALUE = 255.0
"""Step 1: value written into T at confident object pixels (T = max(T, 255 * [A_c > 0.8]))."""
LOW_SCORE_THRESHOLD = 0.3
"""Step 2: scores below this are set to 0 in every channel."""
CONFLICT_THRESHOLD = 0.9
"""Step 3: a pixel with more than one channel above this is ignored (conflict)."""
UNCERTAIN_BACKGROUND_T = 32
"""Step 4: a background pixel whose T is at least this is ignored (uncertain background)."""
POM_CAM_THRESHOLD = 0.3
"""Step 5, second branch: CAM values above this form the set whose median starts the
search. A separate role from the step-2 cut, which also happens to be 0.3."""
POM_FALLBACK_THRESHOLD = 1.0
"""Step 5, third branch (no CAM value above 0.3): thr = 1, so no pixel is a potential object."""


@dataclass(frozen=True)
class PomRules:
    """The settings of stage 3 (docs/method.md, stage 3); the defaults are the paper's.

    Each field is a flag of ``gen_label.py`` (``--`` + the name with dashes,
    :mod:`.settings`) and a value of the
    pipeline presets; the values are recorded with the output folder.
    """

    object_threshold: float = field(default=ATTENTION_SEED_THRESHOLD, metadata={
        "help": "step 1: OA-CAM values above this mark confident object pixels (T = 255 there)"})
    low_score_threshold: float = field(default=LOW_SCORE_THRESHOLD, metadata={
        "help": "step 2: scores below this become 0 in every channel"})
    conflict_threshold: float = field(default=CONFLICT_THRESHOLD, metadata={
        "help": "step 3: a pixel with more than one channel above this is ignored"})
    uncertain_bg_threshold: float = field(default=UNCERTAIN_BACKGROUND_T, metadata={
        "help": "step 4: a background pixel whose T (0..255) is at least this is ignored"})
    pom: bool = field(default=True, metadata={
        "help": "step 5, potential object mining: background pixels that a CAM marks as a likely "
                "object become ignore (--no-pom skips the step: the ablation without POM)"})
    pom_cam_threshold: float = field(default=POM_CAM_THRESHOLD, metadata={
        "help": "step 5, second branch: CAM values above this start the POM threshold search "
                "(a separate role from --low-score-threshold)"})
    min_foreground: float = field(default=MIN_FOREGROUND_FRACTION, metadata={
        "help": "step 6: a label with a smaller foreground share of its pixels is all ignore"})

    def __post_init__(self) -> None:
        for name in ("object_threshold", "low_score_threshold", "conflict_threshold", "pom_cam_threshold"):
            check_fraction(name, getattr(self, name))
        if not 0 <= self.uncertain_bg_threshold <= 256:
            raise rule_error("uncertain_bg_threshold", f"must be in 0..256 (T is 0..255), "
                                                       f"got {self.uncertain_bg_threshold}")
        check_fraction("min_foreground", self.min_foreground)


def check_classes(classes: Iterable[int], num_classes: int) -> list[int]:
    """Sorted unique 0-based classes; ``ValueError`` for an index outside ``0..C-1``."""
    classes = sorted(set(int(c) for c in classes))
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"class indices {bad} outside 0..{num_classes - 1}")
    return classes


def score_volume(
    saliency: np.ndarray,
    oacams: Mapping[int, np.ndarray],
    num_classes: int,
    object_threshold: float = ATTENTION_SEED_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: the ``(C+1, H, W)`` score volume and the map T.

    Channel 0 is ``1 - S / 255``; channel ``c + 1`` is the (normalised) OA-CAM
    ``A_c`` of each class in ``oacams`` (the present classes that have one);
    other channels are 0. ``T = S``, then ``T = max(T, 255 * [A_c > 0.8])`` for
    each of those classes (0.8: ``object_threshold``). Returns
    ``(scores float32, T float32)``.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    scores = np.zeros((num_classes + 1, *saliency.shape), dtype=np.float32)
    scores[0] = 1.0 - saliency / SALIENCY_MAX
    t_map = saliency.copy()
    for c, attention in oacams.items():
        scores[c + 1] = attention
        t_map = np.maximum(t_map, T_OBJECT_VALUE * (attention > object_threshold))
    return scores, t_map


def cut_low_scores(scores: np.ndarray, threshold: float = LOW_SCORE_THRESHOLD) -> np.ndarray:
    """Step 2: scores below ``threshold`` (0.3) become 0, in every channel (a new array)."""
    return np.where(scores < threshold, np.float32(0), scores).astype(np.float32)


def assign_labels(scores: np.ndarray, conflict: float = CONFLICT_THRESHOLD) -> np.ndarray:
    """Step 3: argmax channel per pixel; ignore where more than one channel exceeds 0.9.

    ``np.argmax`` returns the first maximum, so ties go to the lowest index and
    an all-zero pixel is background (0). Returns a uint8 label.
    """
    label = np.argmax(scores, axis=0).astype(np.uint8)
    label[(scores > conflict).sum(axis=0) > 1] = IGNORE_INDEX
    return label


def ignore_uncertain_background(
    label: np.ndarray, t_map: np.ndarray, threshold: float = UNCERTAIN_BACKGROUND_T
) -> np.ndarray:
    """Step 4: background pixels with ``T >= 32`` become ignore (a new array)."""
    label = label.copy()
    label[(label == 0) & (t_map >= threshold)] = IGNORE_INDEX
    return label


def pom_threshold(cam: np.ndarray, label: np.ndarray, c: int, cam_threshold: float = POM_CAM_THRESHOLD) -> float:
    """Step 5: the CAM threshold above which pixels are potential objects of class ``c``.

    1. the pixels currently labelled ``c + 1`` have a non-zero ``M_c`` sum:
       ``thr = median(M_c over them)``;
    2. else, if any ``M_c > 0.3`` (0.3: ``cam_threshold``):
       ``m = median(M_c[M_c > 0.3])`` and ``thr = median(M_c[M_c > m])``; when
       no value exceeds ``m`` (all values above 0.3 are equal) the set is empty
       and ``thr = 1`` as in branch 3;
    3. else ``thr = 1``.
    """
    cam = np.asarray(cam, dtype=np.float32)
    labelled = cam[label == c + 1]
    if labelled.size and labelled.sum() > 0:
        return float(np.median(labelled))
    reference = cam[cam > cam_threshold]
    if reference.size:
        upper = cam[cam > np.median(reference)]
        if upper.size:
            return float(np.median(upper))
    return POM_FALLBACK_THRESHOLD


def mine_potential_objects(
    label: np.ndarray, cams: Mapping[int, np.ndarray], cam_threshold: float = POM_CAM_THRESHOLD
) -> np.ndarray:
    """Step 5 (POM): background pixels that are potential objects of any class become ignore.

    ``cams`` maps each present class that has a CAM to its normalised ``M_c``.
    Pixels with ``M_c > pom_threshold(M_c, label, c, cam_threshold)`` are potential objects of
    ``c``; thresholds are all computed on the step-4 label (POM only turns
    background into ignore, so the class order does not matter).
    Returns a new array.
    """
    potential = np.zeros(label.shape, dtype=bool)
    for c, cam in cams.items():
        potential |= np.asarray(cam) > pom_threshold(cam, label, c, cam_threshold)
    label = label.copy()
    label[(label == 0) & potential] = IGNORE_INDEX
    return label


def make_pseudo_label(
    saliency: np.ndarray,
    classes: Iterable[int],
    oacams: Mapping[int, np.ndarray],
    cams: Mapping[int, np.ndarray],
    num_classes: int,
    rules: PomRules = PomRules(),
) -> np.ndarray:
    """Stage 3, steps 1-6 (docs/method.md): the pseudo label of one image (uint8, ``H x W``).

    ``classes`` are the image's 0-based present classes; ``oacams`` / ``cams``
    map a present class to its raw OA-CAM / CAM (same size as ``saliency``).
    Entries for absent classes are not used; a present class missing from
    ``oacams`` is left out of steps 1-3, one missing from ``cams`` out of step 5.
    Each map is min-max normalised to [0, 1] first. ``rules`` holds the
    thresholds (the paper's by default); with ``rules.pom`` false step 5 is
    skipped and the CAMs are not used.
    """
    classes = check_classes(classes, num_classes)
    saliency = np.asarray(saliency)
    for name, maps in (("OA-CAM", oacams), ("CAM", cams)):
        for c in classes:
            if c in maps and np.shape(maps[c]) != saliency.shape:
                raise ValueError(
                    f"{name} of class {c} has size {np.shape(maps[c])}, saliency map {saliency.shape}"
                )
    attention = {c: minmax_normalize(oacams[c]) for c in classes if c in oacams}
    cam = {c: minmax_normalize(cams[c]) for c in classes if c in cams}
    scores, t_map = score_volume(saliency, attention, num_classes, rules.object_threshold)
    label = assign_labels(cut_low_scores(scores, rules.low_score_threshold), rules.conflict_threshold)
    label = ignore_uncertain_background(label, t_map, rules.uncertain_bg_threshold)
    if rules.pom:
        label = mine_potential_objects(label, cam, rules.pom_cam_threshold)
    return apply_min_foreground(label, rules.min_foreground)
