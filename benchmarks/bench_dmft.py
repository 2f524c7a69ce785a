"""Benchmark of dmft.solve over the paper's horizon: time, peak memory, accuracy, divergences.

Two estimators of the memory kernel M_R (docs/theory.md §5.5), each in a fresh subprocess
(peak RSS from resource.getrusage; numba compiled before the timing):

* "all sources": every response source followed to the end (O(N_R K^3)), with the
  previous defaults n_samples=4000, response_samples=400, n_replicas=8;
* "multiresolution": the defaults of `dmft.solve` (sources followed per octave of lag).

Cases: GD lam=0 (two-cluster, Fig. 1 left b=1 / Fig. 4 left), persistent-SGD b=0.3
1/tau=0.6 (Fig. 1 left), three-cluster GD (Fig. 2 right: alpha=3, Delta=0.05, L=0.7,
lam=0.1, R=0.01, d=1000). K = t_max / eta steps with eta = 0.2.

Columns: wall time and peak memory, both also as ratios to the baseline (the "all
sources" GD solve at the smallest K, measured in the same run); "max|d eps|" and "max|z|"
against finite-d simulations (d=2000, 20 seeds two-cluster; d=1000, 40 seeds
three-cluster; cached in benchmarks/.cache) over 1 <= t <= min(t_max, 200), z with the
combined standard error; "diverged" = solves with status "diverged" out of --seeds seeds
(only at each case's paper horizon).

Usage: python benchmarks/bench_dmft.py [--K 250,500,1000,2000] [--cases gd,psgd,three]
                                       [--seeds 10] [--old-max-K 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CACHE = Path(__file__).parent / ".cache"
CASES = {
    "gd": dict(problem=dict(), d=None, sims_d=2000, sims_seeds=20, horizon=500),
    "psgd": dict(problem=dict(process="persistent", b=0.3, tau=1 / 0.6), d=None,
                 sims_d=2000, sims_seeds=20, horizon=500),
    "three": dict(problem=dict(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1,
                               R=0.01), d=1000, sims_d=1000, sims_seeds=40, horizon=1000),
}
ESTIMATORS = {
    "all sources": dict(n_samples=4000, response_samples=400, n_replicas=8,
                        response_window=None),
    "multiresolution": dict(),
}

SOLVE = r"""
import json, resource, sys, time
import numpy as np, dmft
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
p = Problem(**cfg["problem"], t_max=cfg["K"] * 0.2)
kw = dict(cfg["settings"], **({"d": cfg["d"]} if cfg["d"] else {}))
dmft.solve(p.replace(t_max=0.4), **dict(kw, n_samples=64, response_samples=64))  # compile
start = time.perf_counter()
ds = dmft.solve(p, seed=cfg["seed"], memory_limit="20GB", **kw)
wall = time.perf_counter() - start
print(json.dumps(dict(wall=wall, rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      status=ds.attrs["status"], gen_error=ds.gen_error.values.tolist(),
                      mc_error=ds.gen_error_mc_error.values.tolist())))
"""

SIMULATE = r"""
import json, sys
import numpy as np, sims
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
ds = sims.simulate(Problem(**cfg["problem"], t_max=cfg["t_max"]), d=cfg["d"],
                   seeds=cfg["seeds"], entropy=7)
g = ds.gen_error
print(json.dumps(dict(mean=g.mean("seed").values.tolist(),
                      se=(g.std("seed", ddof=1) / np.sqrt(g.sizes["seed"])).values.tolist())))
"""


def child(code: str, cfg: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark child failed for {cfg}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def simulations(case: str, t_max: float) -> dict:
    """Seed mean and standard error of gen_error from finite-d simulations (cached)."""
    spec = CASES[case]
    cfg = dict(problem=spec["problem"], t_max=t_max, d=spec["sims_d"], seeds=spec["sims_seeds"])
    path = CACHE / f"sims-{case}-{t_max:g}.json"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        path.write_text(json.dumps(child(SIMULATE, cfg)))
    return json.loads(path.read_text())


def solve(case: str, K: int, estimator: str, seed: int = 0) -> dict:
    spec = CASES[case]
    return child(SOLVE, dict(problem=spec["problem"], d=spec["d"], K=K, seed=seed,
                             settings=ESTIMATORS[estimator]))


def accuracy(case: str, K: int, result: dict):
    """max |eps_DMFT - eps_sims| and max |z| over 1 <= t <= min(K eta, 200)."""
    import numpy as np
    steps = min(K, 1000)
    ref = simulations(case, steps * 0.2)
    theory = np.array(result["gen_error"][5:steps + 1])
    err = np.array(result["mc_error"][5:steps + 1])
    mean, se = np.array(ref["mean"][5:]), np.array(ref["se"][5:])
    diff = np.abs(theory - mean)
    return float(np.nanmax(diff)), float(np.nanmax(diff / np.hypot(err, se)))


def divergences(case: str, K: int, estimator: str, seeds: int) -> int:
    return sum(solve(case, K, estimator, seed)["status"] != "success" for seed in range(seeds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--K", default="250,500,1000,2000")
    parser.add_argument("--cases", default="gd,psgd,three")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--old-max-K", type=int, default=1000,
                        help="largest K for the O(K^3) 'all sources' estimator")
    args = parser.parse_args()
    Ks = [int(k) for k in args.K.split(",")]
    cases = args.cases.split(",")
    base = solve(cases[0], Ks[0], "all sources")
    print(f"baseline: {cases[0]}, K={Ks[0]}, all sources: {base['wall']:.2f} s, "
          f"{base['rss'] / 1e9:.2f} GB", flush=True)
    print(f"{'case':<6}{'K':>6}  {'estimator':<17}{'time s':>8}{'x base':>8}{'peak GB':>9}"
          f"{'x base':>8}{'max|d eps|':>12}{'max|z|':>8}{'diverged':>10}", flush=True)
    for case in cases:
        for K in Ks:
            for estimator in ESTIMATORS:
                if estimator == "all sources" and K > args.old_max_K:
                    continue
                r = solve(case, K, estimator)
                acc, z = accuracy(case, K, r)
                div = (f"{divergences(case, K, estimator, args.seeds)}/{args.seeds}"
                       if K == CASES[case]["horizon"] and args.seeds else "")
                print(f"{case:<6}{K:>6}  {estimator:<17}{r['wall']:>8.2f}"
                      f"{r['wall'] / base['wall']:>8.2f}{r['rss'] / 1e9:>9.2f}"
                      f"{r['rss'] / base['rss']:>8.2f}{acc:>12.4f}{z:>8.2f}{div:>10}",
                      flush=True)


if __name__ == "__main__":
    main()
