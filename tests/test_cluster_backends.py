"""The pipeline on the other Dask back-ends: an existing scheduler, and a real SLURM cluster
(dask_jobqueue.SLURMCluster; `.ci/slurm.sh start` sets one up on a single machine)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sims
from analysis.store import open_experiment
from conftest import ROOT, snakemake, tiny_config, write_config
from workflow.config import load_config
from workflow.store import task_records

OBSERVABLES = ["gen_error", "train_loss", "train_acc", "norm2", "magnetization"]


def _sims_only_config(dask: dict) -> dict:
    config = tiny_config()
    config["experiments"] = {"two": config["experiments"]["two"]}
    del config["experiments"]["two"]["dmft"]
    config["dask"] = {"progress_interval": 1, **dask}
    return config


def _assert_store_equals_direct_simulation(workdir, config):
    entropy = load_config(config)["two"].entropy
    stored = open_experiment(workdir / "results" / "two")["sims"]
    assert bool(stored.done.all())
    problem = sims.Problem(model="two_cluster", alpha=2, delta=0.5, R=0.01, eta=0.2, t_max=2,
                           process="persistent", b=0.3, tau=3.3333, lam=0.1)
    direct = sims.simulate(problem, 40, [0, 1, 2], entropy=entropy)
    point = stored.sel(case="psgd", lam=0.1, d=40)
    for name in OBSERVABLES:
        np.testing.assert_array_equal(point[name].values, direct[name].values)


def test_pipeline_runs_on_an_existing_dask_scheduler(tmp_path):
    from distributed import Client, LocalCluster

    config = _sims_only_config({})
    path = write_config(tmp_path / "c.yaml", config)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        result = snakemake(tmp_path, "--configfile", path, "--cores", "1",
                           "--config", f"dask_scheduler={cluster.scheduler_address}")
        assert result.returncode == 0, result.stderr[-3000:]
        worker_pids = set(client.run(os.getpid).values())
    # every task ran in one of this scheduler's worker processes
    records = task_records(tmp_path / "results" / "two" / "sims.zarr")
    assert records and {record["pid"] for record in records} <= worker_pids
    _assert_store_equals_direct_simulation(tmp_path, config)


def _slurm_extra_missing(module: str) -> bool:
    """The `slurm` extra is not installed (pip install -e ".[slurm]"; CI installs it)."""
    return importlib.util.find_spec(module) is None


def _slurm_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return states.returncode == 0 and "idle" in states.stdout


@pytest.mark.slurm
@pytest.mark.skipif(not _slurm_is_up(), reason="no SLURM here (CI starts one: .ci/slurm.sh)")
@pytest.mark.skipif(_slurm_extra_missing("dask_jobqueue"),
                    reason="dask-jobqueue missing: pip install -e '.[slurm]'")
def test_pipeline_runs_on_a_slurm_cluster(tmp_path):
    slurm = {"cores": 1, "processes": 1, "memory": "1GB", "walltime": "00:10:00",
             "interface": "lo", "scheduler_options": {"interface": "lo"},
             "log_directory": str(tmp_path / "slurm-logs")}
    config = _sims_only_config({"scheduler": "slurm", "slurm": slurm, "n_workers": 2})
    path = write_config(tmp_path / "c.yaml", config)
    result = snakemake(tmp_path, "--configfile", path, "--cores", "1", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dask: slurm cluster" in (tmp_path / "logs" / "two" / "sims.log").read_text()
    # the workers were SLURM jobs: their logs are in the log directory
    assert any((tmp_path / "slurm-logs").iterdir())
    _assert_store_equals_direct_simulation(tmp_path, config)


@pytest.mark.slurm
@pytest.mark.skipif(not _slurm_is_up(), reason="no SLURM here (CI starts one: .ci/slurm.sh)")
@pytest.mark.skipif(_slurm_extra_missing("snakemake_executor_plugin_slurm"),
                    reason="snakemake-executor-plugin-slurm missing: pip install -e '.[slurm]'")
def test_snakemake_submits_the_rules_as_slurm_jobs(tmp_path):
    config = _sims_only_config({"processes": False})
    path = write_config(tmp_path / "c.yaml", config)
    partition = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True,
                               text=True).stdout.split()[0]
    # the shipped profile (it polls squeue: no accounting here, shared/docs/slurm-local.md);
    # this node has 2 CPUs, and the tests poll sooner
    result = snakemake(tmp_path, "--configfile", path, "--profile", ROOT / "profiles" / "slurm",
                       "--set-threads", "store=1", "--jobs", "2",
                       "--slurm-init-seconds-before-status-checks", "2",
                       "--default-resources", f"slurm_partition={partition}", "mem_mb=1000",
                       "runtime=10", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    job_ids = re.findall(r"SLURM jobid (\d+)", result.stdout + result.stderr)
    assert job_ids
    for job_id in job_ids:  # finished jobs stay visible for MinJobAge seconds
        job = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                             text=True).stdout
        assert "JobState=COMPLETED" in job
    _assert_store_equals_direct_simulation(tmp_path, config)


CACHED_KERNEL = """
import numba


@numba.njit(parallel=True, cache=True)
def total(n):
    s = 0.0
    for i in numba.prange(n):
        s += i
    return s
"""

WORKER_COMPILES = """
import numba  # the main module imports numba: spawned workers re-import it first

import kernel
from workflow.execute import dask_client


def task():
    first = kernel.total(100)  # loaded from the cache: launches numba's threads

    @numba.njit
    def later(x):  # a later compilation reloads numba's config from the environment
        return x + 1
    return first, later(1), numba.get_num_threads()


if __name__ == "__main__":
    kernel.total(100)  # compiled here and cached, as the pipeline's probe run does
    with dask_client({"n_workers": 1}, 1, "local", log=lambda m: None) as client:
        print(client.submit(task).result())
"""


def test_a_worker_whose_main_module_imports_numba_compiles_after_launching_threads(tmp_path):
    """The pipeline's workers are spawned and re-import workflow.cli, hence numba, before
    Dask's worker `env` applies: the thread variables must be there from the spawn, or
    numba, whose threads a cached kernel launched, refuses the changed NUMBA_NUM_THREADS
    at the worker's next compilation (every SMF run of a fresh clone failed so)."""
    (tmp_path / "kernel.py").write_text(CACHED_KERNEL)
    script = tmp_path / "main_with_numba.py"
    script.write_text(WORKER_COMPILES)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": "2"}, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "(4950.0, 2, 1)"


def test_worker_processes_get_one_thread_each_and_this_process_keeps_its_numba_setting():
    """The thread variables go to the worker processes' environment; this process's
    environment is untouched (numba here has launched its threads and refuses a changed
    NUMBA_NUM_THREADS at its next compilation)."""
    from workflow.execute import THREAD_VARS, dask_client
    before = {var: os.environ.get(var) for var in THREAD_VARS}
    with dask_client({"n_workers": 1, "processes": True}, 1, "local", log=lambda m: None) as c:
        seen = c.run(lambda: {var: os.environ.get(var) for var in THREAD_VARS})
    assert [env for env in seen.values()] == [{var: before[var] or "1" for var in THREAD_VARS}]
    with dask_client({"n_workers": 1, "processes": False}, 1, "local", log=lambda m: None):
        pass
    # (distributed itself leaves OMP/MKL/OPENBLAS = 1 here after spawning; numba's is ours)
    assert os.environ.get("NUMBA_NUM_THREADS") == before["NUMBA_NUM_THREADS"]
