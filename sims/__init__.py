"""Finite-d simulations of GD, SGD and persistent-SGD on Gaussian-mixture classification.

Public API::

    from sims import Problem, simulate, simulate_batch
    ds = simulate(Problem(model="two_cluster", process="persistent", b=0.3, tau=1/0.6),
                  d=1000, seeds=8)           # xarray.Dataset, dims (seed, time)

The problem definition (`sims.problem`) and the data model (`sims.datamodel`) are shared
with `dmft`.
"""

from .problem import Problem, SelectionChain, bayes_optimal_error, oracle_error, reference_error
from .engine import simulate, simulate_batch

__all__ = ["Problem", "SelectionChain", "simulate", "simulate_batch", "bayes_optimal_error",
           "oracle_error", "reference_error"]
