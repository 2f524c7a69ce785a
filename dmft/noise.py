"""Gaussian noise xi with covariance M_C, generated causally (docs/theory.md §3.1, §5.1, §5.3).

xi_k = sum_{j<=k} L_{kj} z_j with L L^T = M_C, the Cholesky factor extended by one row per
step (nested: earlier noise stays valid). The empirical M_C is a Gram matrix, hence PSD, but
it is often numerically rank-deficient (smooth GD gradients, K > N): a pivot whose residual
variance is below `rel_tol` * M_C(k,k) is declared degenerate, its column of L is zero, and
later rows get no component along it (exact for a PSD matrix, up to rounding).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular


class NestedCholesky:
    """Row-by-row Cholesky factor of a growing PSD matrix, one per group."""

    def __init__(self, groups: int, capacity: int, rel_tol: float = 1e-10):
        self.L = np.zeros((groups, capacity, capacity))
        self._solve = np.zeros((groups, capacity, capacity))  # L with 1 on degenerate pivots
        self.degenerate = np.zeros((groups, capacity), dtype=bool)
        self.rel_tol = rel_tol

    def grow(self, capacity: int) -> None:
        old = self.L.shape[1]
        for name in ("L", "_solve", "degenerate"):
            arr = getattr(self, name)
            new = np.zeros(arr.shape[:1] + (capacity,) * (arr.ndim - 1), dtype=arr.dtype)
            new[(slice(None),) + (slice(0, old),) * (arr.ndim - 1)] = arr
            setattr(self, name, new)

    def add_row(self, k: int, row: np.ndarray) -> np.ndarray:
        """Append row k, given M_C(k, 0..k) of shape (groups, k+1); returns L[:, k, :k+1]."""
        for g in range(row.shape[0]):
            x = np.zeros(k)
            if k:
                x = solve_triangular(self._solve[g, :k, :k], row[g, :k], lower=True,
                                     check_finite=False)
                x[self.degenerate[g, :k]] = 0.0
            residual = row[g, k] - x @ x
            self.L[g, k, :k] = self._solve[g, k, :k] = x
            if residual > self.rel_tol * max(row[g, k], 0.0) and residual > 0:
                self.L[g, k, k] = self._solve[g, k, k] = np.sqrt(residual)
            else:
                self.degenerate[g, k] = True
                self._solve[g, k, k] = 1.0
        return self.L[:, k, :k + 1]
