"""Fan-out of an experiment's tasks on Dask, with resume and a progress log.

`run_experiment` (called by the Snakemake rules through `python -m workflow.cli run`)
creates the store if needed (or rebuilds it if the spec changed), skips completed tasks,
submits the others to a Dask cluster (LocalCluster, an existing scheduler, or a
dask_jobqueue.SLURMCluster) and logs done/total with an ETA every few seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
import warnings

import numpy as np

from .config import ExperimentSpec
from .store import (Layout, Task, completed, create_store, finalize, mark_done,
                    store_matches, write_point)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMBA_NUM_THREADS")


# ----------------------------------------------------------------------- solvers
def solve_points(layout: Layout, task: Task, *, probe: bool = False):
    """Run the solver for one task; return [(point index, dataset)]."""
    spec = layout.spec
    problems = [layout.problems[i] for i in task.points]
    if probe:  # a short run: variable names, dims, dtypes and attributes
        problems = [p.replace(t_max=min(p.t_max, 2 * p.eta)) for p in problems[:1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # clipped persistent chain: allowed
        if layout.solver == "sims":
            import sims
            sims_cfg = spec.sims
            d = min(task.d, 8) if probe else task.d
            seeds = [0] if probe else list(task.seeds)
            results = sims.simulate_batch(problems, d, seeds,
                                          record_every=int(sims_cfg["record_every"]),
                                          dtype=sims_cfg["dtype"], entropy=spec.entropy)
        else:
            import dmft
            settings = {"seed": dmft_seed(spec), **spec.dmft["settings"]}
            results = []
            for p in problems:
                kw = {"d": task.d} if p.model == "three_cluster" else {}
                results.append(dmft.solve(p, **kw, **settings))
    return list(zip(task.points, results))


def dmft_seed(spec: ExperimentSpec) -> int:
    """The DMFT sampling seed: the experiment entropy (the same at every point, as the sims)."""
    return int(spec.entropy % (2**32))


def run_task(layout: Layout, task: Task, store_path: str, run_id: str) -> dict:
    """Compute one task, write its region, then its completion marker (on a worker)."""
    start = time.time()
    results = solve_points(layout, task)
    for index, ds in results:
        write_point(store_path, layout, task, index, _drop_coords(ds))
    info = dict(key=task.key, run_id=run_id, wall_time=time.time() - start,
                host=socket.gethostname(), pid=os.getpid(), n_points=len(task.points),
                d=task.d, seeds=list(task.seeds) if task.seeds else None,
                attrs=dict(results[0][1].attrs))
    mark_done(store_path, task, info)
    return info


def _drop_coords(ds):
    keep = {"time"}
    return ds.drop_vars([c for c in ds.coords if c not in keep and c not in ds.dims])


# ----------------------------------------------------------------------- cluster
@contextlib.contextmanager
def dask_client(dask_cfg: dict, threads: int, scheduler: str | None = None, log=print):
    """A distributed.Client: LocalCluster (default), scheduler address, or SLURMCluster."""
    from distributed import Client, LocalCluster

    dask_cfg = dict(dask_cfg or {})
    # the dask.slurm settings are used only when SLURM is asked for, so that one config
    # runs both on a workstation and (with dask_scheduler=slurm) on a cluster
    scheduler = scheduler or dask_cfg.get("scheduler") or "local"
    tpw = int(dask_cfg.get("threads_per_worker", 1))
    for var in THREAD_VARS:  # one BLAS thread per Dask thread
        os.environ.setdefault(var, str(tpw))
    cluster = None
    if scheduler == "local":
        n_workers = int(dask_cfg.get("n_workers") or max(1, threads // tpw))
        processes = bool(dask_cfg.get("processes", True))
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=tpw, processes=processes,
                               dashboard_address=":0",
                               **({"host": "127.0.0.1"} if processes else {}))
        client = Client(cluster)
    elif scheduler == "slurm":
        from dask_jobqueue import SLURMCluster
        kwargs = {"cores": tpw, "processes": 1, "memory": "2GB", **dask_cfg.get("slurm", {})}
        cluster = SLURMCluster(**kwargs)
        n_workers = int(dask_cfg.get("n_workers") or 1)
        cluster.scale(n_workers)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    log(f"dask: {scheduler} cluster, dashboard {client.dashboard_link}")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class Progress:
    """Logs 'done/total (pct), elapsed, ETA' every `interval` seconds from a thread."""

    def __init__(self, label: str, total: int, interval: float, log=print):
        self.label, self.total, self.interval, self.log = label, total, interval, log
        self.done = 0
        self.start = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.report()

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.report()

    def report(self):
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        self.log(f"[{self.label}] {self.done}/{self.total} tasks ({pct:.0f}%), "
                 f"elapsed {_fmt(elapsed)}, ETA {_fmt(eta)}")


def _fmt(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ----------------------------------------------------------------------- driver
def prepare_store(spec: ExperimentSpec, solver: str, store_path, log=print) -> Layout:
    layout = Layout(spec, solver)
    if not store_matches(store_path, layout):
        log(f"[{spec.name}/{solver}] creating store {store_path}")
        probe = dict(solve_points(layout, layout.tasks()[0], probe=True))
        probe_ds = next(iter(probe.values()))
        create_store(store_path, layout, _drop_coords(probe_ds))
    return layout


def run_experiment(spec: ExperimentSpec, solver: str, store_path, *, threads: int = 1,
                   dask_cfg: dict | None = None, scheduler: str | None = None,
                   log=None) -> dict:
    """Compute whatever is missing in the store; return a summary."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    store_path = os.path.abspath(store_path)  # workers may run in another directory
    start = time.time()
    layout = prepare_store(spec, solver, store_path, log)
    tasks = layout.tasks()
    done = completed(store_path)
    todo = [t for t in tasks if t.key not in done]
    label = f"{spec.name}/{solver}"
    log(f"[{label}] {len(tasks)} tasks, {len(tasks) - len(todo)} already done, "
        f"{len(todo)} to run")
    run_id = uuid.uuid4().hex[:12]
    errors = []
    interval = float((dask_cfg or {}).get("progress_interval", 10))
    if todo and scheduler == "sync":  # in-process, for debugging
        with Progress(label, len(todo), interval, log) as progress:
            for task in todo:
                run_task(layout, task, store_path, run_id)
                progress.done += 1
    elif todo:
        from distributed import as_completed
        with dask_client(dask_cfg or {}, threads, scheduler, log) as client:
            futures = [client.submit(run_task, layout, t, store_path, run_id, key=t.key,
                                     pure=False, retries=1) for t in todo]
            with Progress(label, len(todo), interval, log) as progress:
                for future in as_completed(futures):
                    if future.status == "error":
                        errors.append((future.key, future.exception()))
                        log(f"[{label}] task {future.key} failed: {future.exception()!r}")
                    progress.done += 1
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(todo)} tasks of {label} failed; the "
                           f"others are saved. First error: {errors[0][1]!r}")
    extra = finalize(store_path, layout)
    summary = dict(experiment=spec.name, solver=solver, store=store_path,
                   spec_hash=layout.spec_hash, tasks=len(tasks), ran=len(todo),
                   wall_time=time.time() - start, task_wall_time=extra["wall_time_total"],
                   executions=sum(completed(store_path).values()))
    log(f"[{label}] complete: {summary}")
    return summary
