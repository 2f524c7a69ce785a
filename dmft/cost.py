"""Cost of a DMFT solve before running it: CPU seconds and peak bytes (docs/theory.md §5.5).

    dmft.estimate_cost(problem, d=1000, n_samples=16000)  # {"seconds": ..., "bytes": ...}

CPU-time model, per solve of K steps with G groups of n samples (n_R of them carrying
response paths):

    seconds = S_SAMPLE_STEP * G n K                       (fields, losses, chain: per sample and step)
            + S_ENTRY * (G n K^2 / 2 + G n_R W(K))         (history sums, response paths)
            + S_SQUARE * G K^3                             (Cholesky rows, weight side)

with W(K) = sum over steps k and followed sources j of (k - j), from the multiresolution
schedule. Calibrated with the defaults on one thread of the idle 2-core development
machine (the setting of a pipeline worker): two-cluster GD at K = 500 took 8.1 s CPU,
three-cluster SGD (b = 0.3) at K = 1000 took 157 s; the model gives 8.4 s and 154 s.
Memory is the solver's own estimate (`Solver.memory_estimate`) for the initial-magnetization
nodes solved at once (all, or as many as `memory_limit` allows, §5.7) plus the Python
process (measured peak RSS 0.52 GB and 4.2 GB for these two, estimated 0.69 GB and 4.7 GB).
"""

from __future__ import annotations

import warnings

import numpy as np

from sims.problem import Problem
from .response import SourceSchedule
from .solver import Solver

S_SAMPLE_STEP = 5.5e-7  # s per sample and step
S_ENTRY = 7.0e-10       # s per history or response-path entry read
S_SQUARE = 3.0e-10      # s per G K^3
PROCESS_BYTES = 400e6  # a Python process with numpy, numba and xarray loaded


def response_work(window, n_steps: int) -> float:
    """W(K) = sum_k sum_{followed j < k} (k - j): path entries read over a whole solve."""
    schedule = SourceSchedule(window, n_steps)
    length = schedule.last_step - np.arange(n_steps + 1)  # entries of each source's path
    return float((length * (length + 1) / 2).sum())


def estimate_cost(problem: Problem, **settings) -> dict:
    """{"seconds": CPU seconds, "bytes": peak} of `dmft.solve(problem, **settings)`."""
    with warnings.catch_warnings():  # the problem warned of its clipped chain when built
        warnings.filterwarnings("ignore", "persistent-SGD deactivation probability")
        solver = Solver(problem.replace(t_max=problem.eta), **settings)
    K = int(round(problem.t_max / solver.grid.eta))
    G, n, n_R = solver.groups, solver.n, solver.n_response
    work = response_work(solver.settings["response_window"], K)
    seconds = (S_SAMPLE_STEP * G * n * K + S_ENTRY * (G * n * K ** 2 / 2 + G * n_R * work)
               + S_SQUARE * G * K ** 3)
    held = solver.memory_estimate(K) * solver.nodes_per_batch(K) / len(solver.m0)
    return dict(seconds=seconds, bytes=held + PROCESS_BYTES)
