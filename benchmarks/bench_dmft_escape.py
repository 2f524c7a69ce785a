"""Benchmark of the average over m(0) (docs/theory.md §5.9): cost and honesty of the errors.

Cost: Fig. 2 right (three-cluster GD, alpha=3, Delta=0.05, L=0.7, lam=0.1, R=0.01, eta=0.2,
d=1000) to K steps with the escape rule and with the Gauss rule (the baseline, the earlier
default), each in a fresh subprocess (numba compiled first): CPU seconds and peak RSS, as
ratios to the baseline measured in the same run.

Honesty: `--seeds` solver seeds of Fig. 2 right (GD, t <= 20) and Fig. 2 left (persistent
SGD b = 0.3, t <= 40) with the escape rule; per t, the spread of gen_error over the solver
seeds divided by the root mean square of the reported gen_error_mc_error (and by its
mean: the reported error s / c4 is unbiased for the spread in the mean, §5.1). Printed at
a few times (with its 90 % bootstrap interval over the seeds) and as the range over t >= 1;
`--figure PATH` draws the mean ratio and its interval against t with the 0.7-1.5 band.

Memory: the escape rule with all nodes in one batch (`dmft.solver.NODE_BATCH_BYTES`
lifted) and in batches that fit `--memory-limit` (§5.7): CPU, peak RSS and the largest
difference of gen_error from the default solve (zero: batching does not change the numbers).

Usage: python benchmarks/bench_dmft_escape.py [--K 1000] [--seeds 12] [--figure out.png]
       [--memory-limit 3GB] [--skip-cost] [--skip-honesty]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

COST = r"""
import json, resource, sys, time
import dmft
import dmft.solver
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
if cfg["one_batch"]:  # every node at once, whatever their size
    dmft.solver.NODE_BATCH_BYTES = float("inf")
p = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, R=0.01, eta=0.2,
            process="gd", t_max=cfg["K"] * 0.2)
dmft.solve(p.replace(t_max=0.4), d=1000, n_samples=64, response_samples=64,
           magnetization_rule=cfg["rule"])  # compile
before = resource.getrusage(resource.RUSAGE_SELF)
out = dmft.solve(p, d=1000, magnetization_rule=cfg["rule"], memory_limit=cfg["memory_limit"])
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps(dict(cpu=cpu, rss=after.ru_maxrss * 1024, gen_error=out.gen_error.values.tolist())))
"""

BASE = dict(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, R=0.01, eta=0.2)
CASES = {"GD (Fig. 2 right, t <= 20)": dict(process="gd", t_max=20),
         "p-SGD b = 0.3 (Fig. 2 left, t <= 40)": dict(process="persistent", b=0.3,
                                                       tau=3.3333, t_max=40)}
BOOTSTRAP = 2000  # resamples of the solver seeds for the interval of the honesty ratio


def cost(K: int, rule: str, memory_limit: str = "8GB", one_batch: bool = False) -> dict:
    config = dict(K=K, rule=rule, memory_limit=memory_limit, one_batch=one_batch)
    out = subprocess.run([sys.executable, "-c", COST, json.dumps(config)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def honesty(fields: dict, seeds: int):
    """(time, spread / rms error, spread / mean error, its 90 % bootstrap interval over the
    solver seeds (2, time), mean curve)."""
    import dmft
    from sims.problem import Problem
    problem = Problem(**BASE, **fields)
    runs = [dmft.solve(problem, d=1000, seed=s) for s in range(seeds)]
    eps = np.array([r.gen_error.values for r in runs])
    err = np.array([r.gen_error_mc_error.values for r in runs])
    spread = eps.std(axis=0, ddof=1)
    resample = np.random.default_rng(0).integers(0, seeds, (BOOTSTRAP, seeds))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = eps[resample].std(axis=1, ddof=1) / err[resample].mean(axis=1)
        return (runs[0].time.values, spread / np.sqrt((err ** 2).mean(axis=0)),
                spread / err.mean(axis=0), np.percentile(boot, [5, 95], axis=0),
                eps.mean(axis=0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--K", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--figure", default=None)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-honesty", action="store_true")
    args = parser.parse_args()
    if not args.skip_cost:
        _cost_table(args.K, args.memory_limit)
    if not args.skip_honesty:
        _honesty_table(args.seeds, args.figure)


def _cost_table(K: int, memory_limit: str):
    rows = {"gauss": cost(K, "gauss"), "escape": cost(K, "escape"),
            "escape, one batch": cost(K, "escape", "20GB", one_batch=True),
            f"escape, {memory_limit}": cost(K, "escape", memory_limit)}
    base, default = rows["gauss"], np.array(rows["escape"]["gen_error"])
    print(f"three-cluster GD, d = 1000, K = {K}, 8 nodes x 2 groups of 4000")
    print(f"{'rule':>17} {'CPU s':>8} {'x gauss':>8} {'peak MB':>8} {'x gauss':>8} "
          f"{'max|d eps| vs default':>24}")
    for rule, row in rows.items():
        change = np.nanmax(np.abs(np.array(row["gen_error"]) - default))
        print(f"{rule:>17} {row['cpu']:8.1f} {row['cpu'] / base['cpu']:8.2f} "
              f"{row['rss'] / 1e6:8.0f} {row['rss'] / base['rss']:8.2f} {change:24.1e}")


def _honesty_table(seeds: int, figure):
    curves = {}
    for name, fields in CASES.items():
        time, rms, mean, band, eps = honesty(fields, seeds)
        varying = (time >= 1) & np.isfinite(rms) & (eps < 0.49)  # left the symmetric point
        print(f"\n{name}, {seeds} solver seeds: spread / reported error")
        print(f"  range over t >= 1 (rms): {np.nanmin(rms[varying]):.2f}-"
              f"{np.nanmax(rms[varying]):.2f}; (mean): {np.nanmin(mean[varying]):.2f}-"
              f"{np.nanmax(mean[varying]):.2f}")
        curves[name] = (time[varying], mean[varying], band[:, varying])
        outside = varying & ((mean < 0.7) | (mean > 1.5))
        clear = outside & ((band[1] < 0.7) | (band[0] > 1.5))
        print(f"  outside 0.7-1.5 (mean): {outside.sum()} of {varying.sum()} times"
              + (f" (t = {time[outside].min():.1f}-{time[outside].max():.1f})" if outside.any()
                 else "") + f"; with the 90 % interval outside too: {clear.sum()}")
        for t in (2, 3, 3.5, 4, 5, 6, 8, 12, 16, 20, 30, 40):
            k = np.searchsorted(time, t)
            if k < len(time) and varying[k]:
                print(f"  t = {time[k]:5.1f}  eps = {eps[k]:.4f}  rms ratio {rms[k]:.2f}  "
                      f"mean ratio {mean[k]:.2f} [{band[0, k]:.2f}, {band[1, k]:.2f}]")
    if figure:
        _figure(curves, seeds, figure)


def _figure(curves: dict, seeds: int, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    ax.axhspan(0.7, 1.5, color="0.9", label="0.7-1.5")
    for name, (time, ratio, band) in curves.items():
        line, = ax.plot(time, ratio, label=name)
        ax.fill_between(time, band[0], band[1], color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(1, color="k", lw=0.6)
    ax.set(xlabel="t", ylabel="spread over seeds / mean reported error", ylim=(0, 2.5),
           title=f"DMFT error bars over {seeds} solver seeds (escape rule, d = 1000)\n"
                 "shaded: 90 % bootstrap interval over the seeds")
    ax.legend(loc="upper right", fontsize="small")
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
