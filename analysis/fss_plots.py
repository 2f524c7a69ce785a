"""Finite-size figures (analysis kind `finite_size`).

* extrapolation: deviation from DMFT of each observable against 1/d at fixed times, with
  the weighted fit a + c/d and its d -> infinity value (analysis.finite_size).
* escape_time: learning curves at every d with the threshold, and the escape time against
  d, per seed (dots), median and quartiles, mean +- s.e. of the escaped seeds, DMFT, the
  fits A + B ln d of both, and the verdict on the gap in plain words.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import xarray as xr
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from .curves import (at_seeds_handle, d_handles, draw_curves, draw_reference, failed_handle,
                     short_name)
from .data import at_seeds_kind, label_for, mean_and_sem, select
from .finite_size import escape_per_seed, fit_log_d
from .style import COLORS, new_figure, style

FIT_COLUMNS = ("observable", "time", "n_d", "a", "a_err", "c", "c_err", "chi2", "ndof", "dmft",
               "dmft_mc_error", "difference", "z")
ESCAPE_COLUMNS = ("d", "n_seeds", "n_escaped", "sims_q25", "sims_median", "sims_q75",
                  "sims_mean", "sims_sem", "sims_curve", "sims_curve_se", "dmft", "dmft_solved",
                  "difference", "z", "agree", "dmft_at_seeds", "difference_at_seeds",
                  "z_at_seeds")


def _groups(table, skip):
    grid = [c for c in table.columns if c not in skip]
    groups = list(table.groupby(grid, sort=False)) if grid else [((), table)]
    return [(dict(zip(grid, key if isinstance(key, tuple) else (key,))), sub)
            for key, sub in groups]


def plot_finite_size(sims: xr.Dataset, dmft: xr.Dataset | None, table, title: str = ""):
    """Deviation from DMFT vs 1/d at the table's times, one row per grid point, one column
    per observable; open markers at 1/d = 0: the extrapolation a - DMFT +- its fit error."""
    observables = list(dict.fromkeys(table.observable))
    groups = _groups(table, FIT_COLUMNS)
    with style():
        fig = new_figure(figsize=(3.2 * len(observables), 3.2 * len(groups) + 0.6))
        axes = fig.subplots(len(groups), len(observables), squeeze=False)
        for r, (point, sub) in enumerate(groups):
            s = select(sims, point)
            for c, var in enumerate(observables):
                _extrapolation_axes(axes[r, c], s, sub[sub.observable == var], var,
                                    dmft is not None)
                if c == 0:
                    axes[r, c].set_title(label_for(point, list(point)), fontsize=9, loc="left")
        axes[0, -1].legend(fontsize=7.5, loc="best")
        fig.suptitle(f"{title}: deviation from DMFT vs 1/d, weighted fit a + c/d "
                     "(open markers: d → ∞ extrapolation ± fit error)", fontsize=10)
    return fig


def _extrapolation_axes(ax, s, rows, var, has_dmft) -> None:
    mean, sem = mean_and_sem(s[var])
    for i, row in enumerate(rows.itertuples()):
        color = COLORS[i % len(COLORS)]
        m = mean.sel(time=row.time, method="nearest")
        e = sem.sel(time=row.time, method="nearest")
        ref = row.dmft if math.isfinite(row.dmft) else 0.0
        x = 1 / m.d.values.astype(float)
        ax.errorbar(x, m.values - ref, e.values, fmt="o", color=color, ms=4, capsize=2,
                    label=f"t = {row.time:.3g}")
        if math.isfinite(row.a):
            xx = np.linspace(0, x.max() * 1.05, 50)
            ax.plot(xx, row.a - ref + row.c * xx, "-", color=color, lw=1)
            ax.errorbar([0], [row.a - ref], [row.a_err], fmt="o", mfc="white", color=color,
                        ms=6, capsize=3)
    ax.axhline(0, color="0.45", ls="--", lw=1)
    ax.set_xlabel("1/d")
    ax.set_ylabel(f"{short_name(var)} − DMFT" if has_dmft else short_name(var), fontsize=9)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    ax.tick_params(labelsize=8)


def plot_escape(sims, dmft, table, threshold: float, statement: str, title: str = "",
                var: str = "gen_error", note: str = "", linear=None):
    """Left: learning curves at every d with the threshold; middle: escape time vs d (per
    seed, median and quartiles, mean; of the seed-mean curve, compared with DMFT); right
    (with `linear`, analysis.finite_size.linear_growth_table): sqrt(d) x mean |m| against
    t, simulations and DMFT, with the linear-regime times; below, the statement and the
    note (curves where simulations and DMFT differ beyond z_max)."""
    panels = 3 if linear is not None and len(linear) else 2
    with style():
        fig = new_figure(figsize=(6.5 * panels, 6.0))
        grid = fig.add_gridspec(2, panels, height_ratios=[5, 0.9])
        ax0, ax1 = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        _curves_axes(ax0, sims, dmft, threshold, var)
        _escape_axes(ax1, sims, table, threshold, var, at_seeds_kind(dmft))
        if panels == 3:
            _magnetization_axes(fig.add_subplot(grid[0, 2]), sims, dmft, linear)
        box = fig.add_subplot(grid[1, :])
        box.axis("off")
        text = box.text(0.0, 1.0, "\n".join(textwrap.wrap(statement, 150)),
                        transform=box.transAxes, ha="left", va="top", fontsize=9,
                        bbox=dict(boxstyle="round", fc="lightyellow", ec="0.5"))
        if note:  # under the statement: the learning curves are too dense for a box
            box.annotate(textwrap.fill(note.replace(":\n", ": ").replace("\n", "; "), 180),
                         xy=(0, 0),
                         xycoords=text, xytext=(0, -6), textcoords="offset points",
                         ha="left", va="top", fontsize=8, color="darkred")
        fig.suptitle(title, fontsize=11)
    return fig


def _curves_axes(ax, sims, dmft, threshold, var) -> None:
    drawn = draw_curves(ax, sims, dmft, var, logx=True)
    handles, labels = list(drawn.handles), list(drawn.labels)
    more_h, more_l = d_handles(drawn)
    handles += more_h
    labels += more_l
    ax.axhline(threshold, color="0.3", ls=":", lw=1)
    handles.append(Line2D([], [], color="0.3", ls=":"))
    labels.append(f"threshold {threshold:.3g}")
    if drawn.points:
        ref = draw_reference(ax, drawn.base, drawn.points)
        handles += ref
        labels += [h.get_label() for h in ref]
    entries = ([at_seeds_handle(drawn.at_seeds)] if drawn.at_seeds else []) + (
        [failed_handle()] if drawn.failed else [])
    for h, lab in entries:
        handles.append(h)
        labels.append(lab)
    keep = [i for i, lab in enumerate(labels) if lab]
    ax.legend([handles[i] for i in keep], [labels[i] for i in keep], fontsize=7.5,
              loc="lower left",
              title="lines: DMFT (darker: larger d)\nmarkers: sims, seed mean ± s.e.",
              title_fontsize=7.5)
    ax.set_xlabel("training time t")
    ax.set_ylabel(short_name(var))
    ax.set_title("learning curves at each d", fontsize=10)


def _escape_axes(ax, sims, table, threshold, var, at_seeds: str) -> None:
    groups = _groups(table, ESCAPE_COLUMNS)
    for i, (point, sub) in enumerate(groups):
        color = COLORS[i % len(COLORS)]
        lab = label_for(point, list(point))
        lab = f"{lab}: " if lab else ""
        if sims is not None:
            _seed_dots(ax, sims, point, sub.d, threshold, var, color)
        ok = sub.dropna(subset=["sims_median"])
        if len(ok):
            ax.errorbar(ok.d, ok.sims_median, [ok.sims_median - ok.sims_q25,
                                               ok.sims_q75 - ok.sims_median],
                        fmt="_", ms=14, mew=2, color=color, elinewidth=3, alpha=0.5,
                        capsize=0, label=f"{lab}sims median and quartiles")
        ok = sub.dropna(subset=["sims_mean"])
        if len(ok):
            ax.errorbar(ok.d * 1.08, ok.sims_mean, ok.sims_sem, fmt="o", mfc="white",
                        color=color, capsize=3, label=f"{lab}sims, mean over seeds ± s.e.")
        ok = sub.dropna(subset=["sims_curve"])
        if len(ok):
            fit = fit_log_d(ok.d, ok.sims_curve, ok.sims_curve_se)
            ax.errorbar(ok.d, ok.sims_curve, ok.sims_curve_se, fmt="D", color=color, ms=6,
                        capsize=3, zorder=4, label=f"{lab}sims, seed-mean curve ± bootstrap "
                        f"s.e.; slope in ln d {fit['B']:.3g} ± {fit['B_err']:.2g}")
            _fit_line(ax, ok.d, fit, color, "-")
        ok = sub.dropna(subset=["dmft"])
        if len(ok):
            fit = fit_log_d(ok.d, ok.dmft)
            ax.plot(ok.d, ok.dmft, "s", color="k", mfc="white", ms=7,
                    label=f"{lab}DMFT (law of m(0) at d); fit slope {fit['B']:.3g}")
            _fit_line(ax, ok.d, fit, "k", "--")
        ok = sub.dropna(subset=["dmft_at_seeds"]) if "dmft_at_seeds" in sub else sub[:0]
        if len(ok):
            ax.plot(ok.d * 0.93, ok.dmft_at_seeds, "x", color="k", ms=7, mew=1.5,
                    label=f"{lab}DMFT at the seeds' own {at_seeds}")
    d_all = sorted(set(table.d))
    ax.set_xscale("log")
    ax.set_xticks(d_all, [str(int(v)) for v in d_all])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("dimension d")
    ax.set_ylabel(f"escape time: first t with ε_gen < {threshold:.3g}")
    ax.legend(fontsize=7.5, loc="upper left")
    ax.set_title("escape time from the symmetric point (dots: one per seed)", fontsize=10)


def _magnetization_axes(ax, sims, dmft, linear) -> None:
    """sqrt(d) x seed mean of |m| (markers ± s.e.) and sqrt(d) x DMFT m (lines), log scale:
    the curves of all d coincide while the dynamics is linear in m (growth from
    m(0) ~ sqrt(R/d)); crosses mark the linear-regime times t_lin of the table."""
    groups = _groups(linear, ("d", "t_lin", "sims", "sims_se", "dmft", "ratio", "ratio_se",
                              "z", "agree"))
    shades = np.linspace(0.35, 1.0, max(len(set(linear.d)), 1))
    for i, (point, sub) in enumerate(groups):
        s, m = select(sims, point), select(dmft, point)
        for shade, row in zip(shades, sub.itertuples()):
            color = tuple(np.array(to_rgb(COLORS[i % len(COLORS)])) * shade)
            scale = math.sqrt(row.d)
            mean, se = mean_and_sem(abs(s.magnetization.sel(d=row.d)))
            every = max(1, mean.sizes["time"] // 40)
            ax.errorbar(mean.time[::every], scale * mean[::every], scale * se[::every], fmt="o",
                        ms=3, color=color, alpha=0.7, capsize=0,
                        label=f"d = {int(row.d)}: ratio at t_lin {row.ratio:.2f} ± "
                              f"{row.ratio_se:.2f}")
            ax.plot(m.time, scale * m.magnetization.sel(d=row.d), "-", color=color, lw=1.2)
            ax.plot([row.t_lin], [scale * row.dmft], "x", color="k", ms=8)
    ax.set_yscale("log")
    ax.set_xlim(0, 3 * float(linear.t_lin.max()))  # the linear regime and the escape
    ax.set_xlabel("training time t")
    ax.set_ylabel("√d × mean |m|")
    ax.legend(fontsize=7.5, loc="lower right",
              title="markers: sims ± s.e.; lines: DMFT; ×: t_lin", title_fontsize=7.5)
    ax.set_title("growth from m(0) ~ √(R/d): linear regime collapses", fontsize=10)


def _seed_dots(ax, sims, point, d_values, threshold, var, color) -> None:
    rng = np.random.default_rng(0)  # jitter only, for the eye
    top = None
    for d in d_values:
        if d not in sims.d.values:
            continue
        t = escape_per_seed(sims, point, d, threshold, var)
        t = t[~np.isnan(t)]
        jitter = d * np.exp(rng.uniform(-0.06, 0.06, t.size))
        finite = np.isfinite(t)
        ax.plot(jitter[finite], t[finite], ".", color=color, alpha=0.35, ms=4)
        if (~finite).any():  # never escaped: drawn at the top, as triangles
            top = top if top is not None else float(sims.time.max())
            ax.plot(jitter[~finite], np.full((~finite).sum(), top), "^", color=color,
                    alpha=0.5, ms=4)


def _fit_line(ax, d, fit, color, ls) -> None:
    if not math.isfinite(fit["B"]):
        return
    dd = np.geomspace(min(d), max(d), 40)
    ax.plot(dd, fit["A"] + fit["B"] * np.log(dd), ls, color=color, lw=1, alpha=0.7)
