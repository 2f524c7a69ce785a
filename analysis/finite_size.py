"""Finite-size scaling: simulations at several d against the d -> infinity theory.

Two-cluster: at fixed times, each observable's seed mean is fitted as a + c/d by weighted
least squares (weights 1/s.e.^2), a being the d -> infinity extrapolation, compared with the
DMFT value. Three-cluster: the escape time from the symmetric point (first time the
generalization error drops below a threshold), per seed, against DMFT solved with the
d-dependent initial magnetization.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from sims.datamodel import OBSERVABLES

from .data import curve_dims, iter_points, mean_and_sem, select


def fit_inverse_d(d, y, sigma=None) -> dict:
    """Weighted least-squares fit y = a + c / d.

    d, y: values at several d; sigma: standard errors of y (None or non-positive entries:
    unweighted). Errors come from the covariance (X^T W X)^-1, multiplied by the reduced
    chi^2 when that exceeds 1 (scatter larger than the error bars) or when no sigma is given.
    Returns dict(a, a_err, c, c_err, chi2, ndof, n).
    """
    d = np.asarray(d, dtype=float)
    y = np.asarray(y, dtype=float)
    given = sigma is not None
    sigma = np.ones_like(y) if sigma is None else np.asarray(sigma, dtype=float)
    weighted = given and bool(np.all(np.isfinite(sigma) & (sigma > 0)))
    ok = np.isfinite(d) & np.isfinite(y) & (d > 0)
    if weighted:
        ok &= np.isfinite(sigma) & (sigma > 0)
    d, y = d[ok], y[ok]
    s = sigma[ok] if weighted else np.ones_like(y)
    n = int(y.size)
    nan = dict(a=math.nan, a_err=math.nan, c=math.nan, c_err=math.nan, chi2=math.nan,
               ndof=max(n - 2, 0), n=n)
    if n < 2 or np.unique(d).size < 2:
        return nan
    X = np.stack([np.ones_like(d), 1 / d], axis=1)
    Xw, yw = X / s[:, None], y / s
    cov = np.linalg.inv(Xw.T @ Xw)
    a, c = cov @ (Xw.T @ yw)
    chi2 = float(np.sum((yw - Xw @ np.array([a, c])) ** 2))
    ndof = n - 2
    scale = 1.0
    if ndof > 0 and (not weighted or chi2 / ndof > 1):
        scale = chi2 / ndof
    elif not weighted:
        scale = math.nan
    return dict(a=float(a), a_err=float(math.sqrt(cov[0, 0] * scale)), c=float(c),
                c_err=float(math.sqrt(cov[1, 1] * scale)), chi2=chi2, ndof=ndof, n=n)


def default_times(time, n: int = 4) -> np.ndarray:
    """n times spread evenly in log t over the positive part of a time axis (grid points)."""
    t = np.asarray(time, dtype=float)
    t = t[np.isfinite(t) & (t > 0)]
    if t.size == 0:
        return t
    targets = np.geomspace(max(t[0], t[-1] / 100), t[-1], n)
    return np.unique(t[np.abs(t[None, :] - targets[:, None]).argmin(axis=1)])


def _dmft_at(dmft: xr.Dataset | None, var: str, point: dict, t: float) -> tuple[float, float]:
    if dmft is None or var not in dmft:
        return math.nan, math.nan
    sub = select(dmft, point)
    value = float(sub[var].interp(time=t).values)
    err_name = f"{var}_mc_error"
    err = float(sub[err_name].interp(time=t).values) if err_name in sub else math.nan
    return value, err


def finite_size_table(sims: xr.Dataset, dmft: xr.Dataset | None = None, times=None,
                      observables=None) -> pd.DataFrame:
    """Extrapolate each observable to d -> infinity at fixed times; compare with DMFT.

    sims: store with a `d` dim (and seed, time; possibly case/grid dims); dmft: store
    without `d` (two-cluster) or with it (then the largest d is used as the reference).
    Columns: the grid coordinates, observable, time, n_d, a, a_err (extrapolated value),
    c, c_err (slope in 1/d), chi2, ndof, dmft, dmft_mc_error, difference (a - dmft),
    z (difference over the combined error).
    """
    observables = [v for v in (observables or OBSERVABLES) if v in sims]
    times = default_times(sims.time.values) if times is None else np.asarray(times, float)
    dims = [d for d in curve_dims(sims, observables[0]) if d != "d"]
    rows = []
    for point in iter_points(sims, dims):
        sub = select(sims, point)
        ref = None
        if dmft is not None:
            ref = select(dmft, point)
            if "d" in ref.dims:
                ref = ref.sel(d=ref.d.max())
        for var in observables:
            mean, sem = mean_and_sem(sub[var])
            for t in times:
                m_t = mean.sel(time=t, method="nearest")
                s_t = sem.sel(time=t, method="nearest")
                fit = fit_inverse_d(m_t.d.values, m_t.values, s_t.values)
                value, err = _dmft_at(ref, var, {}, float(t))
                diff = fit["a"] - value
                comb = math.sqrt(fit["a_err"] ** 2 + (err if math.isfinite(err) else 0) ** 2)
                rows.append({**point, "observable": var, "time": float(t), "n_d": fit["n"],
                             **{k: fit[k] for k in ("a", "a_err", "c", "c_err", "chi2",
                                                    "ndof")},
                             "dmft": value, "dmft_mc_error": err, "difference": diff,
                             "z": diff / comb if comb > 0 else math.nan})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- escape time
def escape_time(da: xr.DataArray, threshold: float = 0.4, dim: str = "time") -> xr.DataArray:
    """First time `da` drops below `threshold`, linearly interpolated between grid points.

    NaN where it never does (within the recorded time); the first time if it starts below.
    """
    da = da.transpose(..., dim)
    t = da[dim].values.astype(float)
    v = np.asarray(da.values, dtype=float)
    below = v < threshold
    has = below.any(axis=-1)
    k = np.argmax(below, axis=-1)
    km = (k - 1).clip(0)
    v1 = np.take_along_axis(v, k[..., None], -1)[..., 0]
    v0 = np.take_along_axis(v, km[..., None], -1)[..., 0]
    t1, t0 = t[k], t[km]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((k > 0) & (v0 != v1), (v0 - threshold) / (v0 - v1), 1.0)
    out = np.where(has, t0 + frac * (t1 - t0), np.nan)
    coords = {c: val for c, val in da.coords.items() if dim not in val.dims}
    return xr.DataArray(out, dims=da.dims[:-1], coords=coords, name="escape_time",
                        attrs=dict(long_name=f"first time below {threshold}",
                                   units="eta * steps", threshold=threshold))


def escape_table(sims: xr.Dataset | None, dmft: xr.Dataset | None, threshold: float = 0.4,
                 var: str = "gen_error", z_max: float = 3.0) -> pd.DataFrame:
    """Escape time against d: simulations (per seed, then mean +- s.e.) and DMFT.

    Columns: grid coordinates, d, sims_mean, sims_sem, n_seeds, n_escaped, dmft,
    difference (sims - dmft), z (difference / s.e.), agree (|z| <= z_max).
    """
    base = sims if sims is not None else dmft
    dims = [d for d in curve_dims(base, var) if d != "d"]
    rows = []
    for point in iter_points(base, dims):
        s = select(sims, point) if sims is not None else None
        m = select(dmft, point) if dmft is not None else None
        ds_values = sorted(set((s.d.values.tolist() if s is not None and "d" in s.dims else [])
                               + (m.d.values.tolist() if m is not None and "d" in m.dims
                                  else [])))
        for d in ds_values:
            row = {**point, "d": d, "sims_mean": math.nan, "sims_sem": math.nan,
                   "n_seeds": 0, "n_escaped": 0, "dmft": math.nan, "dmft_solved": False}
            if s is not None and d in s.d.values:
                per_seed = escape_time(s[var].sel(d=d), threshold)
                n_esc = int(np.isfinite(per_seed.values).sum())
                row.update(n_seeds=int(per_seed.size), n_escaped=n_esc,
                           sims_mean=float(np.nanmean(per_seed.values)) if n_esc else math.nan,
                           sims_sem=float(np.nanstd(per_seed.values, ddof=1) / math.sqrt(n_esc))
                           if n_esc > 1 else math.nan)
            if m is not None and "d" in m.dims and d in m.d.values:
                row["dmft"] = float(escape_time(m[var].sel(d=d), threshold).values)
                row["dmft_solved"] = bool(np.isfinite(m[var].sel(d=d).values).any())
            rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df["difference"] = df.sims_mean - df.dmft
        df["z"] = df.difference / df.sims_sem
        df["agree"] = df.z.abs() <= z_max  # False where either side did not escape
    return df


def fit_log_d(d, t, sigma=None) -> dict:
    """Weighted least squares t = A + B ln d (the escape time of exponential growth from
    m(0) ~ 1/sqrt(d)). Returns dict(A, A_err, B, B_err) (NaN with fewer than two d)."""
    d = np.asarray(d, float)
    t = np.asarray(t, float)
    s = np.ones_like(t) if sigma is None else np.asarray(sigma, float)
    ok = np.isfinite(d) & np.isfinite(t) & np.isfinite(s) & (s > 0) & (d > 0)
    if ok.sum() < 2 or np.unique(d[ok]).size < 2:
        return dict(A=math.nan, A_err=math.nan, B=math.nan, B_err=math.nan)
    # ln d = 1/x with x = 1/ln d reuses the same linear least squares
    fit = fit_inverse_d(1 / np.log(d[ok]), t[ok], s[ok] if sigma is not None else None)
    return dict(A=fit["a"], A_err=fit["a_err"], B=fit["c"], B_err=fit["c_err"])


def agreement_statement(df: pd.DataFrame, z_max: float = 3.0) -> str:
    """One plain sentence: where the simulated escape time and DMFT agree or disagree."""
    if not len(df):
        return "No data: no comparison possible."
    both = df.dropna(subset=["sims_mean", "dmft"])
    dmft_stuck = df[df.dmft_solved & df.dmft.isna() & df.sims_mean.notna()]
    if not len(both) and not len(dmft_stuck):
        return "No d has both simulations and DMFT: no comparison possible."
    bad = both[~both.agree]
    never = df[(df.n_seeds > 0) & (df.n_escaped < df.n_seeds)] if "n_seeds" in df else df[:0]
    parts = []
    if len(bad):
        items = ", ".join(f"d = {int(r.d)} ({r.difference:+.3g}, {r.z:+.1f} s.e.)"
                          for r in bad.itertuples())
        parts.append(f"Simulations and DMFT DISAGREE (by more than {z_max:g} s.e.) at {items}.")
    if len(dmft_stuck):
        parts.append("DMFT does not escape within t_max at d = "
                     + ", ".join(str(int(v)) for v in dmft_stuck.d)
                     + " while the simulations do: they DISAGREE there.")
    good = both[both.agree]
    if len(good):
        parts.append("They agree within " f"{z_max:g} s.e. at d = "
                     + ", ".join(str(int(v)) for v in good.d) + ".")
    if len(never):
        parts.append("Some seeds never escape within t_max at d = "
                     + ", ".join(f"{int(r.d)} ({r.n_seeds - r.n_escaped}/{r.n_seeds})"
                                 for r in never.itertuples()) + ": their mean is biased low.")
    return " ".join(parts)
