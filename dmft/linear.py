"""The linear regime of the escape from the symmetric point (docs/theory.md §6.6).

While m is small the three-cluster dynamics is linear in it: m(t) = G(t) m0 for every
initial m0, so the average over m0 = sqrt(R/d)|x| is G(t) sqrt(R/d) E|x|, E|x| = sqrt(2/pi)
(both rules of the average give it: the Gauss rule integrates |x| exactly, the escape rule
interpolates linearly in x at t = 0 and along exponential growth later, §5.9).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

LINEAR_FRACTION = 0.1  # the linear regime: DMFT magnetization below this part of its maximum


def linear_regime_end(magnetization: xr.DataArray) -> float | None:
    """t_lin: the last time before the magnetization first reaches LINEAR_FRACTION of its
    maximum; None if no time after t = 0 is in the linear regime."""
    grown = np.flatnonzero(~(magnetization < LINEAR_FRACTION * float(magnetization.max())).values)
    k = (grown[0] if grown.size else magnetization.size) - 1
    return float(magnetization.time[k]) if k >= 1 else None


def linear_growth(solution: xr.Dataset, R: float, d: float) -> tuple[float, float]:
    """(t_lin, G(t_lin)) of a three-cluster DMFT solution averaged over the law of m0 at d;
    t_lin is one step when the solution never leaves the linear regime later than t = 0."""
    time = solution.magnetization.time
    t_lin = linear_regime_end(solution.magnetization) or float(time[1])
    m = float(solution.magnetization.sel(time=t_lin))
    return t_lin, m / (math.sqrt(R / d) * math.sqrt(2 / math.pi))
