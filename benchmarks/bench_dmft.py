"""Benchmark of dmft.solve: time, peak memory and accuracy against K and N (prints a table).

Each solve runs in a fresh subprocess (peak RSS from resource.getrusage). Accuracy is the
largest |gen_error - gen_error_ref| over the curve, the reference being a solve with 4x
more samples (and 4x more response samples). Ratios are against the baseline measured in
the same run: the direct numpy float64 causal pass (all samples carry T) at the smallest
size. Usage: python benchmarks/bench_dmft.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, dmft
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
p = Problem(process=cfg["process"], b=cfg["b"], tau=cfg["tau"], t_max=cfg["K"] * 0.2)
dmft.solve(p.replace(t_max=0.4), n_samples=64, response_samples=64, backend=cfg["backend"],
           response_dtype=cfg["dtype"])  # compile outside the timing
start = time.perf_counter()
ds = dmft.solve(p, n_samples=cfg["N"], response_samples=cfg["NR"], backend=cfg["backend"],
                response_dtype=cfg["dtype"], seed=cfg["seed"], memory_limit="20GB")
wall = time.perf_counter() - start
print(json.dumps(dict(wall=wall, rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      gen_error=ds.gen_error.values[1:].tolist())))
"""

PROCESSES = {"gd": dict(process="gd", b=1.0, tau=None),
             "p-sgd b=0.3": dict(process="persistent", b=0.3, tau=1 / 0.6),
             "p-sgd b=0.1": dict(process="persistent", b=0.1, tau=1 / 0.6)}


def run(process, K, N, NR, backend="numba", dtype="float32", seed=0):
    cfg = dict(PROCESSES[process], K=K, N=N, NR=NR, backend=backend, dtype=dtype, seed=seed)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def accuracy(process, K, N, NR, result):
    import numpy as np
    ref = run(process, K, 4 * N, 4 * NR, seed=1)
    return float(np.max(np.abs(np.array(result["gen_error"]) - ref["gen_error"])))


def main(quick: bool):
    base = {proc: run(proc, 100, 2000, None, backend="numpy", dtype="float64")
            for proc in ("gd", "p-sgd b=0.3")}
    rows = []
    for proc in ("gd", "p-sgd b=0.3"):
        b = base[proc]
        rows.append((proc, 100, 2000, 2000, "numpy/f64 (baseline)", b, None))
        sizes = [(100, 4000, 400), (250, 4000, 400), (500, 4000, 400)]
        if not quick:
            sizes.append((1000, 4000, 400))
        for K, N, NR in sizes:
            r = run(proc, K, N, NR)
            acc = accuracy(proc, K, N, NR, r) if (K <= 250 or not quick) else None
            rows.append((proc, K, N, NR, "numba/f32", r, acc))
    if not quick:
        for proc in ("p-sgd b=0.1",):
            r = run(proc, 500, 4000, 400)
            rows.append((proc, 500, 4000, 400, "numba/f32", r, accuracy(proc, 500, 4000, 400, r)))
    print(f"{'process':<13}{'K':>6}{'N':>7}{'N_R':>6}  {'method':<21}{'time s':>8}{'x base':>8}"
          f"{'peak GB':>9}{'x base':>8}{'max|d eps|':>12}")
    for proc, K, N, NR, method, r, acc in rows:
        b = base["gd" if proc == "gd" else "p-sgd b=0.3"]
        print(f"{proc:<13}{K:>6}{N:>7}{NR or N:>6}  {method:<21}{r['wall']:>8.2f}"
              f"{r['wall'] / b['wall']:>8.2f}{r['rss'] / 1e9:>9.2f}{r['rss'] / b['rss']:>8.2f}"
              f"{'' if acc is None else f'{acc:.4f}':>12}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
