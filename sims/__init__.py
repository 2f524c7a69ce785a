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

Two-layer networks under online SGD (paper 001): ``simulate(TwoLayerProblem(p=8, k=4),
d=1000, seeds=8)`` (`sims.two_layer`, docs/theory.md §8).

The problem definition (`sims.problem`) and the data model (`sims.datamodel`) are shared
with `dmft`.
"""

from .problem import (Covariance, Problem, SelectionChain, bayes_optimal_error, oracle_error,
                      reference_error)
from .engine import initial_magnetizations, simulate_batch, training_data
from .engine import simulate as _simulate_mixture
from .two_layer import TwoLayerProblem, initial_overlaps
from . import two_layer as _two_layer


def simulate(problem, *args, **options):
    """`sims.engine.simulate` for a `Problem`; `sims.two_layer.simulate` for a
    `TwoLayerProblem` (docs/theory.md §8)."""
    two_layer = isinstance(problem, TwoLayerProblem)
    simulator = _two_layer.simulate if two_layer else _simulate_mixture
    return simulator(problem, *args, **options)


__all__ = ["Covariance", "Problem", "SelectionChain", "simulate", "simulate_batch",
           "training_data", "initial_magnetizations", "bayes_optimal_error", "oracle_error",
           "reference_error", "TwoLayerProblem", "initial_overlaps"]
