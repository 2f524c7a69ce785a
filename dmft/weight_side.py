"""Weight-side propagator and correlation from the kernels (docs/theory.md §3.3;
momentum and covariance levels: dmft-extensions §3.1).

With x^p_k = (1 + gamma) x_k - gamma x_{k-1} (gamma = 0 for heavy ball and plain GD) and
the level's variance s (1 without covariance):

    G(k+1,j) = (1 + beta) G(k,j) - beta G(k-1,j) - eta (lam + s lam_hat_k) G^p(k,j)
               + eta^2 s sum_{j<=i<k} M_R(k,i) G^p(i,j),      G(j,j) = 1, G(j-1,j) = 0,
    Y(k): the same recursion with Y_0 = Y_{-1} = 1 (response to the initial condition;
          Y = G(., 0) when beta = 0),
    C_perp(k,k') = R Y(k) Y(k') + eta^2 s sum_{j<k, j'<k'} G(k,j+1) M_C(j,j') G(k',j'+1),
    C(k,k') = m_k m_k' + C_perp(k,k').

The recursion is computed as G(k+1) = [1 - eta (lam + s lam_hat_k)] G^p(k)
+ (beta - gamma) (G(k) - G(k-1)) + eta^2 s M_R(k,:k) G^p(:k), which at beta = 0, s = 1 is
the plain §3.3 update operation for operation.
"""

from __future__ import annotations

import numpy as np


def propagator(lam_hat: np.ndarray, memory: np.ndarray, lam: float, eta: float,
               beta: float = 0.0, gamma: float = 0.0, scale: float = 1.0):
    """G(k, j) for k, j = 0..K of one group and level, and Y(k) (module docstring).

    lam_hat (K+1,), memory M_R (K+1, K+1), scale = the level's variance s_a.
    Returns (G (K+1, K+1), Y (K+1,)).
    """
    size = lam_hat.shape[0]
    # one extra column for Y when it is not G(., 0): its row -1 is 1, a kick's is 0
    width = size + (1 if beta else 0)
    G = np.zeros((size, width))
    G[0, 0] = 1.0
    if beta:
        G[0, size] = 1.0
    Gp = G if gamma == 0 else np.zeros((size, width))
    previous = np.zeros(width)
    if beta:
        previous[size] = 1.0
    if gamma:
        Gp[0] = (1 + gamma) * G[0] - gamma * previous
    for k in range(size - 1):
        G[k + 1] = ((1 - eta * (lam + scale * lam_hat[k])) * Gp[k]
                    + eta * eta * scale * (memory[k, :k] @ Gp[:k]))
        if beta:
            G[k + 1] += (beta - gamma) * (G[k] - previous)
            previous = G[k]
        G[k + 1, k + 1] = 1.0
        if gamma:
            Gp[k + 1] = (1 + gamma) * G[k + 1] - gamma * G[k]
    if beta:
        return G[:, :size], G[:, size].copy()
    return G, G[:, 0].copy()


def correlation(G: np.ndarray, noise: np.ndarray, m: np.ndarray, R: float, eta: float,
                Y: np.ndarray | None = None, scale: float = 1.0):
    """C(k, k') of one group (and level) from G, M_C (K+1, K+1), m (K+1,), Y (default G(., 0))."""
    Y = G[:, 0] if Y is None else Y
    shifted = G[:, 1:]  # shifted[k, j] = G(k, j+1), zero for j >= k
    c_perp = R * np.outer(Y, Y) + eta * eta * scale * shifted @ noise[:-1, :-1] @ shifted.T
    return np.outer(m, m) + 0.5 * (c_perp + c_perp.T)
