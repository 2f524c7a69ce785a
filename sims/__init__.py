"""Finite-d simulations of GD, SGD and persistent-SGD (with heavy-ball or Nesterov momentum,
an optional diagonal input covariance, logistic or square loss) on Gaussian-mixture
classification.

Public API::

    from sims import Problem, simulate, simulate_batch
    ds = simulate(Problem(model="two_cluster", process="persistent", b=0.3, tau=1/0.6),
                  d=1000, seeds=8)           # xarray.Dataset, dims (seed, time)
    ds = simulate(Problem(momentum=0.9, nesterov=True,
                          covariance={"fractions": [0.2, 0.8], "variances": [3, 0.5]}),
                  d=1000, seeds=8)           # + per-level observables, dims (seed, level, time)

The problem definition (`sims.problem`) and the data model (`sims.datamodel`) are shared
with `dmft`.
"""

from .problem import (Covariance, Problem, SelectionChain, bayes_optimal_error, oracle_error,
                      reference_error)
from .engine import initial_magnetizations, simulate, simulate_batch, training_data

__all__ = ["Covariance", "Problem", "SelectionChain", "simulate", "simulate_batch",
           "training_data", "initial_magnetizations", "bayes_optimal_error", "oracle_error",
           "reference_error"]
