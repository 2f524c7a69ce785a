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
    """Per chunk of CHUNK samples: sum_p g(p) history[p, j] for j <= k. The samples with
    g(p) != 0 (inactive ones of SGD are 0) are added four at a time, so that each pass over
    the chunk's accumulator row serves four history rows."""
    groups, n, _ = history.shape
    chunks = (n + CHUNK - 1) // CHUNK
    out = np.zeros((groups, chunks, k + 1))
    for task in numba.prange(groups * chunks):
        grp, chunk = task // chunks, task % chunks
        active = np.empty(CHUNK, dtype=np.int64)
        weights = np.empty(CHUNK)
        count = 0
        for p in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            if g[grp, p] != 0.0:
                active[count], weights[count] = p, g[grp, p]
                count += 1
        add_weighted_rows(out[grp, chunk], weights, history[grp], active[:count], k + 1)
    return out


@numba.njit(fastmath=True, inline="always", cache=True)
def add_weighted_rows(acc, weights, rows, index, length):
    """acc[:length] += sum_q weights[q] rows[index[q], :length] over q < len(index), four
    rows per pass over acc (one load and store of acc serves four rows)."""
    count = len(index)
    q = 0
    while q + 4 <= count:
        c0, c1, c2, c3 = weights[q], weights[q + 1], weights[q + 2], weights[q + 3]
        r0, r1 = rows[index[q]], rows[index[q + 1]]
        r2, r3 = rows[index[q + 2]], rows[index[q + 3]]
        for j in range(length):
            acc[j] += c0 * r0[j] + c1 * r1[j] + c2 * r2[j] + c3 * r3[j]
        q += 4
    for i in range(q, count):
        c, r = weights[i], rows[index[i]]
        for j in range(length):
            acc[j] += c * r[j]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _noise_and_recall(z, h, factor, lengths, memory, k):
    """xi = sum over the kept slots r < lengths of factor_r z_r; recall = sum_{j<k} M_R h_j.
    Four samples per task share each load of M_R(k, j)."""
    groups, n, _ = z.shape
    quads = (n + 3) // 4
    xi = np.empty((groups, n))
    recall = np.empty((groups, n))
    for task in numba.prange(groups * quads):
        grp, first = task // quads, 4 * (task % quads)
        m, f = memory[grp], factor[grp]
        if first + 4 <= n:
            h0, h1, h2, h3 = h[grp, first], h[grp, first + 1], h[grp, first + 2], \
                h[grp, first + 3]
            b0 = b1 = b2 = b3 = 0.0
            for j in range(k):
                mj = m[j]
                b0 += mj * h0[j]
                b1 += mj * h1[j]
                b2 += mj * h2[j]
                b3 += mj * h3[j]
            recall[grp, first], recall[grp, first + 1] = b0, b1
            recall[grp, first + 2], recall[grp, first + 3] = b2, b3
        else:
            for p in range(first, n):
                b = 0.0
                for j in range(k):
                    b += m[j] * h[grp, p, j]
                recall[grp, p] = b
        for p in range(first, min(n, first + 4)):
            a = 0.0
            for j in range(lengths[grp]):
                a += f[j] * z[grp, p, j]
            xi[grp, p] = a
    return xi, recall
