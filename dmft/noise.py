"""Gaussian noise xi with covariance M_C, generated causally (docs/theory.md §3.1, §5.1, §5.3).

xi_k = sum_{j<=k} L_{kj} z_j with L L^T = M_C, the Cholesky factor extended by one row per
step (nested: earlier noise stays valid). The empirical M_C is a Gram matrix, hence PSD, but
it is often numerically rank-deficient (smooth GD gradients, converged dynamics, K > N): a
pivot whose residual variance is below `rel_tol` * M_C(k,k) is declared degenerate, its
column of L is zero, and later rows get no component along it (exact for a PSD matrix, up
to rounding).

Rounding errors grow through the forward substitution by the inverse of every small pivot
kept, and can make a row longer than it may be: sum_j L_kj^2 > M_C(k,k), which is
impossible in exact arithmetic. The noise would then inject more variance than its kernel
says, and the dynamics can blow up (seen in the three-cluster model: rows up to 100 times
too long after a pivot of relative size 1e-10). Two guards, neither of which changes an
exact factor: pivots below 1e-8 relative are degenerate, and a row longer than allowed is
scaled back to norm^2 = M_C(k,k) (counted in `rescaled_rows`, reported by `dmft.solve`).

The new row is a forward substitution against the rows of L already stored (numba, reading
the lower triangle of L in place: O(k^2) per group and step, no copy of the k x k block; the
groups in parallel: 16 groups at k = 500 are 2 M multiply-adds a step, well above the cost
of a parallel launch).
"""

from __future__ import annotations

import numba
import numpy as np


class NestedCholesky:
    """Row-by-row Cholesky factor of a growing PSD matrix, one per group."""

    def __init__(self, groups: int, capacity: int, rel_tol: float = 1e-8):
        self.L = np.zeros((groups, capacity, capacity))
        self.degenerate = np.zeros((groups, capacity), dtype=bool)
        self.rel_tol = rel_tol
        self.rescaled_rows = 0  # rows scaled back to norm^2 = M_C(k, k) (see module doc)

    def grow(self, capacity: int) -> None:
        old = self.L.shape[1]
        for name in ("L", "degenerate"):
            arr = getattr(self, name)
            new = np.zeros(arr.shape[:1] + (capacity,) * (arr.ndim - 1), dtype=arr.dtype)
            new[(slice(None),) + (slice(0, old),) * (arr.ndim - 1)] = arr
            setattr(self, name, new)

    def add_row(self, k: int, row: np.ndarray) -> np.ndarray:
        """Append row k, given M_C(k, 0..k) of shape (groups, k+1); returns L[:, k, :k+1]."""
        self.rescaled_rows += _add_row(self.L, self.degenerate,
                                       np.ascontiguousarray(row, dtype=float), k, self.rel_tol)
        return self.L[:, k, :k + 1]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _add_row(L, degenerate, row, k, rel_tol):
    """L[g, k, :k+1] by forward substitution (degenerate pivots give zero columns); returns
    the number of groups whose row had to be scaled back to norm^2 = M_C(k, k)."""
    rescaled = 0
    for g in numba.prange(L.shape[0]):
        norm = 0.0
        for i in range(k):
            if degenerate[g, i]:
                L[g, k, i] = 0.0
                continue
            s = row[g, i]
            for j in range(i):
                s -= L[g, i, j] * L[g, k, j]
            x = s / L[g, i, i]
            L[g, k, i] = x
            norm += x * x
        variance = max(row[g, k], 0.0)
        residual = variance - norm
        if residual > rel_tol * variance and residual > 0:
            L[g, k, k] = np.sqrt(residual)
            degenerate[g, k] = False
        else:
            L[g, k, k] = 0.0
            degenerate[g, k] = True
            if norm > variance * (1 + rel_tol):
                scale = np.sqrt(variance / norm)
                for i in range(k):
                    L[g, k, i] *= scale
                rescaled += 1
    return rescaled
