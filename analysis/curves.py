"""Learning curves on an Axes: DMFT lines, simulation markers, reference line, failures.

Conventions: DMFT as lines, simulations as markers (seed mean with standard-error bars,
subsampled on a log-time grid; one marker shape per d), the Bayes-optimal (two-cluster) or
oracle (three-cluster) error as a dashed grey line. A run that failed (status diverged or
error, analysis.status) is drawn up to its failure time and ends with a black x; its
legend label says what failed. A persistent chain clipped to an active fraction other than
b is labelled with its effective fraction.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from sims.datamodel import OBSERVABLES

from .data import (PRETTY, at_seeds_kind, curve_dims, format_value, iter_points, label_for,
                   log_subsample, mean_and_sem, problem_at, reference_for, select)
from .status import STATUS_NAMES, clipped, failures
from .style import COLORS, FAILED, MARKERS, REFERENCE

FIXED_FIELDS = ("alpha", "delta", "L", "lam", "R", "eta", "b", "tau")


@dataclasses.dataclass
class Drawn:
    """What draw_curves drew: one legend handle and label per grid point, and more."""

    handles: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)
    points: list = dataclasses.field(default_factory=list)
    d_values: list = dataclasses.field(default_factory=list)
    d_marker: dict = dataclasses.field(default_factory=dict)
    n_seeds: int = 0
    base: xr.Dataset | None = None
    failed: bool = False  # some run failed (an x is drawn)
    at_seeds: str = ""  # the DMFT at the seeds' m(0) or effective m is drawn (at_seeds_kind)


def short_name(var: str) -> str:
    """Axis label of an observable (data-model long name, the norm as a formula)."""
    formulas = {"norm2": "$|w|^2/d$", "norm2_sigma": "$w^\\top\\Sigma w/d$"}
    return formulas[var] if var in formulas else OBSERVABLES[var]["long_name"]


def _stores(sims, dmft, var):
    return [(k, ds) for k, ds in (("sims", sims), ("dmft", dmft)) if ds is not None and var in ds]


def _varying(stores, dims):
    out = []
    for dim in dims:
        sizes = [ds.sizes[dim] for _, ds in stores if dim in ds.dims]
        if dim == "case" or max(sizes, default=1) > 1:
            out.append(dim)
    return out


def _curves_at(ds: xr.Dataset | None, point: dict, var: str, d_values: list):
    """(d, curve of `var`) at a grid point, one per d value (d = None without a d axis)."""
    if ds is None or var not in ds:
        return
    try:
        sub = select(ds, point)[var]
    except KeyError:  # the point is not in this store
        return
    for d in (d_values or [None]):
        yield d, (sub.sel(d=d) if d is not None else sub)


def _keep(t, y, logx):
    t = np.asarray(t, dtype=float)
    return np.isfinite(y) & ((t > 0) if logx else np.isfinite(t))


def _mark_failure(ax, t, y, when: float, color) -> None:
    """An x where a failed curve ends: at `when` on the curve, or (no data before it) on
    the time axis."""
    finite = np.isfinite(y) & np.isfinite(t)
    if not np.isfinite(when):
        when = t[finite][-1] if finite.any() else np.nan
    before = finite & (t <= when + 1e-12)
    if before.any():
        ax.plot([t[before][-1]], [y[before][-1]], **{**FAILED, "color": color}, zorder=4)
    elif np.isfinite(when):
        ax.plot([when], [0.02], **{**FAILED, "color": color}, zorder=4,
                transform=ax.get_xaxis_transform(), clip_on=False)


def _failure_note(kind: str, fails: list, n_runs: int) -> str:
    if not fails:
        return ""
    what = "/".join(sorted({STATUS_NAMES[s] for s, _ in fails}))
    first = min((t for _, t in fails if np.isfinite(t)), default=np.nan)
    at = f" at t = {first:.3g}" if np.isfinite(first) else ""
    if kind == "sims":
        return f"sims: {len(fails)}/{n_runs} seeds {what}{at}"
    return f"DMFT {what}{at}"


def _draw_dmft(ax, dmft, point, var, m_d, color, d_alpha, lw, logx, notes) -> bool:
    """The DMFT line of `var` (solid) and, where stored, its DMFT at the simulation seeds'
    m(0) or effective m (`<var>_at_seeds`, dash-dot, docs/theory.md §6.6)."""
    for d, curve in _curves_at(dmft, point, f"{var}_at_seeds", m_d):
        t, y = curve.time.values.astype(float), np.asarray(curve.values, dtype=float)
        keep = _keep(t, y, logx)
        ax.plot(t[keep], y[keep], "-.", color=color, lw=0.8 * lw,
                alpha=d_alpha.get(d, 1.0), zorder=2)
    drew = False
    for d, curve in _curves_at(dmft, point, var, m_d):
        t = curve.time.values.astype(float)
        y = np.asarray(curve.values, dtype=float)
        keep = _keep(t, y, logx)
        if keep.any():
            ax.plot(t[keep], y[keep], "-", color=color, lw=lw, alpha=d_alpha.get(d, 1.0),
                    zorder=2)
            drew = True
        fails = failures(dmft, point, d)
        if fails:
            _mark_failure(ax, t, np.where(keep, y, np.nan), fails[0][1], color)
            notes.append(_failure_note("dmft", fails, 1) + (f" (d = {d})" if d else ""))
            drew = True
    return drew


def _draw_sims(ax, sims, point, var, s_d, color, d_marker, ms, logx, n_markers, errorbars,
               notes) -> bool:
    drew = False
    for d, curve in _curves_at(sims, point, var, s_d):
        mean, sem = mean_and_sem(curve)
        t = mean.time.values.astype(float)
        y = np.asarray(mean.values, dtype=float)
        # markers among the recorded times (a larger eta is NaN between its records on the
        # store's common time axis; a failed run's mean is NaN after its failure)
        idx = log_subsample(np.where(np.isfinite(y), t, np.nan), n_markers, log=logx)
        fails = failures(sims, point, d)
        if idx.size:
            err = np.asarray(sem.values, dtype=float)[idx] if errorbars else None
            ax.errorbar(t[idx], y[idx], yerr=err, fmt=d_marker.get(d, "o"), color=color,
                        ms=ms, mfc="white" if len(s_d) > 1 else color, mew=1.0,
                        elinewidth=0.8, capsize=0, zorder=3, lw=0)
            drew = True
        if fails:
            first = min((ft for _, ft in fails if np.isfinite(ft)), default=np.nan)
            _mark_failure(ax, t, y, first, color)
            n = curve.sizes.get("seed", 1)
            notes.append(_failure_note("sims", fails, n) + (f" (d = {d})" if len(s_d) > 1
                                                             else ""))
            drew = True
    return drew


def draw_curves(ax, sims: xr.Dataset | None, dmft: xr.Dataset | None, var: str = "gen_error",
                *, logx: bool = True, n_markers: int = 22, errorbars: bool = True,
                small: bool = False) -> Drawn:
    """Draw every curve of `var` (one colour per grid point) on `ax`; return what was drawn.

    sims, dmft: stores in memory (either may be None); the grid points are the product of
    the dims other than seed, time and d.
    """
    stores = _stores(sims, dmft, var)
    out = Drawn()
    if not stores:
        return out
    dims = list(dict.fromkeys(d for _, ds in stores for d in curve_dims(ds, var) if d != "d"))
    out.base = dict(stores).get("dmft", dict(stores).get("sims"))
    point_source = next((ds for _, ds in stores if all(d in ds.dims for d in dims)), out.base)
    varying = _varying(stores, dims)
    s_d = sims.d.values.tolist() if sims is not None and "d" in sims.dims else []
    m_d = dmft.d.values.tolist() if dmft is not None and "d" in dmft.dims else []
    out.d_marker = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(sorted(s_d))}
    d_alpha = {d: 0.35 + 0.65 * (i + 1) / len(m_d) for i, d in enumerate(sorted(m_d))}
    lw, ms = (1.0, 2.5) if small else (1.6, 4.5)
    for i, point in enumerate(iter_points(point_source, dims)):
        color = COLORS[i % len(COLORS)]
        notes = []
        line = _draw_dmft(ax, dmft, point, var, m_d, color, d_alpha, lw, logx, notes)
        marker = _draw_sims(ax, sims, point, var, s_d, color, out.d_marker, ms, logx,
                            n_markers, errorbars, notes)
        if not (line or marker):
            continue
        out.failed |= bool(notes)
        eff = clipped(point_source, point)
        if eff is not None:
            notes.insert(0, f"clipped chain: active fraction {eff:.2g}")
        label = label_for(point, varying, point_source) or ""
        out.points.append(point)
        out.labels.append("; ".join([label] + notes) if label else "; ".join(notes))
        out.handles.append(Line2D([], [], color=color, ls="-" if line else "none",
                                  marker="o" if marker else None, ms=ms, lw=lw))
    if dmft is not None and f"{var}_at_seeds" in dmft:
        out.at_seeds = at_seeds_kind(dmft)
    out.d_values = sorted(s_d)
    out.n_seeds = int(sims.sizes.get("seed", 0)) if sims is not None else 0
    if logx:
        log_time_axis(ax, minor_labels=not small)
    return out


def log_time_axis(ax, minor_labels: bool = True) -> None:
    """Log x axis labelled with plain numbers (0.5, 1, 10); over at most 2 decades of
    data the minor ticks at 2 and 5 are labelled too."""
    ax.set_xscale("log")
    plain = FuncFormatter(lambda x, _: f"{x:g}")
    ax.xaxis.set_major_formatter(plain)
    lo, hi = ax.dataLim.intervalx
    short = minor_labels and lo > 0 and np.isfinite(hi / lo) and hi / lo <= 100
    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5) if short else "auto"))
    ax.xaxis.set_minor_formatter(plain if short else NullFormatter())


def draw_reference(ax, base: xr.Dataset, points: list[dict]) -> list:
    """Dashed grey line(s) at the Bayes-optimal / oracle error of the panel's problems (of
    those with the identity input covariance: there is no closed form for the others)."""
    references = [reference_for(problem_at(base, p)) for p in points or [{}]]
    values = sorted({round(v, 12) for v in references if np.isfinite(v)})
    model = problem_at(base).get("model", "two_cluster")
    name = "oracle error" if model == "three_cluster" else "Bayes-optimal error"
    if not np.isfinite(references).all():
        name += ", Σ = I"
    for v in values:
        ax.axhline(v, **REFERENCE, zorder=1)
    if not values:
        return []
    return [Line2D([], [], **REFERENCE,
                   label=f"{name} ({values[0]:.3g})" if len(values) == 1 else name)]


def at_seeds_handle(which: str) -> tuple:
    """Legend entry of the dash-dot DMFT at the simulation seeds' m(0) or effective m
    (`analysis.data.at_seeds_kind`; the effective m is m(t_lin)/G(t_lin), docs/theory.md
    §6.6): a diagnostic conditioned on the simulations, on two short lines."""
    return (Line2D([], [], color="0.3", ls="-.", lw=1.2),
            f"DMFT conditioned on the sims\n(seeds' own {which}), dash-dot")


def failed_handle() -> tuple:
    """Legend entry explaining the x that ends a failed run."""
    return Line2D([], [], **FAILED), "run failed (diverged or error): curve ends there"


def d_handles(drawn: Drawn) -> tuple[list, list]:
    """Legend entries of the marker shapes, one per simulated d (if several)."""
    if len(drawn.d_values) < 2:
        return [], []
    return ([Line2D([], [], color="0.3", marker=mk, mfc="white", ls="none")
             for mk in drawn.d_marker.values()],
            [f"sims d = {int(d)}" for d in drawn.d_marker])


def fixed_parameters(base: xr.Dataset, varying: list[str]) -> str:
    """'α = 2, Δ = 0.5, ...' for the Problem fields that are the same on every curve."""
    fields = problem_at(base)
    parts = []
    for f in FIXED_FIELDS:
        v = fields.get(f)
        if f in varying or v is None or (f == "b" and v == 1):
            continue
        if f in base.dims and base.sizes[f] > 1:
            continue
        parts.append(f"{PRETTY.get(f, f)} = {format_value(f, v)}")
    return ", ".join(parts)
