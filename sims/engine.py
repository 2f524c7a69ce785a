"""Finite-d simulation of GD, SGD and persistent-SGD (docs/theory.md §1).

The update rule, with A = X / sqrt(d) the (n, d) data matrix and s_mu(t) the selection mask,

    w(t + eta) = w(t) - eta [ lam w(t) + A^T (s * Lambda'(y, A w(t))) ],

is applied to several configurations at once: configurations that share (model, alpha,
delta) share the data matrix, the weights of P configurations form a (P, d) matrix, and
each step is a single pass over the rows of A (`_forward_backward`): the pre-activation
A[mu] . w and the gradient contribution of that row are computed while the row is in
cache, for all P configurations. The data matrix (n d numbers) is the only O(n d) array.
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
from .problem import Problem, SelectionChain, gradient_factor

DTYPES = ("float64", "float32")
_DATA_ROWS_PER_CHUNK = 1024
_DIVERGENCE_NORM2 = 1e30  # |w|^2/d beyond this is a diverged run


class _Streams:
    """Independent random streams of one (entropy, d, seed): data, initial weights, masks."""

    def __init__(self, entropy: int, d: int, seed: int):
        data, init, mask = np.random.SeedSequence([entropy, d, seed]).spawn(3)
        self.data = np.random.default_rng(data)
        self.init = np.random.default_rng(init)
        self.mask = np.random.default_rng(mask)


@dataclass
class _Batch:
    """Per-configuration parameters as (P,) arrays (the chain's as (P, 1), against (P, n) masks)."""

    problems: list[Problem]

    def __post_init__(self):
        first = self.problems[0]
        self.model, self.alpha, self.delta = first.model, first.alpha, first.delta
        self.eta = np.array([p.eta for p in self.problems])
        self.lam = np.array([p.lam for p in self.problems])
        self.R = np.array([p.R for p in self.problems])
        self.L = (np.array([p.L for p in self.problems]) if self.model == "three_cluster"
                  else None)
        self.n_steps = np.array([p.n_steps for p in self.problems])
        self.chain = SelectionChain(
            np.array([p.activation_probability for p in self.problems])[:, None],
            np.array([p.deactivation_probability for p in self.problems])[:, None])


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
def _factors(active, y, h, L, door, i):
    """s_mu Lambda'(y_mu, h_mu) of rows i..i+3 for one configuration (a 4-tuple)."""
    zero = h[i] * 0
    return (gradient_factor(y[i], h[i], L, door) if active[i] else zero,
            gradient_factor(y[i + 1], h[i + 1], L, door) if active[i + 1] else zero,
            gradient_factor(y[i + 2], h[i + 2], L, door) if active[i + 2] else zero,
            gradient_factor(y[i + 3], h[i + 3], L, door) if active[i + 3] else zero)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_backward(A, W, y, active, L, door, H, grad_chunks):
    """One pass over the data matrix for all configurations (theory §1, update rule).

    For each row x_mu/sqrt(d) = A[mu] and configuration p: H[p, mu] = A[mu] . W[p] and,
    while the row is in cache, grad[p] += s_mu Lambda'(y_mu, H[p, mu]) A[mu].
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
                                   _factors(active[p], y, H[p], L[p], door, i),
                                   _factors(active[p + 1], y, H[p + 1], L[p + 1], door, i),
                                   a0, a1, a2, a3)


def _check_inputs(problems, d, seeds, record_every, dtype) -> list[int]:
    if not problems:
        raise ValueError("problems is empty: give at least one Problem")
    for p in problems:
        if not isinstance(p, Problem):
            raise TypeError(f"problems must be sims.Problem instances, got {type(p).__name__}")
        shared = (p.model, p.alpha, p.delta)
        if shared != (problems[0].model, problems[0].alpha, problems[0].delta):
            raise ValueError("a batch shares one data matrix: every problem needs the same "
                             f"(model, alpha, delta); got {shared} and "
                             f"{(problems[0].model, problems[0].alpha, problems[0].delta)}")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d = {d!r} is not allowed: d must be an integer >= 1")
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


def _data_matrix(batch: _Batch, d: int, rng: np.random.Generator, out: np.ndarray):
    """Fill out = X / sqrt(d), X_mu = c_mu v*/sqrt(d) + sqrt(Delta) z_mu; return labels y.

    Drawn in float64 row chunks (so float32 runs see the same data, rounded) without any
    second (n, d) array.
    """
    n = out.shape[0]
    c = pb.sample_clusters(batch.model, n, rng)
    for start in range(0, n, _DATA_ROWS_PER_CHUNK):
        rows = slice(start, min(start + _DATA_ROWS_PER_CHUNK, n))
        z = rng.standard_normal((rows.stop - rows.start, d))
        out[rows] = (c[rows, None] / math.sqrt(d) + math.sqrt(batch.delta) * z) / math.sqrt(d)
    return pb.labels(batch.model, c).astype(out.dtype)


def _run_seed(batch: _Batch, A: np.ndarray, streams: _Streams, record_every: int):
    """Train all configurations of the batch on one data set; return records (P, steps)."""
    n, d = round(batch.alpha * A.shape[1]), A.shape[1]
    P = len(batch.problems)
    dtype = A.dtype.type
    y = _data_matrix(batch, d, streams.data, A[:n])
    y_padded = np.append(y, np.zeros(A.shape[0] - n, dtype))
    W = np.sqrt(batch.R)[:, None] * streams.init.standard_normal(d)  # (P, d), float64
    W = W.astype(dtype)
    eta, lam = batch.eta[:, None].astype(dtype), batch.lam[:, None].astype(dtype)
    L = (np.zeros(P) if batch.L is None else batch.L).astype(dtype)
    door = batch.model == "three_cluster"
    s = batch.chain.initial(streams.mask.random(n))  # (P, n) masks s_mu(t)
    H = np.empty((P, A.shape[0]), dtype)  # pre-activations h_mu (padded rows: 0)
    grad_chunks = np.empty((_ROW_CHUNKS, P, d), dtype)

    k_max = int(batch.n_steps.max())
    steps = np.unique(np.concatenate([recorded_steps(k, record_every) for k in batch.n_steps]))
    records = {name: np.full((P, steps.size), np.nan) for name in _RECORDED}
    diverged_at_step = np.full(P, -1)
    running = np.ones(P, dtype=bool)
    next_record = 0
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected below
        for k in range(k_max + 1):
            norm2 = np.square(W, dtype=float).sum(axis=1) / d
            running &= np.isfinite(norm2) & (norm2 < _DIVERGENCE_NORM2)
            diverged_at_step[~running & (diverged_at_step < 0)] = k
            W[~running] = 0
            active = np.zeros((P, A.shape[0]), dtype=bool)
            active[:, :n] = s & running[:, None]
            _forward_backward(A, W, y_padded, active, L, door, H, grad_chunks)
            if steps[next_record] == k:
                _record(records, next_record, batch, y, H[:, :n], W, norm2, s)
                for values in records.values():
                    values[~running, next_record] = np.nan
                next_record += 1
            if k == k_max:
                break
            W -= eta * (lam * W + grad_chunks.sum(axis=0))
            s = batch.chain.step(s, streams.mask.random(n))
    return steps, records, diverged_at_step


_RECORDED = ("train_loss", "train_acc", "norm2", "magnetization", "active_fraction")


def _record(records, i, batch: _Batch, y, H, W, norm2, s):
    """Observables at one recorded step (docs/theory.md §1, finite-d observables)."""
    L = None if batch.L is None else batch.L[:, None]
    records["train_loss"][:, i] = pb.sample_loss(batch.model, y, H, L).mean(axis=1)
    records["train_acc"][:, i] = pb.correct(batch.model, y, H, L).mean(axis=1)
    records["norm2"][:, i] = norm2
    records["magnetization"][:, i] = W.sum(axis=1, dtype=float) / W.shape[1]
    records["active_fraction"][:, i] = s.mean(axis=1)


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
    # the kernel takes configurations in pairs: an odd batch runs its last one twice
    batch = _Batch(problems + problems[-1:] * (len(problems) % 2))
    n = round(batch.alpha * d)
    rows = -(-n // _ROWS_PER_BLOCK) * _ROWS_PER_BLOCK
    A = np.zeros((rows, d), dtype=np.dtype(dtype))  # padded with zero rows
    per_seed = [_run_seed(batch, A, _Streams(entropy, d, seed), record_every)
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
    records = {name: np.stack([r[name][i, index] for _, r, _ in per_seed])
               for name in per_seed[0][1]}
    diverged_step = np.array([div[i] for _, _, div in per_seed])
    diverged_at = np.where(diverged_step >= 0, diverged_step * problem.eta, np.nan)
    _warn_divergence(problem, d, seeds, diverged_at)
    gen_error = pb.generalization_error(problem.model, records["magnetization"],
                                        records["norm2"], problem.delta, problem.L)
    ds = xr.Dataset(
        {"gen_error": (("seed", "time"), gen_error),
         **{name: (("seed", "time"), values) for name, values in records.items()},
         "diverged_at": (("seed",), diverged_at, {
             "long_name": "time at which the run diverged (NaN: it did not)",
             "units": "eta * steps"})},
        coords={"seed": np.array(seeds), "time": my_steps * problem.eta,
                "step": ("time", my_steps)},
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
        xarray.Dataset, dims (seed, time), time = step * eta: gen_error, train_loss,
        train_acc, norm2 (|w|^2/d), magnetization (w.v*/d), active_fraction, and
        diverged_at (seed,), NaN for runs that did not diverge (README, "Data model").
    """
    return simulate_batch([problem], d, seeds, record_every=record_every, dtype=dtype,
                          entropy=entropy)[0]
