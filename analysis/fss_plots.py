"""Finite-size figures (analysis kind `finite_size`).

* extrapolation: deviation from DMFT of each observable against 1/d at fixed times, with
  the weighted fit a + c/d and its d -> infinity value (analysis.finite_size).
* escape_time: learning curves at every d with the threshold; the empirical CDF of the
  seeds' escape times against the DMFT's over m(0), per d, with the KS p-values; their
  quantiles against d (bootstrap errors); the linear-regime growth of |m|. Without node
  escape times in the DMFT store: the escape time of the mean curve against d instead.
  The verdict in words goes to the text file, the tables and the caption, not the figure.
"""

from __future__ import annotations

import math
import re

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from .curves import (at_seeds_handle, d_handles, draw_curves, draw_reference, failed_handle,
                     short_name)
from .data import at_seeds_kind, label_for, mean_and_sem, select
from .finite_size import escape_law, escape_per_seed, fit_log_d, seed_escape_times
from .style import COLORS, MARKERS, new_figure, style

FIT_COLUMNS = ("observable", "time", "n_d", "a", "a_err", "c", "c_err", "chi2", "ndof", "dmft",
               "dmft_mc_error", "difference", "z")
ESCAPE_COLUMNS = ("d", "n_seeds", "n_escaped", "sims_q25", "sims_median", "sims_q75",
                  "sims_mean", "sims_sem", "sims_curve", "sims_curve_se", "dmft", "dmft_solved",
                  "difference", "z", "mean_curve_agree", "dmft_at_seeds", "difference_at_seeds",
                  "z_at_seeds")
DISTRIBUTION_COLUMNS = ("d", "n_seeds", "n_escaped", "level", "ks_statistic", "ks_pvalue",
                        "ks_pvalue_exact_law", "agree", "quantiles_agree")


def _groups(table, skip):
    grid = [c for c in table.columns if c not in skip]
    groups = list(table.groupby(grid, sort=False)) if grid else [((), table)]
    return [(dict(zip(grid, key if isinstance(key, tuple) else (key,))), sub)
            for key, sub in groups]


def _distribution_columns(table) -> list[str]:
    """The columns of an escape_distribution_table that are not grid coordinates."""
    return [c for c in table.columns if c in DISTRIBUTION_COLUMNS
            or c.startswith(("sims_p", "dmft_p", "z_p"))]


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
        handles, labels = axes[0, -1].get_legend_handles_labels()  # beside, not over, data
        fig.legend(handles, labels, fontsize=7.5, loc="outside right upper")
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


def plot_escape(sims, dmft, table, threshold: float, title: str = "",
                var: str = "gen_error", linear=None, distribution=None):
    """The escape from the symmetric point, one panel each: (a) learning curves at every
    d with the threshold; (b) with `distribution` (analysis.finite_size.
    escape_distribution_table): the empirical CDF of the seeds' escape times against the
    DMFT's CDF over m(0), per d, and (c) their quantiles against d; without it, (b) the
    escape time of the mean curve against d (`table`); (d) with `linear` (analysis.
    finite_size.linear_growth_table): sqrt(d) x mean |m| against t. The verdict is in the
    caption, the text file and the tables; the figure carries only the KS p-values."""
    has_law = distribution is not None and len(distribution)
    kinds = ["curves"] + (["cdf", "quantiles"] if has_law else ["mean_curve"]) + (
        ["linear"] if linear is not None and len(linear) else [])
    columns = 2 if len(kinds) > 2 else len(kinds)
    rows = -(-len(kinds) // columns)
    with style():
        fig = new_figure(figsize=(5.6 * columns, 4.4 * rows))
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax, kind in zip(axes, kinds):
            if kind == "curves":
                _curves_axes(ax, sims, dmft, threshold, var)
            elif kind == "cdf":
                _cdf_axes(ax, sims, dmft, distribution)
            elif kind == "quantiles":
                _quantile_axes(ax, distribution)
            elif kind == "mean_curve":
                _escape_axes(ax, sims, table, threshold, var, at_seeds_kind(dmft))
            else:
                _magnetization_axes(ax, sims, dmft, linear)
        for ax in axes[len(kinds):]:
            ax.axis("off")
        if title:
            fig.suptitle(title, fontsize=11)
    return fig


def _cdf_axes(ax, sims, dmft, distribution) -> None:
    """Per d (darker: larger d), the empirical CDF of the seeds' escape times (steps) and
    the DMFT's CDF over m(0) (line); the legend gives the seeds and the KS p-value."""
    import dmft as theory
    groups = _groups(distribution, _distribution_columns(distribution))
    t_max = float(sims.time.max())
    right = 0.0  # the escape window: the last seed's escape or the DMFT's 99.5 % quantile
    for i, (point, sub) in enumerate(groups):
        lab = label_for(point, list(point))
        shades = np.linspace(1.0, 0.45, len(sub))
        for shade, row in zip(shades, sub.sort_values("d").itertuples()):
            color = tuple(np.array(to_rgb(COLORS[i % len(COLORS)])) * shade)
            law = escape_law(select(dmft, point).sel(d=row.d))
            t = seed_escape_times(select(sims, point).magnetization.sel(d=row.d), row.level)
            t = np.sort(t[~np.isnan(t)])
            finite = t[np.isfinite(t)]
            ecdf = np.arange(1, finite.size + 1) / t.size
            ax.step(np.r_[0, finite, t_max], np.r_[0, ecdf, ecdf[-1] if ecdf.size else 0],
                    where="post", color=color, lw=1.3,
                    label=f"{lab + ', ' if lab else ''}d = {int(row.d)}: {row.n_seeds} seeds, "
                          f"KS p = {row.ks_pvalue:.2g}")
            grid = np.linspace(0, t_max, 400)
            ax.plot(grid, theory.escape_time_cdf(law, grid), "--", color=color, lw=1.3)
            right = max(right, float(theory.escape_time_quantiles(law, [0.995])[0]),
                        float(finite.max()) if finite.size else 0.0)
    ax.set_xlim(0, min(t_max, 1.1 * right) if right > 0 else t_max)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("escape time t (first t with |m| ≥ level)")
    ax.set_ylabel("fraction of seeds escaped")
    ax.legend(fontsize=7.5, loc="lower right", title="steps: sims; dashed: DMFT over m(0)",
              title_fontsize=7.5)
    ax.set_title("escape-time distribution", fontsize=10)


def _quantile_axes(ax, distribution) -> None:
    """Quantiles of the escape time against d: the seeds' (markers, bootstrap s.e.) and the
    DMFT's over m(0) (lines with open markers, Monte-Carlo s.e. where the store has it),
    one colour per quantile, the DMFT's shifted right a little."""
    groups = _groups(distribution, _distribution_columns(distribution))
    labels = [c[len("dmft_"):] for c in distribution.columns
              if re.fullmatch(r"dmft_p\d+", c)]
    cmap = matplotlib.colormaps["viridis"]
    for i, (point, sub) in enumerate(groups):
        sub = sub.sort_values("d")
        lab = label_for(point, list(point))
        marker = MARKERS[i % len(MARKERS)]
        for k, key in enumerate(labels):
            color = cmap(0.1 + 0.8 * k / max(len(labels) - 1, 1))
            ax.errorbar(sub.d, sub[f"sims_{key}"], sub[f"sims_{key}_se"], fmt=marker,
                        color=color, ms=5, capsize=3)
            ax.plot(sub.d, sub[f"dmft_{key}"], "--", color=color, lw=1.2)
            ax.errorbar(sub.d * 1.04, sub[f"dmft_{key}"], sub.get(f"dmft_{key}_se"),
                        fmt=marker, color=color, mfc="white", ms=5, capsize=2)
            name = f"{int(key[1:])} %" + (f" ({lab})" if lab else "")
            ax.annotate(name, (sub.d.iloc[-1] * 1.04, sub[f"dmft_{key}"].iloc[-1]), xytext=(9, 0),
                        textcoords="offset points", va="center", fontsize=7.5, color=color)
    d_all = sorted(set(distribution.d))
    ax.set_xscale("log")
    ax.set_xticks(d_all, [str(int(v)) for v in d_all])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.25)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("escape-time quantile")
    ax.set_title("escape-time quantiles (filled: sims ± bootstrap s.e.; open: DMFT ± s.e.)",
                 fontsize=10)


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
    shades = np.linspace(1.0, 0.45, max(len(set(linear.d)), 1))  # darker: larger d
    for i, (point, sub) in enumerate(groups):
        s, m = select(sims, point), select(dmft, point)
        for shade, row in zip(shades, sub.sort_values("d").itertuples()):
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
