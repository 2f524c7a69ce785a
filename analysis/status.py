"""Failed points and clipped persistent chains, as the stores record them.

Stores of the pipeline carry (issue 10), over every dim but time:
* `status` (int8): 0 ok, 1 diverged, 2 error, -1 not computed;
* `failure_time`: the time a failed run stopped (NaN if it did not fail);
and, per grid point, `effective_active_fraction`: the stationary active fraction of the
persistent chain, which differs from the nominal b where the chain is clipped
(sims.problem.Problem.active_fraction). Older stores lack them: the status is then derived
from `diverged_at` (simulations) and `done`, and the effective fraction from the Problem.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr

from sims.problem import Problem

from .data import problem_at, select

OK, DIVERGED, ERROR, NOT_COMPUTED = 0, 1, 2, -1
STATUS_NAMES = {OK: "ok", DIVERGED: "diverged", ERROR: "error", NOT_COMPUTED: "not computed"}


def status(ds: xr.Dataset) -> xr.DataArray:
    """Status per run (dims of the store but time): the stored `status`, or derived."""
    if "status" in ds:
        return ds["status"]
    dims = [d for d in ds.dims if d not in ("time", "time_prime")]
    out = _zeros(ds, dims)
    if "diverged_at" in ds:
        out = out.where(~np.isfinite(ds["diverged_at"]), DIVERGED)
    if "done" in ds:
        out = out.where(ds["done"].astype(bool), NOT_COMPUTED)
    return out.astype(np.int8)


def _zeros(ds: xr.Dataset, dims: list[str]) -> xr.DataArray:
    shape = [ds.sizes[d] for d in dims]
    coords = {d: ds[d] for d in dims if d in ds.coords}
    return xr.DataArray(np.zeros(shape, dtype=np.int8), dims=dims, coords=coords)


def failure_time(ds: xr.Dataset) -> xr.DataArray | None:
    """Time each failed run stopped: `failure_time`, else `diverged_at`, else None."""
    for name in ("failure_time", "diverged_at"):
        if name in ds:
            return ds[name]
    return None


def failures(ds: xr.Dataset | None, point: dict, d=None) -> list[tuple[int, float]]:
    """[(status, failure time)] of the failed runs (diverged or error) at a grid point
    (and d); a simulation point has one entry per failed seed."""
    if ds is None:
        return []
    where = dict(point, **({"d": d} if d is not None else {}))
    st = np.atleast_1d(np.asarray(select(status(ds), where).values)).ravel()
    ft = failure_time(ds)
    times = (np.atleast_1d(np.asarray(select(ft, where).values, dtype=float)).ravel()
             if ft is not None else np.full(st.shape, np.nan))
    if times.size != st.size:  # failure_time without the seed dim: one per point
        times = np.resize(times, st.shape)
    return [(int(s), float(t)) for s, t in zip(st, times) if s in (DIVERGED, ERROR)]


def effective_fraction(ds: xr.Dataset, point: dict) -> float:
    """The stationary active fraction at a grid point (NaN where no valid Problem)."""
    if "effective_active_fraction" in ds:
        value = select(ds["effective_active_fraction"], point)
        return float(np.asarray(value.values, dtype=float).ravel()[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fraction = Problem(**problem_at(ds, point)).active_fraction
        except (TypeError, ValueError):  # a padded grid point (e.g. gd with b < 1)
            fraction = math.nan
    for w in caught:  # the clipping warning is what the figures show; others surface
        if "clipped" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fraction


def clipped(ds: xr.Dataset, point: dict, rtol: float = 1e-6) -> float | None:
    """The effective active fraction if the persistent chain is clipped there (it differs
    from the nominal b), else None."""
    fields = problem_at(ds, point)
    if fields.get("process") != "persistent":
        return None
    eff = effective_fraction(ds, point)
    b = fields.get("b")
    if b is None or not math.isfinite(eff) or math.isclose(eff, b, rel_tol=rtol):
        return None
    return eff
