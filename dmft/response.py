"""Per-sample linear-response paths T_{k,j} and the memory kernel M_R (docs/theory.md §3.2, §5.5).

    T_{j+1,j} = Delta q_j,
    T_{k+1,j} = [1 - eta (lam + lam_hat_k + Delta q_k)] T_{k,j}
                + eta^2 sum_{j<i<k} M_R(k,i) T_{i,j}            (k > j),
    M_R(k,j)  = alpha Delta E[q_k T_{k,j}]                      (j < k).

Each source j starts its own path, independent of the other sources (they share only the
kernel M_R). Following every source to the end costs O(N_R K^3 / 6) time and
O(N_R K^2 / 2) memory. The multiresolution schedule of §5.5 follows only some of them:
source j = o 2^l (o odd) is followed for `window` 2^l steps, and to the end if o < window/2
(or j = 0). At step k the followed sources are then spaced by about min(k - j, 2 j) / window
around j, and M_R(k, j) between them is interpolated linearly in j. The cost drops to
O(N_R window K^2 log K) time and O(N_R window K log K) memory; window=None follows every
source (exact for the sample set).

Storage: one history per source, T[g, offset(j) + (k - j - 1), p] = T_{k,j} of response
sample p in group g, the sample axis last. A source's history is contiguous, so advancing
it reads one block; appending an entry never moves others (a solve can be extended, §5.3).
Two backends implement the same recursion: "numpy" (direct, a Python loop over sources)
and "numba" (parallel over chunks of sources of equal work).
"""

from __future__ import annotations

import numba
import numpy as np

from .history import add_weighted_rows


EXACT_LAGS_PER_WINDOW = 2  # memory sums of T exact up to lag 2 x response_window (§5.5)


class SourceSchedule:
    """Which sources j are followed up to which step (§5.5), for a solve of `n_steps` steps."""

    def __init__(self, window: int | None, n_steps: int):
        self.window = window
        self.n_steps = n_steps
        j = np.arange(n_steps + 1)
        self.last_step = np.minimum(_follow_until(j, window), n_steps)  # last k with T_{k,j}
        lengths = self.last_step - j  # entries k = j+1 .. last_step
        self.offset = np.concatenate([[0], np.cumsum(lengths)])[:-1]
        self.size = int(lengths.sum())

    def followed(self, k: int) -> np.ndarray:
        """Sources j < k whose T_{k,j} exists at step k (sorted)."""
        return np.flatnonzero(self.last_step[:k] >= k)


def _follow_until(j: np.ndarray, window: int | None) -> np.ndarray:
    """Last step k of source j's path: j + window 2^l, or 'never ends' (a huge number)."""
    forever = np.iinfo(np.int64).max // 4
    if window is None:
        return np.full(j.shape, forever, dtype=np.int64)
    lowbit = np.where(j > 0, j & -j, 1)
    odd = np.where(j > 0, j // lowbit, 0)
    return np.where((odd < window / 2) | (j == 0), forever, j + window * lowbit)


class ResponsePaths:
    """Response paths of every group for the followed sources, and M_R rows from them."""

    def __init__(self, groups: int, n_response: int, n_steps: int, window: int | None,
                 dtype, backend: str):
        self.window, self.backend = window, backend
        self.schedule = SourceSchedule(window, n_steps)
        self.T = np.zeros((groups, self.schedule.size, n_response), dtype=dtype)

    @staticmethod
    def nbytes(groups: int, n_response: int, n_steps: int, window: int | None, dtype) -> int:
        return groups * SourceSchedule(window, n_steps).size * n_response * np.dtype(dtype).itemsize

    def grow(self, n_steps: int) -> None:
        """Room for steps up to n_steps; the histories written so far are kept."""
        old, new = self.schedule, SourceSchedule(self.window, n_steps)
        T = np.zeros(self.T.shape[:-2] + (new.size, self.T.shape[-1]), dtype=self.T.dtype)
        for j in range(old.n_steps + 1):
            length = old.last_step[j] - j
            T[..., new.offset[j]:new.offset[j] + length, :] = \
                self.T[..., old.offset[j]:old.offset[j] + length, :]
        self.schedule, self.T = new, T

    def memory_row(self, k: int, q_response: np.ndarray, alpha_delta: float) -> np.ndarray:
        """M_R(k, 0..k-1) = alpha Delta E[q_k T_{k,j}], shape (groups, k) (§3.2).

        Measured at the followed sources, interpolated linearly in j between them (§5.5).
        """
        groups = self.T.shape[0]
        if k == 0:
            return np.zeros((groups, 0))
        sources = self.schedule.followed(k)
        entries = self._entries(self.schedule.offset[sources] + (k - sources - 1))
        q = q_response.astype(self.T.dtype)[:, :, None]
        measured = alpha_delta * (entries @ q)[:, :, 0].astype(float) / q_response.shape[1]
        if len(sources) == k:
            return measured
        j = np.arange(k)
        return np.stack([np.interp(j, sources, measured[g]) for g in range(groups)])

    def _entries(self, rows: np.ndarray) -> np.ndarray:
        """The stored T_{k,j} at the given history rows, (groups, len(rows), n_response)."""
        return self.T[:, rows, :]

    def advance(self, k: int, decay: np.ndarray, memory: np.ndarray, source: np.ndarray,
                eta: float) -> None:
        """Write T_{k+1,j} of every source followed at k+1 (the §3.2 recursion), in place.

        decay: (groups, n_response) = 1 - eta (lam + lam_hat_k + Delta q_k); memory:
        (groups, k) = M_R(k, 0..k-1); source: (groups, n_response) = Delta q_k.
        """
        sched = self.schedule
        sources = np.flatnonzero(sched.last_step[:k] >= k + 1)
        coef = (eta * eta * memory).astype(self.T.dtype)
        decay = decay.astype(self.T.dtype)
        offsets = sched.offset[sources]
        exact_lags = self.exact_lags
        if self.backend == "numba":
            work = k - sources if exact_lags < 0 else np.minimum(k - sources, 2 * exact_lags)
            _advance_numba(self.T, k, decay, coef, sources, offsets,
                           _chunk_bounds(work, 4 * numba.get_num_threads()), exact_lags)
        else:
            _advance_numpy(self.T, k, decay, coef, sources, offsets, exact_lags)
        if sched.last_step[k] >= k + 1:
            self.T[:, sched.offset[k], :] = source

    @property
    def exact_lags(self) -> int:
        """Lags of the memory sum summed exactly (-1: all), EXACT_LAGS_PER_WINDOW x window."""
        return -1 if self.window is None else EXACT_LAGS_PER_WINDOW * self.window


def _advance_numpy(T, k, decay, coef, sources, offsets, exact_lags):
    points, weights = np.empty(k + 1, dtype=np.int64), np.empty(k + 1)
    for j, off in zip(sources, offsets):
        new = decay * T[:, off + k - j - 1, :]  # decay x T_{k,j}
        for g in range(T.shape[0]):
            count = _memory_points(coef[g], j, k, exact_lags, points, weights)
            new[g] += weights[:count] @ T[g, off + points[:count] - j - 1, :]
        T[:, off + k - j, :] = new


def _chunk_bounds(work: np.ndarray, chunks: int) -> np.ndarray:
    """Split the sources into at most `chunks` consecutive chunks of about equal work."""
    if len(work) == 0:
        return np.zeros(1, dtype=np.int64)
    total = np.cumsum(work, dtype=float)
    cuts = np.searchsorted(total, total[-1] * np.arange(1, chunks) / chunks)
    return np.unique(np.concatenate([[0], cuts, [len(work)]])).astype(np.int64)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _advance_numba(T, k, decay, coef, sources, offsets, bounds, exact_lags):
    """T_{k+1,j} for the followed sources; a task owns a chunk of sources of one group.

    The memory sum over i is exact for lags k - i <= exact_lags (all lags if exact_lags
    < 0) and a quadrature beyond (`_memory_points`, §5.5)."""
    groups, _, n = T.shape
    chunks = len(bounds) - 1
    for task in numba.prange(groups * chunks):
        g, chunk = task // chunks, task % chunks
        acc = np.empty(n, dtype=np.float64)
        points = np.empty(k + 1, dtype=np.int64)
        weights = np.empty(k + 1, dtype=np.float64)
        for s in range(bounds[chunk], bounds[chunk + 1]):
            j, off = sources[s], offsets[s]
            last = off + k - j - 1  # T_{k,j}
            for p in range(n):
                acc[p] = decay[g, p] * T[g, last, p]
            count = _memory_points(coef[g], j, k, exact_lags, points, weights)
            points[:count] += off - j - 1  # step i -> history row of T_{i,j}
            add_weighted_rows(acc, weights, T[g], points[:count], n)
            for p in range(n):
                T[g, last + 1, p] = acc[p]


@numba.njit(fastmath=True, cache=True)
def _memory_points(coef, j, k, exact_lags, points, weights):
    """Steps i and weights w_i with sum_a w_a T_{i_a,j} ~ sum_{j<i<k} coef_i T_{i,j}.

    Lags k - i <= exact_lags (all, if exact_lags < 0) are summed exactly. Beyond, T_{i,j}
    is interpolated linearly in i between points spaced by about (k - i) / (exact_lags / 2)
    (the first path entry i = j + 1 is a point), so each of the points' weights collects
    coef_i times the interpolation weight (§5.5). Returns the number of points.
    """
    count = 0
    low = j + 1 if exact_lags < 0 else max(j + 1, k - exact_lags)
    for i in range(low, k):
        points[count] = i
        weights[count] = coef[i]
        count += 1
    if low == j + 1:
        return count
    upper = low  # the last point written; interpolate below it
    up_index = 0  # points[0] == low
    while upper > j + 1:
        step = max(1, (2 * (k - upper)) // exact_lags)
        lower = max(j + 1, upper - step)
        points[count] = lower
        weights[count] = coef[lower]
        span = upper - lower
        for i in range(lower + 1, upper):
            weights[up_index] += coef[i] * (i - lower) / span
            weights[count] += coef[i] * (upper - i) / span
        up_index = count
        count += 1
        upper = lower
    return count


class LevelPaths(ResponsePaths):
    """Response paths with momentum and covariance levels (dmft-extensions §3, §4).

    Per level a and source j, with x^p_k = (1 + gamma) x_k - gamma x_{k-1}:

        T_{a;j+1,j} = omega_a Delta q_j,
        T_{a;k+1,j} = (1 + beta) T_{a;k,j} - beta T_{a;k-1,j} - eta (lam + s_a lam_hat_k) T^p_{a;k,j}
                      + eta^2 s_a sum_{j<i<k} M_R(k,i) T^p_{a;i,j}
                      - eta omega_a Delta q_k sum_b omega_b T^p_{b;k,j},
        M_R(k,j)    = alpha Delta E[q_k sum_b omega_b T^p_{b;k,j}].

    The history of a source (same schedule and layout as `ResponsePaths`, with a level axis:
    T[g, a, offset(j) + (k - j - 1), p]) holds T^p; with momentum the last two rows T_{k,j},
    T_{k-1,j} of every source are kept besides (`last`, shape (2, groups, levels, sources,
    n_response)). The recursion is computed as

        T_{a;k+1} = d_a T^p_{a;k} + (beta - gamma)(T_{a;k} - T_{a;k-1}) + sum_i c_{a,i} T^p_{a;i}
                    - eta omega_a Delta q_k sum_{b != a} omega_b T^p_{b;k},
        d_a = 1 - eta (lam + s_a lam_hat_k + omega_a^2 Delta q_k),  c_{a,i} = eta^2 s_a M_R(k,i),

    which for beta = gamma = 0 and one level is `ResponsePaths.advance`, operation for operation.
    """

    def __init__(self, groups: int, n_response: int, n_steps: int, window: int | None,
                 dtype, backend: str, omega: np.ndarray, momentum: bool):
        self.window, self.backend = window, backend
        self.omega, self.momentum = np.asarray(omega, dtype=float), momentum
        self.schedule = SourceSchedule(window, n_steps)
        levels = len(self.omega)
        self.T = np.zeros((groups, levels, self.schedule.size, n_response), dtype=dtype)
        self.last = np.zeros((2, groups, levels, (n_steps + 1) if momentum else 0, n_response),
                             dtype=dtype)

    @staticmethod
    def nbytes(groups: int, n_response: int, n_steps: int, window: int | None, dtype,
               levels: int = 1, momentum: bool = False) -> int:
        rows = SourceSchedule(window, n_steps).size + (2 * (n_steps + 1) if momentum else 0)
        return groups * levels * rows * n_response * np.dtype(dtype).itemsize

    def grow(self, n_steps: int) -> None:
        super().grow(n_steps)
        if self.momentum:
            last = np.zeros(self.last.shape[:3] + (n_steps + 1, self.last.shape[4]),
                            dtype=self.last.dtype)
            last[:, :, :, :self.last.shape[3]] = self.last
            self.last = last

    def _entries(self, rows: np.ndarray) -> np.ndarray:
        """S_{k,j} = sum_b omega_b T^p_{b;k,j} at the given rows (one level: T^p itself)."""
        if len(self.omega) == 1:
            return self.T[:, 0, rows, :]
        return np.einsum("b,gbjp->gjp", self.omega, self.T[:, :, rows, :]).astype(self.T.dtype)

    def advance(self, k: int, decay: np.ndarray, memory: np.ndarray, source: np.ndarray,
                eta: float, *, variances: np.ndarray, cross: np.ndarray, beta: float,
                gamma: float) -> None:
        """Write T^p_{a;k+1,j} of every source followed at k+1, in place.

        decay: (groups, levels, n_response) = d_a; memory: (groups, k) = M_R(k, 0..k-1);
        source: (groups, levels, n_response) = omega_a Delta q_k; cross: (groups, levels,
        n_response) = eta omega_a Delta q_k; variances s_a (levels,).
        """
        sched = self.schedule
        sources = np.flatnonzero(sched.last_step[:k] >= k + 1)
        coef = ((eta * eta * memory)[:, None, :] * variances[None, :, None]).astype(self.T.dtype)
        decay, cross = decay.astype(self.T.dtype), cross.astype(self.T.dtype)
        omega = self.omega.astype(self.T.dtype)
        offsets = sched.offset[sources]
        exact_lags = self.exact_lags
        args = (self.T, self.last, k, decay, coef, cross, omega, beta - gamma, gamma,
                self.momentum, sources, offsets, exact_lags)
        if self.backend == "numba":
            work = k - sources if exact_lags < 0 else np.minimum(k - sources, 2 * exact_lags)
            _advance_levels_numba(*args, _chunk_bounds(work, 4 * numba.get_num_threads()))
        else:
            _advance_levels_numpy(*args)
        if sched.last_step[k] >= k + 1:
            self.T[:, :, sched.offset[k], :] = source if gamma == 0 else (1 + gamma) * source
            if self.momentum:
                self.last[0, :, :, k] = source
                self.last[1, :, :, k] = 0.0


def _advance_levels_numpy(T, last, k, decay, coef, cross, omega, beta_gamma, gamma,
                          momentum, sources, offsets, exact_lags):
    groups, levels = T.shape[:2]
    points, weights = np.empty(k + 1, dtype=np.int64), np.empty(k + 1)
    for j, off in zip(sources, offsets):
        now = T[:, :, off + k - j - 1, :]  # T^p_{a; k, j}
        new = decay * now
        if momentum:
            new += beta_gamma * (last[0, :, :, j] - last[1, :, :, j])
        for g in range(groups):  # the memory sum (quadrature beyond exact_lags, §5.5)
            for a in range(levels):
                count = _memory_points(coef[g, a], j, k, exact_lags, points, weights)
                new[g, a] += weights[:count] @ T[g, a, off + points[:count] - j - 1, :]
        if levels > 1:
            weighted = omega[None, :, None] * now
            new -= cross * (weighted.sum(axis=1, keepdims=True) - weighted)
        if momentum:
            T[:, :, off + k - j, :] = (1 + gamma) * new - gamma * last[0, :, :, j]
            last[1, :, :, j] = last[0, :, :, j]
            last[0, :, :, j] = new
        else:
            T[:, :, off + k - j, :] = new


@numba.njit(parallel=True, fastmath=True, cache=True)
def _advance_levels_numba(T, last, k, decay, coef, cross, omega, beta_gamma, gamma, momentum,
                          sources, offsets, exact_lags, bounds):
    """T^p_{a;k+1,j} for the followed sources; a task owns a chunk of sources of one group.
    The memory sum as in `_advance_numba` (quadrature beyond exact_lags)."""
    groups, levels, _, n = T.shape
    chunks = len(bounds) - 1
    for task in numba.prange(groups * chunks):
        g, chunk = task // chunks, task % chunks
        acc = np.empty((levels, n), dtype=np.float64)
        points = np.empty(k + 1, dtype=np.int64)
        weights = np.empty(k + 1, dtype=np.float64)
        for s in range(bounds[chunk], bounds[chunk + 1]):
            j, off = sources[s], offsets[s]
            now = off + k - j - 1  # T^p_{k,j}
            for a in range(levels):
                for p in range(n):
                    acc[a, p] = decay[g, a, p] * T[g, a, now, p]
                if momentum:
                    for p in range(n):
                        acc[a, p] += beta_gamma * (last[0, g, a, j, p] - last[1, g, a, j, p])
                count = _memory_points(coef[g, a], j, k, exact_lags, points, weights)
                for b in range(count):
                    c = weights[b]
                    row = off + points[b] - j - 1
                    for p in range(n):
                        acc[a, p] += c * T[g, a, row, p]
                if levels > 1:
                    for b in range(levels):
                        if b != a:
                            for p in range(n):
                                acc[a, p] -= cross[g, a, p] * omega[b] * T[g, b, now, p]
            for a in range(levels):
                for p in range(n):
                    if momentum:
                        T[g, a, now + 1, p] = (1 + gamma) * acc[a, p] - gamma * last[0, g, a, j, p]
                        last[1, g, a, j, p] = last[0, g, a, j, p]
                        last[0, g, a, j, p] = acc[a, p]
                    else:
                        T[g, a, now + 1, p] = acc[a, p]
