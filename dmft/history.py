"""Sample histories and the O(N K) per-step sums over them (docs/theory.md §3.1, §3.2, §5.3).

Each step needs three sums over the past of every sample p of a group:

    M_C(k, j)     = alpha Delta E[g_k g_j]          (j <= k)    over the g history,
    xi_k(p)       = sum_{j<=k} L(k, j) z_j(p)                   over the noise normals,
    recall_k(p)   = sum_{j<k} M_R(k, j) h_j(p)                  over the h history.

They dominate the cost at large N (O(N K^2) in all). The histories are stored with the
time axis last (each sample's past is contiguous) and each sum is one numba pass over
them. The sample axis is cut into fixed chunks whose partial sums are added in order,
so the numbers do not depend on the number of threads.

The noise normals are stored compactly: z_k is kept only if pivot k of the Cholesky
factor is not degenerate (L(k, k) > 0), since a degenerate pivot's column of L is zero
in every later row (noise.py). Slot r of group g holds the r-th kept step
(`kept_steps[g, r]`), and the noise sum runs over the kept slots only: the same sum
without its zero terms. GD's M_C is numerically of low rank (about 25 kept steps of 500
in two-cluster GD up to t = 100, all of them for persistent-SGD), so its noise costs
O(N rank) per step instead of O(N K).
"""

from __future__ import annotations

import numba
import numpy as np

CHUNK = 256  # samples per partial sum of E[g_k g_j]


class Histories:
    """h, g and z of every sample of every group, steps 0..capacity.

    With `levels` > 1 (input covariance levels, dmft-extensions §3) each sample has one h
    (the gradient-point field h^p_a) and one noise path z_a per level: h and z are stored
    as (groups * levels, n, capacity + 1), row g * levels + a, and every level uses its
    group's Cholesky factor and M_R row. g (one per sample) stays (groups, n, capacity + 1).
    """

    NAMES = ("h", "g", "z")

    def __init__(self, groups: int, n: int, capacity: int, dtype="float64", levels: int = 1):
        self.dtype = np.dtype(dtype)
        self.levels = levels
        for name in self.NAMES:
            rows = groups if name == "g" else groups * levels
            setattr(self, name, np.zeros((rows, n, capacity + 1), dtype=self.dtype))
        self.kept = np.zeros(groups, dtype=np.int64)  # noise normals kept (module docstring)
        self.kept_steps = np.zeros((groups, capacity + 1), dtype=np.int64)

    @staticmethod
    def nbytes(groups: int, n: int, capacity: int, dtype="float64", levels: int = 1) -> int:
        return (1 + 2 * levels) * groups * n * (capacity + 1) * np.dtype(dtype).itemsize

    def grow(self, capacity: int) -> None:
        for name in self.NAMES:
            old = getattr(self, name)
            new = np.zeros(old.shape[:2] + (capacity + 1,), dtype=self.dtype)
            new[:, :, :old.shape[2]] = old
            setattr(self, name, new)
        steps = np.zeros((len(self.kept), capacity + 1), dtype=np.int64)
        steps[:, :self.kept_steps.shape[1]] = self.kept_steps
        self.kept_steps = steps

    def record(self, k: int, **values) -> None:
        """Store step k of the named histories: arrays (groups, n), or (groups, levels, n)
        for h and z (z in each group's next free slot, module docstring)."""
        for name, value in values.items():
            history = getattr(self, name)
            value = value.reshape(history.shape[:2])
            if name == "z":
                history[np.arange(len(history)), :, np.repeat(self.kept, self.levels)] = value
            else:
                history[:, :, k] = value

    def gram_row(self, k: int) -> np.ndarray:
        """sum_p g_j(p) g_k(p) / n for j = 0..k, shape (groups, k+1), from the stored g.

        g_k is taken as stored (record it first): M_C is then exactly the Gram matrix of
        the stored vectors, PSD up to float64 rounding. Mixing the float32-rounded g_j with
        an unrounded g_k breaks positivity at 1e-7 relative, far above the degeneracy
        threshold of the Cholesky factor (noise.py), which then divides by spurious
        pivots once M_C becomes numerically low-rank (late times, §5.1).
        """
        current = self.g[:, :, k].astype(np.float64)
        partial = _gram_partials(self.g, current, k)
        return partial.sum(axis=1) / self.g.shape[1]

    def noise_and_recall(self, k: int, factor: np.ndarray, memory: np.ndarray):
        """xi_k = sum_{j<=k} L(k,j) z_j and recall_k = sum_{j<k} M_R(k,j) h_j, (groups, n)
        (with levels: (groups * levels, n), every level with its group's L and M_R).

        factor = L(k, 0..k) of every group; z_k is in slot `kept` of its group, and is
        kept for later steps if L(k, k) > 0."""
        rows = np.arange(len(self.kept))[:, None]
        slots = np.arange(factor.shape[1])[None, :]
        compact = np.where(slots < self.kept[:, None],
                           factor[rows, self.kept_steps[:, :factor.shape[1]]], 0.0)
        compact[rows[:, 0], self.kept] = factor[:, k]
        lengths = self.kept + 1
        if self.levels > 1:
            compact = np.repeat(compact, self.levels, axis=0)
            lengths = np.repeat(lengths, self.levels)
            memory = np.repeat(memory, self.levels, axis=0)
        out = _noise_and_recall(self.z, self.h, compact, lengths,
                                np.ascontiguousarray(memory), k)
        keep = factor[:, k] > 0
        self.kept_steps[keep, self.kept[keep]] = k
        self.kept += keep
        return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _gram_partials(history, g, k):
    groups, n, _ = history.shape
    chunks = (n + CHUNK - 1) // CHUNK
    out = np.zeros((groups, chunks, k + 1))
    for task in numba.prange(groups * chunks):
        grp, chunk = task // chunks, task % chunks
        for p in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            x = g[grp, p]
            if x == 0.0:
                continue
            for j in range(k + 1):
                out[grp, chunk, j] += x * history[grp, p, j]
    return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _noise_and_recall(z, h, factor, lengths, memory, k):
    """xi = sum over the kept slots r < lengths of factor_r z_r; recall = sum_{j<k} M_R h_j."""
    groups, n, _ = z.shape
    xi = np.empty((groups, n))
    recall = np.empty((groups, n))
    for task in numba.prange(groups * n):
        grp, p = task // n, task % n
        a = 0.0
        for j in range(lengths[grp]):
            a += factor[grp, j] * z[grp, p, j]
        b = 0.0
        for j in range(k):
            b += memory[grp, j] * h[grp, p, j]
        xi[grp, p] = a
        recall[grp, p] = b
    return xi, recall
