"""Figures of paper 001 (two-layer networks under online SGD, docs/theory.md §8) and the
numerical phase diagram, drawn from the pipeline's stores (model two_layer,
workflow/two_layer.py; experiments in config/two_layer.yaml).

Analysis kinds (analysis/spec.py), each `draw(sims, dmft, spec, others)` returning the
figure, its table and the agreement table (analysis.output writes them):

* risk_curves (Figs. 3, 7, 9): risk against time per point and d, simulations (markers,
  seed mean +- sem), the finite-d ODE from the same seeds' starts (lines, seed mean) and the
  limit ODE from seed 0's start at the largest d (dotted);
* regions (Fig. 2): one limit-ODE curve per point, coloured by its region;
* learning_rates (Fig. 6): like risk_curves against steps / d, one d;
* floors (Figs. 4a/4b, 5a/5b): per learning-rate exponent, the simulations per d against
  the limit ODE, and the final risk against d with power-law fits compared with -theta;
* phase_diagram: the (kappa, delta) plane, each point classified from the limit ODE
  (`classify_ode`) and from the simulations at several d (`classify_sims`).

Stores hold the times of all points (NaN where a point has no record): every curve is cut
to its own recorded times (`risk_of`). The student width at each point and d is the store's
`width` coordinate (`width_of`; p at every d for width_scaling fixed, round(p d^kappa) for
power), shown wherever it changes with d.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from sims.two_layer import regime

from .data import iter_points, select
from .style import COLORS, MARKERS, new_figure

REGION_COLORS = {"green": "#2ca02c", "blue": "#1f77b4", "orange": "#ff7f0e", "red": "#d62728"}
SAMPLE_DIMS = ("d", "ode", "seed", "time")
OK, DIVERGED = 0, 1  # workflow.store status flags
AGREEMENT_COLUMNS = ["observable", "point", "d", "n_seeds", "max_abs_diff", "max_abs_z",
                     "time_max_abs_z", "diff_at_max_abs_z"]


# --- reading the stores ----------------------------------------------------------------------

def risk_of(ds: xr.Dataset, **where) -> xr.DataArray:
    """ds.risk at `where` (dims of ds only), on the point's own recorded times (the store's
    time axis is the union over points)."""
    risk = select(ds, where).risk
    return risk.dropna("time", how="all")


def point_dims(ds: xr.Dataset) -> list[str]:
    """The dims of the experiment's points (case, grid axes)."""
    return [d for d in ds.risk.dims if d not in SAMPLE_DIMS]


def points(ds: xr.Dataset) -> list[dict]:
    return list(iter_points(ds, point_dims(ds)))


def describe_point(point: dict) -> str:
    names = {"lr_exponent": "δ", "width_exponent": "κ", "noise": "Δ", "case": ""}
    return ", ".join(f"{names.get(k, k)} = {v:g}" if isinstance(v, float) else f"{v}"
                     for k, v in point.items())


def _field(ds: xr.Dataset, name: str, point: dict | None = None):
    """A problem field at a point: its coordinate there, else the store attribute."""
    sub = select(ds, point or {})
    if name in sub.coords and sub[name].ndim == 0:
        return sub[name].item()
    return ds.attrs.get(name)


def width_of(ds: xr.Dataset, point: dict, d) -> int:
    """The student width p of a point at d: the store's `width` coordinate (stores from
    before it existed: the problem field p, the width at every d)."""
    if "width" in ds.coords:
        return int(select(ds, {**point, "d": d}).width)
    return int(_field(ds, "p", point))


def _width_words(ds: xr.Dataset, point: dict, dims) -> str:
    """"p = 5, 6, 7" over dims if the width changes with d, else ""."""
    widths = [width_of(ds, point, d) for d in dims]
    return "" if len(set(widths)) == 1 else "p = " + ", ".join(map(str, widths))


def _describe(ds: xr.Dataset, names=("p", "k", "noise", "gamma0")) -> str:
    """The problem fields shared by every point of a store (its attributes)."""
    labels = {"width_exponent": "κ", "lr_exponent": "δ", "noise": "Δ", "gamma0": "γ0"}
    if ds.attrs.get("width_scaling") == "power":
        labels["p"] = "p0 (p = p0 d^κ)"
    return ", ".join(f"{labels.get(name, name)} = {ds.attrs[name]:g}" for name in names
                     if isinstance(ds.attrs.get(name), (int, float)))


def _time_label(ds: xr.Dataset) -> str:
    thetas = set(np.ravel(ds.theta.values).tolist())
    return f"t = steps / d^{1 + thetas.pop():g}" if len(thetas) == 1 else "t = steps / d^(1+ϑ)"


def _seed_mean(risk: xr.DataArray):
    n = risk.count("seed")
    return risk.mean("seed"), risk.std("seed", ddof=1) / np.sqrt(n.where(n > 1))


def _loglog(ax, xlabel="t", ylabel="population risk ε"):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _has(ds: xr.Dataset | None, ode: str) -> bool:
    return ds is not None and "ode" in ds.dims and ode in ds.ode.values.tolist()


# --- simulations against the seed-paired ODE -------------------------------------------------

def agreement(sims: xr.Dataset | None, dmft: xr.Dataset | None) -> pd.DataFrame:
    """Per point and d: the simulations against the finite-d ODE started from the same
    seeds (paired differences sims_s(t) - ode_s(t) over the seeds both hold): the largest
    |mean difference| and the largest |z| = |mean| / sem of the differences, with where it
    is. Near an escape from a plateau single seeds leave early or late (SGD noise, two-layer
    doc §9), so z is large there by nature: a diagnostic, not a test."""
    rows = []
    if sims is None or not _has(dmft, "finite_d"):
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    for point in points(sims):
        for d in sims.d.values.tolist():
            if d not in dmft.d.values.tolist():
                continue
            sim = risk_of(sims, **point, d=d)
            ode = risk_of(dmft, **point, d=d, ode="finite_d")
            seeds = sorted(set(sim.seed.values.tolist()) & set(ode.seed.values.tolist()))
            diff = (sim.sel(seed=seeds) - ode.sel(seed=seeds)).isel(time=slice(1, None))
            mean, sem = _seed_mean(diff)
            z = (mean / sem).fillna(0.0)
            worst = int(np.argmax(np.abs(z.values)))
            rows.append(dict(observable="risk", point=describe_point(point), d=d,
                             n_seeds=len(seeds), max_abs_diff=float(np.abs(mean).max()),
                             max_abs_z=float(np.abs(z)[worst]),
                             time_max_abs_z=float(mean.time[worst]),
                             diff_at_max_abs_z=float(mean[worst])))
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


# --- Figs. 3, 7, 9: sims and seed-paired ODEs per point and d ---------------------------------

def draw_risk_curves(sims, dmft, spec, others=None):
    """Risk against time per (point, d): simulations (markers, seed mean +- sem), the
    finite-d ODE from the same seeds' starts (lines, seed mean) and, with spec["limit"],
    the limit ODE from seed 0's start at the largest d (dotted)."""
    fig = new_figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    base = sims if sims is not None else dmft
    d_values = base.d.values.tolist()
    rows = []
    curves = [(point, d) for point in points(base) for d in d_values]
    for i, (point, d) in enumerate(curves):
        width = width_of(base, point, d)
        varies = bool(_width_words(base, point, d_values))
        label = ", ".join(filter(None, [describe_point(point), f"d = {d}",
                                        f"p = {width}" if varies else ""]))
        row = dict(point=describe_point(point), d=d, width=width)
        if sims is not None:
            mean, sem = _seed_mean(risk_of(sims, **point, d=d))
            ax.errorbar(mean.time[1:], mean[1:], sem[1:], ls="none", marker=MARKERS[i % 8],
                        ms=3.5, color=COLORS[i % 10], label=f"sims {label}")
            row.update(sims_final=float(mean[-1]), sims_final_sem=float(sem[-1]))
        if _has(dmft, "finite_d") and d in dmft.d.values.tolist():
            ode = risk_of(dmft, **point, d=d, ode="finite_d").mean("seed")
            ax.plot(ode.time[1:], ode[1:], color=COLORS[i % 10], lw=1.2)
            row.update(ode_final=float(ode[-1]))
        if spec["limit"] and _has(dmft, "limit") and d == max(dmft.d.values.tolist()):
            limit = risk_of(dmft, **point, d=d, ode="limit").isel(seed=0)
            ax.plot(limit.time[1:], limit[1:], ":", color=COLORS[i % 10], lw=1.2)
            row.update(limit_final=float(limit[-1]))
        rows.append(row)
    if spec["limit"] and _has(dmft, "limit"):
        ax.plot([], [], "k:", label=f"limit ODE (d = {max(dmft.d.values.tolist())} start, "
                                     "seed 0)")
    ax.set_xlim(spec["t_min"] or float(base.time[1]), float(base.time[-1]))
    _loglog(ax, _time_label(base))
    ax.legend(fontsize=7)
    fixed = _describe(base, ("width_exponent", "lr_exponent", "p", "k", "noise", "gamma0"))
    lines = ("\nlines: finite-d ODE from the same seeds' starts (seed mean)"
             if _has(dmft, "finite_d") else "")
    ax.set_title(f"{spec['title']}: {fixed}, {base.sizes.get('seed', 0)} seeds{lines}",
                 fontsize=9)
    return fig, pd.DataFrame(rows), agreement(sims, dmft)


# --- Fig. 2: one limit-ODE curve per region ---------------------------------------------------

def draw_regions(sims, dmft, spec, others=None):
    """The limit ODE of each point from seed 0's start at the (first) d, coloured by its
    region (paper's Fig. 2: delta = 1/2 - kappa, -kappa, -1/2 at one kappa)."""
    fig = new_figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    ode = "limit" if _has(dmft, "limit") else dmft.ode.values[0]
    d = int(dmft.d.values[0])
    rows = []
    for point in points(dmft):
        risk = risk_of(dmft, **point, d=d, ode=ode).isel(seed=0)
        region, theta = _field(dmft, "regime", point), _field(dmft, "theta", point)
        ax.plot(risk.time[1:], risk[1:], color=REGION_COLORS[region],
                label=f"{describe_point(point)} ({region}, ϑ = {theta:g})")
        rows.append(dict(point=describe_point(point), regime=region, theta=theta,
                         risk_start=float(risk[0]), risk_final=float(risk[-1]),
                         risk_max=float(risk.max())))
    ax.set_xlim(spec["t_min"] or float(dmft.time[1]), float(dmft.time[-1]))
    _loglog(ax, "t = steps / d^(1+ϑ)")
    ax.legend()
    ax.set_title(f"{spec['title']}: {ode} ODE, "
                 f"{_describe(dmft, ('width_exponent', 'p', 'k', 'noise', 'gamma0'))}\nstart: seed 0 at d = {d} (κ, p, k, Δ chosen: not "
                 "legible in the paper's Fig. 2)", fontsize=9)
    return fig, pd.DataFrame(rows), agreement(sims, dmft)


# --- Fig. 6: learning-rate exponents against steps / d ----------------------------------------

def draw_learning_rates(sims, dmft, spec, others=None):
    """kappa = 0, gamma = gamma0 d^-delta for several delta at one d, against steps / d =
    t d^theta (paper's Fig. 6): simulations (markers) and the seed-paired finite-d ODE."""
    fig = new_figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    d = int(sims.d.values[0])
    rows = []
    for i, point in enumerate(points(sims)):
        theta = _field(sims, "theta", point)
        mean, sem = _seed_mean(risk_of(sims, **point, d=d))
        steps_per_d = mean.time.values * d ** theta
        delta = _field(sims, "lr_exponent", point)
        ax.errorbar(steps_per_d[1:], mean[1:], sem[1:], ls="none", marker=MARKERS[i % 8],
                    ms=3.5, color=COLORS[i % 10], label=f"sims δ = {delta:g}")
        row = dict(point=describe_point(point), lr_exponent=delta,
                   sims_final=float(mean[-1]), sims_final_sem=float(sem[-1]))
        if _has(dmft, "finite_d"):
            ode = risk_of(dmft, **point, d=d, ode="finite_d").mean("seed")
            ax.plot(ode.time.values[1:] * d ** theta, ode[1:], color=COLORS[i % 10], lw=1.2)
            row["ode_final"] = float(ode[-1])
        rows.append(row)
    ax.set_xlim(spec["t_min"] or 1.0, None)
    _loglog(ax, "steps / d")
    ax.legend(fontsize=7)
    ax.set_title(f"{spec['title']}: κ = 0, d = {d}, {_describe(sims)}, "
                 f"{sims.sizes['seed']} seeds\nlines: finite-d ODE from the same seeds' starts "
                 "(seed mean)", fontsize=9)
    return fig, pd.DataFrame(rows), agreement(sims, dmft)


# --- Figs. 4 and 5: green region, finite-d floors ---------------------------------------------

def final_risk(risk: xr.DataArray, last: int = 2):
    """Final risk of runs (seed, time): the mean over seeds of the mean of the last `last`
    records, and its sem over seeds."""
    values = risk.isel(time=slice(-last, None)).mean("time")
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.sizes["seed"]))


def draw_floors(sims, dmft, spec, others=None):
    """Green region, one column per learning-rate exponent delta (grid axis lr_exponent;
    grid axis noise: Delta): (top, Figs. 4a/5a) simulations per d at the middle Delta
    against the limit ODE from seed 0's start at the largest d; (bottom, Figs. 4b/5b) the
    final risk against d per Delta with power-law fits, whose slopes are compared with
    -theta, and the finite-d ODE's final risk (seed 0, the same records) as lines."""
    deltas = sims.lr_exponent.values.tolist()
    noises = sims.noise.values.tolist()
    dims = np.array(sims.d.values.tolist())
    middle = noises[len(noises) // 2]
    fig = new_figure(figsize=(6.2 * len(deltas), 8.4))
    rows = []
    for j, delta in enumerate(deltas):
        theta = _field(sims, "theta", {"lr_exponent": delta, "noise": middle})
        ax = fig.add_subplot(2, len(deltas), 1 + j)
        for i, d in enumerate(dims):
            mean, sem = _seed_mean(risk_of(sims, lr_exponent=delta, noise=middle, d=d))
            ax.errorbar(mean.time[1:], mean[1:], sem[1:], ls="none", marker=MARKERS[i % 8],
                        ms=3.5, color=COLORS[i % 10], label=f"sims d = {d}")
        if _has(dmft, "limit"):
            limit = risk_of(dmft, lr_exponent=delta, noise=middle, d=int(dims.max()),
                            ode="limit").isel(seed=0)
            ax.plot(limit.time[1:], limit[1:], "k-", lw=1.2,
                    label=f"limit ODE (d = {dims.max()} start)")
        ax.set_ylim(1e-9, 0.1)
        _loglog(ax, f"t = steps / d^{1 + theta:g}")
        ax.legend(fontsize=7)
        ax.set_title(f"({'ab'[j]}) κ = 0, δ = {delta:g} (ϑ = {theta:g}), Δ = {middle:g} "
                     f"(Fig. {4 + j}a)", fontsize=9)
        ax = fig.add_subplot(2, len(deltas), 1 + len(deltas) + j)
        for i, noise in enumerate(noises):
            floors = np.array([final_risk(risk_of(sims, lr_exponent=delta, noise=noise, d=d),
                                          spec["last"]) for d in dims])
            slope, intercept = np.polyfit(np.log(dims), np.log(floors[:, 0]), 1)
            ax.errorbar(dims, floors[:, 0], floors[:, 1], ls="none", marker=MARKERS[i % 8],
                        color=COLORS[i % 10], label=f"Δ = {noise:g}: sims, fit slope "
                                                    f"{slope:.2f}")
            ax.plot(dims, np.exp(intercept) * dims ** slope, ":", color=COLORS[i % 10], lw=1)
            ode_floors = None
            if _has(dmft, "finite_d"):
                ode_floors = [final_risk(risk_of(dmft, lr_exponent=delta, noise=noise, d=d,
                                                 ode="finite_d").isel(seed=[0]),
                                         spec["last"])[0] for d in dims]
                ax.plot(dims, ode_floors, "-", color=COLORS[i % 10], lw=1, alpha=0.7)
            rows += [dict(lr_exponent=delta, noise=noise, d=int(d), theta=theta,
                          width=width_of(sims, dict(lr_exponent=delta, noise=noise), d),
                          sims_floor=floor, sims_floor_sem=sem, fitted_slope=slope,
                          ode_floor=ode_floors[n] if ode_floors else math.nan)
                     for n, (d, (floor, sem)) in enumerate(zip(dims, floors))]
        _loglog(ax, "d", f"final risk (mean of the last {spec['last']} records)")
        ax.legend(fontsize=7, title=f"lines: finite-d ODE (seed 0); −ϑ = {-theta:g}",
                  title_fontsize=7)
        ax.set_title(f"({'cd'[j]}) floors, κ = 0, δ = {delta:g} (Fig. {4 + j}b)", fontsize=9)
    fig.suptitle(f"{spec['title']}: {_describe(sims)}, {sims.sizes['seed']} seeds, "
                 f"t_max = {float(sims.time[-1]):g} (chosen; the paper: 1e4)", fontsize=9)
    return fig, pd.DataFrame(rows), agreement(sims, dmft)


# --- the numerical phase diagram --------------------------------------------------------------

def classify_ode(ode: xr.Dataset) -> str:
    """Region read off a limit-ODE curve (seed 0): red if it stopped or Q > 1e3; orange if M
    did not move and the risk rose; green if the final risk < 1e-7; blue if it learned to a
    floor."""
    ode = ode.isel(seed=0).dropna("time", how="all")
    risk = ode.risk.values
    moved = float(np.abs(ode.M.isel(time=-1) - ode.M.isel(time=0)).max()) > 1e-3
    if not np.isfinite(risk).all() or float(ode.Q.max()) > 1e3:
        return "red"
    if not moved and risk[-1] > risk[0]:
        return "orange"
    if risk[-1] < 1e-7:
        return "green"
    return "blue" if risk[-1] < 0.1 * risk[0] else "orange"


def classify_sims(runs: dict) -> tuple[str, float]:
    """Region read off the final risk at several d ({d: runs with risk (seed, time) and
    status (seed,)}: simulations, or the finite-d ODE at each d's width and coefficients),
    by its fitted exponent in d: red if a seed diverged; orange if the
    risk did not fall below half its start at the largest d, or if the final risk grows
    with d (exponent > 0.15: finite-d learning that fades as d grows, towards the limit
    ODE that does not learn); green if it falls with d (exponent < -0.15, a floor ~
    d^-theta); else blue (a d-independent floor)."""
    if any((ds.status == DIVERGED).any() for ds in runs.values()):
        return "red", math.nan
    dims = np.array(list(runs))
    risks = [ds.risk.dropna("time", how="all") for ds in runs.values()]
    finals = np.array([final_risk(risk, last=3)[0] for risk in risks])
    starts = np.array([float(risk.isel(time=0).mean()) for risk in risks])
    exponent = float(np.polyfit(np.log(dims), np.log(finals), 1)[0])
    if finals[-1] > 0.5 * starts[-1] or exponent > 0.15:
        return "orange", exponent
    return ("green" if exponent < -0.15 else "blue"), exponent


def _exponents(ds: xr.Dataset, point: dict) -> tuple[float, float]:
    return (float(_field(ds, "width_exponent", point)), float(_field(ds, "lr_exponent", point)))


def phase_diagram_table(sims, odes, width_odes=None) -> pd.DataFrame:
    """One row per (kappa, delta) of the ODE store and the simulation store: the paper's
    region, the limit ODE's class, the simulations' class, the fitted exponent of their
    final risk in d ("none" where not computed) and the simulated widths p per d (with
    width_scaling power, p = round(p0 d^kappa): the sims then see kappa through p, not only
    through the step). With `width_odes` (a dmft store of the finite-d ODE at the
    simulations' d and problem, so at their widths): its class and exponent by the same rule
    (`classify_sims`), and its final risk over the simulations' at the largest d."""
    rows = {}
    if odes is not None:
        ode_name = "limit" if _has(odes, "limit") else odes.ode.values[0]
        d = int(odes.d.values[0])
        for point in points(odes):
            kappa, delta = _exponents(odes, point)
            ode = select(odes, {**point, "d": d, "ode": ode_name})
            rows[(kappa, delta)] = dict(kappa=kappa, delta=delta, theory=regime(kappa, delta),
                                        ode=classify_ode(ode), sims="none", exponent=math.nan,
                                        widths="")
    for point in points(sims) if sims is not None else []:
        kappa, delta = _exponents(sims, point)
        row = rows.setdefault((kappa, delta), dict(kappa=kappa, delta=delta, ode="none",
                                                   theory=regime(kappa, delta)))
        runs = {int(d): select(sims, {**point, "d": d}) for d in sims.d.values}
        row["sims"], row["exponent"] = classify_sims(runs)
        row["widths"] = " ".join(str(width_of(sims, point, d)) for d in runs)
    for point in points(width_odes) if width_odes is not None else []:
        kappa, delta = _exponents(width_odes, point)
        row = rows.setdefault((kappa, delta), dict(kappa=kappa, delta=delta, ode="none",
                                                   theory=regime(kappa, delta), sims="none"))
        runs = {int(d): select(width_odes, {**point, "d": d, "ode": "finite_d"})
                for d in width_odes.d.values}
        row["width_ode"], row["width_ode_exponent"] = classify_sims(runs)
        if row.get("sims", "none") != "none" and max(runs) in sims.d.values:
            d = max(runs)
            row["width_ode_over_sims"] = (final_risk(risk_of(runs[d]), last=3)[0] / final_risk(
                risk_of(sims, **point, d=d), last=3)[0])
    table = pd.DataFrame(sorted(rows.values(), key=lambda r: (r["kappa"], r["delta"])))
    if width_odes is not None:
        table["width_ode"] = table["width_ode"].fillna("none")
    return table


def draw_phase_diagram(sims, dmft, spec, others=None):
    """(delta, kappa) plane: theory regions (background and boundaries), the limit-ODE
    class (inner dot; the ODE store is spec["ode_experiment"]'s, else this experiment's),
    the simulations' class at several d (outer ring, with the fitted exponent of the final
    risk in d); a black plus where the simulations disagree with the paper's region, a
    cross where -delta >= kappa + 1/2 (no time scale); with spec["width_ode_experiment"],
    the finite-d ODE at the simulations' widths (small diamond right of the ring, its
    exponent under the simulations'). This experiment's own dmft store without a limit ODE
    and no width_ode_experiment: its finite-d ODE is drawn as the diamonds."""
    odes = (others or {}).get(spec["ode_experiment"], {}).get("dmft") if spec[
        "ode_experiment"] else dmft
    width_odes = (others or {}).get(spec["width_ode_experiment"], {}).get("dmft") if spec[
        "width_ode_experiment"] else None
    if odes is dmft and width_odes is None and dmft is not None and not _has(dmft, "limit"):
        odes, width_odes = None, dmft  # the finite-d ODE over d, classed like simulations
    table = phase_diagram_table(sims, odes, width_odes)
    fig = new_figure(figsize=(8, 5.6))
    ax = fig.add_subplot()
    delta = np.linspace(-1.6, 1.1, 200)
    top = 1.1
    ax.fill_between(delta, np.clip(-delta, 0, top), top, color=REGION_COLORS["green"],
                    alpha=0.12)
    ax.fill_between(delta, np.clip(-2 * delta - 1, 0, top), np.clip(-delta, 0, top),
                    color=REGION_COLORS["orange"], alpha=0.12)
    ax.fill_between(delta, 0, np.clip(-2 * delta - 1, 0, top), color=REGION_COLORS["red"],
                    alpha=0.12)
    ax.plot(delta, -delta, color=REGION_COLORS["blue"], lw=2, label="blue line κ = −δ")
    ax.plot(delta, -2 * delta - 1, color=REGION_COLORS["red"], lw=1.2,
            label="paper's red boundary −δ = (1+κ)/2")
    ax.plot(delta, -delta - 0.5, "k--", lw=1, label="O(1) steps: −δ = κ + ½")
    kappas, deltas = sorted(set(table.kappa)), sorted(set(table.delta))
    for kappa in kappas:
        for value in deltas:
            if -value >= kappa + 0.5:
                ax.plot(value, kappa, "x", ms=5, color="0.4")
    for row in table.itertuples():
        if row.ode != "none":
            ax.plot(row.delta, row.kappa, "o", ms=6, color=REGION_COLORS[row.ode], mec="k",
                    mew=0.4)
        if row.sims != "none":
            ax.plot(row.delta, row.kappa, "o", ms=13, mfc="none",
                    mec=REGION_COLORS[row.sims], mew=2)
            words = f"{row.exponent:+.2f}"
            if getattr(row, "width_ode", "none") != "none":
                words += f" ◆{row.width_ode_exponent:+.2f}"
            if len(set(row.widths.split())) > 1:
                words += f"\np {row.widths.split()[0]}–{row.widths.split()[-1]}"
            ax.annotate(words, (row.delta, row.kappa), fontsize=5.5, xytext=(0, -12),
                        textcoords="offset points", ha="center", va="top")
            if row.sims != row.theory:
                ax.plot(row.delta, row.kappa, "+", ms=16, color="k", mew=1.2)
        if getattr(row, "width_ode", "none") != "none":
            ax.plot(row.delta + 0.075, row.kappa, "D", ms=4.5,
                    color=REGION_COLORS[row.width_ode], mec="k", mew=0.4)
            if row.sims == "none":
                ax.annotate(f"◆{row.width_ode_exponent:+.2f}", (row.delta + 0.075, row.kappa),
                            fontsize=5.5, xytext=(0, -8), textcoords="offset points",
                            ha="center", va="top")
    ax.set_xlim(-1.6, 1.1)
    ax.set_ylim(-0.1, top)
    ax.set_xlabel("δ (learning rate γ ∝ d^−δ)")
    ax.set_ylabel("κ (width exponent, p ∝ d^κ)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=7)
    base = next(store for store in (odes, sims, width_odes) if store is not None)
    words = [f"{spec['title']} ({_describe(base)})"]
    if odes is not None:
        ode_name = "limit" if _has(odes, "limit") else odes.ode.values[0]
        words.append(f"dot = {ode_name} ODE (t = {float(odes.time[-1]):g}, start d = "
                     f"{int(odes.d.values[0])})")
    if sims is not None:
        scaling = ("p = round(p0 d^κ), p from the smallest to the largest d under the number"
                   if sims.attrs.get("width_scaling") == "power"
                   else "p fixed, κ scales the step only")
        words.append(f"ring = sims at d = {sims.d.values.tolist()} ({_describe(sims)}, t = "
                     f"{float(sims.time[-1]):g}, {sims.sizes['seed']} seeds;\n{scaling}), "
                     "number = exponent of the sims' final risk in d")
    if width_odes is not None:
        same = base is width_odes or (sims is not None
                                      and _describe(width_odes) == _describe(sims))
        words.append(f"◆ = finite-d ODE at d = {width_odes.d.values.tolist()}, p = p(d)"
                     + ("" if same else f" ({_describe(width_odes)})")
                     + f", {width_odes.sizes['seed']} starts, classed by the sims' rule, "
                     "exponent after ◆")
    if sims is not None:
        words.append("+ = sims disagree with the paper's region; no ring = not simulated")
    ax.set_title(";\n".join(words + ["x = no time scale"]), fontsize=8)
    return fig, table, agreement(sims, dmft)


DRAW = {"risk_curves": draw_risk_curves, "regions": draw_regions,
        "learning_rates": draw_learning_rates, "floors": draw_floors,
        "phase_diagram": draw_phase_diagram}
