"""Early-stopping maps (analysis kind `map`): where along training the error is smallest,
over two grid axes.

Rows: DMFT, simulations (largest d), and simulations minus DMFT where both exist (one row
set per value of any further dim, e.g. case); columns: minimum error, time of the minimum,
gain of early stopping (analysis.early_stopping). Cell marks: x = no early stopping (the
minimum sits at t_max, or the gain is below the map's gain_tolerance); ? = unresolved
(whether the gain exceeds the tolerance is within the curve's error: the DMFT's Monte-Carlo
error, the simulations' seed-mean error; analysis.early_stopping); o = no learning (the
error never falls below its initial value by more than its error, e.g. the three-cluster
model held at the symmetric point by the ridge); hatched grey = a
failed run (diverged or error; its value is left out); diagonal hatching = a clipped
persistent chain (active fraction differs from the nominal b, analysis.status), with the
effective fraction in the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.patches import Rectangle
from matplotlib.patheffects import withStroke

from .data import PRETTY, format_value, iter_points, label_for, select
from .early_stopping import GAIN_TOLERANCE, early_stopping
from .panels import load
from .status import DIVERGED, ERROR, OK, clipped, status
from .style import new_figure, style

COLUMNS = [("min_error", "min_t ε_gen(t)", "viridis"), ("argmin_time", "argmin_t (time)",
                                                        "magma"),
           ("gain", "ε_gen(t_max) − min", "cividis")]


def _largest_d(ds: xr.Dataset) -> xr.Dataset:
    return ds.sel(d=ds.d.max()) if "d" in ds.dims else ds


def _flags(ds: xr.Dataset, dims: list[str]) -> xr.Dataset:
    """failed (some run at the point failed) and clipped / effective_active_fraction per
    point of `dims`."""
    st = status(ds)
    other = [d for d in st.dims if d not in dims]
    failed = st.isin([DIVERGED, ERROR])
    failed = failed.any(other) if other else failed
    eff = xr.full_like(failed, np.nan, dtype=float)
    for point in iter_points(ds, dims):
        value = clipped(ds, point)
        if value is not None:
            eff.loc[point] = value
    return xr.Dataset({"failed": failed, "clipped_active_fraction": eff})


def early_stopping_maps(stores: dict[str, xr.Dataset], var: str = "gen_error",
                        gain_tolerance: float = GAIN_TOLERANCE) -> dict:
    """{source: early_stopping() of the store at its largest d (each curve judged within its
    error: the DMFT's Monte-Carlo error, the simulations' seed-mean error), with flags
    `failed` and `effective_active_fraction` (NaN unless clipped)}, plus 'sims - dmft' if
    both exist."""
    out = {}
    for key in ("dmft", "sims"):
        ds = stores.get(key)
        if ds is None or var not in ds:
            continue
        ds = _largest_d(load(ds, [var]))
        ok = status(ds) == OK
        curve = ds[[name for name in (var, f"{var}_mc_error") if name in ds]]
        es = early_stopping(curve.where(ok), var, gain_tolerance=gain_tolerance)
        out[key] = es.merge(_flags(ds, list(es.min_error.dims)))
    if "dmft" in out and "sims" in out:
        a, b = xr.align(out["sims"], out["dmft"], join="inner")
        names = ["min_error", "argmin_time", "gain"]
        diff = a[names] - b[names]
        diff["gain_error"] = np.hypot(a.gain_error, b.gain_error)
        for flag in ("no_early_stopping", "no_learning", "unresolved"):
            diff[flag] = a[flag] | b[flag]
        diff["failed"] = a.failed | b.failed
        diff["clipped_active_fraction"] = a.clipped_active_fraction
        diff.attrs.update(a.attrs)
        out["sims - dmft"] = diff
    return out


def map_table(maps: dict) -> pd.DataFrame:
    """All maps as one table (column `source`: dmft, sims, sims - dmft)."""
    frames = []
    for key, es in maps.items():
        df = es.to_dataframe().reset_index()
        df.insert(0, "source", key)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _axes_of(es: xr.Dataset, spec: dict) -> tuple[str, str | None, list[str]]:
    dims = list(es.min_error.dims)
    grid = [d for d in dims if d != "case"]
    x = spec.get("x") or grid[0]
    y = spec.get("y") or next((d for d in grid if d != x), None)
    for name in (x, y):
        if name is not None and name not in dims:
            raise ValueError(f"map axis {name!r} is not a dim of the store: dims are {dims} "
                             "(analysis.x / analysis.y of the experiment)")
    return x, y, [d for d in dims if d not in (x, y)]


def _cells(ax, values, flags: dict, annotate: bool) -> None:
    ny, nx = values.shape
    for i in range(ny):
        for j in range(nx):
            if flags["failed"][i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fc="0.8", ec="0.4",
                                       hatch="xx", lw=0))
            if np.isfinite(flags["eff"][i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="w",
                                       hatch="///", lw=0, alpha=0.7))
            if annotate and np.isfinite(values[i, j]):
                eff = flags["eff"][i, j]
                text = f"{values[i, j]:.3g}" + (f"\nactive {eff:.2g}" if np.isfinite(eff) else "")
                ax.text(j, i + 0.28, text, ha="center", va="center",
                        fontsize=6.5, bbox=dict(boxstyle="round,pad=0.1", fc="w", alpha=0.5,
                                                lw=0))
    yy, xx = np.nonzero(flags["no_es"])
    ax.plot(xx, yy, "x", color="k", ms=7, mew=1.5, ls="none")
    ax.plot(xx, yy, "x", color="w", ms=5, mew=0.8, ls="none")
    yy, xx = np.nonzero(flags["unresolved"])
    for i, j in zip(yy, xx):
        ax.text(j, i, "?", ha="center", va="center", fontsize=11, fontweight="bold",
                color="w", path_effects=[withStroke(linewidth=2, foreground="k")])
    yy, xx = np.nonzero(flags["no_learning"])
    ax.plot(xx, yy, "o", mfc="none", mec="k", ms=7, mew=1.5, ls="none")
    ax.plot(xx, yy, "o", mfc="none", mec="w", ms=7, mew=0.6, ls="none")


def heatmap(ax, es: xr.Dataset, name: str, x: str, y: str | None, cmap, diverging=False):
    """One map of `name` over (y, x) with the cell marks; returns the image."""
    if y is None:
        es = es.expand_dims(_y=[0])
        y = "_y"
    es = es.transpose(y, x)
    values = np.asarray(es[name].values, dtype=float)
    kw = {}
    if diverging:
        vmax = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
        kw = dict(vmin=-vmax, vmax=vmax)
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, **kw)
    xs, ys = es[x].values, es[y].values
    ax.set_xticks(range(len(xs)), [format_value(x, v) for v in xs], fontsize=8,
                  rotation=45 if len(xs) > 6 else 0)
    ax.set_xlabel(PRETTY.get(x, x))
    if y == "_y":
        ax.set_yticks([])
    else:
        ax.set_yticks(range(len(ys)), [format_value(y, v) for v in ys], fontsize=8)
        ax.set_ylabel(PRETTY.get(y, y))
    flags = dict(failed=np.asarray(es.failed.values, bool),
                 eff=np.asarray(es.clipped_active_fraction.values, float),
                 no_es=np.asarray(es.no_early_stopping.values, bool),
                 no_learning=np.asarray(es.no_learning.values, bool),
                 unresolved=np.asarray(es.unresolved.values, bool))
    _cells(ax, values, flags, annotate=values.size <= 49)
    return im


def plot_maps(maps: dict, spec: dict, title: str = "", note: str = ""):
    """The figure of early_stopping_maps(); spec: the experiment's `analysis:` section;
    note: a line on simulations against DMFT (analysis.agreement.disagreement_note)."""
    x, y, extra = _axes_of(next(iter(maps.values())), spec)
    rows = [(key, point, select(es, point)) for key, es in maps.items()
            for point in iter_points(es, extra)]
    with style():
        fig = new_figure(figsize=(13, 3.3 * len(rows) + 0.8))
        axes = fig.subplots(len(rows), 3, squeeze=False)
        for r, (key, point, es) in enumerate(rows):
            diverging = key == "sims - dmft"
            for c, (name, label, cmap) in enumerate(COLUMNS):
                ax = axes[r, c]
                im = heatmap(ax, es, name, x, y, "RdBu_r" if diverging else cmap, diverging)
                fig.colorbar(im, ax=ax, shrink=0.9)
                where = label_for(point, list(point))
                ax.set_title(f"{'sims − DMFT' if diverging else key.upper()}"
                             f"{' (' + where + ')' if where else ''}: {label}"
                             + (" difference" if diverging else ""), fontsize=9)
        marks = _marks_legend(maps)
        fig.suptitle(f"{title}\n{marks}" if marks else title, fontsize=10)
        if note:
            fig.supxlabel(note.replace("\n", "; "), fontsize=8, color="darkred")
    return fig


def _marks_legend(maps: dict) -> str:
    """The meaning of the cell marks that appear in the figure."""
    attrs = next(iter(maps.values())).attrs
    z, tolerance = attrs.get("z"), attrs.get("gain_tolerance")
    marks = [(lambda es: es.no_early_stopping.any(),
              f"×: no early stopping (minimum at t_max, or gain < {tolerance:g})"),
             (lambda es: es.unresolved.any(),
              f"?: unresolved (whether the gain exceeds {tolerance:g} is within {z:g}σ of "
              "the curve's error)"),
             (lambda es: es.no_learning.any(),
              f"○: no learning (the error never falls below its initial value by {z:g}σ)"),
             (lambda es: es.clipped_active_fraction.notnull().any(),
              "diagonal hatching: clipped persistent chain (active fraction ≠ b)"),
             (lambda es: es.failed.any(), "grey cross-hatching: a run failed (left out)")]
    shown = [text for present, text in marks if any(bool(present(es)) for es in maps.values())]
    return "\n".join("   ".join(shown[i:i + 2]) for i in range(0, len(shown), 2))
