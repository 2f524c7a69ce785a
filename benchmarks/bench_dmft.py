"""Benchmark of dmft.solve: time, peak memory and accuracy (prints a table).

Each solve runs in a fresh subprocess (peak RSS from resource.getrusage; numba compiled
before the timing). Ratios ("x base") are against the baseline measured in the same run:
the direct numpy float64 causal pass (all samples carry T) at the smallest size, K = 100.

Accuracy ("max|d eps|") is the largest |gen_error - gen_error_ref| over the curve
(t > 0), the reference being a solve with 4x more samples and 4x more response samples
and another seed (so it overstates the error by about sqrt(1 + 1/4)); "mc err" is the
largest replica standard error `gen_error_mc_error` the solve reports itself.

Rows: the scaling rows (GD and persistent-SGD b=0.3, N=4000, N_R=400, K=100..500), the
paper's Fig. 1 left (two-cluster alpha=2, Delta=0.5, lam=0, R=0.01, eta=0.2, persistent-SGD
1/tau=0.6, b = 1, 0.3, 0.1, t_max=100: K=500) with the defaults of `dmft.solve`, and
K = 1000 (t_max=200, b=0.3) with the defaults.
Usage: python benchmarks/bench_dmft.py [--quick]   (--quick: no reference solves for the
K = 500 rows and no K = 1000 row)
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, dmft
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
p = Problem(process=cfg["process"], b=cfg["b"], tau=cfg["tau"], t_max=cfg["K"] * 0.2)
kw = {k: cfg[k] for k in ("n_samples", "response_samples", "backend", "response_dtype")
      if cfg.get(k) is not None}
dmft.solve(p.replace(t_max=0.4), **dict(kw, n_samples=64, response_samples=64))  # compile
start = time.perf_counter()
cpu = time.process_time()
ds = dmft.solve(p, seed=cfg["seed"], memory_limit="20GB", **kw)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps(dict(wall=wall, cpu=cpu,
                      rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      n_samples=int(ds.attrs["n_samples"]),
                      response=int(ds.attrs["response_samples_per_group"] * ds.attrs["groups"]),
                      gen_error=ds.gen_error.values[1:].tolist(),
                      mc_error=float(ds.gen_error_mc_error.values[1:].max()))))
"""

PROCESSES = {"gd": dict(process="gd", b=1.0, tau=None),
             "p-sgd b=1": dict(process="persistent", b=1.0, tau=1 / 0.6),
             "p-sgd b=0.3": dict(process="persistent", b=0.3, tau=1 / 0.6),
             "p-sgd b=0.1": dict(process="persistent", b=0.1, tau=1 / 0.6)}


def run(process, K, N=None, NR=None, backend="numba", dtype=None, seed=0):
    """One solve in a subprocess; N, NR None: the defaults of dmft.solve."""
    cfg = dict(PROCESSES[process], K=K, n_samples=N, response_samples=NR, backend=backend,
               response_dtype=dtype, seed=seed)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def accuracy(process, K, result):
    import numpy as np
    ref = run(process, K, 4 * result["n_samples"], 4 * result["response"], seed=1)
    return float(np.max(np.abs(np.array(result["gen_error"]) - ref["gen_error"])))


def main(quick: bool):
    base = run("p-sgd b=0.3", 100, 2000, 2000, backend="numpy", dtype="float64")  # all carry T
    rows = [("p-sgd b=0.3", 100, "numpy/f64 (baseline)", base, None)]
    for proc in ("gd", "p-sgd b=0.3"):
        for K in (100, 250, 500):
            r = run(proc, K, 4000, 400)
            acc = accuracy(proc, K, r) if K <= 100 else None
            rows.append((proc, K, "numba/f32", r, acc))
    for proc in ("p-sgd b=1", "p-sgd b=0.3", "p-sgd b=0.1"):  # Fig. 1 left, defaults
        r = run(proc, 500)
        rows.append((proc, 500, "defaults (Fig.1 left)", r, None if quick else accuracy(proc, 500, r)))
    if not quick:
        rows.append(("p-sgd b=0.3", 1000, "defaults", run("p-sgd b=0.3", 1000), None))
    print(f"{'process':<13}{'K':>6}{'N':>7}{'N_R':>6}  {'method':<22}{'time s':>8}{'cpu s':>8}"
          f"{'x base':>8}{'peak GB':>9}{'x base':>8}{'max|d eps|':>12}{'mc err':>9}")
    for proc, K, method, r, acc in rows:
        print(f"{proc:<13}{K:>6}{r['n_samples']:>7}{r['response']:>6}  {method:<22}"
              f"{r['wall']:>8.2f}{r['cpu']:>8.2f}{r['wall'] / base['wall']:>8.2f}"
              f"{r['rss'] / 1e9:>9.2f}{r['rss'] / base['rss']:>8.2f}"
              f"{'' if acc is None else f'{acc:.4f}':>12}{r['mc_error']:>9.4f}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
