"""Cost plan of a config before anything runs: tasks, CPU time and peak memory.

    python -m workflow.cli plan config/paper.yaml

A simple model with its constants in COST (calibrate them against the benchmarks,
benchmarks/bench_sims.py and bench_dmft.py, and a measured run):

* sims, per task of P configurations sharing the data (one pass over the n x d data per
  step serves all of them), per seed: SIMS_S_GEN * n d (drawing the data) + K * (SIMS_S_PASS
  * n d) + sum over configurations of K_p (SIMS_S_CONFIG_STEP + SIMS_S_CONFIG_SAMPLE * n)
  (the two products with the data for the longest horizon K, then each configuration's
  losses, records and masks to its own K_p) + for each SMF configuration K_p * passes *
  SIMS_S_SMF_PASS * n d (its substeps read the data again, one configuration at a time:
  passes = 2 smf_substeps, x 3 for order 2, whose drift adds a Hessian-vector product to
  both of a substep's drifts); memory = the data matrix (n d values of the dtype) +
  SIMS_BASE_MB.
* dmft, per point: `dmft.estimate_cost` (the solver's own cost model, calibrated by
  benchmarks/bench_dmft.py) + DMFT_OVERHEAD_S, and with `seed_magnetizations` the solve at
  the seeds' m(0) and, if "effective", the seeds' simulations to t_lin (DMFT_T_LIN);
  memory = the largest of these (the simulations': their data matrix + SIMS_BASE_MB).
* two-layer networks (model two_layer): workflow/two_layer.py TwoLayerModel.task_cost,
  constants TL_*.

Each model family computes its tasks' costs (workflow/models.py Model.task_cost).

The Snakemake rule `store` asks for mem_mb = peak per task x workers + JOB_BASE_MB and
runtime = total CPU / workers (x RUNTIME_SAFETY, + STARTUP_MIN), in minutes, so that
`--executor slurm` requests them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from .config import ConfigError, ExperimentSpec, allow_budget
from .store import Layout

COST = dict(  # calibration constants (2-core workstation, numba; see module docstring)
    # sims, float64, one warm thread (compiled kernels) of the idle 2-core machine, per seed
    # and step: two-cluster d = 500: 0.56 ms (P = 1), 0.82 ms (P = 3; model 0.55, 1.05);
    # d = 2000, P = 3: 7.6 ms (model 7.6); three-cluster d = 1000, P = 3: 3.3 ms (model 3.8);
    # d = 5000, P = 3: 58 ms (model 54)
    SIMS_S_GEN=4e-8,           # s per data entry drawn
    SIMS_S_PASS=6e-10,         # s per data entry and step (both products)
    SIMS_S_CONFIG_STEP=5e-5,   # s per configuration and step
    SIMS_S_CONFIG_SAMPLE=2e-7,  # s per configuration, step and sample
    SIMS_S_SMF_PASS=9e-10,     # s per data entry and SMF pass (config/smf.yaml, measured)
    SIMS_OVERHEAD_S=1.0,       # s per task (store write, dispatch): quick config, loaded machine
    SIMS_BASE_MB=400,          # worker process with numpy/numba/xarray loaded
    DMFT_OVERHEAD_S=2.5,       # s per point: measured 2.7 s at K = 100 (quick fig1_left)
    DMFT_T_LIN=4.0,            # t_lin planned for the runs of seed_magnetizations: effective
                               # (measured 1.6-3.2 for config/paper.yaml; at d = 5000 their
                               # cost is mostly drawing the data: 30 s for 10 seeds)
    # two-layer networks (workflow/two_layer.py), one thread of the 2-core machine: the
    # simulations' steps cost sims.two_layer.STEP_SECONDS (the method choice of "auto" uses
    # them too); an ODE to t = 1e4: 0.7 s at p = 8, k = 4 (9216 noise-term integrals per
    # right-hand side), 0.01 s at p = k = 2
    TL_ODE_S_TERM=1e-4,        # s per solve to t = 1e4 and noise-term integral p^2 (p + k)^2
    TL_ODE_T_EXPONENT=0.5,     # solve time ~ t_max^this (the step grows as the overlaps settle:
                               # p = 8 to t = 1e4 / 3e4 / 1e5: 1.1 / 2.2 / 5.6 s; p = 23 to
                               # t = 1e3: 2.7-19 s, the dynamics setting the steps)
    TL_OVERHEAD_S=1.0,         # s per task (store write, dispatch)
    JOB_BASE_MB=600,           # the job's own process (Snakemake shell, CLI, Dask scheduler)
    JOB_START_S=6.0,           # wall time of a store job around its tasks (new process and
                               # imports, probe run, store creation, cluster start and close):
                               # 6-7 s per store of the two-layer test config, 0.1-0.4 s of tasks
    RUNTIME_SAFETY=2.0,        # runtime asked for = estimate x this (+ STARTUP_MIN)
    STARTUP_MIN=5,
)


def task_costs(layout: Layout) -> list[tuple[float, float]]:
    """[(CPU seconds, peak MB)] of every task of a store, by its model family's cost model
    (workflow/models.py Model.task_cost, with the constants in COST)."""
    return [layout.model.task_cost(layout, task) for task in layout.batches(layout.units())]


def workers(dask_cfg: dict, cores: int) -> int:
    tpw = int(dask_cfg.get("threads_per_worker", 1))
    return int(dask_cfg.get("n_workers") or max(1, cores // tpw))


def packed_wall(cpu: list[float], workers: int) -> float:
    """Wall time of tasks of these CPU times on `workers` workers, longest first, each to
    the least loaded worker (the order Dask's scheduler roughly follows): 3 equal tasks on 2
    workers take 2 tasks' time, not 1.5 (Fig. 4 right's DMFT: 753 s measured, 420 s by the
    mean)."""
    loads = np.zeros(workers)
    for seconds in sorted(cpu, reverse=True):
        loads[np.argmin(loads)] += seconds
    return float(loads.max())


def plan_store(spec: ExperimentSpec, solver: str, dask_cfg: dict, cores: int) -> dict:
    """Tasks, CPU and memory of one store, and the resources of its Snakemake job."""
    costs = task_costs(Layout(spec, solver))
    cpu = [c for c, _ in costs]
    peak = max(m for _, m in costs)
    n = min(workers(dask_cfg, cores), len(costs))
    wall = packed_wall(cpu, n)
    return dict(tasks=len(costs), cpu_per_task_s=max(cpu), cpu_total_s=sum(cpu),
                peak_mb_per_task=peak, wall_s=wall,
                mem_mb=int(math.ceil(peak * n + COST["JOB_BASE_MB"])),
                runtime=int(math.ceil(wall * COST["RUNTIME_SAFETY"] / 60)) + COST["STARTUP_MIN"])


def store_threads(planned_seconds: float, dask_cfg: dict, cores: int) -> int:
    """Cores of a store's Snakemake job: all `cores`, except one for a store whose planned
    CPU (`planned_cpu`) is at most 2 JOB_START_S (and whose Dask workers are not fixed by
    `n_workers`).

    Such a job is mostly its start (JOB_START_S): two of them side by side take one start
    and one store's tasks, one after the other on two cores two starts; a lone one loses
    at most half its CPU time, which is no more than a start."""
    if dask_cfg.get("n_workers") or cores <= 1:
        return cores
    return 1 if planned_seconds <= 2 * COST["JOB_START_S"] else cores


PLAN_SAMPLE_POINTS = 400  # above this many grid points the budget check samples the grid


def planned_cpu_seconds(spec: ExperimentSpec, solver: str) -> float:
    """The planned CPU seconds of one store (`plan_store`). DMFT points are solved one by
    one: above PLAN_SAMPLE_POINTS points, the plan of a grid of at most that many points
    spread over each axis (its ends included) times the ratio of the numbers of points, a
    check whose time does not grow with the grid. Simulations share their data within a
    task, so a sample would misstate them: their plan is exact (arithmetic per point)."""
    if solver == "sims" or spec.size() <= PLAN_SAMPLE_POINTS:
        return plan_store(spec, solver, {}, 1)["cpu_total_s"]
    grid = dict(spec.grid)
    while len(spec.cases or [None]) * math.prod(len(v) for v in grid.values()) \
            > PLAN_SAMPLE_POINTS:
        axis = max(grid, key=lambda a: len(grid[a]))
        keep = np.unique(np.linspace(0, len(grid[axis]) - 1, len(grid[axis]) // 2 or 1)
                         .round().astype(int))
        grid[axis] = [grid[axis][i] for i in keep]
    sample = dataclasses.replace(spec, grid=grid)
    return plan_store(sample, solver, {}, 1)["cpu_total_s"] * spec.size() / sample.size()


def planned_cpu(specs: dict) -> dict:
    """{(experiment, solver): planned CPU seconds} of every store of a config."""
    return {(name, solver): planned_cpu_seconds(spec, solver)
            for name, spec in specs.items() for solver in ("sims", "dmft")
            if getattr(spec, solver) is not None}


def check_budget(planned: dict, limits: dict) -> float:
    """The planned CPU-hours of the config (`planned`: `planned_cpu`); ConfigError (what
    it would cost, per store, and how to allow it) above the budget's `cpu_hours`: the run
    stops before compute."""
    hours = {store: seconds / 3600 for store, seconds in planned.items()}
    total = sum(hours.values())
    if total > limits["cpu_hours"]:
        largest = sorted(hours.items(), key=lambda item: -item[1])[:3]
        words = ", ".join(f"{name}/{solver} {h:.3g}" for (name, solver), h in largest)
        raise ConfigError(
            f"the config plans {total:.3g} CPU-hours ({words}), above the budget of "
            f"{limits['cpu_hours']:g} CPU-hours; nothing was computed (the plan per store: "
            "python -m workflow.cli plan CONFIG). " + allow_budget("cpu_hours",
                                                                   math.ceil(total)))
    return total


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def measured(results: str, name: str, solver: str) -> dict | None:
    """The run summary of a store (results/<name>/<solver>.done.json), if it exists."""
    path = Path(results) / name / f"{solver}.done.json"
    return json.loads(path.read_text()) if path.exists() else None


def _measured_columns(run: dict | None, plan: dict) -> str:
    """Measured CPU time, wall time and worker peak RSS, and the store's estimate over the
    measured CPU. The CPU is the sum over the store's units of their last execution, so a
    resumed run (only 'ran' of the 'units' computed by it) still covers the whole store;
    the wall time is the last run's."""
    if run is None or "task_cpu_time" not in run:
        return f"{'-':>10}{'-':>8}{'-':>9}{'-':>8}"
    cpu = run["task_cpu_time"]
    ratio = plan["cpu_total_s"] / cpu if cpu > 0 else math.nan
    return (f"{_fmt_s(run['task_cpu_time']):>10}{_fmt_s(run['wall_time']):>8}"
            f"{run['worker_peak_rss_mb']:>9.0f}{ratio:>8.2f}")


def plan_table(specs: dict, dask_cfg: dict, cores: int, results: str | None = None) -> str:
    """The plan of a config as text: one line per store, then the totals. With `results`:
    the measured CPU time (sum over tasks), wall time and worker peak RSS of each store's
    last run, and the estimated CPU over the measured one."""
    width = max([18, *(len(name) + 1 for name in specs)])
    lines = [f"{'experiment':<{width}}{'solver':<7}{'tasks':>6}{'CPU/task':>10}{'MB/task':>9}"
             f"{'CPU total':>11}{'wall':>8}"
             + (f"{'CPU run':>10}{'wall run':>9}{'RSS MB':>8}{'est/run':>8}" if results else "")
             + f"  (on {cores} cores)"]
    total_cpu = total_wall = 0.0
    peak = 0.0
    for name, spec in specs.items():
        for solver in ("sims", "dmft"):
            if getattr(spec, solver) is None:
                continue
            p = plan_store(spec, solver, dask_cfg, cores)
            lines.append(f"{name:<{width}}{solver:<7}{p['tasks']:>6}{_fmt_s(p['cpu_per_task_s']):>10}"
                         f"{p['peak_mb_per_task']:>9.0f}{_fmt_s(p['cpu_total_s']):>11}"
                         f"{_fmt_s(p['wall_s']):>8}"
                         + (_measured_columns(measured(results, name, solver), p)
                            if results else ""))
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
