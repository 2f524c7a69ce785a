"""Fault injection on the pipeline with real processes at tiny sizes (issue 10): two
experiments on one shared Dask scheduler, kill -9 of the whole run (several times), a worker
kill, damaged stores, a read-only results folder, a grown experiment, a diverging DMFT point
(a diverging simulation: test_workflow_snakemake.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from workflow.cli import main as cli_main
from workflow.config import load_config, spec_text
from workflow.execute import run_experiment
from workflow.store import OK, Layout, completed, open_store

QUIET = dict(log=lambda msg: None)


def _sims_config(**sims) -> dict:
    """The tiny two-cluster experiment, simulations only."""
    config = tiny_config()
    experiment = config["experiments"]["two"]
    del experiment["dmft"]
    experiment["sims"].update(sims)
    config["experiments"] = {"two": experiment}
    return config


def _cli(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workflow.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def _spec_file(tmp_path, spec, solver="sims") -> Path:
    path = tmp_path / f"{spec.name}-{solver}.json"
    path.write_text(spec_text(spec, solver))
    return path


def _assert_same_numbers(a_path, b_path):
    a, b = open_store(a_path).load(), open_store(b_path).load()
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny sims store computed in-process, undisturbed."""
    path = tmp_path_factory.mktemp("reference") / "sims.zarr"
    run_experiment(load_config(_sims_config())["two"], "sims", path, scheduler="sync", **QUIET)
    return path


# ------------------------------------------------------------------ shared scheduler
def test_two_experiments_differing_only_in_lam_share_one_scheduler(tmp_path):
    from distributed import LocalCluster

    specs = []
    for name, lam in (("lam0", 0.0), ("lam05", 0.5)):
        config = _sims_config(d=[40], seeds=2)
        experiment = config["experiments"].pop("two")
        experiment["grid"] = {}
        experiment["problem"]["lam"] = lam
        config["experiments"][name] = experiment
        spec = load_config(config)[name]
        spec.name, spec.seed = "same", 7  # same name and seed: same entropy, same grid
        specs.append(spec)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=":0") as cluster:
        runs = [_cli("run", _spec_file(tmp_path, spec).rename(tmp_path / f"{i}.json"),
                     "--store", tmp_path / f"{i}.zarr", "--scheduler", cluster.scheduler_address,
                     "--summary", tmp_path / f"{i}.done.json")
                for i, spec in enumerate(specs)]
        outputs = [run.communicate(timeout=180) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-2000:]
    stores = [open_store(tmp_path / f"{i}.zarr").load() for i in range(2)]
    for store in stores:
        assert bool(store.done.all()) and bool((store.status == OK).all())
        assert np.isfinite(store.gen_error.values).all()
    assert not np.array_equal(stores[0].norm2.values, stores[1].norm2.values)
    keys = [set(completed(tmp_path / f"{i}.zarr")) for i in range(2)]
    assert not keys[0] & keys[1]  # the spec hash is in every key


# ------------------------------------------------------------------ kills
def _wait_for_units(store, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(completed(store)) >= n:
            return
        time.sleep(0.05)


def test_kill_9_of_the_whole_run_several_times_then_resume(tmp_path, reference):
    """The run (CLI + its LocalCluster worker processes) is killed with SIGKILL three
    times at growing progress; each resume computes only what is missing; the final store
    equals the undisturbed one bit for bit and every unit ran once."""
    spec = load_config(_sims_config(points_per_task=1, seeds_per_task=1, seeds=3))["two"]
    spec_path = _spec_file(tmp_path, spec)
    store = tmp_path / "sims.zarr"
    n_units = len(Layout(spec, "sims").units())
    dask = json.dumps({"n_workers": 2, "processes": False, "progress_interval": 1})
    args = ("run", spec_path, "--store", store, "--threads", 2, "--dask-config", dask)
    seen = []
    for target in (2, 6, 12):
        proc = _cli(*args)
        _wait_for_units(store, target, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        seen.append(len(completed(store)))
    assert seen == sorted(seen) and 0 < seen[-1] < n_units, seen
    start = time.time()
    proc = _cli(*args)
    out, err = proc.communicate(timeout=180)
    resume = time.time() - start
    assert proc.returncode == 0, err[-2000:]
    assert f"{seen[-1]} already done, {n_units - seen[-1]} to run" in err
    assert set(completed(store).values()) == {1} and len(completed(store)) == n_units
    print(f"\nkill -9 x3 at {seen} of {n_units} units; resume took {resume:.1f} s")
    # the reference has seeds 0-2 in batches of 2: compare the runs themselves
    ours, ref = open_store(store).load(), open_store(reference).load()
    for name in ("gen_error", "norm2", "train_loss", "status", "done"):
        np.testing.assert_array_equal(ours[name].values, ref[name].values, err_msg=name)


def test_a_killed_worker_loses_no_finished_work(tmp_path, reference):
    """One of two worker processes is killed mid-run; its running task is redone
    elsewhere, finished ones are not (they are in the store)."""
    from distributed import Client, LocalCluster

    spec = load_config(_sims_config(points_per_task=1, seeds_per_task=1, seeds=3))["two"]
    store = tmp_path / "sims.zarr"
    n_units = len(Layout(spec, "sims").units())
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        result = {}
        thread = threading.Thread(target=lambda: result.update(run_experiment(
            spec, "sims", store, scheduler=cluster.scheduler_address, **QUIET)))
        thread.start()
        deadline = time.time() + 120
        while len(completed(store)) < 4 and time.time() < deadline:
            time.sleep(0.05)
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=180)
    assert result and len(completed(store)) == n_units
    executions = sum(completed(store).values())
    print(f"\nworker kill: {executions} executions for {n_units} units")
    assert executions <= n_units + 1  # at most the killed worker's running task again
    ours, ref = open_store(store).load(), open_store(reference).load()
    for name in ("gen_error", "norm2", "status"):
        np.testing.assert_array_equal(ours[name].values, ref[name].values, err_msg=name)


# ------------------------------------------------------------------ damaged stores
def _chunk(store: Path, name: str) -> Path:
    return sorted(f for f in (store / name).iterdir() if not f.name.startswith("."))[1]


def _marker(store: Path) -> Path:
    return sorted((store / ".tasks").glob("*/*.json"))[2]


DAMAGE = {  # what is done to a finished store -> (file named in the log, units recomputed)
    "deleted chunk": (lambda s: _chunk(s, "gen_error").unlink(), "missing", 1),
    "truncated chunk": (lambda s: _truncate(_chunk(s, "norm2")), "bytes instead of", 1),
    "truncated marker": (lambda s: _truncate(_marker(s)), "unreadable task marker", 1),
    "deleted metadata": (lambda s: (s / "gen_error" / ".zarray").unlink(),
                         "rebuilt from the spec", 0),
    "truncated metadata": (lambda s: _truncate(s / "train_loss" / ".zattrs"),
                           "rebuilt from the spec", 0),
    "truncated consolidated metadata": (lambda s: _truncate(s / ".zmetadata"),
                                        "rebuilt from the spec", 0),
    "corrupt root attributes": (lambda s: (s / ".zattrs").write_bytes(os.urandom(200)),
                                "rebuilt from the spec", 0),
}


def _truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_store_is_found_named_and_exactly_repaired(tmp_path, reference, damage):
    inject, words, n_recomputed = DAMAGE[damage]
    store = tmp_path / "sims.zarr"
    shutil.copytree(reference, store)
    inject(store)
    lines = []
    summary = run_experiment(load_config(_sims_config())["two"], "sims", store,
                             scheduler="sync", log=lines.append)
    assert any(words in line for line in lines), lines
    assert summary["ran"] == n_recomputed
    _assert_same_numbers(store, reference)


def test_verify_names_the_damage_for_users(tmp_path, reference, capsys):
    store = tmp_path / "sims.zarr"
    shutil.copytree(reference, store)
    assert cli_main(["verify", str(store)]) == 0
    chunk = _chunk(store, "gen_error")
    chunk.unlink()
    assert cli_main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    assert f"chunk {chunk} missing" in out and f"verify --repair {store}" in out


# ------------------------------------------------------------------ read-only folder
def _make_read_only(folder: Path) -> bool:
    """Read-only even for root: the immutable attribute (chattr +i), else chmod."""
    if os.getuid() != 0:
        folder.chmod(0o555)
        return True
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_read_only_results_folder_gives_a_clear_error_and_no_orphan(tmp_path):
    spec_path = _spec_file(tmp_path, load_config(_sims_config(d=[40], seeds=1))["two"])
    results = tmp_path / "results"
    results.mkdir()
    if not _make_read_only(results):
        pytest.skip("cannot make a folder read-only for root here (no chattr)")
    try:
        proc = _cli("run", spec_path, "--store", results / "sims.zarr", "--scheduler", "sync")
        out, err = proc.communicate(timeout=120)
    finally:
        subprocess.run(["chattr", "-i", str(results)], capture_output=True)
        results.chmod(0o755)
    assert proc.returncode == 1, err[-2000:]
    assert f"store error: cannot write the store {results / 'sims.zarr'}" in err, err[-2000:]
    assert "Traceback" not in err
    assert list(results.iterdir()) == []  # no orphan *.tmp-* store


# ------------------------------------------------------------------ growing
def test_growing_an_experiment_computes_only_what_is_new(tmp_path):
    """More seeds, another d and another grid point: the old runs are copied bit for bit,
    only the new ones run; the result equals a fresh run of the grown experiment."""
    small = _sims_config(d=[40], seeds=2, seeds_per_task=2)
    store = tmp_path / "sims.zarr"
    run_experiment(load_config(small)["two"], "sims", store, scheduler="sync", **QUIET)
    before = open_store(store).load()
    grown = copy.deepcopy(small)
    experiment = grown["experiments"]["two"]
    experiment["sims"].update(d=[40, 60], seeds=4)
    experiment["grid"]["lam"] = [0.1, 0.5, 1.0]
    spec = load_config(grown)["two"]
    lines = []
    summary = run_experiment(spec, "sims", store, scheduler="sync", log=lines.append)
    old_units = 2 * 2 * 1 * 1  # cases x lam x d x seed batches
    assert summary["ran"] == summary["units"] - old_units, lines
    after = open_store(store).load()
    same = after.sel(lam=before.lam, d=before.d, seed=before.seed)
    for name in ("gen_error", "norm2", "status", "done"):
        np.testing.assert_array_equal(same[name].values, before[name].values, err_msg=name)
    fresh = tmp_path / "fresh.zarr"
    run_experiment(spec, "sims", fresh, scheduler="sync", **QUIET)
    _assert_same_numbers(store, fresh)


# ------------------------------------------------------------------ a diverging DMFT point
def test_a_diverging_dmft_point_is_stored_as_failed(tmp_path):
    """GD with eta * lam = 3 > 2: the DMFT solution blows up (dmft.solve reports it in its
    attrs); the point is stored as diverged with its time and reason, the other completes.
    (Simulations: test_workflow_snakemake.py, through Snakemake.)"""
    from workflow.execute import PointsFailed
    config = tiny_config()
    experiment = config["experiments"]["two"]
    del experiment["sims"]
    experiment["problem"].update(eta=1.0, t_max=40)
    experiment["cases"] = {"gd": {"process": "gd", "b": 1}}
    experiment["grid"] = {"lam": [0.1, 3.0]}
    config["experiments"] = {"two": experiment}
    store = tmp_path / "dmft.zarr"
    with pytest.raises(PointsFailed) as err:
        run_experiment(load_config(config)["two"], "dmft", store, scheduler="sync", **QUIET)
    assert "case 'gd', grid lam=3.0: diverged" in str(err.value)
    assert "retry_failed=true" in str(err.value)
    ds = open_store(store).load().sel(case="gd")
    assert int(ds.status.sel(lam=0.1)) == OK and int(ds.status.sel(lam=3.0)) == 1
    at = float(ds.failure_time.sel(lam=3.0))
    assert 0 < at < 40 and np.isnan(float(ds.failure_time.sel(lam=0.1)))
    assert np.isnan(ds.gen_error.sel(lam=3.0).where(ds.time > at, drop=True)).all()
    assert np.isfinite(ds.gen_error.sel(lam=0.1)).all()


# ------------------------------------------------- a store older than a solver output
def test_a_store_made_before_a_new_solver_output_resumes_without_it(tmp_path):
    """The same solver revision (same numbers) with one more output (the node escape times
    of each replica and what else gives the escape law's errors, issue 18): a store made
    before them still resumes. Its runs are written
    without the new variable, the log and the task markers name it and the store, and
    the rest equals a fresh store; the analysis then has no DMFT quantile errors (NaN)."""
    from analysis.finite_size import escape_law
    import dmft
    from workflow.execute import _probe
    from workflow.store import create_store
    config = tiny_config(t_max=4.0)
    experiment = config["experiments"]["three"]
    experiment["sims"]["d"] = [50, 60]
    experiment["dmft"] = {"n_samples": 200, "response_samples": 100, "n_replicas": 2}
    config["experiments"] = {"three": experiment}
    spec = load_config(config)["three"]
    old, fresh = tmp_path / "old.zarr", tmp_path / "fresh.zarr"
    layout = Layout(spec, "dmft")
    new_outputs = ["node_escape_time_replicas", "node_escape_slopes",
                   "escape_magnetization_replicas"]
    create_store(old, layout, _probe(layout, print).drop_vars(new_outputs))
    lines = []
    summary = run_experiment(spec, "dmft", old, scheduler="sync", log=lines.append)
    assert summary["ran"] == 2 and summary["failed_runs"] == 0
    named = [line for line in lines if str(sorted(new_outputs)) in line]
    assert len(named) == 2 and all(f"delete {old} and run snakemake again" in line
                                   for line in named)
    run_experiment(spec, "dmft", fresh, scheduler="sync", **QUIET)
    a, b = open_store(old).load(), open_store(fresh).load()
    assert not set(new_outputs) & set(a.data_vars) and set(new_outputs) <= set(b.data_vars)
    for name in ("gen_error", "gen_error_mc_error", "node_escape_times", "status"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    q = [0.25, 0.5]
    assert np.isnan(dmft.escape_time_quantile_errors(escape_law(a.isel(d=0)), q)).all()
    assert np.isfinite(dmft.escape_time_quantile_errors(escape_law(b.isel(d=0)), q)).all()
