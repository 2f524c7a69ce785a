"""Figures of paper 001 (two-layer networks under online SGD, docs/theory.md §8) and the
numerical phase diagram, computed directly (no pipeline store yet).

    python -m analysis.two_layer [figure ...] --out docs/gallery

Figures (default all): regions (Fig. 2), blue_line (Fig. 9), noises (Fig. 3), orange
(Fig. 7), learning_rates (Fig. 6), floors (Figs. 4, 5), phase_diagram.

The parameters are those of config/two_layer.yaml (`figures:`, one section per figure).
Each figure's data are computed by `sims.simulate` / `dmft.solve` and cached as netCDF in
<cache>/<figure>-<hash of its config section>/ (a changed section computes afresh).
Parameters not legible in the paper's figure files are named in the titles.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os

import numpy as np
import pandas as pd
import xarray as xr

import dmft
import sims
from sims.two_layer import TwoLayerProblem, regime
from workflow.config import read_yaml

from .style import COLORS, MARKERS, new_figure, style

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, "config", "two_layer.yaml")
REGION_COLORS = {"green": "#2ca02c", "blue": "#1f77b4", "orange": "#ff7f0e", "red": "#d62728"}


def _cached(cache: str, name: str, compute) -> xr.Dataset:
    path = os.path.join(cache, name + ".nc")
    if os.path.exists(path):
        return xr.load_dataset(path)
    ds = compute()
    os.makedirs(cache, exist_ok=True)
    ds.attrs = {k: (str(v) if v is None or isinstance(v, bool) else v)
                for k, v in ds.attrs.items()}
    ds.to_netcdf(path)
    return ds


def _seed_mean(ds: xr.Dataset):
    risk = ds.risk
    return risk.mean("seed"), risk.std("seed") / math.sqrt(risk.sizes["seed"])


def _loglog(ax, xlabel="t", ylabel="population risk ε"):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


# --- Fig. 2: one limit-ODE curve per region ------------------------------------------------

def _describe(problem: TwoLayerProblem) -> str:
    return (f"p = {problem.p}, k = {problem.k}, Δ = {problem.noise:g}, "
            f"γ0 = {problem.gamma0:g}")


def regions_figure(section: dict, cache: str):
    """Limit ODE at one kappa for one delta per region, from one sampled start (paper's
    Fig. 2: delta = 1/2 - kappa, -kappa, -1/2)."""
    base = TwoLayerProblem(**section["problem"]).replace(
        width_exponent=section["width_exponent"])
    start = sims.initial_overlaps(base, section["start_d"], [0])
    fig = new_figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for name, delta in section["lr_exponents"].items():
        problem = base.replace(lr_exponent=delta)
        if problem.regime != name:
            raise ValueError(f"regions: lr_exponent {delta} at width_exponent "
                             f"{base.width_exponent} is {problem.regime}, not {name}")
        ode = _cached(cache, f"regions_{delta}", lambda: dmft.solve(
            problem, initial=start, limit=True, n_times=161))
        ax.plot(ode.time[1:], ode.risk[0, 1:], color=REGION_COLORS[name],
                label=f"δ = {delta:g} ({name}, ϑ = {problem.theta:g})")
    ax.set_xlim(1e-2, problem.t_max)
    _loglog(ax, "t = steps / d^(1+ϑ)")
    ax.legend()
    ax.set_title(f"Limit ODE per region (Fig. 2), κ = {base.width_exponent:g}, "
                 f"{_describe(base)}\nstart: one sampled d = {section['start_d']} init "
                 "(κ, p, k, Δ chosen: not legible in Fig. 2)", fontsize=9)
    return fig


# --- Figs. 3, 7, 9: sims and seed-paired ODEs per d and Delta ------------------------------

def curves_figure(section: dict, cache: str):
    """Risk against time per (Delta, d): gram sims (markers, seed mean +- sem), the finite-d
    ODE from the same seeds' starts (lines, seed mean) and the limit ODE from seed 0's start
    at the largest d (dotted); the paper's Figs. 3 (noises), 7 (orange) and 9 (blue line)."""
    base, seeds = TwoLayerProblem(**section["problem"]), section["seeds"]
    largest = max(section["d"])
    fig = new_figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    curves = [(noise, d) for noise in section.get("noises", [base.noise]) for d in section["d"]]
    for i, (noise, d) in enumerate(curves):
        problem = base.replace(noise=noise)
        sim = _cached(cache, f"sims_{noise}_{d}", lambda: sims.simulate(
            problem, d, seeds, n_times=section["n_times"]))
        ode = _cached(cache, f"ode_{noise}_{d}", lambda: dmft.solve(
            problem, initial=sims.initial_overlaps(problem, d, seeds), times=sim.time.values))
        mean, sem = _seed_mean(sim)
        label = (f"Δ = {noise:g}, " if "noises" in section else "") + f"d = {d}"
        ax.errorbar(sim.time[1:], mean[1:], sem[1:], ls="none", marker=MARKERS[i % 8], ms=3.5,
                    color=COLORS[i], label=f"sims {label}")
        ax.plot(ode.time[1:], ode.risk.mean("seed")[1:], color=COLORS[i], lw=1.2)
        if d == largest:
            limit = _cached(cache, f"limit_{noise}", lambda: dmft.solve(
                problem, d=largest, limit=True, n_times=section["n_times"]))
            ax.plot(limit.time[1:], limit.risk[0, 1:], ":", color="k" if len(curves) ==
                    len(section["d"]) else COLORS[i], lw=1.2)
    ax.plot([], [], "k:", label=f"limit ODE (d = {largest} start, seed 0)")
    ax.set_xlim(section.get("t_min", 1e-1), base.t_max)
    _loglog(ax, f"t = steps / d^{1 + base.theta:g}")
    ax.legend(fontsize=7)
    ax.set_title(f"{section['title']}: κ = {base.width_exponent:g}, δ = {base.lr_exponent:g}, "
                 f"{_describe(base)}, {seeds} seeds\nlines: finite-d ODE from the same seeds' "
                 "starts (seed mean)", fontsize=9)
    return fig


def learning_rates_figure(section: dict, cache: str):
    """kappa = 0, gamma = gamma0 d^-delta for several delta at one d, against steps / d (the
    paper's Fig. 6): sims (markers) and the seed-paired finite-d ODE (lines). Each run goes
    to steps / d = t_max of the section's problem."""
    base, seeds, d = TwoLayerProblem(**section["problem"]), section["seeds"], section["d"]
    fig = new_figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    for i, delta in enumerate(section["lr_exponents"]):
        theta = base.replace(lr_exponent=delta).theta
        problem = base.replace(lr_exponent=delta, t_max=base.t_max / d ** theta)
        sim = _cached(cache, f"sims_{delta}", lambda: sims.simulate(
            problem, d, seeds, n_times=section["n_times"]))
        ode = _cached(cache, f"ode_{delta}", lambda: dmft.solve(
            problem, initial=sims.initial_overlaps(problem, d, seeds), times=sim.time.values))
        mean, sem = _seed_mean(sim)
        steps_per_d = sim.time.values * d ** theta
        ax.errorbar(steps_per_d[1:], mean[1:], sem[1:], ls="none", marker=MARKERS[i], ms=3.5,
                    color=COLORS[i], label=f"sims δ = {delta:g}")
        ax.plot(steps_per_d[1:], ode.risk.mean("seed")[1:], color=COLORS[i], lw=1.2)
    ax.set_xlim(section.get("t_min", 1.0), base.t_max)
    _loglog(ax, "steps / d")
    ax.legend(fontsize=7)
    ax.set_title(f"{section['title']}: κ = 0, d = {d}, {_describe(base)}, {seeds} seeds\n"
                 "lines: finite-d ODE from the same seeds' starts (seed mean)", fontsize=9)
    return fig


# --- Figs. 4 and 5: green region, finite-d floors ------------------------------------------

def _floor_runs(section, cache, delta, noise):
    problem = TwoLayerProblem(**section["problem"]).replace(lr_exponent=delta, noise=noise)
    runs = {}
    for d in section["d"]:
        runs[d] = (_cached(cache, f"floor_sims_{delta}_{noise}_{d}", lambda: sims.simulate(
            problem, d, section["seeds"], n_times=section["n_times"])),
            _cached(cache, f"floor_ode_{delta}_{noise}_{d}", lambda: dmft.solve(
                problem, d=d, n_times=section["n_times"])))
    return problem, runs


def _floor(ds: xr.Dataset, last: int = 2):
    """Final risk: the mean over seeds and the last `last` records, and its sem over seeds."""
    values = ds.risk.isel(time=slice(-last, None)).mean("time")
    return float(values.mean()), float(values.std() / math.sqrt(values.sizes["seed"]))


def floors_figure(section: dict, cache: str):
    """Green region kappa = 0: (a) the first lr_exponent, sims per d against the limit ODE;
    (b, c) final risk against d per lr_exponent and Delta, power-law fits against -theta
    (paper's Figs. 4a/4b, 5b); the finite-d ODE's final risk as lines."""
    dims = np.array(section["d"])
    first, middle_noise = section["lr_exponents"][0], section["noises"][1]
    problem, runs = _floor_runs(section, cache, first, middle_noise)
    t_max = problem.t_max
    fig = new_figure(figsize=(13, 4.2))
    ax = fig.add_subplot(1, 3, 1)
    for i, (d, (sim, _)) in enumerate(runs.items()):
        mean, sem = _seed_mean(sim)
        ax.errorbar(sim.time[1:], mean[1:], sem[1:], ls="none", marker=MARKERS[i], ms=3.5,
                    color=COLORS[i], label=f"sims d = {d}")
    start = sims.initial_overlaps(problem, int(dims.max()), [0])
    limit = _cached(cache, "floor_limit", lambda: dmft.solve(
        problem.replace(t_max=1e4), initial=start, limit=True, n_times=81))
    ax.plot(limit.time[1:], limit.risk[0, 1:], "k-", lw=1.2,
            label=f"limit ODE (d = {dims.max()} start)")
    ax.set_xlim(1e-1, 1e4)
    ax.set_ylim(1e-9, 0.1)
    _loglog(ax, f"t = steps / d^{1 + problem.theta:g}")
    ax.legend(fontsize=7)
    ax.set_title(f"(a) green, κ = 0, δ = {first:g} (ϑ = {problem.theta:g}), "
                 f"Δ = {middle_noise:g}", fontsize=9)
    for j, delta in enumerate(section["lr_exponents"][:2]):
        ax = fig.add_subplot(1, 3, 2 + j)
        for i, noise in enumerate(section["noises"]):
            problem, runs = _floor_runs(section, cache, delta, noise)
            floors = np.array([_floor(sim) for sim, _ in runs.values()])
            ode_floors = [float(ode.risk[0, -1]) for _, ode in runs.values()]
            slope, intercept = np.polyfit(np.log(dims), np.log(floors[:, 0]), 1)
            ax.errorbar(dims, floors[:, 0], floors[:, 1], ls="none", marker=MARKERS[i],
                        color=COLORS[i], label=f"Δ = {noise:g}: sims, fit slope {slope:.2f}")
            ax.plot(dims, np.exp(intercept) * dims ** slope, ":", color=COLORS[i], lw=1)
            ax.plot(dims, ode_floors, "-", color=COLORS[i], lw=1, alpha=0.7)
        _loglog(ax, "d", f"risk at t = {t_max:g}")
        ax.legend(fontsize=7, title=f"lines: finite-d ODE (seed 0); −ϑ = {-problem.theta:g}",
                  title_fontsize=7)
        ax.set_title(f"({'bc'[j]}) floors, κ = 0, δ = {delta:g} (Fig. {'45'[j]}b)",
                     fontsize=9)
    fig.suptitle(f"Green region: p = {problem.p}, k = {problem.k}, γ0 = {problem.gamma0:g}, "
                 f"{section['seeds']} seeds, sims to t = {t_max:g} (the paper: 1e4); floor = "
                 "mean of the last two records (t ≥ 0.64 t_max)", fontsize=9)
    return fig


# --- the numerical phase diagram -----------------------------------------------------------

def classify_ode(ode: xr.Dataset) -> str:
    """Region read off a limit-ODE curve: red if it stopped or Q > 1e3; orange if M did not
    move and the risk rose; green if the final risk < 1e-7; blue if it learned to a floor."""
    risk = ode.risk.values[0]
    moved = float(np.abs(ode.M.isel(time=-1) - ode.M.isel(time=0)).max()) > 1e-3
    if not np.isfinite(risk).all() or float(ode.Q.max()) > 1e3:
        return "red"
    if not moved and risk[-1] > risk[0]:
        return "orange"
    if risk[-1] < 1e-7:
        return "green"
    return "blue" if risk[-1] < 0.1 * risk[0] else "orange"


def classify_sims(runs: dict) -> tuple[str, float]:
    """Region read off the final risk at several d, by its fitted exponent in d: red if a seed
    diverged; orange if the risk did not fall below half its start at the largest d, or if
    the final risk grows with d (exponent > 0.15: finite-d learning that fades as d grows,
    towards the limit ODE that does not learn); green if it falls with d (exponent < -0.15,
    a floor ~ d^-theta); else blue (a d-independent floor)."""
    if any(np.isfinite(ds.diverged_at).any() for ds in runs.values()):
        return "red", math.nan
    dims = np.array(list(runs))
    finals = np.array([_floor(ds, last=3)[0] for ds in runs.values()])
    starts = np.array([float(ds.risk.isel(time=0).mean()) for ds in runs.values()])
    exponent = float(np.polyfit(np.log(dims), np.log(finals), 1)[0])
    if finals[-1] > 0.5 * starts[-1] or exponent > 0.15:
        return "orange", exponent
    return ("green" if exponent < -0.15 else "blue"), exponent


def phase_diagram_data(section: dict, cache: str) -> pd.DataFrame:
    """One row per (kappa, delta): the paper's region, the limit ODE's class, the sims' class
    and the fitted exponent of the sims' final risk in d ("none" where not computed)."""
    base, setting = TwoLayerProblem(**section["problem"]), section["sims"]
    start = sims.initial_overlaps(base, section["start_d"], [0])
    rows = []
    for kappa in section["width_exponents"]:
        for delta in section["lr_exponents"]:
            row = dict(kappa=kappa, delta=delta, theory=regime(kappa, delta), ode="none",
                       sims="none", exponent=math.nan)
            rows.append(row)
            if -delta >= kappa + 0.5:  # refused: O(1) jumps per step, no time scale
                continue
            problem = base.replace(width_exponent=kappa, lr_exponent=delta)
            ode = _cached(cache, f"map_ode_{kappa}_{delta}", lambda: dmft.solve(
                problem, initial=start, limit=True, n_times=41))
            row["ode"] = classify_ode(ode)
            short = problem.replace(t_max=setting["t_max"])
            if short.t_max * short.steps_per_time(max(setting["d"])) > setting["step_budget"]:
                continue
            runs = {d: _cached(cache, f"map_sims_{kappa}_{delta}_{d}", lambda: sims.simulate(
                short, d, setting["seeds"], n_times=41)) for d in setting["d"]}
            row["sims"], row["exponent"] = classify_sims(runs)
    return pd.DataFrame(rows)


def phase_diagram_figure(section: dict, cache: str):
    """(delta, kappa) plane: theory regions (background and boundaries), the limit-ODE class
    (inner dot) and the simulations' class at several d (outer ring); a black plus where the
    simulations disagree with the paper's region."""
    table = phase_diagram_data(section, cache)
    setting = section["sims"]
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
    for row in table.itertuples():
        if row.ode == "none":
            ax.plot(row.delta, row.kappa, "x", ms=5, color="0.4")
            continue
        ax.plot(row.delta, row.kappa, "o", ms=6, color=REGION_COLORS[row.ode], mec="k",
                mew=0.4)
        if row.sims != "none":
            ax.plot(row.delta, row.kappa, "o", ms=13, mfc="none",
                    mec=REGION_COLORS[row.sims], mew=2)
            ax.annotate(f"{row.exponent:+.2f}", (row.delta, row.kappa), fontsize=6,
                        xytext=(0, -14), textcoords="offset points", ha="center")
            if row.sims != row.theory:
                ax.plot(row.delta, row.kappa, "+", ms=16, color="k", mew=1.2)
    ax.set_xlim(-1.6, 1.1)
    ax.set_ylim(-0.1, top)
    ax.set_xlabel("δ (learning rate γ ∝ d^−δ)")
    ax.set_ylabel("κ (width exponent, p ∝ d^κ)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=7)
    base = TwoLayerProblem(**section["problem"])
    ax.set_title(f"Numerical phase diagram ({_describe(base)}): dot = limit ODE "
                 f"(t = {base.t_max:g}), ring = sims\nat d = {setting['d']} "
                 f"(t = {setting['t_max']:g}, {setting['seeds']} seeds), number = exponent of "
                 "the sims' final risk in d;\n+ = sims disagree with the paper's region; "
                 "x = no time scale; no ring = sims beyond the step budget", fontsize=8)
    return fig


def section_cache(cache: str, name: str, section: dict) -> str:
    """The cache directory of one figure: its name and the hash of its config section."""
    digest = hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(cache, f"{name}-{digest}")


FIGURES = {"regions": regions_figure, "blue_line": curves_figure, "noises": curves_figure,
           "orange": curves_figure, "learning_rates": learning_rates_figure, "floors": floors_figure, "phase_diagram": phase_diagram_figure}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.two_layer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", help=f"some of {list(FIGURES)}; default: all")
    parser.add_argument("--out", default="docs/gallery")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--cache", default="results/two_layer_cache")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.figures) - set(FIGURES))
    if unknown:
        parser.error(f"figures {unknown} are not allowed: figures must be some of {list(FIGURES)}")
    sections = read_yaml(args.config)["figures"]
    os.makedirs(args.out, exist_ok=True)
    for name in args.figures or list(FIGURES):
        with style():
            fig = FIGURES[name](sections[name], section_cache(args.cache, name, sections[name]))
            path = os.path.join(args.out, f"two_layer_{name}.png")
            fig.savefig(path, dpi=110)
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
