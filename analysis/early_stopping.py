"""Early stopping: where along the training time the generalization error is smallest."""

from __future__ import annotations

import numpy as np
import xarray as xr


def early_stopping(ds: xr.Dataset | xr.DataArray, var: str = "gen_error", *, dim: str = "time",
                   seed_dim: str = "seed", rtol: float = 1e-9) -> xr.Dataset:
    """Reduce a learning curve to its early-stopping summary.

    ds: dataset holding `var` with a `dim` ("time") dimension (or a DataArray); if it has a
        `seed_dim`, the seed-averaged curve is reduced (NaN runs, e.g. diverged, drop out).
    Returns a Dataset over the remaining dims with
        min_error          minimum over time of the curve,
        argmin_time        the time at which it is reached (first occurrence),
        final_error        the value at the last finite time (t_max),
        gain               final_error - min_error (>= 0), what early stopping saves,
        no_learning        True where the curve never falls below its first value (the
                           minimum is the initial error: e.g. a three-cluster run that
                           stays at the symmetric point, eps = 1/2, until t_max),
        no_early_stopping  True where the minimum sits at t_max (gain <= rtol * |min|) and
                           training lowered the error (not no_learning),
    NaN (False for the flags) where the curve has no finite value.
    """
    da = ds if isinstance(ds, xr.DataArray) else ds[var]
    if seed_dim in da.dims:
        da = da.mean(seed_dim, skipna=True)
    da = da.transpose(..., dim)
    time = da[dim].values
    values = np.asarray(da.values, dtype=float)
    finite = np.isfinite(values)
    has = finite.any(axis=-1)
    filled = np.where(finite, values, np.inf)
    imin = np.argmin(filled, axis=-1)
    min_error = np.where(has, np.take_along_axis(filled, imin[..., None], -1)[..., 0], np.nan)
    argmin_time = np.where(has, time[imin], np.nan)
    # last finite index along time
    ilast = values.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    final = np.where(has, np.take_along_axis(values, ilast[..., None], -1)[..., 0], np.nan)
    gain = final - min_error
    ifirst = np.argmax(finite, axis=-1)
    initial = np.where(has, np.take_along_axis(values, ifirst[..., None], -1)[..., 0], np.nan)
    no_learning = has & (min_error >= initial - rtol * np.abs(initial))
    no_es = has & ~no_learning & (gain <= rtol * np.abs(min_error))
    dims = da.dims[:-1]
    coords = {k: v for k, v in da.coords.items() if dim not in v.dims}
    long = da.attrs.get("long_name", var)
    out = xr.Dataset(
        {
            "min_error": (dims, min_error, dict(long_name=f"minimum over time of the {long}")),
            "argmin_time": (dims, argmin_time, dict(long_name="time of the minimum",
                                                    units="eta * steps")),
            "final_error": (dims, final, dict(long_name=f"{long} at t_max")),
            "gain": (dims, gain, dict(long_name="gain of early stopping",
                                      description="error at t_max minus the minimum")),
            "no_learning": (dims, no_learning, dict(
                long_name="minimum at the first time",
                description="True: the error never falls below its initial value")),
            "no_early_stopping": (dims, no_es, dict(
                long_name="minimum at t_max", description="True: no early stopping")),
        },
        coords=coords,
    )
    out.attrs.update({k: v for k, v in getattr(ds, "attrs", {}).items()})
    out.attrs["var"] = var
    return out
