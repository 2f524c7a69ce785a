"""Finite-size scaling: simulations at several d against the d -> infinity theory.

Two-cluster: at fixed times, each observable's seed mean is fitted as a + c/d by weighted
least squares (weights 1/s.e.^2), a being the d -> infinity extrapolation, compared with the
DMFT value. Three-cluster: the escape from the symmetric point. The verdict compares, at
each d, the distribution of the seeds' escape times (first time |m| reaches the DMFT's
escape level) with the one the DMFT predicts over the law of m(0) (docs/theory.md §5.9,
§6.6): quantiles with bootstrap errors and a one-sample Kolmogorov-Smirnov test. The
escape time of the seed-mean curve (first time the generalization error drops below a
threshold) against the DMFT curve's is kept as a secondary summary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from dmft.linear import linear_regime_end
from dmft.magnetization import escape_times_within_errors, first_crossing
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


def extrapolation_statement(table: pd.DataFrame, z_max: float = 3.0) -> str:
    """Plain words: how many d -> infinity extrapolations agree with DMFT within z_max s.e.,
    and which do not."""
    rated = table.dropna(subset=["z"])
    if not len(rated):
        return "No extrapolation could be compared with DMFT (too few d, or no DMFT)."
    bad = rated[rated.z.abs() > z_max]
    text = (f"The d → ∞ extrapolations (a + c/d) agree with DMFT within {z_max:g} s.e. for "
            f"{len(rated) - len(bad)} of {len(rated)} (observable, time) pairs.")
    if len(bad):
        text += " They differ for " + ", ".join(
            f"{r.observable} at t = {r.time:.3g} (z = {r.z:+.1f})" for r in bad.itertuples()) + "."
    return text


# --------------------------------------------------------------------------- escape time
def escape_time(da: xr.DataArray, threshold: float = 0.4, dim: str = "time") -> xr.DataArray:
    """First time `da` drops to `threshold`, linearly interpolated between grid points
    (`dmft.magnetization.first_crossing` of -da).

    NaN where it never does (within the recorded time); the first time if it starts below.
    """
    da = da.transpose(..., dim)
    out = first_crossing(da[dim].values, -np.asarray(da.values, dtype=float), -threshold)
    coords = {c: val for c, val in da.coords.items() if dim not in val.dims}
    return xr.DataArray(out, dims=da.dims[:-1], coords=coords, name="escape_time",
                        attrs=dict(long_name=f"first time below {threshold}",
                                   units="eta * steps", threshold=threshold))


def auto_threshold(sims: xr.Dataset | None, dmft: xr.Dataset | None,
                   var: str = "gen_error") -> float:
    """Halfway between 1/2 (the error at the symmetric point) and the plateau, the minimum
    over time of the mean curve at the largest d (simulations, else DMFT), over all points."""
    ds = sims if sims is not None and var in sims else dmft
    curve = ds[var]
    if "d" in curve.dims:
        curve = curve.sel(d=curve.d.max())
    if "seed" in curve.dims:
        curve = curve.mean("seed", skipna=True)
    plateau = float(curve.min(skipna=True))
    return 0.5 * (0.5 + plateau)


def escape_per_seed(sims: xr.Dataset, point: dict, d, threshold: float,
                    var: str = "gen_error") -> np.ndarray:
    """Escape time of every seed at a grid point and d; +inf for a seed that does not escape
    within t_max (a failed run, analysis.status, that stops before escaping: NaN)."""
    curves = select(sims, point)[var].sel(d=d)
    t = escape_time(curves, threshold).values.astype(float)
    ran_to_end = np.isfinite(curves.isel(time=-1).values)
    return np.where(np.isnan(t) & ran_to_end, np.inf, t)


def _seed_summary(t: np.ndarray) -> dict:
    """Median and quartiles over seeds (never-escaped seeds count as +inf, so the median
    stays right while fewer than half of them never escape); mean and s.e. of the escaped."""
    t = t[~np.isnan(t)]
    esc = t[np.isfinite(t)]
    q = np.full(3, np.nan)
    if t.size:  # never escaped: beyond every escaped seed; a quantile among them is NaN
        top = esc.max() if esc.size else 0.0
        q = np.quantile(np.where(np.isfinite(t), t, 2 * abs(top) + 1), [0.25, 0.5, 0.75])
        q = np.where(q <= top, q, np.nan)
    return dict(n_seeds=int(t.size), n_escaped=int(esc.size),
                sims_q25=float(q[0]), sims_median=float(q[1]), sims_q75=float(q[2]),
                sims_mean=float(esc.mean()) if esc.size else math.nan,
                sims_sem=float(esc.std(ddof=1) / math.sqrt(esc.size)) if esc.size > 1
                else math.nan)


def curve_escape(curves: xr.DataArray, threshold: float, n_boot: int = 200,
                 seed: int = 0) -> tuple[float, float]:
    """Escape time of the seed-mean curve (like for like with the DMFT curve, itself an
    average over the initial magnetization) and its bootstrap standard error over seeds.

    curves: (seed, time). Returns (escape time, s.e.); the s.e. is NaN with fewer than two
    seeds or when under half of the resampled curves escape.
    """
    curves = curves.transpose("seed", "time")
    value = float(escape_time(curves.mean("seed", skipna=True), threshold).values)
    n = curves.sizes["seed"]
    if n < 2:
        return value, math.nan
    pick = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    resampled = xr.DataArray(np.nanmean(curves.values[pick], axis=1), dims=("boot", "time"),
                             coords={"time": curves.time})
    boot = escape_time(resampled, threshold).values
    boot = boot[np.isfinite(boot)]
    se = float(boot.std(ddof=1)) if boot.size >= max(2, n_boot // 2) else math.nan
    return value, se


def escape_table(sims: xr.Dataset | None, dmft: xr.Dataset | None, threshold: float = 0.4,
                 var: str = "gen_error", z_max: float = 3.0) -> pd.DataFrame:
    """Escape time against d: simulations per seed (median, quartiles, mean +- s.e. of the
    escaped seeds), of the seed-mean curve (with its bootstrap s.e.), and of the DMFT curve
    at that d's initial magnetization. The gap compares like with like: the seed-mean
    curve against the DMFT curve (both averages over the initial magnetization).

    Columns: grid coordinates, d, n_seeds, n_escaped, sims_q25, sims_median, sims_q75,
    sims_mean, sims_sem, sims_curve, sims_curve_se, dmft, dmft_solved, difference
    (sims_curve - dmft), z (difference / sims_curve_se), mean_curve_agree (|z| <= z_max);
    with the DMFT at the seeds' own m(0) or effective m stored (`<var>_at_seeds`, §6.6)
    also dmft_at_seeds, difference_at_seeds and z_at_seeds. The verdict on the escape is
    `escape_distribution_table` (the seeds' escape times against the DMFT's law of them);
    the mean curve's escape time is a secondary summary.
    """
    base = sims if sims is not None else dmft
    dims = [d for d in curve_dims(base, var) if d != "d"]
    rows = []
    for point in iter_points(base, dims):
        s = select(sims, point) if sims is not None else None
        m = select(dmft, point) if dmft is not None else None
        d_values = sorted(set((s.d.values.tolist() if s is not None and "d" in s.dims else [])
                              + (m.d.values.tolist() if m is not None and "d" in m.dims
                                 else [])))
        for d in d_values:
            row = {**point, "d": d, **_seed_summary(np.array([])), "sims_curve": math.nan,
                   "sims_curve_se": math.nan, "dmft": math.nan, "dmft_solved": False}
            if s is not None and d in s.d.values:
                row.update(_seed_summary(escape_per_seed(sims, point, d, threshold, var)))
                row["sims_curve"], row["sims_curve_se"] = curve_escape(s[var].sel(d=d),
                                                                      threshold)
            if m is not None and "d" in m.dims and d in m.d.values:
                row["dmft"] = float(escape_time(m[var].sel(d=d), threshold).values)
                row["dmft_solved"] = bool(np.isfinite(m[var].sel(d=d).values).any())
                if f"{var}_at_seeds" in m:
                    row["dmft_at_seeds"] = float(escape_time(m[f"{var}_at_seeds"].sel(d=d),
                                                             threshold).values)
            rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df["difference"] = df.sims_curve - df.dmft
        df["z"] = df.difference / df.sims_curve_se
        df["mean_curve_agree"] = df.z.abs() <= z_max  # False where a side did not escape
    if "dmft_at_seeds" in df:
        df["difference_at_seeds"] = df.sims_curve - df.dmft_at_seeds
        df["z_at_seeds"] = df.difference_at_seeds / df.sims_curve_se
    return df



# -------------------------------------------------- escape-time distribution (§5.9, §6.6)
ESCAPE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
P_MIN = 0.01  # a KS p-value below this rejects the DMFT's escape-time law


def escape_law(dmft_point: xr.Dataset) -> xr.Dataset | None:
    """The DMFT's escape-time law at one grid point and d, as `dmft.escape_time_cdf` reads
    it (attrs node_x, node_escape_times, escape_magnetization, and where present those of
    its errors, `dmft.magnetization.escape_law_errors`): from the store variables that
    workflow.execute writes, or the attrs of a direct `dmft.solve`; None without them
    (rule "gauss", one node, d = inf, a failed solve)."""
    names = ("node_x", "node_escape_times", "escape_magnetization")
    optional = ("node_escape_time_replicas", "escape_magnetization_replicas",
                "node_escape_slopes")  # its errors (dmft.escape_law_errors); not in older stores
    if all(n in dmft_point.attrs for n in names):
        return xr.Dataset(attrs={n: dmft_point.attrs[n] for n in names + optional
                                 if n in dmft_point.attrs})
    if not all(n in dmft_point for n in names):
        return None
    values = {n: np.asarray(dmft_point[n].values, dtype=float) for n in names + optional
              if n in dmft_point}
    if not (np.isfinite(values["node_escape_times"]).all() and values["node_x"].size > 1
            and np.isfinite(values["escape_magnetization"])):
        return None
    values["escape_magnetization"] = float(values["escape_magnetization"])
    return xr.Dataset(attrs={n: v if isinstance(v, float) else v.tolist()
                             for n, v in values.items()})


def seed_escape_times(magnetization: xr.DataArray, level: float) -> np.ndarray:
    """Per seed, the first time |m(t)| reaches `level` (linear interpolation between
    records; `escape_time` of -|m| below -level); +inf for a seed that runs to t_max
    without reaching it (censored), NaN for a failed run that stops before. (seed, time)."""
    curves = abs(magnetization).transpose("seed", "time")
    t = escape_time(-curves, -level).values.astype(float)
    ran_to_end = np.isfinite(curves.isel(time=-1).values)
    return np.where(np.isnan(t) & ran_to_end, np.inf, t)


def censored_quantiles(samples: np.ndarray, q, t_max: float) -> np.ndarray:
    """Quantiles q of escape times along the last axis, +inf (censored at t_max) included
    as values beyond every other: a quantile that falls among the censored is NaN.
    samples (..., n) -> (len(q), ...)."""
    big = np.finfo(float).max / 4
    values = np.quantile(np.where(np.isinf(samples), big, samples), q, axis=-1)
    return np.where(values <= t_max, values, np.nan)


def bootstrap_quantiles(t: np.ndarray, q, t_max: float, n_boot: int = 1000,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles q of the seeds' escape times t (censored: +inf) and their bootstrap
    standard errors over seeds (resampled with replacement, n_boot times); the error is
    NaN where fewer than half of the resampled quantiles are below t_max."""
    value = censored_quantiles(t, q, t_max)
    if t.size < 2:
        return value, np.full(len(q), np.nan)
    pick = np.random.default_rng(seed).integers(0, t.size, size=(n_boot, t.size))
    boot = censored_quantiles(t[pick], q, t_max)  # (q, n_boot)
    enough = np.isfinite(boot).sum(axis=1) >= max(2, n_boot // 2)
    se = np.full(len(q), np.nan)
    se[enough] = np.nanstd(boot[enough], axis=1, ddof=1)
    return value, se


def ks_censored(t: np.ndarray, cdf, t_max: float) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test of escape times t (censored at t_max: +inf)
    against the continuous CDF `cdf`, on [0, t_max] where the seeds are observed:

        D = sup_{t <= t_max} |F_n(t) - F(t)|,   p = P(D_n >= D) (scipy.stats.kstwo),

    F_n the empirical CDF of all n seeds (the censored count as beyond t_max). Without
    censored seeds this is the usual test; with them the sup runs over a part of the
    line only, so p is conservative (at least the exact p). Returns (D, p)."""
    from scipy.stats import kstwo
    n = t.size
    u = np.sort(cdf(t[np.isfinite(t)]))
    i = np.arange(1, u.size + 1)
    gaps = [i / n - u, u - (i - 1) / n, [abs(u.size / n - float(cdf(t_max)))]]
    D = float(max(np.max(g) if len(g) else 0.0 for g in gaps))
    return D, float(kstwo.sf(D, n))


KS_DRAWS = 1000  # laws drawn within the DMFT's errors for the p-value of `ks_escape_law`


def ks_escape_law(t: np.ndarray, law: xr.Dataset, t_max: float, n_draws: int = KS_DRAWS,
                  seed: int = 0) -> tuple[float, float, float]:
    """Kolmogorov-Smirnov test of the seeds' escape times t (censored: +inf) against the
    DMFT's escape-time law, with the law's own Monte-Carlo error (docs/theory.md §5.9).

    D is `ks_censored`'s. Its null distribution is drawn: a law within the DMFT's errors
    (`dmft.magnetization.escape_times_within_errors`), n escape times sampled from it
    (censored at t_max), and their D against the DMFT's law; p = (1 + #{D_b >= D}) /
    (1 + n_draws). Returns (D, p, p_exact), p_exact taking the law as exact
    (`ks_censored`, scipy's kstwo); without the errors in the law (a store from before
    them) p = p_exact."""
    import dmft as theory

    def cdf(v):
        return theory.escape_time_cdf(law, v)
    D, p_exact = ks_censored(t, cdf, t_max)
    rng = np.random.default_rng(seed)
    beyond = 0
    for _ in range(n_draws):
        moved = escape_times_within_errors(law, rng)
        if moved is None:  # a store from before the law's errors
            return D, p_exact, p_exact
        draw = xr.Dataset(attrs=dict(node_x=law.attrs["node_x"], node_escape_times=moved))
        sample = theory.escape_time_quantiles(draw, rng.random(t.size))
        beyond += ks_censored(np.where(sample <= t_max, sample, np.inf), cdf, t_max)[0] >= D
    return D, (1 + beyond) / (1 + n_draws), p_exact


def escape_distribution_table(sims: xr.Dataset | None, dmft: xr.Dataset | None,
                              quantiles=ESCAPE_QUANTILES, p_min: float = P_MIN,
                              z_max: float = 3.0, n_boot: int = 1000) -> pd.DataFrame:
    """Per grid point and d, the seeds' escape times against the DMFT's law of them
    (docs/theory.md §5.9, §6.6): a seed escapes when its |m(t)| first reaches the DMFT's
    `escape_magnetization` (the level of the node escape times); the DMFT gives the whole
    distribution over m(0) ~ sqrt(R/d)|N(0, 1)| (`dmft.escape_time_cdf`).

    Columns: grid coordinates, d, n_seeds, n_escaped, level, ks_statistic, ks_pvalue
    (`ks_escape_law`, the law's own error included), ks_pvalue_exact_law (the law taken
    as exact), agree (p >= p_min), and per
    quantile q (label pNN): sims_pNN and sims_pNN_se (bootstrap over seeds), dmft_pNN and
    dmft_pNN_se (`dmft.escape_time_quantiles`, `dmft.escape_time_quantile_errors`; the
    error NaN for a store from before it), z_pNN ((sims - dmft) / combined error, the sims'
    alone where the DMFT's is NaN), and quantiles_agree (every finite |z| <= z_max). Rows
    only where both stores have the point and d and the DMFT store has node escape times.
    """
    import dmft as theory
    if sims is None or dmft is None or "magnetization" not in sims or "d" not in dmft.dims:
        return pd.DataFrame()
    dims = [d for d in curve_dims(sims, "magnetization") if d != "d"]
    t_max = float(sims.time.max())
    rows = []
    for point in iter_points(sims, dims):
        s, m = select(sims, point), select(dmft, point)
        for d in sorted(set(s.d.values.tolist()) & set(m.d.values.tolist())):
            law = escape_law(m.sel(d=d))
            if law is None:
                continue
            level = law.attrs["escape_magnetization"]
            t = seed_escape_times(s.magnetization.sel(d=d), level)
            t = t[~np.isnan(t)]
            if not t.size:
                continue
            D, p, p_exact = ks_escape_law(t, law, t_max)
            value, se = bootstrap_quantiles(t, quantiles, t_max, n_boot)
            predicted = theory.escape_time_quantiles(law, quantiles)
            predicted_se = theory.escape_time_quantile_errors(law, quantiles)
            row = {**point, "d": d, "n_seeds": int(t.size),
                   "n_escaped": int(np.isfinite(t).sum()), "level": level,
                   "ks_statistic": D, "ks_pvalue": p, "ks_pvalue_exact_law": p_exact,
                   "agree": bool(p >= p_min)}
            for q, v, e, w, f in zip(quantiles, value, se, predicted, predicted_se):
                key = quantile_label(q)
                combined = math.hypot(e, f) if np.isfinite(f) else e
                row.update({f"sims_{key}": v, f"sims_{key}_se": e, f"dmft_{key}": w,
                            f"dmft_{key}_se": f,
                            f"z_{key}": (v - w) / combined if combined > 0 else math.nan})
            z = np.array([row[f"z_{quantile_label(q)}"] for q in quantiles], dtype=float)
            row["quantiles_agree"] = bool(np.all(np.abs(z[np.isfinite(z)]) <= z_max))
            rows.append(row)
    return pd.DataFrame(rows)


def quantile_label(q: float) -> str:
    """'p10' for q = 0.1: the column label of a quantile."""
    return f"p{round(100 * q):02d}"


def escape_distribution_statement(table: pd.DataFrame, p_min: float = P_MIN) -> str:
    """Plain words: per d, the seeds' escape times against the DMFT's law (KS test and
    the median), and the verdict."""
    if not len(table):
        return ("No escape-time distribution to compare: the DMFT store has no node escape "
                "times (magnetization_rule 'escape', several nodes) or there are no "
                "simulations of |m|.")
    level = float(table.level.iloc[0])
    items = []
    for r in table.itertuples():
        med, med_se, pred = r.sims_p50, r.sims_p50_se, r.dmft_p50
        pred_se = getattr(r, "dmft_p50_se", math.nan)
        exact = getattr(r, "ks_pvalue_exact_law", r.ks_pvalue)
        items.append(f"d = {int(r.d)} ({r.n_seeds} seeds{_censored(r)}): KS D = "
                     f"{r.ks_statistic:.3f}, p {_p_text(r.ks_pvalue)}"
                     + (f" (law taken as exact: {exact:.2g})" if exact != r.ks_pvalue else "")
                     + f"; median {med:.3g} ± {med_se:.2g} vs DMFT {pred:.3g}"
                     + (f" ± {pred_se:.2g}" if np.isfinite(pred_se) else ""))
    bad = table[~table.agree]
    verdict = (f"the seeds' escape times follow the DMFT's law of m(0) at every d "
               f"(KS p ≥ {p_min:g})" if not len(bad) else
               "the seeds' escape times do NOT follow the DMFT's law of m(0) at d = "
               + ", ".join(str(int(v)) for v in bad.d) + f" (KS p < {p_min:g})")
    return (f"Escape time (first t with |m| ≥ {level:.3g}), seeds against the DMFT's "
            f"distribution over m(0): " + "; ".join(items) + f". Verdict: {verdict}.")


def _p_text(p: float) -> str:
    """'= 0.23', or '< 0.001' at the resolution of `ks_escape_law`'s draws."""
    floor = 1 / (1 + KS_DRAWS)
    return f"< {floor:.2g}" if p <= floor else f"= {p:.2g}"


def _censored(row) -> str:
    left = row.n_seeds - row.n_escaped
    return f", {left} not escaped by t_max" if left else ""



def linear_growth_table(sims: xr.Dataset | None, dmft: xr.Dataset | None,
                        z_max: float = 3.0) -> pd.DataFrame:
    """Does the finite-d dynamics add magnetization beyond m(0)? (docs/theory.md §6.6)

    While m is small the dynamics is linear in it: the DMFT gives m(t) = G(t) m0 for every
    initial m0, so its node average is G(t) sqrt(R/d) E|x|, and the seed mean of |m(t)| of
    simulations started from m(0) ~ N(0, R/d) is the same if nothing but m(0) breaks the
    symmetry. At each d this compares them at t_lin, the last time at which the DMFT
    magnetization is below a tenth of its maximum (`dmft.linear_regime_end`): ratio = sims mean |m| / DMFT m
    (1 if the d-dependent initialization is the whole story; above 1 if the finite sample
    drives m as well), with its standard error over seeds.

    Columns: grid coordinates, d, t_lin, sims (mean |m|), sims_se, dmft, ratio, ratio_se,
    z ((ratio - 1) / ratio_se), agree (|z| <= z_max).
    """
    if sims is None or dmft is None or "magnetization" not in sims or "d" not in dmft.dims:
        return pd.DataFrame()
    dims = [d for d in curve_dims(sims, "magnetization") if d != "d"]
    rows = []
    for point in iter_points(sims, dims):
        s, m = select(sims, point), select(dmft, point)
        for d in sorted(set(s.d.values.tolist()) & set(m.d.values.tolist())):
            theory = m.magnetization.sel(d=d)
            t_lin = linear_regime_end(theory)
            if t_lin is None:  # no time after t = 0 in the linear regime
                continue
            mean, se = mean_and_sem(abs(s.magnetization.sel(d=d).sel(time=t_lin,
                                                                       method="nearest")))
            value = float(theory.sel(time=t_lin))
            rows.append({**point, "d": d, "t_lin": t_lin, "sims": float(mean),
                         "sims_se": float(se), "dmft": value, "ratio": float(mean) / value,
                         "ratio_se": float(se) / value})
    df = pd.DataFrame(rows)
    if len(df):
        df["z"] = (df.ratio - 1) / df.ratio_se
        df["agree"] = df.z.abs() <= z_max
    return df


def linear_growth_statement(df: pd.DataFrame, z_max: float = 3.0) -> str:
    """Plain words on linear_growth_table."""
    if not len(df):
        return ""
    ratios = ", ".join(f"{r.ratio:.2f} ± {r.ratio_se:.2f} (d = {int(r.d)}, t = {r.t_lin:g})"
                       for r in df.itertuples())
    verdict = (f"at every d the simulations grow from m(0) as the DMFT does, within {z_max:g} "
               "s.e.: no magnetization added by the finite-d dynamics is resolved, so at this "
               "precision the d-dependent m(0) accounts for the finite-size effect of the "
               "escape" if df.agree.all() else
               f"at some d the ratio differs from 1 by more than {z_max:g} s.e.: the "
               "finite-d dynamics changes m beyond m(0)")
    return (f"Linear regime, seed mean of |m| in the simulations over the DMFT m at the same "
            f"d: {ratios}; {verdict}.")


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


def gap_trend(df: pd.DataFrame, z_max: float = 3.0) -> dict:
    """The gap sims_curve - dmft of the escape time against d, fitted as A + B ln d.

    Returns dict(d, gap, gap_err (arrays over the d with both), A, B, B_err, verdict) with
    verdict one of: none (no d with both), single (one d only: no trend), open (DMFT does
    not escape within t_max at the largest d while the simulations do), closed (every gap within z_max s.e. of zero),
    closes (within z_max s.e. at the largest d), shrinks (|gap| falls with d by more than
    2 s.e. of the slope), grows (rises likewise), flat (no significant trend).
    """
    both = df.dropna(subset=["sims_curve", "dmft"]).sort_values("d")
    out = dict(d=both.d.to_numpy(float), gap=both.difference.to_numpy(float),
               gap_err=both.sims_curve_se.to_numpy(float), A=math.nan, B=math.nan,
               B_err=math.nan, verdict="none")
    stuck = df[df.dmft_solved & df.dmft.isna() & df.sims_curve.notna()]
    if len(stuck) and stuck.d.max() >= (both.d.max() if len(both) else 0):
        out["verdict"] = "open"
    if not len(both):
        return out
    if out["verdict"] != "open" and len(both) < 2:
        out["verdict"] = "single"
        return out
    fit = fit_log_d(out["d"], out["gap"], out["gap_err"])
    out.update(A=fit["A"], B=fit["B"], B_err=fit["B_err"])
    within = np.abs(out["gap"]) <= z_max * out["gap_err"]
    sign = np.sign(out["gap"][-1])
    if out["verdict"] == "open":
        pass
    elif within.all():
        out["verdict"] = "closed"
    elif within[-1]:
        out["verdict"] = "closes"
    elif np.isfinite(fit["B_err"]) and sign * fit["B"] < -2 * fit["B_err"]:
        out["verdict"] = "shrinks"
    elif np.isfinite(fit["B_err"]) and sign * fit["B"] > 2 * fit["B_err"]:
        out["verdict"] = "grows"
    else:
        out["verdict"] = "flat"
    return out


VERDICTS = {
    "single": "Only one d has both: no trend in d can be measured.",
    "open": "At the largest d the DMFT does not escape within t_max while the simulations "
            "do: the gap does NOT close.",
    "closed": "Simulations and DMFT agree within {z:g} s.e. at every d: no gap is resolved.",
    "closes": "At the largest d the gap is within {z:g} s.e. of zero: it closes within the "
              "measured range.",
    "shrinks": "The gap shrinks as d grows (slope {B:+.3g} ± {Be:.2g} per unit of ln d){zero}: "
               "it closes, slowly.",
    "grows": "The gap grows with d (slope {B:+.3g} ± {Be:.2g} per unit of ln d): it does NOT "
             "close.",
    "flat": "The gap does not change significantly with d (slope {B:+.3g} ± {Be:.2g} per unit "
            "of ln d): no sign that it closes at these d.",
}


def agreement_statement(df: pd.DataFrame, z_max: float = 3.0, at_seeds: str = "m(0)") -> str:
    """Plain words: the escape-time gap between simulations and DMFT at each d, and whether
    it closes as d grows (gap_trend); at_seeds: which initial magnetizations the columns
    `*_at_seeds` use (data.at_seeds_kind)."""
    if not len(df):
        return "No data: no comparison possible."
    trend = gap_trend(df, z_max)
    parts = []
    if len(trend["d"]):
        gaps = ", ".join(f"{g:+.3g} ± {e:.2g} (d = {int(d)})"
                         for d, g, e in zip(trend["d"], trend["gap"], trend["gap_err"]))
        parts.append(f"Escape time of the mean curve, simulations minus DMFT: {gaps}.")
    if trend["verdict"] == "none":
        parts.append("No d has an escape time from both simulations and DMFT: no comparison "
                     "possible.")
    else:
        zero = ""
        if trend["verdict"] == "shrinks" and trend["B"] != 0:
            zero = f", extrapolating to zero near d = {math.exp(-trend['A'] / trend['B']):.2g}"
        parts.append(VERDICTS[trend["verdict"]].format(z=z_max, B=trend["B"],
                                                       Be=trend["B_err"], zero=zero))
    if "z_at_seeds" in df and df.z_at_seeds.notna().any():
        ok = df.dropna(subset=["z_at_seeds"])
        parts.append(f"Conditioned on the simulations (the seeds' own {at_seeds} instead of "
                     "the law of m(0)), the DMFT "
                     "escape time differs from the mean curve's by "
                     + ", ".join(f"{r.difference_at_seeds:+.3g} ({r.z_at_seeds:+.1f}σ, "
                                 f"d = {int(r.d)})" for r in ok.itertuples()) + ".")
    stuck = df[df.dmft_solved & df.dmft.isna() & df.sims_curve.notna()]
    if len(stuck):
        parts.append("DMFT does not escape within t_max at d = "
                     + ", ".join(str(int(v)) for v in stuck.d) + " while the simulations do.")
    never = df[(df.n_seeds > 0) & (df.n_escaped < df.n_seeds)]
    if len(never):
        parts.append("Seeds that never escape within t_max, d = "
                     + ", ".join(f"{int(r.d)}: {r.n_seeds - r.n_escaped}/{r.n_seeds}"
                                 for r in never.itertuples())
                     + " (left out of the mean, counted in the median).")
    return " ".join(parts)
