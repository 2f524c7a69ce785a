"""Finite-d simulation of GD, SGD, persistent-SGD, the flow of SGD's mean drift, SGD with
Gaussian masks and the stochastic modified flow, with momentum (docs/theory.md §1, §7;
shared docs/smf.md §2-3 for the last three).

The update rule, with A = X / sqrt(d) the (n, d) data matrix, s_mu(k) the selection weight
and p_k = (1 + gamma) w_k - gamma w_{k-1} the gradient point (gamma = beta for Nesterov,
0 for heavy ball; w_{-1} = w_0),

    w_{k+1} = w_k + beta (w_k - w_{k-1}) - eta [ lam p_k + A^T (s * Lambda'(y, A p_k)) ],

is applied to several configurations at once: configurations with the same
`Problem.data_key` (model, alpha, delta, covariance) share the data matrix, the gradient
points of P configurations form a (P, d) matrix, and each step is a single pass over the
rows of A (`_forward_backward`): the pre-activation A[mu] . p and the gradient contribution
of that row are computed while the row is in cache, for all P configurations. The data
matrix (n d numbers) is the only O(n d) array; momentum keeps w_{k-1} (one more d-vector per
configuration) and Nesterov the gradient points (one more). The SMF's step (`_smf_updates`)
starts from that pass (weights s = b) and adds `smf_substeps` Heun substeps of its SDE,
each reading the data twice (`_smf_pass`, one configuration at a time, the Brownian
increment folded into the first read).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import xarray as xr

from . import problem as pb
from .datamodel import annotate, dataset_attrs
from .problem import Problem, Selection, gradient_factor

DTYPES = ("float64", "float32")
_DATA_ROWS_PER_CHUNK = 1024
_DIVERGENCE_NORM2 = 1e30  # |w|^2/d beyond this is a diverged run


class _Streams:
    """Independent random streams of one (entropy, d, seed): data, initial weights, masks."""

    def __init__(self, entropy: int, d: int, seed: int):
        self.root = [entropy, d, seed]
        data, init, mask = np.random.SeedSequence(self.root).spawn(3)
        self.data = np.random.default_rng(data)
        self.init = np.random.default_rng(init)
        self.mask = np.random.default_rng(mask)
        self._brownian = {}

    def brownian(self, substeps: int) -> np.random.Generator:
        """The stream of the SMF's Brownian increments for runs with `substeps` substeps:
        one stream per count (child (3, substeps) of the seed's SeedSequence), so a run's
        noise does not depend on the batch and runs with the same count share it."""
        if substeps not in self._brownian:
            self._brownian[substeps] = np.random.default_rng(
                np.random.SeedSequence(self.root, spawn_key=(3, substeps)))
        return self._brownian[substeps]


@dataclass
class _Batch:
    """Per-configuration parameters as (P,) arrays (the selection's as (P, 1), against (P, n)
    masks)."""

    problems: list[Problem]

    def __post_init__(self):
        first = self.problems[0]
        self.model, self.alpha, self.delta = first.model, first.alpha, first.delta
        self.first = first  # its covariance levels are every problem's (same data_key)
        self.eta = np.array([p.eta for p in self.problems])
        self.lam = np.array([p.lam for p in self.problems])
        self.beta = np.array([p.momentum for p in self.problems])
        self.gamma = np.array([p.gamma for p in self.problems])
        self.loss_names = np.array([p.loss for p in self.problems])
        self.loss = pb.loss_code(self.loss_names)
        self.R = np.array([p.R for p in self.problems])
        self.L = (np.array([p.L for p in self.problems]) if self.model == "three_cluster"
                  else None)
        self.n_steps = np.array([p.n_steps for p in self.problems])
        self.selection = Selection(self.problems)
        self.smf = np.array([p.process == "smf" for p in self.problems])
        self.smf_order = np.array([p.smf_order for p in self.problems])
        self.smf_substeps = np.array([p.smf_substeps for p in self.problems])
        self.b = np.array([float(p.b) for p in self.problems])
        self.smf_amplitude = np.array([p.smf_noise_amplitude for p in self.problems])


_ROW_CHUNKS = 16  # fixed, so results do not depend on the number of threads
_ROWS_PER_BLOCK = 8  # rows that share one read of each W[p] and gradient row


@numba.njit(fastmath=True, cache=True, inline="always")
def _rows_times_pair(a0, a1, a2, a3, v, w):
    """Dot products of four rows with two weight vectors, one pass over the rows."""
    h0 = h1 = h2 = h3 = k0 = k1 = k2 = k3 = a0[0] * 0
    for j in range(v.size):
        h0 += a0[j] * v[j]
        h1 += a1[j] * v[j]
        h2 += a2[j] * v[j]
        h3 += a3[j] * v[j]
        k0 += a0[j] * w[j]
        k1 += a1[j] * w[j]
        k2 += a2[j] * w[j]
        k3 += a3[j] * w[j]
    return h0, h1, h2, h3, k0, k1, k2, k3


@numba.njit(fastmath=True, cache=True, inline="always")
def _add_rows_pair(acc_v, acc_w, g, f, a0, a1, a2, a3):
    """acc_v += sum_r g[r] a_r and acc_w += sum_r f[r] a_r, one pass over the rows."""
    for j in range(acc_v.size):
        acc_v[j] += g[0] * a0[j] + g[1] * a1[j] + g[2] * a2[j] + g[3] * a3[j]
        acc_w[j] += f[0] * a0[j] + f[1] * a1[j] + f[2] * a2[j] + f[3] * a3[j]


@numba.njit(fastmath=True, cache=True, inline="always")
def _factors(s, y, h, L, door, kind, i):
    """s_mu Lambda'(y_mu, h_mu) of rows i..i+3 for one configuration (a 4-tuple); rows with
    s_mu = 0 are skipped (and s_mu = 1 multiplies exactly)."""
    zero = h[i] * 0
    return (gradient_factor(y[i], h[i], L, door, kind) * s[i] if s[i] != 0 else zero,
            gradient_factor(y[i + 1], h[i + 1], L, door, kind) * s[i + 1] if s[i + 1] != 0
            else zero,
            gradient_factor(y[i + 2], h[i + 2], L, door, kind) * s[i + 2] if s[i + 2] != 0
            else zero,
            gradient_factor(y[i + 3], h[i + 3], L, door, kind) * s[i + 3] if s[i + 3] != 0
            else zero)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_backward(A, W, y, weights, L, door, loss, H, grad_chunks):
    """One pass over the data matrix for all configurations (theory §1, update rule).

    W holds the gradient points p (the weights w without Nesterov), `loss` the loss code of
    each configuration. For each row x_mu/sqrt(d) = A[mu] and configuration p:
    H[p, mu] = A[mu] . W[p] and,
    while the row is in cache, grad[p] += s_mu Lambda'(y_mu, H[p, mu]) A[mu], with the
    selection weights s = weights[p] (0/1 masks or real weights).
    Configurations go in pairs (W has an even number of rows) and rows in groups of four,
    so each loaded row serves eight dot products; blocks of eight rows share one read of
    each W[p] and gradient row (the data matrix is padded with zero rows to a multiple of
    eight). The blocks are split into a fixed number of chunks whose partial gradients are
    summed afterwards in a fixed order: results depend neither on the number of threads
    nor on the batch (a configuration's arithmetic is the same in every pair slot).
    """
    blocks = A.shape[0] // _ROWS_PER_BLOCK
    for chunk in numba.prange(_ROW_CHUNKS):
        acc = grad_chunks[chunk]
        acc[:] = 0
        for block in range(chunk * blocks // _ROW_CHUNKS, (chunk + 1) * blocks // _ROW_CHUNKS):
            for p in range(0, W.shape[0], 2):
                for i in range(block * _ROWS_PER_BLOCK, (block + 1) * _ROWS_PER_BLOCK, 4):
                    a0, a1, a2, a3 = A[i], A[i + 1], A[i + 2], A[i + 3]
                    (H[p, i], H[p, i + 1], H[p, i + 2], H[p, i + 3], H[p + 1, i],
                     H[p + 1, i + 1], H[p + 1, i + 2], H[p + 1, i + 3]) = _rows_times_pair(
                        a0, a1, a2, a3, W[p], W[p + 1])
                    _add_rows_pair(acc[p], acc[p + 1],
                                   _factors(weights[p], y, H[p], L[p], door, loss[p], i),
                                   _factors(weights[p + 1], y, H[p + 1], L[p + 1], door,
                                            loss[p + 1], i),
                                   a0, a1, a2, a3)


def _check_inputs(problems, d, seeds, record_every, dtype) -> list[int]:
    if not problems:
        raise ValueError("problems is empty: give at least one Problem")
    for p in problems:
        if not isinstance(p, Problem):
            raise TypeError(f"problems must be sims.Problem instances, got {type(p).__name__}")
        if p.data_key != problems[0].data_key:
            raise ValueError("a batch shares one data matrix: every problem needs the same "
                             f"(model, alpha, delta) and covariance (Problem.data_key); got "
                             f"{p.data_key} and {problems[0].data_key}")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d = {d!r} is not allowed: d must be an integer >= 1")
    bounds = problems[0].level_bounds(d)
    if min(np.diff(bounds)) < 1:
        raise ValueError(f"d = {d} is not allowed for covariance {problems[0].covariance}: "
                         f"level sizes {np.diff(bounds).tolist()}; d must give every level "
                         "at least one coordinate")
    n = round(problems[0].alpha * d)
    if n < 1:
        raise ValueError(f"d = {d} gives n = alpha*d = {n} samples: d must give n >= 1")
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds = {seeds} is not allowed: seeds must be >= 1 or a list")
        seeds = list(range(seeds))
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds = {seeds!r} is not allowed: seeds must be distinct "
                         "non-negative integers (or a count >= 1)")
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) \
            or record_every < 1:
        raise ValueError(f"record_every = {record_every!r} is not allowed: an integer >= 1")
    if np.dtype(dtype).name not in DTYPES:
        raise ValueError(f"dtype = {dtype!r} is not allowed: dtype must be one of {DTYPES}")
    return seeds


def recorded_steps(n_steps: int, record_every: int) -> np.ndarray:
    """Steps 0, r, 2r, ... and always the last step."""
    steps = np.arange(0, n_steps + 1, record_every)
    return steps if steps[-1] == n_steps else np.append(steps, n_steps)


def _data_matrix(problem: Problem, d: int, rng: np.random.Generator, out: np.ndarray):
    """Fill out = X / sqrt(d), X_mu = c_mu v*/sqrt(d) + sqrt(Delta) Sigma^1/2 z_mu; return y.

    Sigma is the diagonal covariance of the problem's levels (theory §7; identity by
    default); the same z are drawn whatever Sigma. Drawn in float64 row chunks (so float32
    runs see the same data, rounded) without any second (n, d) array: float64 data are
    drawn and scaled in place in `out` (no temporary arrays, whose fresh pages cost as much
    as the draw), float32 data in one reused float64 chunk.
    """
    n = out.shape[0]
    c = pb.sample_clusters(problem.model, n, rng)
    scale = None
    if problem.covariance is not None:
        bounds = problem.level_bounds(d)
        scale = np.repeat(np.sqrt(problem.level_variances), np.diff(bounds))
    chunk = None if out.dtype == np.float64 else np.empty((_DATA_ROWS_PER_CHUNK, d))
    for start in range(0, n, _DATA_ROWS_PER_CHUNK):
        rows = slice(start, min(start + _DATA_ROWS_PER_CHUNK, n))
        x = out[rows] if chunk is None else chunk[:rows.stop - rows.start]
        rng.standard_normal(out=x)  # z
        if scale is not None:
            x *= scale
        x *= math.sqrt(problem.delta)
        x += c[rows, None] / math.sqrt(d)
        x /= math.sqrt(d)
        if chunk is not None:
            out[rows] = x
    return pb.labels(problem.model, c).astype(out.dtype)


def training_data(problem: Problem, d: int, seed: int, *, dtype="float64", entropy: int = 0):
    """The data and initial weights a run of `problem` at (d, seed, entropy) trains on.

    Returns (A, y, w0): A = X / sqrt(d) of shape (n, d), the labels y (n,) and w_0 (d,),
    exactly as `simulate` draws them (for checks and for users who want the data).
    """
    _check_inputs([problem], d, [seed], 1, dtype)
    streams = _Streams(entropy, d, seed)
    A = np.empty((round(problem.alpha * d), d), dtype=np.dtype(dtype))
    y = _data_matrix(problem, d, streams.data, A)
    return A, y, _initial_weights(np.array([problem.R]), d, streams.init, A.dtype)[0]


def initial_magnetizations(problem: Problem, d: int, seeds, *, entropy: int = 0) -> np.ndarray:
    """m(0) = mean of w_0 of the runs of `problem` at (d, seed, entropy) for each seed, as
    `simulate` draws w_0 (float64; the initial weights only, no data drawn). The DMFT can
    average over these instead of the law of m0 (docs/theory.md §6.6)."""
    seeds = _check_inputs([problem], d, seeds, 1, "float64")
    return np.array([_initial_weights(np.array([problem.R]), d, _Streams(entropy, d, seed).init,
                                      np.float64)[0].mean() for seed in seeds])


class _Memory:
    """The momentum state of a batch (theory §7): w_{k-1}, gradient points, and the
    pre-activations A w_k of Nesterov configurations (whose kernel pass gives A p_k).

    Without momentum it is inert and the update is the plain one, operation for operation.
    """

    def __init__(self, batch: _Batch, W: np.ndarray):
        dtype = W.dtype.type
        self.beta = batch.beta[:, None].astype(dtype)
        self.nesterov = batch.gamma > 0
        self.gamma_rows = batch.gamma[:, None].astype(dtype)
        self.W_prev = W.copy() if (batch.beta > 0).any() else None  # w_{-1} = w_0
        self.H_w = None

    @property
    def gamma(self) -> np.ndarray:
        """gamma of the Nesterov configurations, (number of them, 1)."""
        return self.gamma_rows[self.nesterov]

    def select(self, rows: np.ndarray):
        """Keep the memory of the given rows only (configurations that leave the batch)."""
        self.beta, self.nesterov = self.beta[rows], self.nesterov[rows]
        self.gamma_rows = self.gamma_rows[rows]
        if self.W_prev is not None:
            self.W_prev = self.W_prev[rows] if (self.beta > 0).any() else None
        if self.H_w is not None:
            self.H_w = self.H_w[rows] if self.nesterov.any() else None

    def gradient_points(self, W: np.ndarray) -> np.ndarray:
        """p_k = (1 + gamma) w_k - gamma w_{k-1} (a copy of W where any gamma > 0)."""
        if not self.nesterov.any():
            return W
        G = W.copy()
        G[self.nesterov] = ((1 + self.gamma) * W[self.nesterov]
                            - self.gamma * self.W_prev[self.nesterov])
        return G

    def iterate_preactivations(self, H: np.ndarray) -> np.ndarray:
        """A w_k from H = A p_k: A w_k = (A p_k + gamma A w_{k-1}) / (1 + gamma), exact in
        exact arithmetic (p is linear in w) and stable (rounding errors shrink by
        gamma / (1 + gamma) < 1/2 per step); A w_0 = A p_0. Call it at every step."""
        if not self.nesterov.any():
            return H
        if self.H_w is None:
            self.H_w = H.copy()
        else:
            nesterov = (H[self.nesterov] + self.gamma * self.H_w[self.nesterov]) / (1 + self.gamma)
            self.H_w[:] = H
            self.H_w[self.nesterov] = nesterov
        return self.H_w

    def advance(self, W: np.ndarray, step: np.ndarray) -> np.ndarray:
        """w_{k+1} = w_k + beta (w_k - w_{k-1}) - step; in place (w -= step) without momentum."""
        if self.W_prev is None:
            W -= step
            return W
        new = W + self.beta * (W - self.W_prev) - step
        self.W_prev = W
        return new


def _initial_weights(R: np.ndarray, d: int, rng: np.random.Generator, dtype) -> np.ndarray:
    """w_0 ~ N(0, R I_d) for each configuration's R: (P, d), one draw shared by all."""
    return (np.sqrt(R)[:, None] * rng.standard_normal(d)).astype(dtype)


class _Live:
    """The configurations of a batch that are still training, one state row each.

    `rows` maps state rows to configurations of the batch. The kernel takes configurations
    in pairs, so an odd count repeats its last row (`size` counts the distinct ones). A
    configuration leaves when it reaches its own horizon (n_steps) or diverges: none is
    stepped, checked or paid for past the steps that a run of it alone takes.
    """

    def __init__(self, problems: list[Problem], rows: np.ndarray, size: int, W, s,
                 memory: _Memory, padded_rows: int):
        self.rows, self.size, self.W, self.s, self.memory = rows, size, W, s, memory
        self.batch = _Batch([problems[i] for i in rows])
        dtype = W.dtype.type
        self.eta = self.batch.eta[:, None].astype(dtype)
        self.lam = self.batch.lam[:, None].astype(dtype)
        self.L = (np.zeros(rows.size) if self.batch.L is None else self.batch.L).astype(dtype)
        self.H = np.empty((rows.size, padded_rows), dtype)  # pre-activations (padded rows: 0)
        self.grad_chunks = np.empty((_ROW_CHUNKS, rows.size, W.shape[1]), dtype)

    @classmethod
    def start(cls, problems: list[Problem], W, s, memory: _Memory, padded_rows: int):
        """All configurations of the batch, from their initial state (P rows)."""
        state = _even(np.arange(len(problems)))
        memory.select(state)
        return cls(problems, state, len(problems), W[state], s[state], memory, padded_rows)

    def keep(self, problems: list[Problem], kept: np.ndarray, *arrays):
        """(the batch of the state rows where `kept` holds or None if none, each of `arrays`
        (one row per state row) at the new state rows)."""
        positions = np.flatnonzero(kept[:self.size])
        if positions.size == self.size:
            return (self, *arrays)
        if positions.size == 0:
            return (None, *arrays)
        state = _even(positions)
        self.memory.select(state)
        live = _Live(problems, self.rows[state], positions.size, self.W[state], self.s[state],
                     self.memory, self.H.shape[1])
        return (live, *[values[state] for values in arrays])


def _even(positions: np.ndarray) -> np.ndarray:
    """The positions and, for an odd count, the last one again (the kernel takes pairs)."""
    return positions if positions.size % 2 == 0 else np.append(positions, positions[-1])


def _run_seed(problems: list[Problem], A: np.ndarray, streams: _Streams, record_every: int):
    """Train all configurations on one data set, each to its own horizon; return
    (steps, records (P, ..., steps), step at which each diverged or -1)."""
    first = problems[0]
    n, d = round(first.alpha * A.shape[1]), A.shape[1]
    P = len(problems)
    dtype = A.dtype.type
    y = _data_matrix(first, d, streams.data, A[:n])
    y_padded = np.append(y, np.zeros(A.shape[0] - n, dtype))
    batch = _Batch(problems)
    W = _initial_weights(batch.R, d, streams.init, dtype)  # (P, d)
    s = batch.selection.initial(streams.mask.random(n))  # (P, n) weights s_mu(t)
    live = _Live.start(problems, W, s, _Memory(batch, W), A.shape[0])
    door = first.model == "three_cluster"

    n_steps = batch.n_steps
    steps = np.unique(np.concatenate([recorded_steps(k, record_every) for k in n_steps]))
    levels = len(first.level_fractions)
    records = {name: np.full((P, levels, steps.size) if name in _PER_LEVEL else (P, steps.size),
                             np.nan) for name in _RECORDED}
    diverged_at_step = np.full(P, -1)
    next_record = 0
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected below
        for k in range(int(n_steps.max()) + 1):
            norm2 = np.square(live.W, dtype=float).sum(axis=1) / d
            fine = np.isfinite(norm2) & (norm2 < _DIVERGENCE_NORM2)
            diverged_at_step[live.rows[~fine]] = k
            live, norm2 = live.keep(problems, fine, norm2)
            if live is None:
                break
            G = live.memory.gradient_points(live.W)
            weights = np.zeros((live.rows.size, A.shape[0]), dtype=dtype)
            weights[:, :n] = live.s
            _forward_backward(A, G, y_padded, weights, live.L, door, live.batch.loss, live.H,
                              live.grad_chunks)
            H_w = live.memory.iterate_preactivations(live.H)
            if steps[next_record] == k:
                _record(records, next_record, live, y, H_w[:, :n], norm2)
                next_record += 1
            gradient = live.grad_chunks.sum(axis=0)
            update = live.eta * (live.lam * G + gradient)
            live, update, gradient, H_w = live.keep(problems, n_steps[live.rows] > k, update,
                                                    gradient, H_w)  # horizon
            if live is None:
                break
            if live.batch.smf.any():
                _smf_updates(live, A, y_padded, n, door, update, gradient, H_w[:, :n],
                             streams)
            live.W = live.memory.advance(live.W, update)
            live.s = live.batch.selection.step(live.s, streams.mask.random(n))
    return steps, records, diverged_at_step


@numba.njit(fastmath=True, cache=True)
def _smf_pass(A, w, y, b, xi, L, door, kind, H, drift, noise):
    """One pass over the n data rows for one SMF configuration (theory §9.1, smf.md §3):
    H[mu] = A[mu] . w and, while the row is in cache, drift = b A^T Lambda'(y, H) and (if xi
    has n entries; an empty xi skips it) noise = A^T (xi * Lambda'(y, H)), the Brownian part
    folded into the same pass. Single-threaded like `_transpose_times` (a substep is too
    short for a parallel region to pay, and the numbers are the same in any batch)."""
    with_noise = xi.size > 0
    drift[:] = 0
    if with_noise:
        noise[:] = 0
    for mu in range(y.size):
        a = A[mu]
        h = a[0] * 0
        for j in range(a.size):
            h += a[j] * w[j]
        H[mu] = h
        factor = gradient_factor(y[mu], h, L, door, kind)
        f_drift = b * factor
        if with_noise:
            f_noise = xi[mu] * factor
            for j in range(a.size):
                drift[j] += f_drift * a[j]
                noise[j] += f_noise * a[j]
        else:
            for j in range(a.size):
                drift[j] += f_drift * a[j]


def _gradients(A, W, y, b, L, door, loss, xi=None):
    """(A W, b A^T Lambda'(y, A W), A^T (xi * Lambda'(y, A W)) or None) of the rows of W
    (R, d), one `_smf_pass` per row: the pre-activations (R, n), the data part of grad Phi
    and, with xi (n,), the Brownian sum of the SMF's noise in the same pass."""
    dtype = W.dtype.type
    H = np.empty((W.shape[0], y.size), dtype)
    drift = np.empty_like(W)
    noise = None if xi is None else np.empty_like(W)
    for r in range(W.shape[0]):
        _smf_pass(A, W[r], y, b[r, 0], np.empty(0, dtype) if xi is None else xi, L[r], door,
                  loss[r], H[r], drift[r], drift[r] if xi is None else noise[r])
    return H, drift, noise


@numba.njit(fastmath=True, cache=True)
def _transpose_times(A, v):
    """A^T v for A (n, d) and v (n,), one pass over the rows (single-threaded, so the same
    numbers whatever the batch or the threads)."""
    out = np.zeros(A.shape[1], A.dtype)
    for mu in range(A.shape[0]):
        for j in range(A.shape[1]):
            out[j] += v[mu] * A[mu, j]
    return out


@numba.njit(fastmath=True, cache=True)
def _times(A, v):
    """A v for A (n, d) and v (d,) (single-threaded, like `_transpose_times`)."""
    out = np.zeros(A.shape[0], A.dtype)
    for mu in range(A.shape[0]):
        total = A[0, 0] * 0
        for j in range(A.shape[1]):
            total += A[mu, j] * v[j]
        out[mu] = total
    return out


@dataclass
class _SMFRows:
    """The SMF configurations of a live batch that share a substep count, and their
    parameters as (R, 1) columns (smf.md §2(b), §3)."""

    rows: np.ndarray
    substeps: int
    live: _Live
    y: np.ndarray

    def __post_init__(self):
        batch, dtype, index = self.live.batch, self.live.W.dtype.type, self.rows
        self.eta, self.lam = self.live.eta[self.rows], self.live.lam[self.rows]
        self.dt = self.eta / self.substeps
        self.b = batch.b[index, None].astype(dtype)
        self.amplitude = batch.smf_amplitude[index, None].astype(dtype)
        self.second_order = batch.smf_order[index] == 2
        self.L = self.live.L[self.rows]
        self.loss, self.loss_names = batch.loss[index], batch.loss_names[index, None]
        self.L_column = None if batch.L is None else batch.L[index, None]

    def drift(self, W, H, data_gradient, A, n):
        """F(W) = grad Phi + (eta/2) Hess Phi grad Phi for order-2 rows (smf.md §2(c)), with
        grad Phi = lam W + b A^T Lambda' and Hess Phi v = lam v + b A^T (Lambda'' * A v)."""
        gradient = self.lam * W + data_gradient
        if not self.second_order.any():
            return gradient
        model = self.live.batch.model
        curvature = pb.sample_loss_second(model, self.y, H, self.L_column, self.loss_names)
        for r in np.flatnonzero(self.second_order):
            v = gradient[r]
            hessian_v = (self.lam[r] * v
                         + self.b[r] * _transpose_times(A[:n], curvature[r] * _times(A[:n], v)))
            gradient[r] = v + self.eta[r] / 2 * hessian_v
        return gradient

    def noise(self, brownian_sum):
        """Delta N = a sqrt(dt) sum_mu xi_mu G_mu = a sqrt(dt) A^T (Lambda' * xi), a = sqrt(eta
        b (1 - b)), from the Brownian sum A^T (Lambda' * xi) at the substep start (Ito)."""
        return (self.amplitude * np.sqrt(self.dt)) * brownian_sum

    def brownian_sum(self, H, xi, A, n):
        """A^T (Lambda'(y, H) * xi) from given pre-activations (one product per row)."""
        factors = pb.sample_loss_prime(self.live.batch.model, self.y, H, self.L_column,
                                       self.loss_names) * xi
        return np.stack([_transpose_times(A[:n], f) for f in factors])


def _smf_updates(live: _Live, A, y_padded, n, door, update, gradient, H, streams: _Streams):
    """Replace, in place, the update of the SMF rows by w_k - w_{k+1} of their SDE over one
    eta (theory §9.1, smf.md §2(b), §3): `smf_substeps` Heun substeps dt = eta / substeps,
        W* = W - dt F(W) + Delta N,   W <- W - dt/2 (F(W) + F(W*)) + Delta N,
    with one Brownian increment per sample and substep (`_Streams.brownian`). `gradient`
    and H hold b A^T Lambda' and A W at w_k from the step's kernel pass (s = b for SMF rows);
    later substeps get F(W) and the Brownian sum of Delta N from one pass (`_smf_pass`), so
    each substep reads the data twice."""
    smf, y = live.batch.smf, y_padded[:n]
    for substeps in np.unique(live.batch.smf_substeps[smf]):
        rows = np.flatnonzero(smf & (live.batch.smf_substeps == substeps))
        group = _SMFRows(rows, int(substeps), live, y)
        increments = streams.brownian(int(substeps)).standard_normal((int(substeps), n))
        W = live.W[rows]
        H_now, data_gradient = H[rows], gradient[rows]
        for xi in increments.astype(W.dtype):
            if H_now is None:
                H_now, data_gradient, brownian = _gradients(A, W, y, group.b, group.L, door,
                                                            group.loss, xi)
            else:  # first substep: A W and the drift come from the step's kernel pass
                brownian = group.brownian_sum(H_now, xi, A, n)
            F = group.drift(W, H_now, data_gradient, A, n)
            noise = group.noise(brownian)
            W_star = W - group.dt * F + noise
            H_star, gradient_star, _ = _gradients(A, W_star, y, group.b, group.L, door,
                                                  group.loss)
            W = W - group.dt / 2 * (F + group.drift(W_star, H_star, gradient_star, A, n)) + noise
            H_now = None
        update[rows] = live.W[rows] - W


_PER_LEVEL = ("magnetization_level", "norm2_level")
_RECORDED = ("train_loss", "train_acc", "norm2", "magnetization", "active_fraction",
             "norm2_sigma", *_PER_LEVEL)


def _record(records, i, live: _Live, y, H, norm2):
    """Observables of the iterates w_k of the live configurations at one recorded step
    (docs/theory.md §1, §7).

    H holds the pre-activations A w_k. Per level a (coordinates lo:hi): m_a = mean of w over
    the level, C_a = |w_a|^2 / (hi - lo); C_Sigma = w^T Sigma w / d = sum_a s_a |w_a|^2 / d
    (= norm2 for the identity).
    """
    batch, rows, W = live.batch, live.rows, live.W
    L = None if batch.L is None else batch.L[:, None]
    loss = batch.loss_names[:, None]
    records["train_loss"][rows, i] = pb.sample_loss(batch.model, y, H, L, loss).mean(axis=1)
    records["train_acc"][rows, i] = pb.correct(batch.model, y, H, L).mean(axis=1)
    records["norm2"][rows, i] = norm2
    records["magnetization"][rows, i] = W.sum(axis=1, dtype=float) / W.shape[1]
    records["active_fraction"][rows, i] = live.s.mean(axis=1)
    if batch.first.covariance is None:
        records["magnetization_level"][rows, 0, i] = records["magnetization"][rows, i]
        records["norm2_level"][rows, 0, i] = norm2
        records["norm2_sigma"][rows, i] = norm2
        return
    bounds = batch.first.level_bounds(W.shape[1])
    squares = np.stack([np.square(W[:, lo:hi], dtype=float).sum(axis=1)
                        for lo, hi in zip(bounds[:-1], bounds[1:])], axis=1)  # (rows, levels)
    sizes = np.diff(bounds)
    records["magnetization_level"][rows, :, i] = np.stack(
        [W[:, lo:hi].sum(axis=1, dtype=float) for lo, hi in zip(bounds[:-1], bounds[1:])],
        axis=1) / sizes
    records["norm2_level"][rows, :, i] = squares / sizes
    records["norm2_sigma"][rows, i] = ((squares * batch.first.level_variances).sum(axis=1)
                                       / W.shape[1])


def simulate_batch(problems: Sequence[Problem], d: int, seeds, *, record_every: int = 1,
                   dtype="float64", entropy: int = 0) -> list[xr.Dataset]:
    """Simulate several configurations that share (model, alpha, delta) on the same data.

    Every seed draws its own data set, initial weights and masks from
    SeedSequence([entropy, d, seed]); every configuration at that seed sees them
    (common random numbers). The result for one (problem, d, seed, entropy) is
    bit-identical whether it runs alone or in a batch.

    Returns one dataset per problem, as `simulate`.
    """
    problems = list(problems)
    seeds = _check_inputs(problems, d, seeds, record_every, dtype)
    n = round(problems[0].alpha * d)
    rows = -(-n // _ROWS_PER_BLOCK) * _ROWS_PER_BLOCK
    A = np.zeros((rows, d), dtype=np.dtype(dtype))  # padded with zero rows
    per_seed = [_run_seed(problems, A, _Streams(entropy, d, seed), record_every)
                for seed in seeds]
    steps = per_seed[0][0]
    return [_dataset(p, i, d, seeds, steps, per_seed, record_every, np.dtype(dtype).name,
                     entropy)
            for i, p in enumerate(problems)]


def _dataset(problem: Problem, i: int, d, seeds, steps, per_seed, record_every, dtype,
             entropy) -> xr.Dataset:
    """The dataset of configuration i: dims (seed, time), its own steps only."""
    my_steps = recorded_steps(problem.n_steps, record_every)
    index = np.searchsorted(steps, my_steps)
    records = {name: np.stack([r[name][i][..., index] for _, r, _ in per_seed])
               for name in per_seed[0][1]}
    diverged_step = np.array([div[i] for _, _, div in per_seed])
    diverged_at = np.where(diverged_step >= 0, diverged_step * problem.eta, np.nan)
    _warn_divergence(problem, d, seeds, diverged_at)
    gen_error = pb.generalization_error(problem.model, records["magnetization"],
                                        records["norm2_sigma"], problem.delta, problem.L)
    ds = xr.Dataset(
        {"gen_error": (("seed", "time"), gen_error),
         **{name: (("seed", "level", "time") if name in _PER_LEVEL else ("seed", "time"), values)
            for name, values in records.items()},
         "diverged_at": (("seed",), diverged_at, {
             "long_name": "time at which the run diverged (NaN: it did not)",
             "units": "eta * steps"})},
        coords={"seed": np.array(seeds), "time": my_steps * problem.eta,
                "step": ("time", my_steps), "level": np.arange(len(problem.level_fractions))},
        attrs=dataset_attrs(problem, d=d, n=round(problem.alpha * d),
                            record_every=record_every, dtype=dtype, entropy=entropy,
                            diverged_runs=int(np.isfinite(diverged_at).sum())),
    )
    return annotate(ds)


def _warn_divergence(problem: Problem, d, seeds, diverged_at):
    bad = np.flatnonzero(np.isfinite(diverged_at))
    if bad.size:
        warnings.warn(
            f"{bad.size} of {len(seeds)} runs diverged (|w|^2/d not finite or > "
            f"{_DIVERGENCE_NORM2:g}) for {problem} at d={d}: seeds "
            f"{[seeds[j] for j in bad]} at times {diverged_at[bad].tolist()}; their curves "
            "are NaN from that time on (variable diverged_at). Lower eta.",
            RuntimeWarning, stacklevel=3)


def simulate(problem: Problem, d: int, seeds, *, record_every: int = 1, dtype="float64",
             entropy: int = 0) -> xr.Dataset:
    """Simulate one training problem at dimension d for several seeds.

    Args:
        problem: the `Problem` (model, data, loss, process, t_max).
        d: input dimension; n = round(alpha d) samples.
        seeds: number of seeds (0..seeds-1) or a list of distinct non-negative integers.
        record_every: record the observables every k-th step (and at the last step).
        dtype: "float64" (default) or "float32" for the data and the weights.
        entropy: extra entropy of the random streams, SeedSequence([entropy, d, seed]).

    Returns:
        xarray.Dataset, dims (seed, time), time = step * eta: gen_error (from m and
        norm2_sigma), train_loss, train_acc, norm2 (|w|^2/d), magnetization (w.v*/d),
        active_fraction (the mean selection weight: b for flow and smf), norm2_sigma
        (w^T Sigma w/d); per covariance level, dims
        (seed, level, time): magnetization_level, norm2_level (one level for the identity);
        and diverged_at (seed,), NaN for runs that did not diverge (README, "Data model").
        Observables are those of the iterates w_k (not of Nesterov's look-ahead points).
    """
    return simulate_batch([problem], d, seeds, record_every=record_every, dtype=dtype,
                          entropy=entropy)[0]
