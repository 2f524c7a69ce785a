"""SGD against its surrogates on this model (issue 22, docs/theory.md §9): the paired table,
the surrogate-error figure and the SMF's (eta, b) map.

    python -m analysis.smf [config/smf.yaml] [--out docs/gallery] [--cache results/smf]

The simulations of config/smf.yaml's experiments `smf_two_cluster`, `smf_three_cluster` and
`smf_map` are run here with the simulator (`sims.simulate_batch`, one batch of every case per
grid point, with the experiment's entropy as the pipeline draws it), so all cases of a seed
share data, w(0) and mask uniforms and their differences are paired. Runs are cached as
netCDF (one file per grid point) and read back on the next call.

Paired discrepancy of a surrogate X (shared smf.md §3): per seed
D_i(t) = eps_X - eps_SGD; over t in [1, t_max] the largest |mean_i D_i(t)|, its time t*, and
that value in units of SGD's seed-to-seed sem at t* ("in SGD sems") and of the paired sem
of D at t*.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from .style import COLORS, MARKERS, new_figure, style

SURROGATES = ("smf", "smf_order2", "gauss_sgd", "flow")
LABELS = {"smf": "SMF", "smf_order2": "SMF order 2", "gauss_sgd": "Gaussian-mask SGD",
          "flow": "flow of the mean drift", "sgd": "SGD"}
CURVE_EXPERIMENTS = ("smf_two_cluster", "smf_three_cluster")
MAP_EXPERIMENT = "smf_map"
MODEL_NAMES = {"two_cluster": "two-cluster", "three_cluster": "three-cluster"}
RESOLVED = 3.0  # a discrepancy counts as measured when it is this many paired sems
ESCAPE_ERROR = 0.3  # three-cluster: a run has escaped the plateau eps = 1/2 when eps <= this


# ------------------------------------------------------------------------- simulations
def grid_points(experiment: dict) -> list[dict]:
    """Every combination of the experiment's grid axes, as {axis: value}."""
    axes = experiment.get("grid") or {}
    points = [{}]
    for axis, values in axes.items():
        points = [{**point, axis: value} for point in points for value in values]
    return points


def simulate_point(config: dict, name: str, point: dict, cache: Path | None) -> xr.Dataset:
    """gen_error (case, seed, time) of every case of the experiment at one grid point,
    simulated in one batch (paired by seed) or read from the cache."""
    from sims import Problem, simulate_batch
    from workflow.config import experiment_entropy

    experiment = config["experiments"][name]
    words = ",".join(f"{axis}={value:g}" for axis, value in point.items())
    path = None if cache is None else cache / name / f"{words}.nc"
    if path is not None and path.exists():
        return xr.load_dataset(path)
    cases = experiment["cases"]
    problems = [Problem(**{**experiment["problem"], **fields, **point})
                for fields in cases.values()]
    sims = experiment["sims"]
    runs = simulate_batch(problems, sims["d"][0], sims["seeds"],
                          entropy=experiment_entropy(name, config["seed"]))
    ds = xr.concat([run.gen_error for run in runs], dim="case").to_dataset(name="gen_error")
    ds = ds.assign_coords(case=list(cases)).assign_attrs(
        experiment=name, d=sims["d"][0], model=experiment["problem"]["model"], **point)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(path)
    return ds


# ------------------------------------------------------------------------- paired errors
def paired_discrepancy(runs: xr.Dataset, case: str, after: float = 1.0) -> dict:
    """The paired discrepancy of `case` against case 'sgd' over t in [after, t_max]
    (module docstring): max |mean D|, t*, in SGD sems, in paired sems, D(t_max) and its
    paired sem, eps_SGD(t_max) and its sem, SGD's typical sem (median over t), seeds."""
    eps = runs.gen_error.sel(time=slice(after, None))
    seeds = eps.sizes["seed"]
    root = math.sqrt(seeds)
    difference = eps.sel(case=case) - eps.sel(case="sgd")
    mean = difference.mean("seed")
    paired_sem = difference.std("seed", ddof=1) / root
    sgd_sem = eps.sel(case="sgd").std("seed", ddof=1) / root
    worst = int(np.argmax(np.abs(mean.values)))
    escape = escape_times(runs.gen_error)
    delay = escape.sel(case=case) - escape.sel(case="sgd")
    return dict(max_abs=float(abs(mean[worst])), t_star=float(mean.time[worst]),
                in_sgd_sems=float(abs(mean[worst]) / sgd_sem[worst]),
                in_paired_sems=float(abs(mean[worst]) / paired_sem[worst]),
                paired_sem=float(paired_sem[worst]), end=float(mean[-1]),
                end_sem=float(paired_sem[-1]),
                sgd_end=float(eps.sel(case="sgd").mean("seed")[-1]),
                sgd_end_sem=float(sgd_sem[-1]), sgd_sem=float(sgd_sem.median()),
                sgd_sem_max=float(sgd_sem.max()), seeds=seeds,
                escape_delay=float(delay.mean()), escape_delay_sem=float(delay.std(ddof=1) / root),
                sgd_escape=float(escape.sel(case="sgd").mean()))


def escape_times(gen_error: xr.DataArray, level: float = ESCAPE_ERROR) -> xr.DataArray:
    """Per run, the first t with eps_g <= level (linear interpolation; the project's one
    crossing rule, dmft.magnetization.first_crossing): the escape from the symmetric
    plateau eps = 1/2 of the three-cluster model (docs/theory.md §6.6)."""
    from dmft.magnetization import first_crossing

    return xr.apply_ufunc(lambda values: first_crossing(gen_error.time.values, -values, -level),
                          gen_error, input_core_dims=[["time"]])


def curve_summaries(config: dict, cache: Path | None) -> dict:
    """{(experiment, eta): {surrogate: paired_discrepancy}} of the curve experiments."""
    out = {}
    for name in CURVE_EXPERIMENTS:
        for point in grid_points(config["experiments"][name]):
            runs = simulate_point(config, name, point, cache)
            out[name, point["eta"]] = {case: paired_discrepancy(runs, case)
                                       for case in SURROGATES if case in runs.case}
    return out


def markdown_table(summaries: dict, config: dict) -> str:
    """The shared smf.md §4 table for every model and eta (paired, in SGD sems)."""
    lines = ["| model | η | method | seeds | max \\|Δε\\| t∈[1,T] | t* | /sem_SGD "
             "| /sem_paired | Δε(T) ± sem_pair | ε_SGD(T) ± sem | Δt_escape ± sem_pair |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (name, eta), cases in summaries.items():
        model = MODEL_NAMES[config["experiments"][name]["problem"]["model"]]
        for case, s in cases.items():
            lines.append(
                f"| {model} | {eta:g} | {LABELS[case]} | {s['seeds']} | {s['max_abs']:.2e} | "
                f"{s['t_star']:.3g} | {s['in_sgd_sems']:.1f} | {s['in_paired_sems']:.1f} | "
                f"{s['end']:+.1e} ± {s['end_sem']:.0e} | {s['sgd_end']:.4f} ± "
                f"{s['sgd_end_sem']:.4f} | " + (
                    f"{s['escape_delay']:+.2f} ± {s['escape_delay_sem']:.2f} (SGD "
                    f"{s['sgd_escape']:.1f}) |" if model == "three-cluster" else "– |"))
    return "\n".join(lines)


def fitted_slope(etas, errors, sems) -> float | None:
    """Least-squares slope of log max|D| against log eta over the resolved points (error
    at least RESOLVED paired sems); None if fewer than two are resolved."""
    etas, errors, sems = map(np.asarray, (etas, errors, sems))
    resolved = (errors > 0) & (errors >= RESOLVED * sems) & np.isfinite(sems)
    if resolved.sum() < 2:
        return None
    return float(np.polyfit(np.log(etas[resolved]), np.log(errors[resolved]), 1)[0])


# ------------------------------------------------------------------------- figures
def plot_surrogate_errors(summaries: dict, config: dict):
    """max_t |eps_X - eps_SGD| (paired by seed) against eta, log-log, one line per surrogate
    and one panel per model; the band spans SGD's seed-to-seed sem over t (median to max);
    the legend gives the slope fitted over the resolved points (open markers: not
    resolved). A last panel: the three-cluster escape delay t_esc(X) - t_esc(SGD), paired."""
    with style():
        fig = new_figure(figsize=(15, 4.8))
        axes = fig.subplots(1, len(CURVE_EXPERIMENTS) + 1)
        for ax, name in zip(axes, CURVE_EXPERIMENTS):
            etas = sorted(eta for experiment, eta in summaries if experiment == name)
            rows = [summaries[name, eta] for eta in etas]
            ax.fill_between(etas, [row["smf"]["sgd_sem"] for row in rows],
                            [row["smf"]["sgd_sem_max"] for row in rows], color="0.85",
                            label="SGD seed sem over t (median to max)")
            for i, case in enumerate(SURROGATES):
                errors = np.array([row[case]["max_abs"] for row in rows])
                sems = np.array([row[case]["paired_sem"] for row in rows])
                slope = fitted_slope(etas, errors, sems)
                words = "no resolved slope" if slope is None else f"slope {slope:.2f}"
                color = COLORS[i]
                ax.errorbar(etas, errors, yerr=sems, color=color, marker=MARKERS[i], ms=6,
                            capsize=2, label=f"{LABELS[case]} ({words})", mfc="none")
                resolved = (errors > 0) & (errors >= RESOLVED * sems) & np.isfinite(sems)
                ax.plot(np.asarray(etas)[resolved], errors[resolved], ls="none",
                        marker=MARKERS[i], ms=6, color=color)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(1e-4, 0.5)
            ax.set_xticks(etas, [f"{eta:g}" for eta in etas])
            ax.minorticks_off()
            ax.set_xlabel("learning rate η")
            ax.set_title(_experiment_words(config, name), fontsize=9.5)
            ax.legend(fontsize=7, loc="upper left")
        axes[0].set_ylabel("max over t ∈ [1, T] of |ε_X − ε_SGD| (paired by seed)")
        _plot_escape_delays(axes[-1], summaries, config, CURVE_EXPERIMENTS[-1])
        fig.suptitle("Surrogates of SGD: paired error against η (filled markers: resolved, "
                     f"≥ {RESOLVED:g} paired sems; bars: paired sem)", fontsize=10)
    return fig


def _experiment_words(config: dict, name: str) -> str:
    experiment = config["experiments"][name]
    problem, sims = experiment["problem"], experiment["sims"]
    return (f"{MODEL_NAMES[problem['model']]}, b = {problem['b']}, d = {sims['d'][0]}, "
            f"{sims['seeds']} seeds, t ≤ {problem['t_max']:g}")


def _plot_escape_delays(ax, summaries: dict, config: dict, name: str) -> None:
    """Mean paired escape delay (first t with eps <= ESCAPE_ERROR) of each surrogate."""
    etas = sorted(eta for experiment, eta in summaries if experiment == name)
    for i, case in enumerate(SURROGATES):
        rows = [summaries[name, eta][case] for eta in etas]
        shift = 1 + 0.04 * (i - 1.5)  # side by side
        ax.errorbar(np.asarray(etas) * shift, [row["escape_delay"] for row in rows],
                    yerr=[row["escape_delay_sem"] for row in rows], color=COLORS[i],
                    marker=MARKERS[i], ms=6, capsize=2, label=LABELS[case])
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(etas, [f"{eta:g}" for eta in etas])
    ax.minorticks_off()
    ax.set_xlabel("learning rate η")
    ax.set_ylabel(f"t_escape(X) − t_escape(SGD) (first ε ≤ {ESCAPE_ERROR:g}), paired")
    sgd = ", ".join(f"{summaries[name, eta]['smf']['sgd_escape']:.1f}" for eta in etas)
    ax.set_title(f"three-cluster: escape delay against SGD\n(SGD escapes at t = {sgd})",
                 fontsize=9.5)
    ax.legend(fontsize=7, loc="lower left")


def map_summary(config: dict, cache: Path | None) -> xr.Dataset:
    """The SMF's paired discrepancy over the (eta, b) grid of the map experiment: variables
    in_sgd_sems, in_paired_sems, max_abs (eta, b)."""
    experiment = config["experiments"][MAP_EXPERIMENT]
    etas, bs = experiment["grid"]["eta"], experiment["grid"]["b"]
    values = {key: np.full((len(etas), len(bs)), np.nan)
              for key in ("in_sgd_sems", "in_paired_sems", "max_abs")}
    for i, eta in enumerate(etas):
        for j, b in enumerate(bs):
            summary = paired_discrepancy(simulate_point(config, MAP_EXPERIMENT,
                                                        {"eta": eta, "b": b}, cache), "smf")
            for key in values:
                values[key][i, j] = summary[key]
    return xr.Dataset({key: (("eta", "b"), v) for key, v in values.items()},
                      coords={"eta": etas, "b": bs})


def plot_map(summary: xr.Dataset, config: dict):
    """The SMF's max |eps_SMF - eps_SGD| in SGD seed sems over (eta, b), each cell written
    out; a frame marks a resolved difference (>= RESOLVED paired sems)."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    experiment = config["experiments"][MAP_EXPERIMENT]
    values = summary.in_sgd_sems.values.T  # rows b, columns eta
    with style():
        fig = new_figure(figsize=(7.4, 5.2))
        ax = fig.add_subplot()
        norm = TwoSlopeNorm(vmin=0, vcenter=1, vmax=max(3.0, float(np.nanmax(values))))
        image = ax.imshow(values, origin="lower", cmap="RdYlGn_r", norm=norm, aspect="auto")
        for (j, i), value in np.ndenumerate(values):
            ax.text(i, j, f"{value:.1f}\n{summary.max_abs.values[i, j]:.0e}", ha="center",
                    va="center", fontsize=7.5)
            if summary.in_paired_sems.values[i, j] >= RESOLVED:
                ax.add_patch(Rectangle((i - 0.47, j - 0.47), 0.94, 0.94, fill=False, lw=1.5,
                                       ec="k"))
        ax.set_xticks(range(summary.sizes["eta"]), [f"{e:g}" for e in summary.eta.values])
        ax.set_yticks(range(summary.sizes["b"]), [f"{b:g}" for b in summary.b.values])
        ax.set_xlabel("learning rate η")
        ax.set_ylabel("batch fraction b")
        fig.colorbar(image, ax=ax, label="max_t |ε_SMF − ε_SGD| in SGD seed sems at t*")
        problem, sims = experiment["problem"], experiment["sims"]
        ax.set_title(f"SMF against SGD, {MODEL_NAMES[problem['model']]}, d = {sims['d'][0]}, "
                     f"{sims['seeds']} seeds, t ∈ [1, {problem['t_max']:g}]\ncell: SGD sems "
                     f"(≤ 1 within SGD's sem) and max |Δε|; framed: resolved "
                     f"(≥ {RESOLVED:g} paired sems)", fontsize=9.5)
    return fig


DMFT_CASES = ("sgd", "gauss_sgd", "flow")  # the processes the DMFT solves (theory §9.2)
# three-cluster at eta = 0.05: 800 steps x 8 nodes of m(0), minutes per solve; left out
DMFT_ETAS = {"smf_two_cluster": (0.05, 0.2, 0.5, 1), "smf_three_cluster": (0.2, 0.5, 1)}


def solve_dmft_point(config: dict, name: str, eta: float, cache: Path | None) -> xr.Dataset:
    """gen_error (case, time) of the DMFT of SGD, Gaussian-mask SGD and the flow at one eta
    (default settings; three-cluster: the law of m(0) at the experiment's d), or the cache."""
    import dmft
    from sims import Problem

    experiment = config["experiments"][name]
    path = None if cache is None else cache / f"{name}_dmft" / f"eta={eta:g}.nc"
    if path is not None and path.exists():
        return xr.load_dataset(path)
    problem = experiment["problem"]
    d = {"d": experiment["sims"]["d"][0]} if problem["model"] == "three_cluster" else {}
    curves = [dmft.solve(Problem(**{**problem, **experiment["cases"][case], "eta": eta}),
                         **d).gen_error for case in DMFT_CASES]
    ds = xr.concat(curves, dim="case").to_dataset(name="gen_error").assign_coords(
        case=list(DMFT_CASES))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(path)
    return ds


def plot_curves(config: dict, name: str, cache: Path | None, dmft_etas=None):
    """One column per eta: top, eps_g(t) of SGD and its surrogates (sims, seed means; SGD's
    seed sem shaded) with the DMFT of SGD, gauss_sgd and flow (dashed); bottom, the paired
    differences eps_X - eps_SGD (mean, paired sem shaded) and the DMFT's eps_X - eps_SGD."""
    experiment = config["experiments"][name]
    etas = experiment["grid"]["eta"]
    dmft_etas = etas if dmft_etas is None else dmft_etas
    cases = ["sgd", *SURROGATES]
    with style():
        fig = new_figure(figsize=(3.3 * len(etas) + 2.6, 6.4))
        axes = fig.subplots(2, len(etas), sharex=True, sharey="row", squeeze=False)
        for column, eta in enumerate(etas):
            later = slice(eta / 2, None)  # t > 0 on the log axis
            runs = simulate_point(config, name, {"eta": eta}, cache).gen_error.sel(time=later)
            theory = (solve_dmft_point(config, name, eta, cache).gen_error.sel(time=later)
                      if eta in dmft_etas else None)
            top, bottom = axes[:, column]
            root = math.sqrt(runs.sizes["seed"])
            for i, case in enumerate(cases):
                curve, color = runs.sel(case=case), COLORS[i]
                mean = curve.mean("seed")
                top.plot(mean.time, mean, color=color, lw=1.3, label=f"{LABELS[case]} (sims)")
                if case == "sgd":
                    sem = curve.std("seed", ddof=1) / root
                    top.fill_between(mean.time, mean - sem, mean + sem, color=color, alpha=0.25)
                    continue
                difference = curve - runs.sel(case="sgd")
                mean_d, sem_d = difference.mean("seed"), difference.std("seed", ddof=1) / root
                bottom.plot(mean_d.time, mean_d, color=color, lw=1.2)
                bottom.fill_between(mean_d.time, mean_d - sem_d, mean_d + sem_d, color=color,
                                    alpha=0.2)
            if theory is not None:
                for case in DMFT_CASES:
                    color = COLORS[cases.index(case)]
                    top.plot(theory.time, theory.sel(case=case), color=color, ls="--", lw=1.1,
                             label=f"DMFT {LABELS[case]}")
                    if case != "sgd":
                        bottom.plot(theory.time, theory.sel(case=case) - theory.sel(case="sgd"),
                                    color=color, ls="--", lw=1.1)
            bottom.axhline(0, color="0.5", lw=0.8)
            top.set_title(f"η = {eta:g}" + ("" if theory is not None else " (no DMFT)"),
                          fontsize=10)
            for ax in (top, bottom):
                ax.set_xscale("log")
            bottom.set_xlabel("training time t")
        axes[0, 0].set_ylabel("ε_g")
        axes[1, 0].set_ylabel("ε_X − ε_SGD (paired)")
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7.5,
                           frameon=False)
        problem, sims = experiment["problem"], experiment["sims"]
        fig.suptitle(f"SGD and its surrogates, {MODEL_NAMES[problem['model']]}, b = "
                     f"{problem['b']}, d = {sims['d'][0]}, {sims['seeds']} seeds (solid: sims; "
                     "dashed: DMFT; shaded: SGD seed sem, paired sem)", fontsize=10)
    return fig


# ------------------------------------------------------------------------- entry point
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis.smf", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("config", nargs="?", default="config/smf.yaml")
    parser.add_argument("--out", default="docs/gallery", type=Path)
    parser.add_argument("--cache", default="results/smf", type=Path)
    parser.add_argument("--only", choices=("errors", "map", "curves"), default=None)
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "errors"):
        summaries = curve_summaries(config, args.cache)
        table = markdown_table(summaries, config)
        (args.out / "smf_table.md").write_text(table + "\n")
        print(table)
        plot_surrogate_errors(summaries, config).savefig(args.out / "smf_surrogate_errors.png")
    if args.only in (None, "map"):
        summary = map_summary(config, args.cache)
        print(summary.in_sgd_sems.to_pandas().round(2))
        plot_map(summary, config).savefig(args.out / "smf_map.png")
    if args.only in (None, "curves"):
        for name in CURVE_EXPERIMENTS:
            plot_curves(config, name, args.cache, DMFT_ETAS[name]).savefig(
                args.out / f"{name}.png")


if __name__ == "__main__":
    main()
