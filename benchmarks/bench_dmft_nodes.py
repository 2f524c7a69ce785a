"""Benchmark of the node batches of dmft.solve (docs/theory.md §5.7): time and peak memory.

A three-cluster solve averages over `magnetization_nodes` initial magnetizations (Fig. 2
right: alpha=3, Delta=0.05, L=0.7, lam=0.1, R=0.01, d=5000, GD, eta=0.2). It is solved with
all nodes at once (the baseline: `dmft.solver.NODE_BATCH_BYTES` lifted), then with the
defaults (batches within NODE_BATCH_BYTES), then with a memory_limit that holds
`--per-batch` nodes at a time; each solve runs in a fresh subprocess (peak RSS from
resource.getrusage; numba compiled first). Printed: wall time, peak RSS, both as ratios to
the baseline measured in the same run, the number of batches, and max |eps_batched -
eps_baseline| (0 up to rounding: every node has its own random stream).

Usage: python benchmarks/bench_dmft_nodes.py [--K 500] [--nodes 16] [--per-batch 4,1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SOLVE = r"""
import json, resource, sys, time
import dmft
import dmft.solver
from sims.problem import Problem
cfg = json.loads(sys.argv[1])
p = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, R=0.01, eta=0.2,
            t_max=cfg["K"] * 0.2)
kw = dict(d=5000, magnetization_nodes=cfg["nodes"])
dmft.solve(p.replace(t_max=0.4), **dict(kw, n_samples=64, response_samples=64))  # compile
limit = "20GB"
if cfg["per_batch"] != "default":
    dmft.solver.NODE_BATCH_BYTES = float("inf")  # batches set by memory_limit alone
if isinstance(cfg["per_batch"], int):
    one_node = dmft.Solver(p, **kw).memory_estimate(cfg["K"]) / cfg["nodes"]
    limit = (cfg["per_batch"] + 0.5) * one_node
start = time.perf_counter()
ds = dmft.solve(p, memory_limit=limit, **kw)
wall = time.perf_counter() - start
print(json.dumps(dict(wall=wall, rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      batches=ds.attrs["node_batches"], gen_error=ds.gen_error.values.tolist())))
"""


def solve(K: int, nodes: int, per_batch) -> dict:
    """per_batch: nodes per batch, "all" (the baseline) or "default"."""
    cfg = json.dumps(dict(K=K, nodes=nodes, per_batch=per_batch))
    out = subprocess.run([sys.executable, "-c", SOLVE, cfg], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--K", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--per-batch", default="4,1")
    args = parser.parse_args()
    base = solve(args.K, args.nodes, "all")
    print(f"three-cluster GD, {args.nodes} nodes, K = {args.K}")
    print(f"{'nodes per batch':>16} {'batches':>8} {'wall s':>8} {'x base':>7} "
          f"{'peak MB':>8} {'x base':>7} {'max|d eps|':>11}")
    rows = [(args.nodes, base), ("default", solve(args.K, args.nodes, "default"))] + [
        (int(b), solve(args.K, args.nodes, int(b))) for b in args.per_batch.split(",")]
    for per_batch, r in rows:
        diff = max(abs(a - b) for a, b in zip(r["gen_error"], base["gen_error"]))
        print(f"{per_batch:>16} {r['batches']:>8} {r['wall']:>8.1f} "
              f"{r['wall'] / base['wall']:>7.2f} {r['rss'] / 1e6:>8.0f} "
              f"{r['rss'] / base['rss']:>7.2f} {diff:>11.2g}")


if __name__ == "__main__":
    main()
