"""Cost of a DMFT solve before running it: CPU seconds and peak bytes (docs/theory.md §5.5).

    dmft.estimate_cost(problem, d=1000, n_samples=16000)  # {"seconds": ..., "bytes": ...}

CPU-time model, per solve of K steps with G groups of n samples (n_R of them carrying
response paths), its initial-magnetization nodes in B batches (§5.7):

    seconds = S_SAMPLE_STEP * G n K              (fields, losses, chain: per sample and step)
            + S_HISTORY * G n K^2 / 2            (history sums: M_C row, noise, recall)
            + S_RESPONSE * G n_R W(K)            (response paths)
            + S_SQUARE * G K^3                   (Cholesky rows, weight side)
            + S_BATCH_STEP * K B                 (the Python of a step, once per batch)

with W(K) = sum over steps k and followed sources j of the points read to advance T_{.,j}
(the multiresolution schedule and the memory quadrature, §5.5). S_HISTORY and S_SQUARE
are the per-entry times of the profiled kernels; the other three are fitted to the CPU of
six solves on one thread of the idle 2-core development machine (the setting of a
pipeline worker), defaults unless given:

    case                                               CPU s   model s
    two-cluster GD, K = 500                              9.7       9.8
    two-cluster p-SGD b = 0.3, K = 500                   9.6       9.8
    three-cluster GD (Fig. 2 right, d = 1000), K = 500  19.0      17.6
    three-cluster GD, d = 5000, K = 1000                58.5      64.8
    three-cluster p-SGD b = 0.3, d = 5000, K = 1000     65.4      64.8
    three-cluster SGD b = 0.3, n_samples 2048, K = 1000 46.6      42.5

(the previous constants, fitted before §5.5's quadrature, §5.10 and the node batches,
gave 9.7, 9.7, 16.1, 44.6, 44.6 and 29.9: three-cluster solves up to 1.6 times too cheap).
Memory is the solver's own estimate (`Solver.memory_estimate`) for the initial-magnetization
nodes solved at once (as many as `NODE_BATCH_BYTES` and `memory_limit` allow, §5.7) plus the
Python process (measured peak RSS 0.52 GB and 4.2 GB for these two with all nodes at once,
estimated 0.69 GB and 4.7 GB; in batches of one node, the second 0.90 GB, estimated 0.94 GB).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from sims.problem import Problem
from .response import EXACT_LAGS_PER_WINDOW, SourceSchedule, _memory_points
from .solver import Solver

S_SAMPLE_STEP = 1.9e-7  # s per sample and step
S_HISTORY = 1.9e-9      # s per history entry (profiled: 1.6-2.0e-9 in the six cases)
S_RESPONSE = 4.5e-10    # s per response-path point read
S_SQUARE = 4.0e-10      # s per G K^3 (profiled: 3.7-4.3e-10)
S_BATCH_STEP = 3.6e-3   # s per step and node batch
PROCESS_BYTES = 400e6  # a Python process with numpy, numba and xarray loaded
# Spread over groups of gen_error(t = 100) with the randomized quasi-Monte Carlo samples
# (§5.10), groups of 4096 samples with 1024 of them carrying response paths: two-cluster
# GD (alpha = 2, Delta = 0.5, lam = 0, eta = 0.2) 0.00054, persistent-SGD (b = 0.3,
# 1/tau = 0.6) 0.00053, 24 groups each; with 256 response samples p-SGD's is 0.0014, so
# the variance grows at least as 1 / (response samples) below 1024.
GROUP_SPREAD = 0.00055
RESPONSE_REFERENCE = 1024
# Three-cluster node averages of a process with random selection (sgd, persistent,
# gauss_sgd): in the escape window a group's escape time jitters, and the largest spread
# over t of one group per node, sqrt(groups per node / sum_i w_i^2) x error, is far larger:
# 0.019-0.020 for persistent-SGD b = 0.3 (Fig. 3 left, d = 1000, 2 and 12 groups per
# node) and 0.058 for b = 0.2 (Fig. 2 left). Its geometric mean: a factor 3 either way
# in the estimated groups. (GD's, 0.0011 with 256 response samples, is GROUP_SPREAD's.)
ESCAPE_GROUP_SPREAD = 0.033
RANDOM_SELECTION = ("sgd", "persistent", "gauss_sgd")


def response_work(window, n_steps: int) -> float:
    """W(K) = sum_k sum_{followed j < k} (points of the memory sum of T_{.,j} at step k):
    path entries read over a whole solve (§5.5; lag k - j + 1 without the quadrature)."""
    schedule = SourceSchedule(window, n_steps)
    length = schedule.last_step - np.arange(n_steps + 1)  # entries of each source's path
    exact_lags = -1 if window is None else EXACT_LAGS_PER_WINDOW * window
    read = np.concatenate([[0], np.cumsum(_entries_read(exact_lags, n_steps))])
    return float(read[length].sum())


def _entries_read(exact_lags: int, n_steps: int) -> np.ndarray:
    """Entries read to advance a path at lag 1..n_steps: the T_{k,j} it decays, and the
    points of its memory sum."""
    coef = np.zeros(n_steps + 1)
    points, weights = np.empty(n_steps + 1, dtype=np.int64), np.empty(n_steps + 1)
    return np.array([1 + _memory_points(coef, 0, lag + 1, exact_lags, points, weights)
                     for lag in range(1, n_steps + 1)])


def estimate_cost(problem: Problem, *, target_error=None, cost_limit=None, **settings) -> dict:
    """{"seconds": CPU seconds, "bytes": peak} of `dmft.solve(problem, **settings)`.

    With target_error (§5.8), the solve grown to it: `groups_for_target` groups per node
    (at least the settings' own), at most what cost_limit allows; "groups" says how many.
    """
    with warnings.catch_warnings():  # the problem warned of its clipped chain when built
        warnings.filterwarnings("ignore", "persistent-SGD deactivation probability")
        solver = Solver(problem.replace(t_max=problem.eta), **settings)
    K = int(round(problem.t_max / solver.grid.eta))
    G, n, n_R = solver.groups, solver.n, solver.n_response
    work = response_work(solver.settings["response_window"], K)
    per_batch = solver.nodes_per_batch(K)
    batches = math.ceil(len(solver.m0) / per_batch)
    seconds = (S_SAMPLE_STEP * G * n * K + S_HISTORY * G * n * K ** 2 / 2
               + S_RESPONSE * G * n_R * work + S_SQUARE * G * K ** 3
               + S_BATCH_STEP * K * batches)
    held = solver.memory_estimate(K) * per_batch / len(solver.m0)
    if target_error is None:
        return dict(seconds=seconds, bytes=held + PROCESS_BYTES, groups=G)
    replicas = solver.settings["n_replicas"]
    grown = max(replicas, groups_for_target(solver, target_error, problem.process))
    if cost_limit is not None:
        grown = max(replicas, min(grown, int(cost_limit / (seconds / replicas))))
    return dict(seconds=seconds * grown / replicas, bytes=held + PROCESS_BYTES,
                groups=G * grown // replicas)


def groups_for_target(solver: Solver, target_error: float, process: str) -> int:
    """Groups per node for a gen_error error of target_error, if the spread of one group
    is GROUP_SPREAD with RESPONSE_REFERENCE response samples or more, and its variance
    grows as 1 / (response samples) below (the M_R noise, §5.8); node average: error^2 =
    sum_i w_i^2 spread^2 / groups, with ESCAPE_GROUP_SPREAD for an average over several
    initial magnetizations of a process with random selection (its escape window)."""
    if len(solver.m0) > 1 and process in RANDOM_SELECTION:
        variance = ESCAPE_GROUP_SPREAD ** 2
    else:
        variance = GROUP_SPREAD ** 2 * max(1.0, RESPONSE_REFERENCE / solver.n_response)
    return math.ceil(variance * float((solver.node_weights ** 2).sum()) / target_error ** 2)
