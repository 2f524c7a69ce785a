"""How well simulations and DMFT agree, curve by curve (issue 11).

For every grid point and simulated d: the largest |eps_DMFT - eps_sims| over the times both
have, and the largest |z| with z = (eps_DMFT - eps_sims) / sqrt(se_DMFT^2 + se_sims^2), where
se_DMFT is the solver's Monte-Carlo error (`<observable>_mc_error`), se_sims the standard
error of the seed mean, and a resolution of 1e-4 (RESOLUTION) added in quadrature. A curve
disagrees where, at some time, |eps_DMFT - eps_sims| > z_max * combined error + tolerance
(`tolerance`, default 0: an absolute difference the verdict does not judge, such as the
O(1/d) offset of a finite-d plateau from the d -> infinity one that hundreds of seeds resolve).
A three-cluster DMFT store has its own d axis (initial magnetization): each d is compared
with the DMFT solved at that d.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from .data import curve_dims, format_value, iter_points, label_for, mean_and_sem, select

COLUMNS = ["observable", "prediction", "d", "n_seeds", "n_times", "max_abs_diff",
           "time_max_abs_diff", "max_abs_z", "time_max_abs_z", "diff_at_max_abs_z",
           "n_times_beyond", "tolerance", "disagree"]
LAW = "law of m(0)"  # the judged prediction of a DMFT solved at d (three-cluster, theory §6.6)
LIMIT = "d → ∞"  # the judged prediction of a DMFT without d (two-cluster: m(0) = 0, §6.6)
CONDITIONED = "conditioned on the simulations"  # `*_at_seeds`: a diagnostic, not a prediction


def _dmft_curve(dmft: xr.Dataset, point: dict, var: str, d):
    sub = select(dmft, point)
    if "d" in sub.dims:
        if d not in sub.d.values:
            return None, None
        sub = sub.sel(d=d)
    err = sub[f"{var}_mc_error"] if f"{var}_mc_error" in sub else xr.zeros_like(sub[var])
    return sub[var], err


RESOLUTION = 1e-4  # differences below this are not judged (added to the combined error):
#   at the three-cluster symmetric point eps = 1/2 - O(m^2) with m = O(d^-1/2), so the seed
#   mean sits O(1/d) below the DMFT's law (3e-6 at d = 1000) while both errors are ~1e-7;
#   without a floor that plateau alone gave |z| = 5-8 for 500 seeds (fig2_right_seeds)


def compare(sims_curve: xr.DataArray, dmft_curve: xr.DataArray, dmft_err: xr.DataArray,
            z_max: float = 3.0, tolerance: float = 0.0) -> dict:
    """max |difference| and max |z| (their times, and the difference where |z| is largest:
    a huge |z| over a tiny difference is a small bias measured very precisely, e.g. at the
    three-cluster symmetric point) of one simulated curve (seed, time) against one DMFT
    curve (time,), on the simulated times inside the DMFT's time range (DMFT interpolated
    linearly in t between its finite records) where both are finite; n_times_beyond: the
    times where |difference| > z_max * combined error + tolerance."""
    mean, sem = mean_and_sem(sims_curve)
    recorded = np.isfinite(dmft_curve)  # a store's common time axis: NaN between the records
    dmft_curve, dmft_err = dmft_curve[recorded], dmft_err[recorded]  # of a larger eta
    inside = ((mean.time >= dmft_curve.time.min() - 1e-9)
              & (mean.time <= dmft_curve.time.max() + 1e-9))
    mean, sem = mean.where(inside, drop=True), sem.where(inside, drop=True)
    at = dict(time=mean.time.values, kwargs={"fill_value": "extrapolate"})  # rounding only
    m, e = dmft_curve.interp(**at), dmft_err.interp(**at)
    diff = np.asarray(m.values - mean.values, dtype=float)
    comb = np.sqrt(np.asarray(e.values, float) ** 2 + np.asarray(sem.values, float) ** 2
                   + RESOLUTION ** 2)
    t = mean.time.values.astype(float)
    ok = np.isfinite(diff)
    out = dict(n_seeds=int(sims_curve.sizes.get("seed", 1)), n_times=int(ok.sum()),
               max_abs_diff=math.nan, time_max_abs_diff=math.nan, max_abs_z=math.nan,
               time_max_abs_z=math.nan, diff_at_max_abs_z=math.nan, n_times_beyond=0)
    if not ok.any():
        return out
    i = np.flatnonzero(ok)[np.argmax(np.abs(diff[ok]))]
    out.update(max_abs_diff=float(abs(diff[i])), time_max_abs_diff=float(t[i]))
    zok = ok & np.isfinite(comb) & (comb > 0)
    if zok.any():
        z = np.abs(diff[zok] / comb[zok])
        j = int(np.argmax(z))
        out.update(max_abs_z=float(z[j]), time_max_abs_z=float(t[zok][j]),
                   diff_at_max_abs_z=float(diff[zok][j]),
                   n_times_beyond=int((np.abs(diff[zok]) > z_max * comb[zok] + tolerance).sum()))
    return out


def agreement_table(sims: xr.Dataset | None, dmft: xr.Dataset | None, var: str = "gen_error",
                    z_max: float = 3.0, tolerance: float = 0.0) -> pd.DataFrame:
    """One row per grid point and simulated d (columns: grid coordinates, then COLUMNS);
    empty (with the columns) unless both stores hold `var`. Where the DMFT store also holds
    `<var>_at_seeds` (the DMFT at the seeds' own m(0) or effective m, docs/theory.md §6.6),
    a second row per curve compares with it (observable `<var>_at_seeds`, prediction
    "conditioned on the simulations": a diagnostic). The rows of `<var>` are the prediction
    that is judged: the law of m(0) for a DMFT solved at each d (three-cluster), d → ∞ for a
    DMFT without d (two-cluster). A curve disagrees where some time is beyond z_max combined
    errors plus the tolerance (module docstring)."""
    if sims is None or dmft is None or var not in sims or var not in dmft:
        return pd.DataFrame(columns=COLUMNS)
    dims = [d for d in curve_dims(sims, var) if d != "d"]
    d_values = sims.d.values.tolist() if "d" in sims.dims else [None]
    judged = LAW if "d" in dmft[var].dims else LIMIT
    rows = []
    for point in iter_points(sims, dims):
        s = select(sims, point)[var]
        for d in d_values:
            for name in (var, f"{var}_at_seeds"):
                m, e = _dmft_curve(dmft, point, name, d) if name in dmft else (None, None)
                if m is None:
                    continue
                row = compare(s.sel(d=d) if d is not None else s, m, e, z_max, tolerance)
                rows.append({**point, "observable": name, "d": d,
                             "prediction": CONDITIONED if name != var else judged, **row,
                             "tolerance": tolerance, "disagree": row["n_times_beyond"] > 0})
    return pd.DataFrame(rows, columns=dims + COLUMNS)


def criterion(table: pd.DataFrame, z_max: float = 3.0) -> str:
    """'3σ', or '3σ + 0.002' where the table's curves were judged with a tolerance."""
    tolerance = table.tolerance.max() if "tolerance" in table and len(table) else 0.0
    return f"{z_max:g}σ" + (f" + {tolerance:g}" if tolerance > 0 else "")


def disagreement_note(table: pd.DataFrame, ds: xr.Dataset | None = None,
                      z_max: float = 3.0, at_seeds: str = "m(0)") -> str:
    """Text for the figure where some curve disagrees beyond z_max (plus the tolerance; empty
    if none); at_seeds: which initial magnetizations rows `*_at_seeds` use
    (data.at_seeds_kind)."""
    if not len(table):
        return ""
    bad = table[table.disagree.astype(bool)]
    if not len(bad):
        return ""
    dims = [c for c in table.columns if c not in COLUMNS]
    items = []
    for row in bad.itertuples(index=False):
        r = row._asdict()
        where = label_for({k: r[k] for k in dims}, dims, ds)
        if r["d"] is not None and not (isinstance(r["d"], float) and math.isnan(r["d"])):
            where = ", ".join(p for p in (where, f"d = {format_value('d', r['d'])}") if p)
        if r["observable"].endswith("_at_seeds"):
            where = ", ".join(p for p in (where, f"DMFT at the seeds' {at_seeds}") if p)
        items.append(f"{where or 'the curve'}: |z| = {r['max_abs_z']:.3g} at "
                     f"t = {r['time_max_abs_z']:.3g} (DMFT − sims = "
                     f"{r['diff_at_max_abs_z']:+.2g})")
    return (f"sims vs DMFT differ beyond {criterion(table, z_max)}:\n" + "\n".join(items[:6])
            + (f"\n(+{len(items) - 6} more, see table)" if len(items) > 6 else ""))


def verdict_marker(table: pd.DataFrame, z_max: float = 3.0) -> str:
    """The figure's short marker of the agreement verdict: 'DMFT (law of m(0)) vs sims:' (or
    'DMFT (d → ∞) vs sims:', the prediction judged) and '2 of 6 curves beyond 3σ' on two
    lines, and the same count for the DMFT conditioned on the simulations' seeds (rows
    `*_at_seeds`, a diagnostic); empty without rows."""
    if not len(table):
        return ""
    parts = []
    for seeds in (False, True):
        rows = table[table.observable.str.endswith("_at_seeds") == seeds]
        name = "conditioned on the sims" if seeds else f"DMFT ({judged_prediction(rows)}) vs sims"
        if len(rows):
            bad, within = int(rows.disagree.astype(bool).sum()), criterion(rows, z_max)
            parts.append(f"{name}:\n{bad} of {len(rows)} curves beyond {within}" if bad
                         else f"{name}:\nall {len(rows)} curves within {within}")
    return "\n".join(parts)


def judged_prediction(table: pd.DataFrame) -> str:
    """What the judged rows of an agreement table compare with: LAW or LIMIT (LAW for a table
    written before the column told them apart)."""
    names = set(table.prediction) - {CONDITIONED} if "prediction" in table else set()
    return LIMIT if names == {LIMIT} else LAW


def by_d_line(table: pd.DataFrame) -> str:
    """'Largest |ε_DMFT − ε_sims| over t (over the curves) by d: 0.099 (d = 500), ...' (empty
    with fewer than two d)."""
    table = table[~table.observable.str.endswith("_at_seeds")]
    if not len(table) or table.d.nunique() < 2:
        return ""
    worst = table.groupby("d").max_abs_diff.max()
    return ("Largest |ε_DMFT − ε_sims| over t by d: "
            + ", ".join(f"{v:.3g} (d = {int(d)})" for d, v in worst.items()) + ".")
