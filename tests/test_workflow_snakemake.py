"""The Snakefile as a user runs it: --configfile replaces the default, config errors
without traceback, failed points end the job non-zero and are retried only when asked,
`dask: {scheduler: sync}`, and the cost plan behind the rule's resources."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, snakemake, tiny_config, write_config
from workflow.cli import main as cli_main
from workflow.config import load_config, read_yaml
from workflow.plan import COST, plan_store, planned_cpu, store_threads
from workflow.store import DIVERGED, OK, open_store, task_records


def _one_experiment_config() -> dict:
    config = tiny_config()
    config["experiments"] = {"three": config["experiments"]["three"]}
    config["dask"] = {"progress_interval": 1}
    return config


def test_configfile_replaces_the_default_config(tmp_path):
    path = write_config(tmp_path / "one.yaml", _one_experiment_config())
    result = snakemake(tmp_path, "-n", "--configfile", path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    table = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
             if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert table.get("store") == 2 and "fig1_left" not in out  # nothing from quick.yaml
    assert not (tmp_path / "results").exists()


def test_small_stores_take_one_core_and_the_others_every_core(tmp_path):
    """A store planned at <= 2 JOB_START_S CPU-seconds asks Snakemake for one core (so two
    run side by side); a larger one, or any with n_workers fixed, for every core."""
    config = _one_experiment_config()
    config["experiments"]["big"] = {**config["experiments"]["three"],
                                    "sims": {"d": [1000], "seeds": 200, "seeds_per_task": 100}}
    planned = planned_cpu(load_config(config))
    small, big = planned[("three", "sims")], planned[("big", "sims")]
    assert small <= 2 * COST["JOB_START_S"] < big
    assert store_threads(small, {}, 4) == 1
    assert store_threads(big, {}, 4) == 4
    assert store_threads(small, {"n_workers": 2}, 4) == 4
    assert store_threads(small, {}, 1) == 1
    path = write_config(tmp_path / "two.yaml", config)
    dry = snakemake(tmp_path, "-n", "--configfile", path, "--cores", "2")
    assert dry.returncode == 0, dry.stderr[-3000:]
    blocks = {b.split("wildcards: ")[1].split("\n")[0]: b
              for b in (dry.stdout + dry.stderr).split("rule store:")[1:]}
    assert "threads: 2" in blocks["experiment=big, solver=sims"]
    assert "threads:" not in blocks["experiment=three, solver=sims"]  # Snakemake omits 1


def test_config_errors_name_the_field_without_traceback(tmp_path, capsys):
    cases = {
        "experiments: {}\n": "field 'experiments'",
        "experiments:\n  a: {problem: {}, dmft: {}}\n  a: {problem: {}, dmft: {}}\n":
            "line 3: key 'a' is given twice (first on line 2)",
        "experiments:\n  a: {problem: {}, dmft: {n_samples: -5, method: bogus}}\n":
            "experiment 'a', field 'dmft.n_samples': -5 is not allowed: n_samples must be null "
            "or an integer >= 1",
        "experiments:\n  a: {problem: {}, dmft: {}, grid: {lam: {start: -1, stop: 1, "
        "num: 3, log: true}}}\n": "experiment 'a', field 'grid.lam'",
    }
    for i, (text, words) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(text)
        assert cli_main(["check", str(path)]) == 1  # an exception would propagate here
        assert words in capsys.readouterr().err, text
    result = snakemake(tmp_path, "-n", "--configfile", tmp_path / "bad1.yaml")
    assert result.returncode == 1 and "given twice" in result.stderr
    assert "Traceback" not in result.stderr and "File \"" not in result.stderr


def test_failed_points_fail_the_job_then_are_kept_then_retried_on_request(tmp_path):
    """Run 1 stores the diverging point as failed and exits non-zero naming it; run 2
    accepts the stored failure and completes; retry_failed=true computes it again.
    `dask: {scheduler: sync}` runs the tasks in the job's own process."""
    config = tiny_config()
    experiment = config["experiments"]["two"]
    del experiment["dmft"]
    experiment["problem"].update(eta=1.0, t_max=80)
    experiment["cases"] = {"gd": {"process": "gd", "b": 1}}
    experiment["grid"] = {"lam": [0.1, 3.0]}
    experiment["sims"] = {"d": [40], "seeds": 2, "seeds_per_task": 2}
    config["experiments"] = {"two": experiment}
    config["dask"] = {"scheduler": "sync", "progress_interval": 1}
    path = write_config(tmp_path / "div.yaml", config)
    first = snakemake(tmp_path, "--configfile", path, "--cores", "1")
    log = (tmp_path / "logs" / "two" / "sims.log").read_text()
    assert first.returncode != 0
    assert "case 'gd', grid lam=3.0, d=40, seeds [0, 1]: diverged" in log, log[-2000:]
    assert "retry_failed=true" in log and "Traceback" not in log
    store_path = tmp_path / "results" / "two" / "sims.zarr"
    assert len({r["pid"] for r in task_records(store_path)}) == 1  # scheduler sync
    store = open_store(store_path).load().sel(case="gd", d=40)
    assert (store.status.sel(lam=0.1) == OK).all() and (store.status.sel(lam=3.0) == DIVERGED).all()
    assert store.status.attrs["flag_meanings"] == "not_computed ok diverged error"
    failed = store.sel(lam=3.0)
    assert np.isfinite(failed.failure_time).all() and np.isnan(store.failure_time.sel(lam=0.1)).all()
    assert np.isnan(failed.gen_error.where(failed.time > failed.failure_time.max(), drop=True)).all()
    assert np.isfinite(store.gen_error.sel(lam=0.1)).all()  # the rest of the sweep is there
    reasons = [f["reason"] for r in task_records(store_path) for f in r["failures"]]
    assert len(reasons) == 2 and all("diverged" in r for r in reasons)

    second = snakemake(tmp_path, "--configfile", path, "--cores", "1")
    assert second.returncode == 0, second.stderr[-2000:]
    done = json.loads((tmp_path / "results" / "two" / "sims.done.json").read_text())
    assert done["failed_runs"] == 2 and done["ran"] == 0

    third = snakemake(tmp_path, "--configfile", path, "--cores", "1", "--config",
                      "retry_failed=true")
    log = (tmp_path / "logs" / "two" / "sims.log").read_text()
    assert third.returncode != 0 and "retrying 2 failed runs" in log, log[-2000:]
    assert "1 already done, 1 to run" in log  # only the failed point


def test_store_wall_time_packs_whole_tasks_onto_workers():
    """A task runs on one worker: 3 equal tasks on 2 workers take two tasks' time."""
    from workflow.plan import packed_wall
    assert packed_wall([10.0, 10.0, 10.0], 2) == 20.0
    assert packed_wall([30.0, 10.0, 10.0, 10.0], 2) == 30.0
    assert packed_wall([5.0] * 8, 2) == 20.0
    assert packed_wall([7.0], 4) == 7.0


def test_cost_plan_scales_as_the_model_and_sets_the_rule_resources(tmp_path, capsys):
    """Sims cost ~ d^2 per task; the plan CLI covers every store; dry run shows resources."""
    config = _one_experiment_config()
    small = load_config(config)["three"]
    config["experiments"]["three"]["sims"]["d"] = [100]
    big = load_config(config)["three"]
    a, b = plan_store(small, "sims", {}, 1), plan_store(big, "sims", {}, 1)
    assert a["tasks"] == b["tasks"] == 2  # two seed batches
    work = [p["cpu_total_s"] - p["tasks"] * COST["SIMS_OVERHEAD_S"] for p in (a, b)]
    assert 2 < work[1] / work[0] < 4  # per-configuration work ~ n ~ d, data passes ~ d^2
    results = tmp_path / "results"
    (results / "fig1_left").mkdir(parents=True)
    run = dict(units=5, ran=5, task_cpu_time=20.0, wall_time=12.0, worker_peak_rss_mb=321.0)
    (results / "fig1_left" / "sims.done.json").write_text(json.dumps(run))
    assert cli_main(["plan", str(ROOT / "config" / "paper.yaml"), "--cores", "2",
                     "--measured", str(results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in lines if line.split()[:2] == ["fig1_left", "sims"])
    estimate = plan_store(load_config(read_yaml(ROOT / "config" / "paper.yaml"))["fig1_left"],
                          "sims", {}, 2)["cpu_total_s"]
    assert row[-4:-1] == ["20s", "12s", "321"]
    assert float(row[-1]) == pytest.approx(estimate / 20.0, abs=0.006)  # printed to 0.01
    assert next(line for line in lines if line.startswith("fig1_left ") and "dmft" in line
                ).split()[-4:] == ["-"] * 4  # not run
    run.update(ran=2)  # a resumed run: its summary's CPU still sums all 5 units
    (results / "fig1_left" / "sims.done.json").write_text(json.dumps(run))
    assert cli_main(["plan", str(ROOT / "config" / "paper.yaml"), "--cores", "2",
                     "--measured", str(results)]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines()
               if line.split()[:2] == ["fig1_left", "sims"])
    assert float(row[-1]) == pytest.approx(estimate / 20.0, abs=0.006)
    for name, spec in load_config(read_yaml(ROOT / "config" / "paper.yaml")).items():
        for solver in ("sims", "dmft"):
            if getattr(spec, solver) is not None:
                assert any(line.split()[:2] == [name, solver] for line in lines), (name, solver)
    config["experiments"]["three"]["sims"]["d"] = [4000]
    at_m0 = plan_store(load_config(config)["three"], "dmft", {}, 1)  # seed_magnetizations: true
    config["experiments"]["three"]["dmft"]["seed_magnetizations"] = "effective"
    effective = plan_store(load_config(config)["three"], "dmft", {}, 1)
    n, d, seeds = 3 * 4000, 4000, 2  # each seed's run to t_lin draws its n x d data first
    assert effective["cpu_total_s"] - at_m0["cpu_total_s"] >= seeds * COST["SIMS_S_GEN"] * n * d
    assert effective["peak_mb_per_task"] > max(n * d * 8 / 1e6, at_m0["peak_mb_per_task"])
    path = write_config(tmp_path / "one.yaml", _one_experiment_config())
    dry = snakemake(tmp_path, "-n", "--configfile", path, "--cores", "2")
    specs, dask = load_config(read_yaml(path)), {"progress_interval": 1}
    threads = store_threads(planned_cpu(specs)[("three", "sims")], dask, 2)  # 1: small
    plan = plan_store(specs["three"], "sims", dask, threads)
    assert f"mem_mb={plan['mem_mb']}" in dry.stdout + dry.stderr
