"""Permutohedral lattice Gaussian filtering in PyTorch, built and applied as pydensecrf does.

The dense CRF of docs/method.md, stage 4 ("crf") filters its marginals with
Gaussian kernels over position (and colour). Like pydensecrf (Krähenbühl's
densecrf, after Adams et al. 2010) the filter is approximated on a
permutohedral lattice: every point is *splatted* onto the d+1 vertices of the
simplex that contains its elevated feature, with barycentric weights; the
lattice values are *blurred* along each of the d+1 lattice directions with the
kernel [1/2, 1, 1/2]; every point *slices* its value back from its d+1
vertices, scaled by alpha = 1 / (1 + 2^-d).

Everything is tensor operations (device-agnostic, no host sync after
:meth:`PermutohedralLattice.build`). The vertices are found by sorting packed
integer keys (``torch.unique``) instead of pydensecrf's hash table, and the
blur neighbours by ``searchsorted``. Several images share one lattice: the
image index is part of every key, so their vertices never meet.

The float32 arithmetic follows pydensecrf's SSE code path operation by
operation (elevation, rounding half to even, barycentric weights, the order of
the splat sums, the slice with the weight times alpha), so the same lattice is
built and the filtered values agree to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SMALL_VALUE_SIZE = 2
"""pydensecrf filters at most this many channels with its scalar code (slice: (w * v) * alpha)."""

MAX_KEY_BITS = 62
"""Packed lattice keys (image index and d coordinates) must fit a signed 64-bit integer."""


def _scale_factors(d: int) -> np.ndarray:
    """Diagonal of the elevation matrix times the inverse filter std, rounded as pydensecrf rounds it.

    ``1 / sqrt((i+2)(i+1)) * sqrt(2/3) (d+1)`` in double precision, the second
    factor first rounded to float32, the product stored as float32.
    """
    inv_std = float(np.float32(np.sqrt(2.0 / 3.0) * (d + 1)))
    return np.array([1.0 / np.sqrt(float((i + 2) * (i + 1))) * inv_std for i in range(d)], dtype=np.float32)


def slice_alpha(d: int) -> float:
    """The slicing scale ``1 / (1 + 2^-d)`` in float32."""
    return float(np.float32(1.0) / np.float32(1.0 + 2.0 ** -d))


def _elevate(features: torch.Tensor) -> torch.Tensor:
    """``(N, d)`` features -> ``(N, d+1)`` points on the lattice's plane sum = 0 (float32, pydensecrf's order)."""
    n, d = features.shape
    scaled = features * torch.from_numpy(_scale_factors(d)).to(features.device)
    elevated = features.new_empty(n, d + 1)
    running = features.new_zeros(n)
    for j in range(d, 0, -1):
        col = scaled[:, j - 1]
        elevated[:, j] = running - col * float(j)
        running = running + col
    elevated[:, 0] = running
    return elevated


def _simplex(elevated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest zero-colour lattice point, rank of each coordinate and barycentric weights of the enclosing simplex.

    Returns ``rem0`` (N, d+1) int64, ``rank`` (N, d+1) int64 and ``barycentric``
    (N, d+1) float32, as pydensecrf's ``Permutohedral::init``.
    """
    n, d1 = elevated.shape
    d = d1 - 1
    down = float(np.float32(1.0) / np.float32(d1))
    rounded = torch.round(elevated * down)  # half to even, as the SSE conversion
    rem0 = rounded * float(d1)
    total = rounded.sum(dim=1).long()  # small integers: exact in any order
    diff = elevated - rem0
    # rank[i] = #{j > i: diff_j > diff_i} + #{j < i: diff_j >= diff_i}
    later = torch.ones(d1, d1, dtype=torch.bool, device=elevated.device).triu(1)
    greater = diff[:, None, :] > diff[:, :, None]
    not_less = diff[:, None, :] >= diff[:, :, None]
    same = torch.eye(d1, dtype=torch.bool, device=elevated.device)
    rank = (torch.where(later, greater, not_less) & ~same).sum(dim=2)
    rank = rank + total[:, None]
    wrap = (rank < 0).long() - (rank > d).long()
    rank = rank + d1 * wrap
    rem0 = rem0 + float(d1) * wrap.float()
    # barycentric[p] = v[rank d-p] - v[rank d-p+1]; v[i] = (elevated_i - rem0_i) / (d+1)
    value = (elevated - rem0) * down
    by_position = torch.zeros_like(value).scatter_(1, d - rank, value)
    bary = torch.empty_like(value)
    bary[:, 1:] = by_position[:, 1:] - by_position[:, :-1]
    bary[:, 0] = by_position[:, 0] + (1.0 - by_position[:, d])
    return rem0.long(), rank, bary


@dataclass
class PermutohedralLattice:
    """The lattice of one or more point sets: where each point splats and slices, and the blur neighbours."""

    offsets: torch.Tensor
    """(N, d+1) int64: row (1..M) of each point's simplex vertex in the value table; row 0 stays zero."""
    weights: torch.Tensor
    """(N, d+1) float32: barycentric weight of each vertex."""
    splat_points: torch.Tensor
    splat_weights: torch.Tensor
    splat_lengths: torch.Tensor
    """The splat as segment sums: (point, weight) of every (point, vertex) pair sorted by vertex (points in
    order within a vertex), and the number of pairs of each row; row 0 gets one pair of weight 0."""
    blur_steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    """Per lattice direction: rows (1..M) with a neighbour along it, and the rows of their two neighbours (0: none)."""
    n_vertices: int

    @property
    def dim(self) -> int:
        return self.weights.shape[1] - 1

    @classmethod
    def build(cls, features: torch.Tensor, segments: torch.Tensor | None = None) -> "PermutohedralLattice":
        """Lattice of ``features`` (N, d) float32 (already divided by the kernel stds).

        ``segments`` (N,) int64 (e.g. the image index) keeps the point sets apart:
        points of different segments never share a vertex.
        """
        if features.dtype != torch.float32:
            raise TypeError(f"lattice features must be float32, got {features.dtype}")
        n, d = features.shape
        rem0, rank, bary = _simplex(_elevate(features))
        remainder = torch.arange(d + 1, device=features.device)
        # vertex r of the simplex: rem0 + canonical[r][rank], canonical[r][k] = r - (d+1) [k > d - r]
        wraps = rank[:, None, :d] > d - remainder[None, :, None]
        coords = rem0[:, None, :d] + remainder[None, :, None] - (d + 1) * wraps.long()
        packed, strides = _pack(coords, segments)
        keys, inverse = torch.unique(packed.reshape(-1), sorted=True, return_inverse=True)
        offsets = (inverse + 1).reshape(n, d + 1)
        step = sum(strides)
        blur_steps = []
        for j in range(d + 1):
            # n1 = key - 1 (every coordinate) + (d+1) along axis j (the last axis is implicit); n2 = key - (n1 - key)
            delta = -step + ((d + 1) * strides[j] if j < d else 0)
            first, second = _lookup(keys, keys + delta), _lookup(keys, keys - delta)
            rows = torch.nonzero((first > 0) | (second > 0)).squeeze(1)
            blur_steps.append((rows + 1, first[rows], second[rows]))
        points, weights, lengths = _splat_pairs(offsets, bary, keys.numel())
        return cls(
            offsets=offsets, weights=bary, splat_points=points, splat_weights=weights, splat_lengths=lengths,
            blur_steps=blur_steps, n_vertices=keys.numel(),
        )

    def splat(self, values: torch.Tensor, by_segments: bool) -> torch.Tensor:
        """(M+1, C) table: each vertex row sums weight * value over its points, in point order; row 0 is zero.

        Two equal ways (same sums in the same order, deterministic): a serial
        ``index_add_`` (fastest on the CPU) or segment sums over the pairs sorted
        at build time (on the GPU: no atomics, no sort per call).
        """
        if by_segments:
            contributions = torch.index_select(values, 0, self.splat_points) * self.splat_weights[:, None]
            return torch.segment_reduce(contributions, "sum", lengths=self.splat_lengths, axis=0)
        contributions = (values[:, None, :] * self.weights[:, :, None]).reshape(-1, values.shape[1])
        table = values.new_zeros(self.n_vertices + 1, values.shape[1])
        return table.index_add_(0, self.offsets.reshape(-1), contributions)

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """Splat ``values`` (N, C), blur, slice: the approximate Gaussian filter of pydensecrf (float32)."""
        n, c = values.shape
        d = self.dim
        table = self.splat(values, by_segments=values.device.type != "cpu")
        for rows, first, second in self.blur_steps:
            # table[i] += (table[n1] + table[n2]) / 2 for all i at once: the neighbour sums are read before the update;
            # a vertex without neighbours along this direction keeps its value
            near = torch.index_select(table, 0, first) + torch.index_select(table, 0, second)
            table.index_add_(0, rows, near, alpha=0.5)
        alpha = slice_alpha(d)
        small = c <= SMALL_VALUE_SIZE
        slice_weights = self.weights if small else self.weights * alpha
        out = None
        for j in range(d + 1):
            term = torch.index_select(table, 0, self.offsets[:, j]) * slice_weights[:, j, None]
            out = term if out is None else out + term
        return out * alpha if small else out


def _splat_pairs(offsets: torch.Tensor, bary: torch.Tensor, n_vertices: int) -> tuple[torch.Tensor, ...]:
    """(point, weight) pairs sorted by vertex row, points in order within a row, and the pairs per row.

    Row 0 (the zero row) gets one pair of weight 0 so that every row is a segment.
    """
    n, d1 = offsets.shape
    order = torch.argsort(offsets.reshape(-1), stable=True)
    points = torch.cat([offsets.new_zeros(1), order // d1])
    weights = torch.cat([bary.new_zeros(1), bary.reshape(-1)[order]])
    lengths = torch.bincount(offsets.reshape(-1), minlength=n_vertices + 1)
    lengths[0] = 1
    return points, weights, lengths


def _pack(coords: torch.Tensor, segments: torch.Tensor | None) -> tuple[torch.Tensor, list[int]]:
    """Mixed-radix int64 keys of the vertex coordinates (N, d+1, d), with room for the blur neighbours.

    Returns the keys (N, d+1) and the stride of each coordinate (d,). The
    segment index is the most significant digit.
    """
    d = coords.shape[-1]
    flat = coords.reshape(-1, d)
    low = flat.amin(dim=0) - d
    span = flat.amax(dim=0) + d - low + 1
    radix = [int(s) for s in span.tolist()]
    n_segments = int(segments.max()) + 1 if segments is not None and segments.numel() else 1
    bits = sum(np.log2(r) for r in radix) + np.log2(n_segments)
    if bits > MAX_KEY_BITS:
        raise ValueError(
            f"lattice keys need {bits:.0f} bits (> {MAX_KEY_BITS}): the features span too many lattice cells; "
            "use larger kernel stds or fewer images per call"
        )
    strides, step = [], 1
    for r in reversed(radix):
        strides.append(step)
        step *= r
    strides = strides[::-1]
    packed = ((coords - low) * torch.tensor(strides, dtype=torch.int64, device=coords.device)).sum(dim=-1)
    if segments is not None:
        packed = packed + segments[:, None] * step
    return packed, strides


def _lookup(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Row (1..M) of each query in the sorted ``keys``, 0 when absent."""
    at = torch.searchsorted(keys, queries).clamp(max=keys.numel() - 1)
    return torch.where(keys[at] == queries, at + 1, torch.zeros_like(at))
