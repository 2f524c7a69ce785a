"""Dynamical mean-field theory of GD, SGD and persistent-SGD on Gaussian-mixture classification.

Public API::

    import dmft
    from sims import Problem
    ds = dmft.solve(Problem(process="persistent", b=0.3, tau=1 / 0.6))   # xarray.Dataset

`dmft.solve` runs the single causal pass of docs/theory.md §5.3 (or the fixed-point
iteration of §5.2); `dmft.Solver` / `dmft.solve_state` give a resumable state. Problems
with momentum (heavy ball, Nesterov) or covariance levels run the extended pass of
dmft-extensions §3-§4 (`dmft.extended.ExtendedSolver`, picked by `dmft.Solver`).
`dmft.estimate_cost(problem, **settings)` gives the seconds and bytes of a solve first.
"""

from sims.two_layer import TwoLayerProblem as _TwoLayerProblem

from . import two_layer
from .api import solve as _solve_mixture
from .api import solve_state
from .cost import estimate_cost
from .linear import linear_growth, linear_regime_end
from .magnetization import escape_time_cdf, escape_time_quantile_errors, escape_time_quantiles
from .solver import MemoryLimitError, Solver


def solve(problem, *args, **settings):
    """`dmft.api.solve` for a `Problem`; for a `sims.TwoLayerProblem`, the Saad-Solla ODEs
    `dmft.two_layer.solve(problem, d=None, initial=None, limit=False)` (docs/theory.md §8)."""
    solver = two_layer.solve if isinstance(problem, _TwoLayerProblem) else _solve_mixture
    return solver(problem, *args, **settings)


__all__ = ["two_layer", "solve", "solve_state", "estimate_cost", "Solver", "MemoryLimitError",
           "linear_growth", "linear_regime_end", "escape_time_cdf", "escape_time_quantiles",
           "escape_time_quantile_errors"]
