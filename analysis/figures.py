"""Figures 1-4 of the paper, early-stopping maps and finite-size plots, drawn from the stores.

Conventions of every learning-curve panel: DMFT as lines, simulations as markers (seed mean
with standard-error bars, subsampled on a log-time grid), the Bayes-optimal (two-cluster) or
oracle (three-cluster) error as a dashed grey line, log time axis. Either store may be
missing: what exists is drawn.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (figures are written to files, never shown)
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from sims.datamodel import OBSERVABLES

from .data import (PRETTY, curve_dims, format_value, iter_points, label_for, load_experiment,
                   log_subsample, mean_and_sem, problem_at, reference_for, select)
from .early_stopping import early_stopping

plt.rcParams.update({"font.size": 10, "axes.labelsize": 11, "legend.fontsize": 8.5,
                     "figure.dpi": 110, "savefig.dpi": 150})

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]

# one entry per paper panel: title, inset observable, inset placement, axes options
PANELS = {
    "fig1_left": dict(title="Fig. 1 left: persistent-SGD, two-cluster", inset="train_acc"),
    "fig1_right": dict(title="Fig. 1 right: GD, two-cluster", inset="train_acc"),
    "fig2_left": dict(title="Fig. 2 left: GD and persistent-SGD (1/τ = b), three-cluster",
                      inset="norm2"),
    "fig2_right": dict(title="Fig. 2 right: GD, three-cluster", inset="norm2"),
    "fig3_left": dict(title="Fig. 3 left: GD and p-SGD (1/τ = b = 0.3), three-cluster",
                      inset="train_acc"),
    "fig3_right": dict(title="Fig. 3 right: p-SGD and SGD, two-cluster (b = 0.3)",
                       inset="train_acc"),
    "fig4_left": dict(title="Fig. 4 left: GD, two-cluster, initial variance R",
                      inset="train_acc"),
    "fig4_right": dict(title="Fig. 4 right: GD, three-cluster, initial variance R",
                       inset="train_acc"),
}
DEFAULT_PANEL = dict(title=None, inset=None, inset_bounds="auto", logx=True, ylim=None,
                     var="gen_error")
INSET_CANDIDATES = [(0.57, 0.58, 0.4, 0.36), (0.57, 0.06, 0.4, 0.36), (0.08, 0.06, 0.4, 0.36),
                    (0.08, 0.58, 0.4, 0.36), (0.3, 0.32, 0.4, 0.36), (0.57, 0.32, 0.4, 0.36),
                    (0.08, 0.32, 0.4, 0.36), (0.3, 0.06, 0.4, 0.36), (0.3, 0.58, 0.4, 0.36)]


def _data_points_axes(ax) -> np.ndarray:
    """Every drawn data point (lines, markers, reference lines) in axes coordinates."""
    pts = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if xy.size:
            if line.get_transform() != ax.transData:  # axhline: dense points along x
                x = np.linspace(0, 1, 60)
                y = ax.transAxes.inverted().transform(
                    line.get_transform().transform(xy[:1]))[0, 1]
                pts.append(np.stack([x, np.full_like(x, y)], 1))
                continue
            if len(xy) > 1:  # densify segments so a line crossing a box counts
                xd = ax.transData.transform(xy)
                seg = [np.linspace(a, b, 8) for a, b in zip(xd[:-1], xd[1:])]
                xd = np.concatenate(seg) if seg else xd
            else:
                xd = ax.transData.transform(xy)
            pts.append(ax.transAxes.inverted().transform(xd))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def choose_inset_bounds(ax, candidates=INSET_CANDIDATES) -> tuple:
    """The candidate inset box (axes coordinates) that hides the fewest data points."""
    pts = _data_points_axes(ax)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    best, best_n = candidates[0], None
    for x0, y0, w, h in candidates:
        pad = 0.03
        inside = ((pts[:, 0] > x0 - pad) & (pts[:, 0] < x0 + w + pad)
                  & (pts[:, 1] > y0 - pad) & (pts[:, 1] < y0 + h + pad))
        n = int(inside.sum())
        if best_n is None or n < best_n:
            best, best_n = (x0, y0, w, h), n
    return best
FIXED_FIELDS = ("alpha", "delta", "L", "lam", "R", "eta", "b", "tau")


# ------------------------------------------------------------------------ learning curves
def _sources(sims, dmft, var):
    return [(k, ds) for k, ds in (("sims", sims), ("dmft", dmft)) if ds is not None and var in ds]


def _varying(stores, dims):
    out = []
    for dim in dims:
        sizes = [ds.sizes[dim] for _, ds in stores if dim in ds.dims]
        if dim == "case" or max(sizes, default=1) > 1:
            out.append(dim)
    return out


def _positive(t, y, logx):
    t = np.asarray(t, dtype=float)
    keep = np.isfinite(y) & ((t > 0) if logx else np.isfinite(t))
    return keep


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


def draw_curves(ax, sims: xr.Dataset | None, dmft: xr.Dataset | None, var: str = "gen_error", *,
                logx: bool = True, n_markers: int = 22, errorbars: bool = True,
                small: bool = False) -> dict:
    """Draw every curve of `var` on `ax`: DMFT lines, simulation markers with s.e. bars.

    Returns dict(handles=legend handles per curve, labels, d_values=simulation d values,
    points=list of curve points, n_lines, n_marker_series).
    """
    stores = _sources(sims, dmft, var)
    if not stores:
        return dict(handles=[], labels=[], d_values=[], points=[], n_lines=0,
                    n_marker_series=0, n_seeds=0)
    dims = list(dict.fromkeys(d for _, ds in stores for d in curve_dims(ds, var) if d != "d"))
    base = dict(stores)["dmft"] if dmft is not None and var in dmft else dict(stores)["sims"]
    point_source = next((ds for _, ds in stores if all(d in ds.dims for d in dims)), base)
    varying = _varying(stores, dims)
    s_d = (sims.d.values.tolist() if sims is not None and "d" in sims.dims else [])
    m_d = (dmft.d.values.tolist() if dmft is not None and "d" in dmft.dims else [])
    d_marker = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(sorted(s_d))}
    d_alpha = {d: 0.35 + 0.65 * (i + 1) / len(m_d) for i, d in enumerate(sorted(m_d))}
    handles, labels, points = [], [], []
    n_lines = n_series = 0
    lw = 1.0 if small else 1.6
    ms = 2.5 if small else 4.5
    for i, point in enumerate(iter_points(point_source, dims)):
        color = COLORS[i % len(COLORS)]
        drew_line = drew_marker = False
        for d, curve in _curves_at(dmft, point, var, m_d):
            y = np.asarray(curve.values, dtype=float)
            keep = _positive(curve.time.values, y, logx)
            if not keep.any():
                continue
            ax.plot(curve.time.values[keep], y[keep], "-", color=color, lw=lw,
                    alpha=d_alpha.get(d, 1.0), zorder=2)
            drew_line = True
            n_lines += 1
        for d, curve in _curves_at(sims, point, var, s_d):
            mean, sem = mean_and_sem(curve)
            t = mean.time.values.astype(float)
            y = np.asarray(mean.values, dtype=float)
            idx = log_subsample(t, n_markers, log=logx)
            idx = idx[np.isfinite(y[idx])]
            if idx.size == 0:
                continue
            err = np.asarray(sem.values, dtype=float)[idx] if errorbars else None
            ax.errorbar(t[idx], y[idx], yerr=err, fmt=d_marker.get(d, "o"), color=color,
                        ms=ms, mfc="white" if len(s_d) > 1 else color, mew=1.0,
                        elinewidth=0.8, capsize=0, zorder=3, lw=0)
            drew_marker = True
            n_series += 1
        if not (drew_line or drew_marker):
            continue
        points.append(point)
        labels.append(label_for(point, varying, point_source) or "")
        handles.append(Line2D([], [], color=color, ls="-" if drew_line else "none",
                              marker="o" if drew_marker else None, ms=ms, lw=lw))
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    n_seeds = int(sims.sizes.get("seed", 0)) if sims is not None else 0
    return dict(handles=handles, labels=labels, d_values=sorted(s_d), points=points,
                n_lines=n_lines, n_marker_series=n_series, n_seeds=n_seeds,
                d_marker=d_marker, base=base)


def _load(ds: xr.Dataset | None, names) -> xr.Dataset | None:
    """The variables `names` of a (lazy, dask-backed) store, in memory."""
    if ds is None:
        return None
    keep = [n for n in names if n and n in ds.data_vars]
    return ds[keep].load() if keep else None


def draw_reference(ax, base: xr.Dataset, points: list[dict]) -> list:
    """Dashed grey line(s) at the Bayes-optimal / oracle error of the panel's problems."""
    values = sorted({round(reference_for(problem_at(base, p)), 12) for p in points or [{}]})
    model = problem_at(base).get("model", "two_cluster")
    name = "oracle error" if model == "three_cluster" else "Bayes-optimal error"
    handles = []
    for v in values:
        ax.axhline(v, ls="--", color="0.45", lw=1.2, zorder=1)
    if values:
        handles.append(Line2D([], [], ls="--", color="0.45", lw=1.2,
                              label=f"{name} ({values[0]:.3g})" if len(values) == 1 else name))
    return handles


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


def plot_panel(sims: xr.Dataset | None = None, dmft: xr.Dataset | None = None, *,
               experiment: str | None = None, ax=None, **options):
    """One paper panel from its stores: main observable with reference line, legend, inset.

    options override the PANELS entry of `experiment` (title, inset, inset_bounds, logx,
    ylim, var). Returns the figure (main axes first in fig.axes, inset second).
    """
    spec = {**DEFAULT_PANEL, **PANELS.get(experiment, {}), **options}
    var = spec["var"]
    sims, dmft = (_load(ds, [var, spec["inset"]]) for ds in (sims, dmft))
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.6, 4.8), layout="constrained")
    else:
        fig = ax.figure
    info = draw_curves(ax, sims, dmft, var, logx=spec["logx"])
    if not info["handles"]:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
        return fig
    base = info["base"]
    ref_handles = draw_reference(ax, base, info["points"])
    handles = list(info["handles"])
    labels = list(info["labels"])
    if len(info["d_values"]) > 1:
        for d, mk in info["d_marker"].items():
            handles.append(Line2D([], [], color="0.3", marker=mk, mfc="white", ls="none"))
            labels.append(f"sims d = {int(d)}")
    handles += ref_handles
    labels += [h.get_label() for h in ref_handles]
    parts = []
    if dmft is not None and var in dmft:
        parts.append("lines: DMFT")
    if sims is not None and var in sims:
        dtxt = f", d = {int(info['d_values'][0])}" if len(info["d_values"]) == 1 else ""
        parts.append(f"markers: sims ({info['n_seeds']} seeds{dtxt}, ± s.e.)")
    if len(info["d_values"]) > 1 and dmft is not None and "d" in dmft.dims:
        parts[0] += " (lighter: smaller d)"
    ax.legend(handles, labels, title="\n".join(parts), title_fontsize=8,
              loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    ax.set_xlabel("training time t")
    ax.set_ylabel(OBSERVABLES[var]["long_name"])
    if spec["ylim"] is not None:
        ax.set_ylim(*spec["ylim"])
    title = spec["title"] or experiment or ""
    fixed = fixed_parameters(base, curve_dims(base, var))
    ax.set_title(f"{title}\n{fixed}" if fixed else title, fontsize=10)
    if spec["inset"] and any(ds is not None and spec["inset"] in ds for ds in (sims, dmft)):
        if spec["ylim"] is None:
            ax.autoscale_view()
        fig.canvas.draw()  # fixes the layout, so data -> axes coordinates are final
        bounds = spec["inset_bounds"]
        inset = ax.inset_axes(choose_inset_bounds(ax) if bounds == "auto" else bounds)
        draw_curves(inset, sims, dmft, spec["inset"], logx=spec["logx"], n_markers=12,
                    errorbars=False, small=True)
        inset.set_ylabel(short_name(spec["inset"]), fontsize=8)
        inset.tick_params(labelsize=7)
    return fig


def short_name(var: str) -> str:
    """Axis label of an observable (data-model long name, the norm as a formula)."""
    return {"norm2": "$|w|^2/d$"}.get(var, OBSERVABLES[var]["long_name"])


def save(fig, out_base: str) -> list[str]:
    """Write out_base.png and out_base.pdf; returns the paths."""
    os.makedirs(os.path.dirname(out_base) or ".", exist_ok=True)
    paths = [f"{out_base}.png", f"{out_base}.pdf"]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def paper_panel(experiment: str, results: str = "results", figures: str | None = None):
    """Draw one paper panel from results/<experiment>/ into <figures>/<experiment>.png/.pdf."""
    stores = load_experiment(results, experiment)
    fig = plot_panel(stores.get("sims"), stores.get("dmft"), experiment=experiment)
    return save(fig, os.path.join(figures or os.path.join(results, "figures"), experiment))


# ------------------------------------------------------------------------ early stopping
def _reduce_d(ds: xr.Dataset) -> xr.Dataset:
    return ds.sel(d=ds.d.max()) if "d" in ds.dims else ds


def early_stopping_maps(stores: dict[str, xr.Dataset], var: str = "gen_error"):
    """early_stopping() of each store (largest d) and, if both exist, sims - dmft."""
    out = {}
    for key in ("dmft", "sims"):
        if stores.get(key) is not None and var in stores[key]:
            out[key] = early_stopping(_reduce_d(_load(stores[key], [var])), var)
    if "dmft" in out and "sims" in out:
        a, b = xr.align(out["sims"], out["dmft"], join="inner")
        diff = a[["min_error", "argmin_time", "gain"]] - b[["min_error", "argmin_time", "gain"]]
        diff["no_early_stopping"] = a.no_early_stopping | b.no_early_stopping
        out["sims - dmft"] = diff
    return out


def _heatmap(ax, da: xr.DataArray, flag: xr.DataArray | None, xdim: str, ydim: str, cmap,
             diverging=False):
    da = da.transpose(ydim, xdim)
    values = np.asarray(da.values, dtype=float)
    kw = {}
    if diverging:
        vmax = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
        kw = dict(vmin=-vmax, vmax=vmax)
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, **kw)
    xs, ys = da[xdim].values, da[ydim].values
    ax.set_xticks(range(len(xs)), [format_value(xdim, v) for v in xs], fontsize=8,
                  rotation=45 if len(xs) > 6 else 0)
    ax.set_yticks(range(len(ys)), [format_value(ydim, v) for v in ys], fontsize=8)
    ax.set_xlabel(PRETTY.get(xdim, xdim))
    ax.set_ylabel(PRETTY.get(ydim, ydim))
    if flag is not None:
        f = np.asarray(flag.transpose(ydim, xdim).values, dtype=bool)
        yy, xx = np.nonzero(f)
        ax.plot(xx, yy, "x", color="k", ms=7, mew=1.5, ls="none")
        ax.plot(xx, yy, "x", color="w", ms=5, mew=0.8, ls="none")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values.shape[0] * values.shape[1] <= 49 and np.isfinite(values[i, j]):
                ax.text(j, i + 0.28, f"{values[i, j]:.3g}", ha="center", va="center",
                        fontsize=6.5, color="k",
                        bbox=dict(boxstyle="round,pad=0.1", fc="w", alpha=0.5, lw=0))
    return im


def plot_early_stopping(maps: dict[str, xr.Dataset], title: str = ""):
    """Rows: DMFT, simulations, sims - DMFT (those present; one row set per extra coordinate,
    e.g. case); columns: minimum error, time of the minimum, gain. x marks: no early stopping
    (the minimum sits at t_max)."""
    first = next(iter(maps.values()))
    grid = [d for d in first.min_error.dims if d != "case"]
    grid = [d for d in grid if first.sizes[d] > 1] or grid
    extra = [d for d in first.min_error.dims if d not in grid[-2:]]
    xdim, ydim = (grid[-2], grid[-1]) if len(grid) >= 2 else (grid[0], None)
    rows = []
    for key, es in maps.items():
        for point in iter_points(es, extra):
            rows.append((key, point, select(es, point)))
    cols = [("min_error", "min_t ε_gen(t)", "viridis"), ("argmin_time", "argmin_t (time)",
                                                         "magma"),
            ("gain", "ε_gen(t_max) − min", "cividis")]
    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 3.3 * len(rows) + 0.6),
                             layout="constrained", squeeze=False)
    for r, (key, point, es) in enumerate(rows):
        for c, (name, label, cmap) in enumerate(cols):
            ax = axes[r, c]
            da = es[name]
            if ydim is None:
                da = da.expand_dims(_y=[0])
                ydim_ = "_y"
            else:
                ydim_ = ydim
            flag = es.no_early_stopping if ydim is not None else None
            diverging = key == "sims - dmft"
            im = _heatmap(ax, da, flag, xdim, ydim_, "RdBu_r" if diverging else cmap,
                          diverging=diverging)
            fig.colorbar(im, ax=ax, shrink=0.9)
            where = label_for(point, list(point))
            ax.set_title(f"{key.upper() if key != 'sims - dmft' else 'sims − DMFT'}"
                         f"{' (' + where + ')' if where else ''}: {label}"
                         + (" difference" if diverging else ""), fontsize=9)
    fig.suptitle(f"{title}   (× : no early stopping, minimum at t_max)", fontsize=11)
    return fig


def early_stopping_figure(experiment: str, results: str = "results", figures: str | None = None,
                          tables: str | None = None):
    """Early-stopping maps of an esmap_* experiment -> figure + CSV table of the values."""
    stores = load_experiment(results, experiment)
    maps = early_stopping_maps(stores)
    if not maps:
        raise FileNotFoundError(f"no store with gen_error under {results}/{experiment}")
    base = stores.get("dmft", stores.get("sims"))
    model = problem_at(base).get("model", "")
    process = problem_at(base).get("process", "")
    fig = plot_early_stopping(maps, title=f"{experiment}: {model}, {process}")
    paths = save(fig, os.path.join(figures or os.path.join(results, "figures"), experiment))
    tables = tables or os.path.join(results, "tables")
    os.makedirs(tables, exist_ok=True)
    frames = []
    for key, es in maps.items():
        df = es.to_dataframe().reset_index()
        df.insert(0, "source", key)
        frames.append(df)
    import pandas as pd
    table = os.path.join(tables, f"{experiment}.csv")
    pd.concat(frames, ignore_index=True).to_csv(table, index=False)
    return paths + [table]


# ------------------------------------------------------------------------ finite size
def plot_finite_size(sims: xr.Dataset, dmft: xr.Dataset | None, table, title: str = ""):
    """Deviation from DMFT of each observable vs 1/d at fixed times, with the a + c/d fit.

    One row per grid point (usually one), one column per observable. Open markers at 1/d = 0:
    the extrapolation a - DMFT with its fit error.
    """
    observables = list(dict.fromkeys(table.observable))
    grid = [c for c in table.columns if c not in (
        "observable", "time", "n_d", "a", "a_err", "c", "c_err", "chi2", "ndof", "dmft",
        "dmft_mc_error", "difference", "z")]
    groups = list(table.groupby(grid, sort=False)) if grid else [((), table)]
    fig, axes = plt.subplots(len(groups), len(observables), squeeze=False, layout="constrained",
                             figsize=(3.2 * len(observables), 3.2 * len(groups) + 0.5))
    for r, (key, sub) in enumerate(groups):
        point = dict(zip(grid, key if isinstance(key, tuple) else (key,)))
        s = select(sims, point)
        for c, var in enumerate(observables):
            ax = axes[r, c]
            rows = sub[sub.observable == var]
            mean, sem = mean_and_sem(s[var])
            for i, row in enumerate(rows.itertuples()):
                color = COLORS[i % len(COLORS)]
                m = mean.sel(time=row.time, method="nearest")
                e = sem.sel(time=row.time, method="nearest")
                ref = row.dmft if math.isfinite(row.dmft) else 0.0
                x = 1 / m.d.values.astype(float)
                ax.errorbar(x, m.values - ref, e.values, fmt="o", color=color, ms=4,
                            capsize=2, label=f"t = {row.time:.3g}")
                if math.isfinite(row.a):
                    xx = np.linspace(0, x.max() * 1.05, 50)
                    ax.plot(xx, row.a - ref + row.c * xx, "-", color=color, lw=1)
                    ax.errorbar([0], [row.a - ref], [row.a_err], fmt="o", mfc="white",
                                color=color, ms=6, capsize=3)
            ax.axhline(0, color="0.45", ls="--", lw=1)
            ax.set_xlabel("1/d")
            ylab = short_name(var)
            ax.set_ylabel(f"{ylab} − DMFT" if dmft is not None else ylab, fontsize=9)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
            ax.tick_params(labelsize=8)
            if c == 0:
                where = label_for(point, list(point))
                ax.set_title(where, fontsize=9, loc="left")
            if r == 0 and c == len(observables) - 1:
                ax.legend(fontsize=7.5, loc="best")
    fig.suptitle(f"{title}: deviation from DMFT vs 1/d, weighted fit a + c/d "
                 "(open markers: d → ∞ extrapolation ± fit error)", fontsize=10)
    return fig


def finite_size_two(experiment: str = "fss_two", results: str = "results",
                    figures: str | None = None, tables: str | None = None, times=None):
    """fss_two: table of extrapolated values against DMFT + the 1/d plots."""
    from .finite_size import finite_size_table
    stores = load_experiment(results, experiment)
    sims, dmft = stores.get("sims"), stores.get("dmft")
    if sims is None:
        raise FileNotFoundError(f"{results}/{experiment}/sims.zarr is needed")
    sims = sims.load()
    dmft = dmft.load() if dmft is not None else None
    table = finite_size_table(sims, dmft, times=times)
    tables = tables or os.path.join(results, "tables")
    os.makedirs(tables, exist_ok=True)
    path = os.path.join(tables, f"{experiment}.csv")
    table.to_csv(path, index=False)
    fig = plot_finite_size(sims, dmft, table, title=experiment)
    return save(fig, os.path.join(figures or os.path.join(results, "figures"), experiment)) + [
        path]


def plot_escape(sims, dmft, table, threshold: float, statement: str, title: str = ""):
    """Left: gen_error vs t for every d (sims markers, DMFT lines) with the threshold;
    right: escape time vs d, simulations (mean ± s.e.) and DMFT, with the verdict."""
    from .finite_size import fit_log_d
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    info = draw_curves(ax0, sims, dmft, "gen_error", logx=True)
    handles, labels = list(info["handles"]), list(info["labels"])
    for d, mk in info.get("d_marker", {}).items():
        handles.append(Line2D([], [], color="0.3", marker=mk, mfc="white", ls="none"))
        labels.append(f"sims d = {int(d)}")
    ax0.axhline(threshold, color="0.3", ls=":", lw=1)
    handles.append(Line2D([], [], color="0.3", ls=":"))
    labels.append(f"threshold {threshold:g}")
    if info["points"]:
        href = draw_reference(ax0, info["base"], info["points"])
        handles += href
        labels += [h.get_label() for h in href]
    ax0.legend(handles, labels, fontsize=7.5, loc="lower left",
               title="lines: DMFT (darker: larger d)", title_fontsize=7.5)
    ax0.set_xlabel("training time t")
    ax0.set_ylabel("generalization error")
    ax0.set_title("learning curves at each d", fontsize=10)
    grid = [c for c in table.columns if c not in (
        "d", "sims_mean", "sims_sem", "n_seeds", "n_escaped", "dmft", "dmft_solved",
        "difference", "z", "agree")]
    groups = list(table.groupby(grid, sort=False)) if grid else [((), table)]
    for i, (key, sub) in enumerate(groups):
        color = COLORS[i % len(COLORS)]
        point = dict(zip(grid, key if isinstance(key, tuple) else (key,)))
        lab = label_for(point, list(point))
        lab = f"{lab}: " if lab else ""
        ok = sub.dropna(subset=["sims_mean"])
        if len(ok):
            fs = fit_log_d(ok.d, ok.sims_mean, ok.sims_sem)
            ax1.errorbar(ok.d, ok.sims_mean, ok.sims_sem, fmt="o", color=color, capsize=3,
                         label=f"{lab}sims, slope in ln d: {fs['B']:.3g} ± {fs['B_err']:.2g}")
        okm = sub.dropna(subset=["dmft"])
        if len(okm):
            fm = fit_log_d(okm.d, okm.dmft)
            ax1.plot(okm.d, okm.dmft, "s-", color=color, mfc="white",
                     label=f"{lab}DMFT (m(0) at d), slope: {fm['B']:.3g}")
    ax1.set_xscale("log")
    ax1.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_xticks(sorted(set(table.d)), [str(int(v)) for v in sorted(set(table.d))])
    ax1.set_xlabel("dimension d")
    ax1.set_ylabel(f"escape time (first t with ε_gen < {threshold:g})")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title("escape time from the symmetric point", fontsize=10)
    import textwrap
    ax1.text(0.98, 0.03, "\n".join(textwrap.wrap(statement, 60)), transform=ax1.transAxes,
             ha="right", va="bottom", fontsize=8,
             bbox=dict(boxstyle="round", fc="lightyellow", ec="0.5"))
    fig.suptitle(title, fontsize=11)
    return fig


def finite_size_three(experiment: str = "fss_three", results: str = "results",
                      figures: str | None = None, tables: str | None = None,
                      threshold: float = 0.4):
    """fss_three: escape time vs d, sims against DMFT; table + figure with the verdict."""
    from .finite_size import agreement_statement, escape_table
    stores = load_experiment(results, experiment)
    sims, dmft = stores.get("sims"), stores.get("dmft")
    if sims is None and dmft is None:
        raise FileNotFoundError(f"no store under {results}/{experiment}")
    sims = sims.load() if sims is not None else None
    dmft = dmft.load() if dmft is not None else None
    table = escape_table(sims, dmft, threshold)
    statement = agreement_statement(table)
    tables = tables or os.path.join(results, "tables")
    os.makedirs(tables, exist_ok=True)
    path = os.path.join(tables, f"{experiment}.csv")
    table.to_csv(path, index=False)
    with open(os.path.join(tables, f"{experiment}.txt"), "w") as fh:
        fh.write(statement + "\n")
    fig = plot_escape(sims, dmft, table, threshold, statement,
                      title=f"{experiment}: three-cluster GD, escape from the symmetric point")
    return save(fig, os.path.join(figures or os.path.join(results, "figures"), experiment)) + [
        path]


def draw(experiment: str, results: str = "results", figures: str | None = None,
         tables: str | None = None, escape_threshold: float = 0.4) -> list[str]:
    """Everything the analysis makes for one experiment (dispatch on its name)."""
    if experiment in PANELS:
        return paper_panel(experiment, results, figures)
    if experiment.startswith("esmap"):
        return early_stopping_figure(experiment, results, figures, tables)
    if experiment == "fss_two":
        return finite_size_two(experiment, results, figures, tables)
    if experiment == "fss_three":
        return finite_size_three(experiment, results, figures, tables, escape_threshold)
    raise ValueError(f"unknown experiment {experiment!r}")
