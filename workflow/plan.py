"""Cost plan of a config before anything runs: tasks, CPU time and peak memory.

    python -m workflow.cli plan config/paper.yaml

A simple model with its constants in COST (calibrate them against the benchmarks,
benchmarks/bench_sims.py and bench_dmft.py, and a measured run):

* sims, per task of P configurations sharing the data (one pass over the n x d data per
  step serves all of them), per seed: SIMS_S_GEN * n d (drawing the data) + K * (SIMS_S_PASS
  * n d + P * (SIMS_S_CONFIG_STEP + SIMS_S_CONFIG_SAMPLE * n)) (the two products with the
  data, then each configuration's losses, records and masks); memory = the data matrix
  (n d values of the dtype) + SIMS_BASE_MB.
* dmft, per point: `dmft.estimate_cost` (the solver's own cost model, calibrated by
  benchmarks/bench_dmft.py) + DMFT_OVERHEAD_S; memory = its bytes.

The Snakemake rule `store` asks for mem_mb = peak per task x workers + JOB_BASE_MB and
runtime = total CPU / workers (x RUNTIME_SAFETY, + STARTUP_MIN), in minutes, so that
`--executor slurm` requests them.
"""

from __future__ import annotations

import math

import numpy as np

from .config import ExperimentSpec
from .store import Layout

COST = dict(  # calibration constants (2-core workstation, numba; see module docstring)
    # sims, float64, one thread of the idle 2-core machine: two-cluster d = 500, K = 500,
    # 4 seeds: 2.2 s (P = 1), 8.3 s (P = 3; model 2.8 s, 7.3 s); three-cluster d = 5000:
    # 43 ms (P = 1) and 58 ms (P = 3) per step (model 53 ms, 69 ms); d = 10^4, K = 50:
    # 29 s (model 23 s)
    SIMS_S_GEN=4e-8,           # s per data entry drawn
    SIMS_S_PASS=6e-10,         # s per data entry and step (both products)
    SIMS_S_CONFIG_STEP=6e-4,   # s per configuration and step
    SIMS_S_CONFIG_SAMPLE=5e-7,  # s per configuration, step and sample
    SIMS_OVERHEAD_S=1.0,       # s per task (store write, dispatch): quick config, loaded machine
    SIMS_BASE_MB=400,          # worker process with numpy/numba/xarray loaded
    DMFT_OVERHEAD_S=2.5,       # s per point: measured 2.7 s at K = 100 (quick fig1_left)
    JOB_BASE_MB=600,           # the job's own process (Snakemake shell, CLI, Dask scheduler)
    RUNTIME_SAFETY=2.0,        # runtime asked for = estimate x this (+ STARTUP_MIN)
    STARTUP_MIN=5,
)


def task_costs(layout: Layout) -> list[tuple[float, float]]:
    """[(CPU seconds, peak MB)] of every task of a store."""
    out = []
    if layout.solver == "sims":
        item = np.dtype(layout.spec.sims["dtype"]).itemsize
        for task in layout.batches(layout.units()):
            problems = [layout.problems[i] for i in task.points]
            out.append((COST["SIMS_OVERHEAD_S"] + len(task.seeds) * sims_seed_cost(problems, task.d),
                        problems[0].alpha * task.d ** 2 * item / 1e6 + COST["SIMS_BASE_MB"]))
        return out
    from dmft.cost import estimate_cost
    settings = dict(layout.spec.dmft["settings"])
    for task in layout.batches(layout.units()):
        p = layout.problems[task.points[0]]
        d = {"d": task.d} if p.model == "three_cluster" else {}
        cost = estimate_cost(p, **d, **settings)
        out.append((cost["seconds"] + COST["DMFT_OVERHEAD_S"], cost["bytes"] / 1e6))
    return out


def sims_seed_cost(problems, d: int) -> float:
    """CPU seconds of one seed of configurations that share the data (module docstring)."""
    n = round(problems[0].alpha * d)
    steps = max(p.n_steps for p in problems)
    per_config = COST["SIMS_S_CONFIG_STEP"] + COST["SIMS_S_CONFIG_SAMPLE"] * n
    return (COST["SIMS_S_GEN"] * n * d
            + steps * (COST["SIMS_S_PASS"] * n * d + len(problems) * per_config))


def workers(dask_cfg: dict, cores: int) -> int:
    tpw = int(dask_cfg.get("threads_per_worker", 1))
    return int(dask_cfg.get("n_workers") or max(1, cores // tpw))


def plan_store(spec: ExperimentSpec, solver: str, dask_cfg: dict, cores: int) -> dict:
    """Tasks, CPU and memory of one store, and the resources of its Snakemake job."""
    costs = task_costs(Layout(spec, solver))
    cpu = [c for c, _ in costs]
    peak = max(m for _, m in costs)
    n = min(workers(dask_cfg, cores), len(costs))
    wall = max(sum(cpu) / n, max(cpu))
    return dict(tasks=len(costs), cpu_per_task_s=max(cpu), cpu_total_s=sum(cpu),
                peak_mb_per_task=peak, wall_s=wall,
                mem_mb=int(math.ceil(peak * n + COST["JOB_BASE_MB"])),
                runtime=int(math.ceil(wall * COST["RUNTIME_SAFETY"] / 60)) + COST["STARTUP_MIN"])


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def plan_table(specs: dict, dask_cfg: dict, cores: int) -> str:
    """The plan of a config as text: one line per store, then the totals."""
    lines = [f"{'experiment':<18}{'solver':<7}{'tasks':>6}{'CPU/task':>10}{'MB/task':>9}"
             f"{'CPU total':>11}{'wall':>8}  (on {cores} cores)"]
    total_cpu = total_wall = 0.0
    peak = 0.0
    for name, spec in specs.items():
        for solver in ("sims", "dmft"):
            if getattr(spec, solver) is None:
                continue
            p = plan_store(spec, solver, dask_cfg, cores)
            lines.append(f"{name:<18}{solver:<7}{p['tasks']:>6}{_fmt_s(p['cpu_per_task_s']):>10}"
                         f"{p['peak_mb_per_task']:>9.0f}{_fmt_s(p['cpu_total_s']):>11}"
                         f"{_fmt_s(p['wall_s']):>8}")
            total_cpu += p["cpu_total_s"]
            total_wall += p["wall_s"]
            peak = max(peak, p["peak_mb_per_task"])
    for name, spec in specs.items():
        warned = Layout(spec, "dmft" if spec.dmft is not None else "sims").warnings
        warned = {index: messages for index, messages in warned.items() if messages}
        if warned:
            index, messages = next(iter(warned.items()))
            lines.append(f"warning: {name}: {len(warned)} point(s) warn, e.g. at "
                         f"{spec.describe(index)}: {messages[0]} "
                         f"(all: python -m workflow.cli check)")
    lines.append(f"total: CPU {_fmt_s(total_cpu)}, wall {_fmt_s(total_wall)} one store after "
                 f"the other, peak {peak:.0f} MB per task (cost model: workflow/plan.py COST)")
    return "\n".join(lines)
