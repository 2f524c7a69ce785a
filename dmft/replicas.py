"""Standard errors over independent replicas (sample groups) of the DMFT (docs/theory.md §5.1,
§5.9): the mean over replicas of a sum over initial-magnetization nodes, and its error with
the Welch-Satterthwaite degrees of freedom."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def _c4(n):
    """c4(n) = sqrt(2/(n-1)) Gamma(n/2) / Gamma((n-1)/2): E s = c4 sigma for n normal values
    (n real: the Welch-Satterthwaite degrees of freedom plus one)."""
    n = np.asarray(n, dtype=float)
    return np.sqrt(2 / (n - 1)) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2))


def node_average(values: np.ndarray, replicas: int):
    """Mean and standard error of sum_j y_j from per-node replica values y (nodes, time,
    replicas, ...) (docs/theory.md §5.1).

    The variance is V = sum_j s_j^2 / R (s_j the replica standard deviation of node j), with
    nu = V^2 / sum_j (s_j^2/R)^2 / (R - 1) degrees of freedom (Welch-Satterthwaite); the
    error is sqrt(V) / c4(nu + 1), unbiased for a normal spread (for one node: s / (c4(R)
    sqrt(R)); c4(4) = 0.92, c4(2) = 0.80).
    """
    mean = values.mean(axis=2).sum(axis=0)
    var = values.var(axis=2, ddof=1) / replicas
    total = var.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(total > 0, total ** 2 / ((var ** 2).sum(axis=0) / (replicas - 1)), 1.0)
    return mean, np.sqrt(total) / _c4(np.maximum(dof, 1.0) + 1)
