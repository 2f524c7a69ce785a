"""Per-sample linear-response paths T_{k,j} and the memory kernel M_R (docs/theory.md §3.2).

    T_{j+1,j} = Delta q_j,
    T_{k+1,j} = [1 - eta (lam + lam_hat_k + Delta q_k)] T_{k,j}
                + eta^2 sum_{j<i<k} M_R(k,i) T_{i,j}            (k > j),
    M_R(k,j)  = alpha Delta E[q_k T_{k,j}]                      (j < k).

Storage: the lower triangle of T, packed by rows (row i holds j = 0..i-1 at offset
i(i-1)/2), with the sample axis last: array (groups, n_rows, n_response). Appending a row
never moves earlier ones, so a solve can be extended (§5.3). This propagation is the
O(N K^3) part of the causal pass; two backends implement the same recursion:

* "numpy": the straightforward way, a Python loop over i of vectorized axpys.
* "numba": one pass over the triangle per step, parallel over chunks of sources j of
  equal work; each task streams the rows i contiguously into its chunk of row k+1 (kept
  in cache), so T is read exactly once per step (memory-bound; float32 storage halves
  the traffic).
"""

from __future__ import annotations

import numba
import numpy as np


def row_offset(i: int) -> int:
    """Offset of row i (entries j = 0..i-1) in the packed triangle."""
    return i * (i - 1) // 2


def triangle_rows(n_steps: int) -> int:
    """Packed length of rows 0..n_steps."""
    return row_offset(n_steps + 1)


def memory_row(T, k: int, q_response: np.ndarray, alpha_delta: float) -> np.ndarray:
    """M_R(k, 0..k-1) = alpha Delta E[q_k T_{k,j}], shape (groups, k) (§3.2)."""
    rows = T[:, row_offset(k):row_offset(k) + k, :]
    q = q_response.astype(T.dtype)[:, :, None]
    return alpha_delta * (rows @ q)[:, :, 0].astype(float) / q_response.shape[1]


def advance(T, k: int, decay: np.ndarray, memory: np.ndarray, source: np.ndarray,
            eta: float, backend: str) -> None:
    """Write row k+1 of T from rows <= k (the §3.2 recursion), in place.

    decay: (groups, n) = 1 - eta (lam + lam_hat_k + Delta q_k); memory: (groups, k) =
    M_R(k, 0..k-1); source: (groups, n) = Delta q_k.
    """
    coef = (eta * eta * memory).astype(T.dtype)
    decay = decay.astype(T.dtype)
    if backend == "numba":
        _advance_numba(T, k, decay, coef)
    else:
        _advance_numpy(T, k, decay, coef)
    T[:, row_offset(k + 1) + k, :] = source


def _advance_numpy(T, k, decay, coef):
    src, dst = row_offset(k), row_offset(k + 1)
    new = T[:, dst:dst + k, :]
    np.multiply(decay[:, None, :], T[:, src:src + k, :], out=new)
    for i in range(1, k):
        off = row_offset(i)
        new[:, :i, :] += coef[:, i, None, None] * T[:, off:off + i, :]


def _chunk_bounds(k: int, chunks: int) -> np.ndarray:
    """Split sources 0..k-1 into chunks of equal work (source j costs k - j)."""
    work = np.cumsum(np.arange(k, 0, -1, dtype=float))
    if k == 0:
        return np.zeros(1, dtype=np.int64)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, chunks) / chunks)
    return np.unique(np.concatenate([[0], cuts, [k]])).astype(np.int64)


def _advance_numba(T, k, decay, coef):
    _advance_chunks(T, k, decay, coef, _chunk_bounds(k, 4 * numba.get_num_threads()))


@numba.njit(parallel=True, fastmath=True, cache=True)
def _advance_chunks(T, k, decay, coef, bounds):
    """Row k+1 of T; each task owns a chunk of sources and streams rows i contiguously."""
    groups, _, n = T.shape
    chunks = len(bounds) - 1
    src, dst = k * (k - 1) // 2, (k + 1) * k // 2
    for task in numba.prange(groups * chunks):
        g, chunk = task // chunks, task % chunks
        first, last = bounds[chunk], bounds[chunk + 1]
        for j in range(first, last):
            for p in range(n):
                T[g, dst + j, p] = decay[g, p] * T[g, src + j, p]
        for i in range(first + 1, k):
            c = coef[g, i]
            off = i * (i - 1) // 2
            for j in range(first, min(last, i)):
                for p in range(n):
                    T[g, dst + j, p] += c * T[g, off + j, p]
