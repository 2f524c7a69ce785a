"""Fan-out of an experiment's tasks on Dask, with resume and a progress log.

`run_experiment` (called by the Snakemake rules through `python -m workflow.cli run`)
creates the store if needed (or rebuilds it if the spec changed), skips completed tasks,
submits the others to a Dask cluster (LocalCluster, an existing scheduler, or a
dask_jobqueue.SLURMCluster) and logs done/total with an ETA every few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import sys
import threading
import time
import uuid
import warnings

from pathlib import Path

import numpy as np
import xarray as xr

from .config import ExperimentSpec
from .models import Outcome
from .store import (OK, STATUS_FLAGS, TASKS_DIR, Layout, StoreError, Task,
                    check_writable, completed, create_store, finalize, forget_task,
                    mark_done, markers, read_attrs, store_matches, write_point)
from .verify import (copy_runs, damaged_tasks, describe_damage, forget_manifest,
                     manifest_damage, metadata_damage, rebuild_metadata, write_manifest)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMBA_NUM_THREADS")


# ----------------------------------------------------------------------- solvers
def solve_points(layout: Layout, task: Task, *, probe: bool = False) -> list[Outcome]:
    """Run the solver of the store's model family for one task (workflow/models.py). A
    failing solve is an outcome (status DIVERGED or ERROR with its reason), not an
    exception: the rest of the sweep goes on."""
    return layout.model.solve(layout, task, probe=probe)


def run_task(layout: Layout, task: Task, store_path: str, run_id: str) -> dict:
    """Compute one task on a worker: write each point's region, then its unit's marker
    (the failed runs with their reasons, the warnings raised). Returns a small summary:
    the results are in the store already, so a lost worker loses no finished work."""
    start, cpu_start = time.time(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = solve_points(layout, task)
    cpu = (time.process_time() - cpu_start) / len(outcomes)
    # a store made before the solver gained an output (same revision, same numbers) resumes
    # without it: the variables it has no room for are not written, and are named below
    stored = set((read_attrs(store_path) or {}).get("variables") or ())
    missing = set()
    for out in outcomes:
        part = _drop_coords(out.result) if out.result is not None else xr.Dataset()
        part["status"] = xr.DataArray(out.status, dims=layout.sample_dims)
        part["failure_time"] = xr.DataArray(out.failure_time, dims=layout.sample_dims)
        new = set(part.data_vars) - stored if stored else set()
        missing |= new
        write_point(store_path, layout, task, out.index, part.drop_vars(sorted(new)))
    wall = (time.time() - start) / len(outcomes)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    if missing:
        messages.append(f"StoreWarning: the store was made before the solver gave "
                        f"{sorted(missing)}: not stored (the other results are); to have "
                        f"them, delete {store_path} and run snakemake again (its store job "
                        f"recomputes it)")
    infos = []
    for unit, out in zip(task.units, outcomes):
        info = dict(key=unit, task=task.key, run_id=run_id, wall_time=wall, cpu_time=cpu,
                    worker_peak_rss_mb=worker_peak_rss_mb(),
                    host=socket.gethostname(), pid=os.getpid(), point=list(out.index),
                    d=task.d, seeds=list(task.seeds) if task.seeds else None,
                    attrs=dict(out.result.attrs) if out.result is not None else {},
                    data=out.result is not None, failures=_failures(layout, task, out),
                    warnings=messages)
        mark_done(store_path, unit, info)
        infos.append(info)
    return dict(key=task.key, warnings=messages,
                failures=[f for info in infos for f in info["failures"]])


def worker_peak_rss_mb() -> float:
    """Peak resident memory of this (worker) process so far, in MB: an upper bound of the
    last task's peak (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _failures(layout: Layout, task: Task, out: Outcome) -> list[dict]:
    """One record per failed run (seed) of a point, for the marker and the summary."""
    seeds = list(task.seeds) if task.seeds else [None]
    status, times = np.atleast_1d(out.status), np.atleast_1d(out.failure_time)
    return [dict(point=layout.describe(out.index), index=list(out.index), d=task.d, seed=seed,
                 status=int(code), failure_time=float(t), reason=out.reason,
                 identity=layout.run_identity(out.index, task.d, seed))
            for seed, code, t in zip(seeds, status, times) if code != OK]


def _drop_coords(ds):
    keep = {"time"}
    return ds.drop_vars([c for c in ds.coords if c not in keep and c not in ds.dims])


# ----------------------------------------------------------------------- cluster
@contextlib.contextmanager
def dask_client(dask_cfg: dict, threads: int, scheduler: str, log=print):
    """A distributed.Client for a resolved scheduler: 'local' (LocalCluster), 'slurm'
    (SLURMCluster from dask.slurm) or the address of a running scheduler."""
    from distributed import Client, LocalCluster

    # the dask.slurm settings are used only when SLURM is asked for, so that one config
    # runs both on a workstation and (with dask_scheduler=slurm) on a cluster
    tpw = int(dask_cfg.get("threads_per_worker", 1))
    # one BLAS/numba thread per Dask thread, in the worker processes' environment only
    thread_env = {var: os.environ.get(var, str(tpw)) for var in THREAD_VARS}
    cluster = None
    if scheduler == "local":
        n_workers = int(dask_cfg.get("n_workers") or max(1, threads // tpw))
        processes = bool(dask_cfg.get("processes", True))
        # no Dask memory limit by default: a paused worker would stall the job forever; the
        # job's memory is the batch system's (resources mem_mb from workflow/plan.py)
        with _spawn_environment(thread_env if processes else {}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=tpw,
                                   processes=processes, dashboard_address=":0",
                                   memory_limit=dask_cfg.get("memory_limit", 0),
                                   **({"host": "127.0.0.1"} if processes else {}))
        client = Client(cluster)
    elif scheduler == "slurm":
        from dask_jobqueue import SLURMCluster
        kwargs = {"cores": tpw, "processes": 1, "memory": "2GB", "n_workers": 1,
                  "job_script_prologue": [f"export {k}={v}" for k, v in thread_env.items()],
                  **dask_cfg.get("slurm", {})}
        if dask_cfg.get("n_workers"):
            kwargs["n_workers"] = int(dask_cfg["n_workers"])
        cluster = SLURMCluster(**kwargs)
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


@contextlib.contextmanager
def _spawn_environment(env: dict):
    """Worker processes born with `env`: Dask's pre-spawn environment, set in this process
    while the nannies spawn them (a spawned worker re-imports the main module, e.g.
    workflow.cli, and so numba, before Dask's `env` would apply; numba then refuses the
    changed NUMBA_NUM_THREADS at its next compilation). This process's NUMBA_NUM_THREADS
    is restored afterwards for the same reason (its numba may have launched its threads)."""
    import dask

    kept = os.environ.get("NUMBA_NUM_THREADS")
    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **env}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": pre_spawn}):
            yield
    finally:
        if kept is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = kept


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
class PointsFailed(RuntimeError):
    """Some runs of this job failed (stored as such); the message lists them."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def prepare_store(spec: ExperimentSpec, solver: str, store_path, run_id: str,
                  log=print) -> Layout:
    """The store for this spec: made if missing; its damaged metadata and coordinates
    rebuilt from the spec; rebuilt if the spec changed, keeping the runs whose identity did
    not (a grown experiment)."""
    layout = Layout(spec, solver)
    label = f"{spec.name}/{solver}"
    for orphan in Path(store_path).parent.glob(Path(store_path).name + ".tmp-*"):
        log(f"[{label}] removing {orphan}, left by an interrupted store creation")
        shutil.rmtree(orphan)
    if Path(store_path).exists():
        broken = _repair_metadata(layout, store_path, log)
        if broken is None and store_matches(store_path, layout):
            return layout
        why = broken or "the experiment's spec (or the package or solver version) changed"
        log(f"[{label}] rebuilding store {store_path}: {why}")
    else:
        log(f"[{label}] creating store {store_path}")

    def fill(tmp):
        if Path(store_path).exists():
            copied = copy_runs(store_path, tmp, layout, run_id)
            log(f"[{label}] kept {len(copied)} units from the previous store (same runs, "
                "copied bit for bit)")

    create_store(store_path, layout, _probe(layout, log), fill=fill)
    return layout


def _repair_metadata(layout: Layout, store_path, log) -> str | None:
    """Rebuild the store's damaged metadata files and coordinate chunks from the spec
    (`verify.rebuild_metadata`), naming each in the log. Returns why the store must be
    rebuilt instead (another spec, or arrays that are not this spec's), or None."""
    label = f"{layout.spec.name}/{layout.solver}"
    damage = metadata_damage(store_path)
    changed = {rel: why for rel, why in (manifest_damage(store_path) or {}).items()
               if not rel.startswith(TASKS_DIR)}
    if not damage and not changed:
        return None
    attrs = read_attrs(store_path)
    if attrs is not None and attrs.get("spec_hash") != layout.spec_hash:
        return "the experiment's spec (or the package version) changed"
    repaired, broken = rebuild_metadata(store_path, layout, _probe(layout, log), damage,
                                        changed)
    for rel in repaired:
        why = damage.get(rel) or changed.get(rel) or "rebuilt"
        log(f"[{label}] store damaged: {Path(store_path) / rel} {why}: rebuilt from the spec")
    return broken


def _probe(layout: Layout, log) -> xr.Dataset:
    """A short run of the solver at the first point: the store's variables, dims, dtypes
    and attributes (for its template); its new warnings are logged."""
    label = f"{layout.spec.name}/{layout.solver}"
    first = layout.units()[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe = solve_points(layout, first, probe=True)[0]
    known = layout.warnings[first.points[0]]  # logged by run_experiment
    for message in dict.fromkeys(str(w.message) for w in caught):
        if message not in known:
            log(f"[{label}] warning in the probe run of {layout.describe(first.points[0])}: "
                f"{message}")
    if probe.result is None:
        raise StoreError(f"{label}: the solver failed on a short probe run of "
                         f"{layout.describe(first.points[0])}: {probe.reason}")
    return _drop_coords(probe.result)


def run_experiment(spec: ExperimentSpec, solver: str, store_path, *, threads: int = 1,
                   dask_cfg: dict | None = None, scheduler: str | None = None,
                   retry_failed: bool = False, log=None) -> dict:
    """Compute whatever is missing or damaged in the store; return a summary.

    Raises PointsFailed (after saving everything) if runs computed now failed."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    dask_cfg = dict(dask_cfg or {})
    scheduler = scheduler or dask_cfg.get("scheduler") or "local"  # THE place it is resolved
    store_path = os.path.abspath(store_path)  # workers may run in another directory
    label = f"{spec.name}/{solver}"
    start = time.time()
    run_id = uuid.uuid4().hex[:12]
    check_writable(store_path)
    layout = prepare_store(spec, solver, store_path, run_id, log)
    for index, messages in layout.warnings.items():
        for message in messages:
            log(f"[{label}] warning at {layout.describe(index)}: {message}")
    units = layout.units()
    todo = layout.batches(_units_to_run(store_path, layout, retry_failed, log))
    n_todo = sum(len(t.units) for t in todo)
    forget_manifest(store_path)  # until rewritten below, the next job checks everything
    log(f"[{label}] {len(units)} units (point x d x seed batch), {len(units) - n_todo} already "
        f"done, {n_todo} to run in {len(todo)} tasks")
    interval = float(dask_cfg.get("progress_interval", 10))
    errors = _fan_out(layout, todo, store_path, run_id, threads, dask_cfg, scheduler,
                      interval, log)
    if errors:
        lines = [f"{'; '.join(layout.describe(i, t.d, t.seeds) for i in t.points)} "
                 f"(task {t.key}): {e!r}" for t, e in errors]
        raise RuntimeError(f"{len(errors)} of {len(todo)} tasks of {label} could not run; the "
                           "others are saved, a rerun computes the rest:\n  " + "\n  ".join(lines))
    records, damage = damaged_tasks(store_path, layout, full=False)  # checked before the run
    missing = [t.key for t in units if t.key not in records]
    if missing or damage:
        raise StoreError(f"{label}: after the run, {len(missing)} units have no sound marker "
                         f"and data (e.g. {missing[:3]}); damage: {describe_damage(damage)[:3]}")
    extra = finalize(store_path, layout)
    write_manifest(store_path)
    failures = [f for r in records.values() for f in r.get("failures", [])]
    new = [f for r in records.values() if r.get("run_id") == run_id for f in r.get("failures", [])]
    summary = dict(experiment=spec.name, solver=solver, store=store_path,
                   spec_hash=layout.spec_hash, units=len(units), ran=n_todo, tasks=len(todo),
                   wall_time=time.time() - start, task_wall_time=extra["wall_time_total"],
                   task_cpu_time=extra["cpu_time_total"],
                   worker_peak_rss_mb=extra["worker_peak_rss_mb"],
                   executions=sum(completed(store_path).values()),
                   failed_runs=len(failures), failures=failure_lines(failures))
    log(f"[{label}] complete: " + json.dumps({k: v for k, v in summary.items()
                                                if k != "failures"}))
    if failures:
        text = failure_report(label, failures, store_path, new=bool(new))
        if new:
            raise PointsFailed(text, summary)
        log(text)
    return summary


def _units_to_run(store_path, layout: Layout, retry_failed: bool, log) -> list[Task]:
    """Units without a sound marker; damaged ones (named) and, if asked, failed ones are
    forgotten first so that they run again."""
    label = f"{layout.spec.name}/{layout.solver}"
    records, damage = damaged_tasks(store_path, layout)
    for key, reason in sorted(damage.items()):
        log(f"[{label}] store damaged: {reason}: unit {key} will be recomputed")
        if key in markers(store_path):
            forget_task(store_path, key)
    if retry_failed:
        for key in [k for k, r in records.items() if r.get("failures")]:
            log(f"[{label}] retrying {len(records[key]['failures'])} failed runs of unit {key}")
            forget_task(store_path, key)
            del records[key]
    return [t for t in layout.units() if t.key not in records]


def _fan_out(layout, todo, store_path, run_id, threads, dask_cfg, scheduler, interval,
             log) -> list:
    """Run the tasks (in-process for scheduler 'sync', else on Dask); log failed runs as
    they come; return [(task, exception)] of tasks that could not run at all."""
    label = f"{layout.spec.name}/{layout.solver}"
    errors = []
    if not todo:
        return errors
    if scheduler == "sync":  # in-process, for debugging
        with Progress(label, len(todo), interval, log) as progress:
            for task in todo:
                _log_task(label, run_task(layout, task, store_path, run_id), log)
                progress.done += 1
        return errors
    from distributed import as_completed
    by_key = {t.key: t for t in todo}
    with dask_client(dask_cfg, threads, scheduler, log) as client:
        # no list of futures is kept: a finished task's future is released at once, so a
        # lost worker does not make Dask recompute tasks whose results are in the store
        done = as_completed([client.submit(run_task, layout, t, store_path, run_id, key=t.key,
                                           pure=False, retries=1) for t in todo])
        with Progress(label, len(todo), interval, log) as progress:
            for future in done:
                if future.status == "error":
                    errors.append((by_key[future.key], future.exception()))
                    log(f"[{label}] task {future.key} could not run: {future.exception()!r}")
                else:
                    _log_task(label, future.result(), log)
                future.release()
                progress.done += 1
    return errors


def _log_task(label: str, info: dict, log) -> None:
    for message in dict.fromkeys(info.get("warnings", [])):
        log(f"[{label}] warning in task {info['key']}: {message}")
    for line in failure_lines(info.get("failures", [])):
        log(f"[{label}] FAILED {line}")


def failure_lines(failures: list[dict]) -> list[str]:
    """One line per failed point (and d): the point, d, the seeds, status and reason."""
    groups: dict = {}
    for f in failures:
        groups.setdefault((f["point"], f["d"], f["status"], f["reason"]), []).append(f)
    lines = []
    for (point, d, code, reason), runs in groups.items():
        where = point + (f", d={d}" if d is not None else "")
        seeds = [f["seed"] for f in runs if f["seed"] is not None]
        where += f", seeds {sorted(seeds)}" if seeds else ""
        lines.append(f"{where}: {STATUS_FLAGS[code]}: {reason}")
    return sorted(lines)


def failure_report(label: str, failures: list[dict], store_path, *, new: bool) -> str:
    lines = failure_lines(failures)
    head = (f"{len(failures)} runs of {label} failed" if new else
            f"{len(failures)} runs of {label} are stored as failed (from an earlier run)")
    return (f"{head}; every other run is saved:\n  " + "\n  ".join(lines) + "\n"
            f"They are stored with status (1 diverged, 2 error), failure_time and NaN data "
            f"after the failure ({store_path}). What to do: a diverging run usually needs a "
            "smaller eta (or more DMFT samples); rerunning keeps these runs as failed and "
            "completes; to compute them again, rerun with `--config retry_failed=true` "
            "(python -m workflow.cli run ... --retry-failed).")
