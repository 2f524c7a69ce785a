"""Benchmark of the extended DMFT (momentum, Nesterov, covariance levels) against the plain solve.

Each solve runs in a fresh subprocess (numba compiled first, on a tiny solve); the cases
are interleaved and repeated (--repeats); each case's best CPU time (all threads) is
compared with the plain solve's best, and each repeat's CPU time with the plain solve's
of the same repeat (median of these ratios: the most robust number on a shared machine,
where one solve's time can vary 2x with the load). Memory: the increase of the process's peak RSS
(resource.getrusage) during the solve, over the peak after compilation.

Cases (two-cluster GD, lam = 0, R = 0.01, eta = 0.2, K = t_max / eta steps):
  plain               momentum 0, one level (the plain `Solver`)
  extended beta=0     the same problem through `ExtendedSolver` (bit-identical numbers)
  heavy ball 0.9      one level, momentum (targets: within 1.3x of plain)
  nesterov 0.5        one level, Nesterov
  2 levels            covariance f = (0.2, 0.8), s = (3, 0.5), no momentum (target: 2x)
  3 levels            f = (0.2, 0.3, 0.5), s = (2.5, 1, 0.4), no momentum (target: 3x)

Usage: python benchmarks/bench_dmft_extensions.py [--K 250] [--n-samples 16000]
                                                  [--response-samples 1000] [--repeats 2]
                                                  [--cases "heavy ball 0.9,2 levels"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

CASES = {
    "plain": dict(problem={}, forced=False, target=None),
    "extended beta=0": dict(problem={}, forced=True, target=1.3),
    "heavy ball 0.9": dict(problem=dict(momentum=0.9), forced=False, target=1.3),
    "nesterov 0.5": dict(problem=dict(momentum=0.5, nesterov=True), forced=False, target=1.3),
    "2 levels": dict(problem=dict(covariance=dict(fractions=[0.2, 0.8], variances=[3, 0.5])),
                     forced=False, target=2.0),
    "3 levels": dict(problem=dict(covariance=dict(fractions=[0.2, 0.3, 0.5],
                                                  variances=[2.5, 1.0, 0.4])),
                     forced=False, target=3.0),
}

SOLVE = r"""
import json, resource, sys, time
import dmft
from dmft.extended import ExtendedSolver
from dmft.output import to_dataset
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
p = Problem(R=0.01, **cfg["problem"], t_max=cfg["K"] * 0.2)
make = ExtendedSolver if cfg["forced"] else dmft.Solver
to_dataset(make(p.replace(t_max=0.6), n_samples=64, response_samples=64).advance(0.6), "causal")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start, cpu = time.perf_counter(), time.process_time()
solver = make(p, memory_limit="20GB", **cfg["settings"]).advance(p.t_max)
ds = to_dataset(solver, "causal")
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(wall=wall, cpu=cpu, memory=peak - before, status=ds.attrs["status"],
                      gen_error=float(ds.gen_error[-1]))))
"""


def run(case: dict, K: int, settings: dict) -> dict:
    cfg = dict(problem=case["problem"], forced=case["forced"], K=K, settings=settings)
    out = subprocess.run([sys.executable, "-c", SOLVE, json.dumps(cfg)], capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark child failed for {cfg}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=250)
    parser.add_argument("--n-samples", type=int, default=16000)
    parser.add_argument("--response-samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated subset of the cases (plain is always run)")
    args = parser.parse_args()
    cases = ["plain"] + [c for c in args.cases.split(",") if c != "plain"]
    settings = dict(n_samples=args.n_samples, response_samples=args.response_samples)
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved: every case sees the same machine load
        for name in cases:
            result = run(CASES[name], args.K, settings)
            runs[name].append(result)
            print(f"  {name}: wall {result['wall']:.2f} s, cpu {result['cpu']:.2f} s",
                  file=sys.stderr)
    print(f"K = {args.K}, n_samples = {args.n_samples}, response_samples = "
          f"{args.response_samples}, {args.repeats} interleaved repeats; best time, and the "
          "median over repeats of the CPU-time ratio to the plain run of the same repeat")
    print(f"{'case':18s} {'wall s':>8s} {'cpu s':>8s} {'x plain':>8s} {'median x':>9s} "
          f"{'mem MB':>8s} {'x plain':>8s} {'target':>7s} {'eps(t_max)':>10s} status")
    base = runs["plain"]
    best_cpu = min(r["cpu"] for r in base)
    base_memory = max(r["memory"] for r in base)
    for name, results in runs.items():
        target = CASES[name]["target"]
        cpu = min(r["cpu"] for r in results)
        ratios = [r["cpu"] / b["cpu"] for r, b in zip(results, base)]
        memory = max(r["memory"] for r in results)
        print(f"{name:18s} {min(r['wall'] for r in results):8.2f} {cpu:8.2f} "
              f"{cpu / best_cpu:8.2f} {float(np.median(ratios)):9.2f} {memory / 1e6:8.0f} "
              f"{memory / base_memory:8.2f} {'-' if target is None else f'{target:.1f}x':>7s} "
              f"{results[-1]['gen_error']:10.5f} {results[-1]['status']}")


if __name__ == "__main__":
    main()
