"""SGD against its surrogates on this model (issue 22, docs/theory.md §9.5): the analysis
kinds `paired_curves` and `surrogates` (analysis/spec.py), drawn from the pipeline's stores.

    analysis: {kind: paired_curves, dmft_experiment: smf_two_cluster_dmft}
    analysis: {kind: surrogates, curve_experiments: [smf_two_cluster, smf_three_cluster]}

Within an experiment every case of a seed trains on the same data from the same w(0) with
the same mask uniforms (common random numbers, sims.simulate_batch), so the differences
between cases are paired by seed.

Paired discrepancy of a case X against the reference (SGD) (shared smf.md §3): per seed
D_i(t) = eps_X - eps_SGD; over t in [1, t_max] the largest |mean_i D_i(t)|, its time t*,
that value in units of SGD's seed-to-seed sem at t* ("in SGD sems") and of the paired sem
of D at t* ("in paired sems"; >= RESOLVED: a measured difference).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .agreement import COLUMNS as AGREEMENT_COLUMNS
from .data import (CASE_NAMES, PRETTY, case_label, format_value, iter_points, mean_and_sem,
                   problem_at)
from .spec import DEFAULTS
from .style import COLORS, MARKERS, new_figure

ESCAPE_ERROR = DEFAULTS["surrogates"]["escape_error"]  # eps_g that dates an escape
MODEL_NAMES = {"two_cluster": "two-cluster", "three_cluster": "three-cluster"}
RESOLVED = 3.0  # a discrepancy counts as measured when it is this many paired sems


# ------------------------------------------------------------------------- paired errors
def paired_cases(ds: xr.Dataset, point: dict) -> xr.DataArray:
    """gen_error (case, seed, time) of every case at one grid point of a store with a
    single d (the cases of a seed are paired)."""
    eps = ds.gen_error.sel(point).dropna("time", how="all")  # the point's own records
    if "d" in eps.dims:
        if eps.sizes["d"] != 1:
            raise ValueError(f"{ds.attrs.get('experiment', 'experiment')}: a paired analysis "
                             f"needs one d per store, found d = {eps.d.values.tolist()}")
        eps = eps.isel(d=0)
    return eps.load()


def escape_times(gen_error: xr.DataArray, level: float = ESCAPE_ERROR) -> xr.DataArray:
    """Per run, the first t with eps_g <= level (linear interpolation; the project's one
    crossing rule, dmft.magnetization.first_crossing): the escape from the symmetric
    plateau eps = 1/2 of the three-cluster model (docs/theory.md §6.6)."""
    from dmft.magnetization import first_crossing

    return xr.apply_ufunc(lambda values: first_crossing(gen_error.time.values, -values, -level),
                          gen_error, input_core_dims=[["time"]])


def paired_discrepancy(eps: xr.DataArray, case: str, reference: str, *,
                       escape_error: float | None = None, after: float = 1.0) -> dict:
    """The paired discrepancy of `case` against `reference` over t in [after, t_max]
    (module docstring): max |mean D|, t*, in reference sems, in paired sems, D(t_max) and
    its paired sem, eps_ref(t_max) and its sem, the reference's sem over t (median, max),
    seeds; with `escape_error`, the paired escape delay (first eps <= escape_error) and the
    reference's mean escape time. Seeds where either run failed (NaN) drop out."""
    later = eps.sel(time=slice(after, None))
    difference = later.sel(case=case) - later.sel(case=reference)
    mean, paired_sem = mean_and_sem(difference)
    ref_mean, ref_sem = mean_and_sem(later.sel(case=reference))
    worst = int(np.nanargmax(np.abs(mean.values)))
    out = dict(seeds=int(difference.isel(time=-1).count()),
               max_abs=float(abs(mean[worst])), t_star=float(mean.time[worst]),
               in_sgd_sems=float(abs(mean[worst]) / ref_sem[worst]),
               in_paired_sems=float(abs(mean[worst]) / paired_sem[worst]),
               paired_sem=float(paired_sem[worst]), end=float(mean[-1]),
               end_sem=float(paired_sem[-1]), sgd_end=float(ref_mean[-1]),
               sgd_end_sem=float(ref_sem[-1]), sgd_sem=float(ref_sem.median()),
               sgd_sem_max=float(ref_sem.max()))
    if escape_error is not None:
        escape = escape_times(eps.sel(case=[case, reference]), escape_error)
        delay, delay_sem = mean_and_sem(escape.sel(case=case) - escape.sel(case=reference))
        out.update(escape_delay=float(delay), escape_delay_sem=float(delay_sem),
                   sgd_escape=float(escape.sel(case=reference).mean()))
    return out


def discrepancy_table(ds: xr.Dataset, axes: list[str], reference: str, cases=None,
                      escape_error: float | None = None) -> pd.DataFrame:
    """One row per grid point of `axes` and case (other than the reference): the paired
    discrepancy; escape delays for the three-cluster model (escape_error given)."""
    model = ds.attrs.get("model")
    escape = escape_error if model == "three_cluster" else None
    cases = [c for c in (cases or ds.case.values.tolist()) if c != reference]
    rows = []
    for point in iter_points(ds, axes):
        eps = paired_cases(ds, point)
        for case in cases:
            rows.append({"model": MODEL_NAMES.get(model, model), **point, "case": case,
                         **paired_discrepancy(eps, case, reference, escape_error=escape)})
    return pd.DataFrame(rows)


def fitted_slope(etas, errors, sems) -> float | None:
    """Least-squares slope of log max|D| against log eta over the resolved points (error
    at least RESOLVED paired sems); None if fewer than two are resolved."""
    etas, errors, sems = map(np.asarray, (etas, errors, sems))
    resolved = _resolved(errors, sems)
    if resolved.sum() < 2:
        return None
    return float(np.polyfit(np.log(etas[resolved]), np.log(errors[resolved]), 1)[0])


def _name(case: str) -> str:
    """'SGD' for the case 'sgd' (a case's name in labels)."""
    return CASE_NAMES.get(case, case)


def _resolved(errors, sems) -> np.ndarray:
    return (errors > 0) & np.isfinite(sems) & (errors >= RESOLVED * sems)


def _describe(ds: xr.Dataset, point: dict | None = None) -> str:
    """'two-cluster, b = 0.3, d = 500, 20 seeds, t <= 20' of a store."""
    fields = problem_at(ds, point or {})
    words = [MODEL_NAMES.get(fields["model"], fields["model"])]
    if "b" in fields and "b" not in ds.dims:
        words.append(f"b = {fields['b']:g}")
    words += [f"d = {int(ds.d.values[0])}", f"{ds.sizes['seed']} seeds",
              f"t ≤ {float(ds.time.values[-1]):g}"]
    return ", ".join(words)


# ------------------------------------------------------------------------- paired_curves
def draw_paired_curves(sims, dmft, spec, others):
    """One column per value of spec['x']: top, eps_g(t) of every case (seed means; the
    reference's seed sem shaded) with the DMFT of spec['dmft_experiment'] (dashed) for the
    cases it solves; bottom, eps_X - eps_ref paired by seed (mean, paired sem shaded) and
    the DMFT's difference. Returns (figure, paired-discrepancy table, an empty agreement
    table: the DMFT is judged in its own experiment, against simulations with enough seeds
    for the three-cluster escape window, not against the few seeds that pair the SMF)."""
    if sims is None:
        raise FileNotFoundError(f"{spec['title']}: a paired_curves analysis needs sims.zarr")
    reference, x = spec["reference"], spec["x"]
    theory = others[spec["dmft_experiment"]].get("dmft") if spec["dmft_experiment"] else None
    cases = [reference, *(c for c in sims.case.values.tolist() if c != reference)]
    columns = list(iter_points(sims, [x] if x else []))
    fig = new_figure(figsize=(3.3 * len(columns) + 2.6, 6.4))
    axes = fig.subplots(2, len(columns), sharex=True, sharey="row", squeeze=False)
    for column, point in enumerate(columns):
        eps = paired_cases(sims, point)
        curves = None if theory is None else _dmft_curves(theory, point)
        _draw_column(axes[:, column], eps, curves, cases, reference, sims)
        axes[0, column].set_title(", ".join(f"{PRETTY.get(k, k)} = {format_value(k, v)}"
                                            for k, v in point.items())
                                  + ("" if curves is not None else " (no DMFT)"), fontsize=10)
    axes[0, 0].set_ylabel("ε_g")
    axes[1, 0].set_ylabel(f"ε_X − ε_{_name(reference)} (paired by seed)")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7.5,
                       frameon=False)
    fig.suptitle(f"{spec['title']}: {_describe(sims)} (solid: sims; dashed: DMFT; shaded: "
                 "seed sem, paired sem)", fontsize=10)
    table = discrepancy_table(sims, [x] if x else [], reference)
    return fig, table, pd.DataFrame(columns=AGREEMENT_COLUMNS)


def _dmft_curves(theory: xr.Dataset, point: dict) -> xr.DataArray | None:
    """gen_error (case, time) of the DMFT store at `point`, or None where it has no value."""
    try:
        curves = theory.gen_error.sel(point).dropna("time", how="all")
    except KeyError:
        return None
    if "d" in curves.dims:
        curves = curves.isel(d=0)
    return curves.load()


def _draw_column(axes, eps, curves, cases, reference, ds) -> None:
    top, bottom = axes
    later = eps.sel(time=slice(eps.time.values[1], None))  # t > 0 on the log axis
    for i, case in enumerate(cases):
        color, label = COLORS[i % len(COLORS)], case_label(ds, case)
        mean, sem = mean_and_sem(later.sel(case=case))
        top.plot(mean.time, mean, color=color, lw=1.3, label=f"{label} (sims)")
        if case == reference:
            top.fill_between(mean.time, mean - sem, mean + sem, color=color, alpha=0.25)
        else:
            diff, diff_sem = mean_and_sem(later.sel(case=case) - later.sel(case=reference))
            bottom.plot(diff.time, diff, color=color, lw=1.2)
            bottom.fill_between(diff.time, diff - diff_sem, diff + diff_sem, color=color,
                                alpha=0.2)
        if curves is None or case not in curves.case.values:
            continue
        theory = curves.sel(case=case).sel(time=slice(later.time.values[0], None))
        top.plot(theory.time, theory, color=color, ls="--", lw=1.1, label=f"DMFT {label}")
        if case != reference and reference in curves.case.values:
            bottom.plot(theory.time, theory - curves.sel(case=reference).sel(time=theory.time),
                        color=color, ls="--", lw=1.1)
    bottom.axhline(0, color="0.5", lw=0.8)
    for ax in axes:
        ax.set_xscale("log")
    bottom.set_xlabel("training time t")


# ------------------------------------------------------------------------- surrogates
def draw_surrogates(sims, dmft, spec, others):
    """Top row, per experiment of spec['curve_experiments']: max_t |eps_X - eps_ref|
    (paired) against x (log-log, one line per case, fitted slopes over the resolved points,
    the reference's seed sem over t as a band), and, for a three-cluster one, the paired
    escape delays; bottom: the map of spec['surrogate']'s paired error over this
    experiment's (x, y) grid. Returns (figure, table of every paired discrepancy, an empty
    agreement table: no DMFT here)."""
    if sims is None:
        raise FileNotFoundError(f"{spec['title']}: a surrogates analysis needs sims.zarr")
    reference, x = spec["reference"], spec["x"]
    curve_tables = {name: discrepancy_table(others[name]["sims"], [x], reference,
                                            escape_error=spec["escape_error"])
                    for name in spec["curve_experiments"]}
    map_table = discrepancy_table(sims, [x, spec["y"]], reference, cases=[spec["surrogate"]])
    escapes = [name for name, table in curve_tables.items() if "escape_delay" in table]
    top = len(curve_tables) + len(escapes)
    fig = new_figure(figsize=(5.2 * max(top, 2), 4.6 + (4.8 if top else 0)))
    grid = fig.add_gridspec(2 if top else 1, max(top, 2) * 2)
    panel = 0
    for name, table in curve_tables.items():
        _plot_errors(fig.add_subplot(grid[0, 2 * panel:2 * panel + 2]), table,
                     others[name]["sims"], x, reference)
        panel += 1
    for name in escapes:
        _plot_escape_delays(fig.add_subplot(grid[0, 2 * panel:2 * panel + 2]),
                            curve_tables[name], others[name]["sims"], x, reference,
                            spec["escape_error"])
        panel += 1
    width = max(top, 2) * 2
    _plot_map(fig, fig.add_subplot(grid[-1, width // 2 - 2:width // 2 + 2]), map_table, sims,
              spec)
    fig.suptitle(f"{spec['title']}: paired error against {_name(reference)} (filled "
                 f"markers and framed cells: resolved, ≥ {RESOLVED:g} paired sems)",
                 fontsize=10.5)
    table = pd.concat([*(t.assign(experiment=n) for n, t in curve_tables.items()),
                       map_table.assign(experiment=sims.attrs.get("experiment", "map"))],
                      ignore_index=True)
    return fig, table, pd.DataFrame(columns=AGREEMENT_COLUMNS)


def _plot_errors(ax, table: pd.DataFrame, ds: xr.Dataset, x: str, reference: str) -> None:
    values = sorted(table[x].unique())
    band = table.groupby(x)[["sgd_sem", "sgd_sem_max"]].first().loc[values]
    ax.fill_between(values, band.sgd_sem, band.sgd_sem_max, color="0.85",
                    label=f"{_name(reference)} seed sem over t (median to max)")
    for i, (case, rows) in enumerate(table.groupby("case", sort=False)):
        rows = rows.set_index(x).loc[values]
        errors, sems = rows.max_abs.values, rows.paired_sem.values
        slope = fitted_slope(values, errors, sems)
        words = "no resolved slope" if slope is None else f"slope {slope:.2f}"
        color, marker = COLORS[(i + 1) % len(COLORS)], MARKERS[(i + 1) % len(MARKERS)]
        ax.errorbar(values, errors, yerr=sems, color=color, marker=marker, ms=6, capsize=2,
                    mfc="none", label=f"{case_label(ds, case)} ({words})")
        resolved = _resolved(errors, sems)
        ax.plot(np.asarray(values)[resolved], errors[resolved], ls="none", marker=marker,
                ms=6, color=color)
    _log_axis(ax, values, x)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 0.5)
    ax.set_ylabel(f"max over t ∈ [1, T] of |ε_X − ε_{_name(reference)}|")
    ax.set_title(_describe(ds), fontsize=9.5)
    ax.legend(fontsize=7, loc="best")  # the place that covers the fewest markers


def _log_axis(ax, values, x: str) -> None:
    ax.set_xscale("log")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()
    ax.set_xlabel("learning rate η" if x == "eta" else x)


def _plot_escape_delays(ax, table, ds, x, reference, level) -> None:
    """Mean paired escape delay (first t with eps <= level) of each case against x."""
    values = sorted(table[x].unique())
    for i, (case, rows) in enumerate(table.groupby("case", sort=False)):
        rows = rows.set_index(x).loc[values]
        shift = 1 + 0.04 * (i - 1.5)  # side by side
        ax.errorbar(np.asarray(values) * shift, rows.escape_delay, yerr=rows.escape_delay_sem,
                    color=COLORS[(i + 1) % len(COLORS)], marker=MARKERS[(i + 1) % len(MARKERS)],
                    ms=6, capsize=2, label=case_label(ds, case))
    ax.axhline(0, color="0.5", lw=0.8)
    _log_axis(ax, values, x)
    ax.set_ylabel(f"t_escape(X) − t_escape({_name(reference)}), paired")
    ref = table.groupby(x).sgd_escape.first().loc[values]
    model = MODEL_NAMES.get(ds.attrs.get("model"), ds.attrs.get("model"))
    ax.set_title(f"{model}: paired escape delay (first ε ≤ {level:g})\n{_name(reference)} "
                 "escapes at t = " + ", ".join(f"{v:.1f}" for v in ref), fontsize=9.5)
    ax.legend(fontsize=7, loc="lower left")


def _plot_map(fig, ax, table: pd.DataFrame, ds: xr.Dataset, spec: dict) -> None:
    """spec['surrogate']'s max |eps_X - eps_ref| in reference seed sems over (x, y), each
    cell written out (sems and max |D|); a frame marks a resolved difference."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    x, y = spec["x"], spec["y"]
    xs, ys = ds[x].values.tolist(), ds[y].values.tolist()
    cells = table.set_index([x, y])
    sems = np.array([[cells.loc[(a, b), "in_sgd_sems"] for a in xs] for b in ys])
    norm = TwoSlopeNorm(vmin=0, vcenter=1, vmax=max(3.0, float(np.nanmax(sems))))
    image = ax.imshow(sems, origin="lower", cmap="RdYlGn_r", norm=norm, aspect="auto")
    for (j, i), value in np.ndenumerate(sems):
        cell = cells.loc[(xs[i], ys[j])]
        ax.text(i, j, f"{value:.1f}\n{cell.max_abs:.0e}", ha="center", va="center",
                fontsize=7.5)
        if cell.in_paired_sems >= RESOLVED:
            ax.add_patch(Rectangle((i - 0.47, j - 0.47), 0.94, 0.94, fill=False, lw=1.5, ec="k"))
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel("learning rate η" if x == "eta" else x)
    ax.set_ylabel("batch fraction b" if y == "b" else y)
    fig.colorbar(image, ax=ax,
                 label=f"max_t |ε_X − ε_{_name(spec['reference'])}| in seed sems at t*")
    ax.set_title(f"{case_label(ds, spec['surrogate'])} against {_name(spec['reference'])}: "
                 f"{_describe(ds)}\ncell: seed sems (≤ 1: within the seed sem) and max |Δε|",
                 fontsize=9.5)


DRAW = {"paired_curves": draw_paired_curves, "surrogates": draw_surrogates}
