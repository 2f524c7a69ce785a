"""Early stopping: where along the training time the generalization error is smallest, and
whether the curve's own error resolves it.

A curve eps(t) with standard errors s(t) (the DMFT's `<var>_mc_error`, or the standard error
of the seed mean of simulations) has its minimum eps_min at t_min. The times compatible with
being the minimum are those with eps(t) - eps_min <= z * sqrt(s(t)^2 + s(t_min)^2); they span
[argmin_time_low, argmin_time_high]. The gain of early stopping, g = eps(t_max) - eps_min, has
the error s_g = sqrt(s(t_max)^2 + s(t_min)^2) (errors at different t taken as independent,
which overstates s_g for the positively correlated errors along one curve: conservative).
Gains below `gain_tolerance` are not worth stopping for. Each curve is then one of
    no learning        the first time is compatible with the minimum: the error never falls
                       below its initial value by more than the error;
    no early stopping  g + z s_g <= gain_tolerance (the gain is surely negligible), or the
                       minimum is located at the end: no time before
                       t_max - late_window * (t_max - t_0) is compatible with it;
    early stopping     g - z s_g > gain_tolerance: stopping at t_min surely gains;
    unresolved         otherwise: whether early stopping gains more than the tolerance is
                       decided by the curve's error (e.g. a late minimum on a tail that is
                       flat within the error).
With no errors (s = 0) and no tolerance this is the plain argmin: no early stopping where the
minimum sits at t_max (ties within rtol included), never unresolved.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .data import mean_and_sem

Z_EARLY_STOPPING = 2.0  # a gain counts when it exceeds this many of its standard errors
LATE_WINDOW = 0.1  # a minimum this fraction of the training time before t_max is "at t_max"
GAIN_TOLERANCE = 1e-3  # a gain of early stopping below this is negligible


def curve_and_error(ds: xr.Dataset | xr.DataArray, var: str, seed_dim: str = "seed"
                    ) -> tuple[xr.DataArray, xr.DataArray]:
    """The curve of `var` and its standard error: the seed mean and its s.e. if the data
    have `seed_dim` (NaN runs, e.g. diverged, drop out; one seed: error 0), else the values
    and `<var>_mc_error` (0 where the dataset has none)."""
    da = ds if isinstance(ds, xr.DataArray) else ds[var]
    if seed_dim in da.dims:
        mean, sem = mean_and_sem(da, seed_dim)
        return mean, sem.fillna(0.0)
    name = f"{var}_mc_error"
    if isinstance(ds, xr.Dataset) and name in ds:
        return da, ds[name].fillna(0.0)
    return da, xr.zeros_like(da)


def _at(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(values, index[..., None], -1)[..., 0]


def early_stopping(ds: xr.Dataset | xr.DataArray, var: str = "gen_error", *, dim: str = "time",
                   seed_dim: str = "seed", rtol: float = 1e-9, z: float = Z_EARLY_STOPPING,
                   late_window: float = LATE_WINDOW, gain_tolerance: float = GAIN_TOLERANCE
                   ) -> xr.Dataset:
    """Reduce a learning curve to its early-stopping summary (module docstring).

    ds: dataset holding `var` with a `dim` ("time") dimension (or a DataArray); with a
        `seed_dim` the seed-averaged curve is reduced, its error the standard error of the
        mean; without, the error is `<var>_mc_error` if the dataset has it, else 0.
    Returns a Dataset over the remaining dims with
        min_error, argmin_time   minimum over time of the curve and its (first) time,
        argmin_time_low, argmin_time_high   the times compatible with the minimum,
        final_error        the value at the last finite time (t_max),
        gain, gain_error   final_error - min_error (>= 0) and its standard error,
        no_learning        the first time is compatible with the minimum (e.g. a three-cluster
                           run held at the symmetric point, eps = 1/2, until t_max),
        no_early_stopping  the minimum is at t_max (to within late_window and the error),
                           or the gain is below gain_tolerance (to within the error),
        unresolved         whether the gain exceeds gain_tolerance is within the error,
    NaN (False for the flags) where the curve has no finite value.
    """
    curve, error = curve_and_error(ds, var, seed_dim)
    curve, error = curve.transpose(..., dim), error.transpose(..., dim)
    time = curve[dim].values.astype(float)
    values = np.asarray(curve.values, dtype=float)
    sigma = np.asarray(error.values, dtype=float)
    finite = np.isfinite(values)
    has = finite.any(axis=-1)
    filled = np.where(finite, values, np.inf)
    imin = np.argmin(filled, axis=-1)
    ifirst = np.argmax(finite, axis=-1)
    ilast = values.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    min_error = np.where(has, _at(filled, imin), np.nan)
    final = np.where(has, _at(values, ilast), np.nan)
    sigma_min = _at(sigma, imin)
    margin = (z * np.sqrt(sigma ** 2 + sigma_min[..., None] ** 2)
              + rtol * np.abs(min_error)[..., None])
    compatible = finite & (filled - min_error[..., None] <= margin)
    t_low = np.where(has, time[np.argmax(compatible, axis=-1)], np.nan)
    t_high = np.where(has, time[values.shape[-1] - 1 - np.argmax(compatible[..., ::-1], -1)],
                      np.nan)
    t_end, t_start = time[ilast], time[ifirst]
    gain = final - min_error
    gain_error = np.sqrt(_at(sigma, ilast) ** 2 + sigma_min ** 2)
    no_learning = has & _at(compatible, ifirst)
    late = t_end - late_window * (t_end - t_start)
    located_at_end = _at(compatible, ilast) & (t_low >= late)
    negligible = gain + z * gain_error <= gain_tolerance + rtol * np.abs(min_error)
    no_es = has & ~no_learning & (negligible | located_at_end)
    unresolved = has & ~no_learning & ~no_es & (gain - z * gain_error <= gain_tolerance)
    dims = curve.dims[:-1]
    coords = {k: v for k, v in curve.coords.items() if dim not in v.dims}
    long = curve.attrs.get("long_name", var)
    out = xr.Dataset(
        {
            "min_error": (dims, min_error, dict(long_name=f"minimum over time of the {long}")),
            "argmin_time": (dims, np.where(has, time[imin], np.nan),
                            dict(long_name="time of the minimum", units="eta * steps")),
            "argmin_time_low": (dims, t_low, dict(
                long_name="earliest time compatible with the minimum", units="eta * steps")),
            "argmin_time_high": (dims, t_high, dict(
                long_name="latest time compatible with the minimum", units="eta * steps")),
            "final_error": (dims, final, dict(long_name=f"{long} at t_max")),
            "gain": (dims, gain, dict(long_name="gain of early stopping",
                                      description="error at t_max minus the minimum")),
            "gain_error": (dims, np.where(has, gain_error, np.nan), dict(
                long_name="standard error of the gain of early stopping")),
            "no_learning": (dims, no_learning, dict(
                long_name="minimum at the first time",
                description="True: the error never falls below its initial value by more "
                            "than its error")),
            "no_early_stopping": (dims, no_es, dict(
                long_name="no early stopping",
                description="True: the minimum is at t_max or the gain is negligible")),
            "unresolved": (dims, unresolved, dict(
                long_name="early stopping unresolved",
                description="True: whether early stopping gains more than the tolerance "
                            "is within the curve's error")),
        },
        coords=coords,
    )
    out.attrs.update({k: v for k, v in getattr(ds, "attrs", {}).items()})
    out.attrs.update(var=var, z=z, late_window=late_window, gain_tolerance=gain_tolerance)
    return out
