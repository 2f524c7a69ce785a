"""Cost of a DMFT solve before running it: seconds on 2 cores and peak bytes (theory §5.5).

    dmft.estimate_cost(problem, d=1000, n_samples=16000)  # {"seconds": ..., "bytes": ...}

Time model, per solve of K steps with G groups of n samples (n_R of them with response
paths):

    seconds = S_HISTORY  * G n K^2 / 2           (the O(N K) sums per step, sample histories)
            + S_RESPONSE * G n_R W(K)            (response paths; W(K) = their total length)
            + S_SQUARE   * G K^3                 (Cholesky rows, weight side)

with W(K) = sum over steps k and followed sources j of (k - j), from the multiresolution
schedule. The constants are calibrated by `benchmarks/bench_dmft.py` on an idle 2-core
machine; memory is the solver's own estimate (`Solver.memory_estimate`) plus the Python
process.
"""

from __future__ import annotations

import numpy as np

from sims.problem import Problem
from .response import SourceSchedule
from .solver import Solver

S_HISTORY = 2.5e-10   # s per sample-history entry read per step (3 arrays, float32)
S_RESPONSE = 2.0e-10  # s per response-path entry read per step (float32)
S_SQUARE = 3.0e-10    # s per G K^3
PROCESS_BYTES = 400e6  # a Python process with numpy, numba and xarray loaded


def response_work(window, n_steps: int) -> float:
    """W(K) = sum_k sum_{followed j < k} (k - j): path entries read over a whole solve."""
    schedule = SourceSchedule(window, n_steps)
    length = schedule.last_step - np.arange(n_steps + 1)  # entries of each source's path
    return float((length * (length + 1) / 2).sum())


def estimate_cost(problem: Problem, **settings) -> dict:
    """{"seconds", "bytes"} of `dmft.solve(problem, **settings)` (same settings)."""
    solver = Solver(problem.replace(t_max=problem.eta), **settings)
    K = int(round(problem.t_max / solver.grid.eta))
    G, n, n_R = solver.groups, solver.n, solver.n_response
    seconds = (S_HISTORY * G * n * K ** 2 / 2
               + S_RESPONSE * G * n_R * response_work(solver.settings["response_window"], K)
               + S_SQUARE * G * K ** 3)
    return dict(seconds=seconds, bytes=solver.memory_estimate(K) + PROCESS_BYTES)
