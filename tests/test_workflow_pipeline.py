"""The pipeline end to end: Snakemake + Dask -> Zarr stores equal to direct solver calls,
resume after a kill without recomputation, independence of the number of workers, lint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import dmft
import sims
from analysis.data import at_seeds_kind
from analysis.store import open_experiment
from conftest import ROOT, TINY_DMFT, snakemake, tiny_config, write_config
from workflow.config import load_config, read_yaml
from workflow.execute import run_experiment
from workflow.store import Layout, completed, open_store

OBSERVABLES = ["gen_error", "train_loss", "train_acc", "norm2", "magnetization"]


def test_snakemake_builds_stores_equal_to_direct_solver_calls(tmp_path, tiny):
    path, config = tiny
    result = snakemake(tmp_path, "--configfile", path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tasks (100%)" in result.stdout + result.stderr  # the progress line
    specs = load_config(config)

    two = open_experiment(tmp_path / "results" / "two")
    s, m = two["sims"], two["dmft"]
    assert s.gen_error.dims == ("case", "lam", "d", "seed", "time")
    assert m.gen_error.dims == ("case", "lam", "time")
    assert m.correlation.dims == ("case", "lam", "time", "time_prime")
    assert list(s.case.values) == ["gd", "psgd"] and list(s.process.values) == ["gd", "persistent"]
    np.testing.assert_allclose(s.lam.values, [0.1, 1.0])
    assert list(s.d.values) == [40, 60] and list(s.seed.values) == [0, 1, 2]
    assert s.attrs["alpha"] == 2 and s.attrs["experiment"] == "two"
    assert s.attrs["entropy"] == specs["two"].entropy and "package_version" in s.attrs
    assert json.loads(s.attrs["config"])["name"] == "two"
    assert s.gen_error.attrs["long_name"] == "generalization error"
    assert bool(s.done.all()) and bool(m.done.all())

    problem = sims.Problem(model="two_cluster", alpha=2, delta=0.5, R=0.01, eta=0.2, t_max=2,
                           process="persistent", b=0.3, tau=3.3333, lam=1.0)
    direct = sims.simulate(problem, 60, [1, 2], entropy=specs["two"].entropy)
    stored = s.sel(case="psgd", lam=1.0, d=60, seed=[1, 2])
    for name in OBSERVABLES + ["active_fraction", "diverged_at"]:
        # the pipeline batches the 4 points and splits the seeds over tasks: bit-identical
        np.testing.assert_array_equal(stored[name].values, direct[name].values)
    np.testing.assert_array_equal(stored.time.values, direct.time.values)
    layout = Layout(specs["two"], "sims")
    batch = sims.simulate_batch([layout.problems[i] for i in sorted(layout.problems)], 60,
                                [1], entropy=specs["two"].entropy)
    for (index, ds) in zip(sorted(layout.problems), batch):  # the pipeline's call: exact
        np.testing.assert_array_equal(s.gen_error.isel(case=index[0], lam=index[1]).sel(
            d=60, seed=[1]).values, ds.gen_error.values)

    solved = dmft.solve(problem, seed=int(specs["two"].entropy % 2**32), **TINY_DMFT)
    point = m.sel(case="psgd", lam=1.0)
    for name in OBSERVABLES + ["correlation"]:
        np.testing.assert_array_equal(point[name].values, solved[name].values)

    three = open_experiment(tmp_path / "results" / "three")
    assert three["dmft"].gen_error.dims == ("d", "time")  # three-cluster DMFT: one solve per d
    p3 = sims.Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, R=0.01,
                      eta=0.2, t_max=2)
    solved3 = dmft.solve(p3, d=50, seed=int(specs["three"].entropy % 2**32), **TINY_DMFT)
    np.testing.assert_array_equal(three["dmft"].gen_error.sel(d=50).values,
                                  solved3.gen_error.values)
    # seed_magnetizations: also the DMFT at the 2 simulated seeds' own m(0) (theory §6.6)
    m0 = three["sims"].magnetization.sel(d=50).isel(time=0).values
    np.testing.assert_array_equal(m0, sims.initial_magnetizations(p3, 50, 2,
                                                                  entropy=specs["three"].entropy))
    at_seeds = dmft.solve(p3, initial_magnetizations=m0,
                          seed=int(specs["three"].entropy % 2**32), **TINY_DMFT)
    for name in OBSERVABLES:
        np.testing.assert_array_equal(three["dmft"][f"{name}_at_seeds"].sel(d=50).values,
                                      at_seeds[name].values)
        assert f"seeds 0..1" in three["dmft"][f"{name}_at_seeds"].attrs["description"]
    assert at_seeds_kind(three["dmft"]) == "m(0)"

    again = snakemake(tmp_path, "--configfile", path, "--cores", "2")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def _kill_config():
    config = tiny_config(t_max=20)
    config["experiments"] = {"two": config["experiments"]["two"]}
    exp = config["experiments"]["two"]
    exp["sims"] = {"d": [150, 200], "seeds": 4, "seeds_per_task": 1, "points_per_task": 1}
    del exp["dmft"]
    config["dask"] = {"n_workers": 2, "progress_interval": 1, "processes": False}
    return config


def test_killed_run_resumes_without_recomputing_and_gives_the_same_numbers(tmp_path):
    config = _kill_config()
    path = write_config(tmp_path / "kill.yaml", config)
    work = tmp_path / "work"
    store = work / "results" / "two" / "sims.zarr"
    n_tasks = len(Layout(load_config(config)["two"], "sims").units())
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
           str(work), "--configfile", str(path), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(completed(store)) < 4 and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake, the CLI and the Dask workers
    proc.wait()
    done_at_kill = len(completed(store))
    assert 0 < done_at_kill < n_tasks, done_at_kill
    assert snakemake(work, "--configfile", path, "--unlock", "--cores", "1").returncode == 0
    result = snakemake(work, "--configfile", path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "logs" / "two" / "sims.log").read_text()
    assert f"{done_at_kill} already done, {n_tasks - done_at_kill} to run" in log
    counts = completed(store)
    assert len(counts) == n_tasks and set(counts.values()) == {1}  # nothing ran twice

    reference = tmp_path / "reference.zarr"
    run_experiment(load_config(config)["two"], "sims", reference, scheduler="sync",
                   log=lambda msg: None)
    resumed, uninterrupted = open_store(store).load(), open_store(reference).load()
    for name in OBSERVABLES + ["diverged_at", "done"]:
        np.testing.assert_array_equal(resumed[name].values, uninterrupted[name].values)


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    spec = load_config(tiny_config(t_max=4))["two"]
    stores = []
    for n_workers in (1, 2):
        path = tmp_path / f"w{n_workers}.zarr"
        run_experiment(spec, "sims", path, threads=n_workers, dask_cfg={"n_workers": n_workers},
                       log=lambda msg: None)
        stores.append(open_store(path).load())
    for name in OBSERVABLES + ["active_fraction", "diverged_at"]:
        np.testing.assert_array_equal(stores[0][name].values, stores[1][name].values)


def test_snakemake_lint_passes(tmp_path):
    """`snakemake --lint` of the whole workflow (every .smk, analysis included) is clean."""
    result = snakemake(tmp_path, "--lint", "--configfile", ROOT / "config" / "quick.yaml")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert not (tmp_path / "results").exists()  # nor does --lint


def test_paper_config_dry_run_lists_one_job_per_store(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", ROOT / "config" / "paper.yaml",
                       "--config", "analysis=false")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    specs = load_config(read_yaml(ROOT / "config" / "paper.yaml"))
    n_sims = sum(s.sims is not None for s in specs.values())
    n_dmft = sum(s.dmft is not None for s in specs.values())
    table = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
             if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert table.get("store") == n_sims + n_dmft, out[-2000:]  # one rule, {solver} wildcard
    assert table.get("spec") == n_sims + n_dmft
    assert not (tmp_path / "results").exists()  # a dry run writes no spec file


def test_clipped_persistent_chain_is_recorded_and_its_warning_logged(tmp_path):
    """b = 0.1, tau = 1.6667, eta = 0.2: (1-b) eta/(b tau) = 1.08 > 1 is clipped at 1, so
    the stationary active fraction is p01 / (p01 + 1) with p01 = eta/tau, not b."""
    config = tiny_config(t_max=1)
    experiment = config["experiments"]["two"]
    experiment.update(cases={"psgd": {"process": "persistent", "tau": 1.6667}},
                      grid={"b": [0.1, 0.5]}, sims={"d": [40], "seeds": 1})
    del experiment["dmft"]
    lines = []
    run_experiment(load_config(config)["two"], "sims", tmp_path / "s.zarr", scheduler="sync",
                   log=lines.append)
    fraction = open_store(tmp_path / "s.zarr").effective_active_fraction.sel(case="psgd")
    p01 = 0.2 / 1.6667
    np.testing.assert_allclose(fraction.sel(b=0.1), p01 / (p01 + 1), rtol=1e-12)
    np.testing.assert_allclose(fraction.sel(b=0.5), 0.5, rtol=1e-12)  # not clipped
    warned = [line for line in lines if "warning at case 'psgd', grid b=0.1" in line]
    assert len(warned) == 1 and "clipped" in warned[0], lines
    assert not any("grid b=0.5" in line and "warning" in line for line in lines)


def test_effective_seed_magnetizations_are_the_seeds_linear_regime(tmp_path):
    """seed_magnetizations: effective (theory §6.6): the DMFT at m(t_lin)/G(t_lin) of each
    simulated seed, t_lin and G from the law's solve of the same point."""
    config = tiny_config(t_max=4.0)
    config["experiments"] = {"three": config["experiments"]["three"]}
    config["experiments"]["three"]["dmft"]["seed_magnetizations"] = "effective"
    specs = load_config(config)
    summary = run_experiment(specs["three"], "sims", tmp_path / "sims.zarr", log=lambda *_: None)
    assert summary["failed_runs"] == 0
    run_experiment(specs["three"], "dmft", tmp_path / "dmft.zarr", log=lambda *_: None)
    stored = open_store(tmp_path / "dmft.zarr").sel(d=50).load()
    runs = open_store(tmp_path / "sims.zarr").sel(d=50).load()
    p3 = sims.Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, R=0.01,
                      eta=0.2, t_max=4.0)
    t_lin, growth = dmft.linear_growth(stored, p3.R, 50)
    assert 0 < t_lin < 4.0
    m_eff = runs.magnetization.sel(time=t_lin).values / growth
    assert not np.allclose(np.abs(m_eff), np.abs(runs.magnetization.isel(time=0).values))
    direct = dmft.solve(p3, initial_magnetizations=m_eff,
                        seed=int(specs["three"].entropy % 2**32), **TINY_DMFT)
    np.testing.assert_allclose(stored.gen_error_at_seeds.values, direct.gen_error.values,
                               rtol=1e-10)
    assert "effective" in stored.gen_error_at_seeds.attrs["description"]
    assert at_seeds_kind(stored) == "effective m"  # what the figures and tables say
