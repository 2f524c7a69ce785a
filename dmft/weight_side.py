"""Weight-side propagator and correlation from the kernels (docs/theory.md §3.3).

    G(j,j) = 1,
    G(k+1,j) = [1 - eta (lam + lam_hat_k)] G(k,j) + eta^2 sum_{j<=i<k} M_R(k,i) G(i,j),
    C_perp(k,k') = R G(k,0) G(k',0) + eta^2 sum_{j<k, j'<k'} G(k,j+1) M_C(j,j') G(k',j'+1),
    C(k,k') = m_k m_k' + C_perp(k,k').
"""

from __future__ import annotations

import numpy as np


def propagator(lam_hat: np.ndarray, memory: np.ndarray, lam: float, eta: float) -> np.ndarray:
    """G(k, j) for k, j = 0..K of one group; lam_hat (K+1,), memory M_R (K+1, K+1)."""
    size = lam_hat.shape[0]
    G = np.zeros((size, size))
    G[0, 0] = 1.0
    for k in range(size - 1):
        G[k + 1] = (1 - eta * (lam + lam_hat[k])) * G[k] + eta * eta * (memory[k, :k] @ G[:k])
        G[k + 1, k + 1] = 1.0
    return G


def correlation(G: np.ndarray, noise: np.ndarray, m: np.ndarray, R: float, eta: float):
    """C(k, k') of one group from G, M_C (K+1, K+1) and m (K+1,)."""
    shifted = G[:, 1:]  # shifted[k, j] = G(k, j+1), zero for j >= k
    c_perp = R * np.outer(G[:, 0], G[:, 0]) + eta * eta * shifted @ noise[:-1, :-1] @ shifted.T
    return np.outer(m, m) + 0.5 * (c_perp + c_perp.T)
