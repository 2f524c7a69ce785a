"""Config checks: the shipped configs, the format, and bad configs failing early and clearly."""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sims

from conftest import ROOT, snakemake, tiny_config, write_config
from workflow.config import (ConfigError, checked_problem, experiment_entropy, load_config,
                             points_to_check, read_yaml, spec_text, stable_hash)
from workflow.store import Layout

PAPER_EXPERIMENTS = {"fig1_left", "fig1_right", "fig2_left", "fig2_right", "fig3_left",
                     "fig3_right", "fig4_left", "fig4_right", "esmap_psgd_two",
                     "esmap_sgd_two", "esmap_sgd_three", "fss_two", "fss_three"}


EXTENSIONS_QUICK = {"momentum_quick", "covariance_quick"}  # small config/extensions.yaml
MANY_SEEDS = {"fig2_left_seeds", "fig2_right_seeds", "fig3_left_seeds",  # paper: escape window
              "fss_three_seeds"}


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_shipped_configs_are_valid_and_name_every_experiment(name):
    specs = load_config(read_yaml(ROOT / "config" / f"{name}.yaml"))
    assert set(specs) == PAPER_EXPERIMENTS | (EXTENSIONS_QUICK if name == "quick" else MANY_SEEDS)
    assert specs["fig2_left"].case_names() == ["gd", "psgd_b0.2", "psgd_b0.3"]
    assert specs["fig3_left"].dmft["d"] == specs["fig3_left"].sims["d"]  # dmft d from sims
    assert specs["esmap_sgd_two"].sims is None and specs["esmap_sgd_two"].dmft is not None


def test_paper_config_uses_the_papers_dimensions():
    specs = load_config(read_yaml(ROOT / "config" / "paper.yaml"))
    assert specs["fig1_left"].sims["d"] == [500]
    assert specs["fig2_left"].sims["d"] == [5000]
    assert specs["fig3_left"].sims["d"] == [500, 1000, 5000, 10000]
    assert specs["fig4_right"].sims["d"] == [1000]


def test_ranges_cases_and_dims():
    spec = load_config(tiny_config())["two"]
    assert spec.grid["lam"] == [0.1, 1.0]
    layout = Layout(spec, "sims")
    assert layout.lead_dims == ["case", "lam", "d"] and layout.sample_dims == ["seed"]
    units = layout.units()
    assert len(units) == 4 * 2 * 2  # 4 points x 2 d x 2 seed batches, one marker each
    assert len(layout.batches(units)) == 2 * 2  # all 4 points in one batch, x 2 d x 2 seeds
    dmft = Layout(spec, "dmft")
    assert dmft.lead_dims == ["case", "lam"]  # two-cluster DMFT has no d
    three = Layout(load_config(tiny_config())["three"], "dmft")
    assert three.lead_dims == ["d"]  # three-cluster DMFT: d from the sims axis


def test_entropy_is_a_stable_function_of_name_and_seed():
    assert experiment_entropy("fig1_left", 1) == experiment_entropy("fig1_left", 1)
    assert experiment_entropy("fig1_left", 1) != experiment_entropy("fig1_left", 2)
    assert experiment_entropy("fig1_left", 1) != experiment_entropy("fig1_right", 1)
    assert experiment_entropy("fig1_left", 1) == 1881944305822383294  # never changes


def test_editing_one_experiment_changes_only_its_spec_files():
    """The spec files are named by the hash of their text (workflow/rules/common.smk)."""
    def hashes(config):
        return {(name, solver): stable_hash(spec_text(spec, solver))
                for name, spec in load_config(config).items() for solver in ("sims", "dmft")}
    config = tiny_config()
    before = hashes(config)
    config["experiments"]["two"]["dmft"]["n_samples"] = 400
    after = hashes(config)
    assert {key for key in before if before[key] != after[key]} == {("two", "dmft")}


def _bad(mutate):
    config = tiny_config()
    mutate(config["experiments"]["two"])
    return config


BAD = {
    "unknown key": (lambda e: e["problem"].update(gamma=1), ["two", "gamma", "not allowed"]),
    "wrong type": (lambda e: e["sims"].update(seeds="many"), ["two", "sims.seeds", "'many'",
                                                              "integer"]),
    "out of range": (lambda e: e["problem"].update(alpha=-1), ["two", "problem.alpha", "-1",
                                                               "exclusiveMinimum"]),
    "empty grid": (lambda e: e["grid"].update(lam=[]), ["two", "grid.lam", "[]", "minItems"]),
    "bad grid point": (lambda e: e["grid"].update(lam=[0.1, -1]),
                       ["two", "case 'gd'", "lam=-1", "Problem.lam", ">= 0"]),
    "tau below eta": (lambda e: e["cases"]["psgd"].update(tau=0.1),
                      ["two", "case 'psgd'", "Problem.tau = 0.1", "at least eta"]),
    "tau for gd": (lambda e: e["cases"]["gd"].update(tau=2),
                   ["two", "case 'gd'", "Problem.tau = 2", "None (omitted)"]),
    "d for two-cluster dmft": (lambda e: e["dmft"].update(d=[100]),
                               ["two", "dmft.d", "only used by three_cluster"]),
    "unknown dmft setting": (lambda e: e["dmft"].update(n_sample=3),
                             ["two", "dmft.n_sample", "allowed are", "n_samples"]),
    "two-layer sims setting": (lambda e: e["sims"].update(overlaps=False),
                               ["two", "sims.overlaps", "setting of model two_layer"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_gives_a_clear_error(case):
    mutate, words = BAD[case]
    with pytest.raises(ConfigError) as err:
        load_config(_bad(mutate))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize("case", ["unknown key", "bad grid point"])
def test_snakemake_refuses_a_bad_config_before_creating_anything(tmp_path, case):
    mutate, words = BAD[case]
    path = write_config(tmp_path / "bad.yaml", _bad(mutate))
    work = tmp_path / "work"
    work.mkdir()
    result = snakemake(work, "--configfile", path, "--cores", "1")
    assert result.returncode != 0
    for word in words:
        assert word in result.stderr + result.stdout
    assert not (work / "results").exists() and not (work / "logs").exists()


def test_config_is_not_mutated_by_loading():
    config = tiny_config()
    before = copy.deepcopy(config)
    load_config(config)
    assert config == before


# ------------------------------------------------------------------ property-based checks
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def valid_experiments(draw) -> dict:
    eta = draw(st.sampled_from([0.05, 0.1, 0.2, 0.5]))
    process = draw(st.sampled_from(["gd", "sgd", "persistent"]))
    problem = {"model": "two_cluster", "alpha": draw(st.floats(0.5, 4)),
               "delta": draw(st.floats(0.05, 2)), "lam": draw(st.floats(0, 1)),
               "R": draw(st.floats(0, 2)), "eta": eta, "process": process,
               "t_max": eta * draw(st.integers(1, 50))}
    if process != "gd":
        problem["b"] = draw(st.floats(0.05, 1))
    if process == "persistent":
        problem["tau"] = eta * draw(st.floats(1, 20))
    experiment = {"problem": problem,
                  "sims": {"d": draw(st.lists(st.integers(20, 500), min_size=1, max_size=3,
                                              unique=True)),
                           "seeds": draw(st.integers(1, 8)),
                           "seeds_per_task": draw(st.integers(1, 4))},
                  "dmft": {"method": draw(st.sampled_from(["causal", "iterative"])),
                           "n_samples": draw(st.integers(1, 10**5)),
                           "n_replicas": draw(st.integers(2, 16)),
                           "response_samples": draw(st.none() | st.integers(1, 1000)),
                           "backend": draw(st.sampled_from(["numba", "numpy"])),
                           "memory_limit": draw(st.sampled_from(["8GB", "500 MB", 10**9]))}}
    if draw(st.booleans()):
        experiment["grid"] = {"lam": draw(st.lists(st.floats(0, 3), min_size=1, max_size=4,
                                                   unique=True))}
    return {"seed": draw(st.integers(0, 2**31)), "experiments": {"e": experiment},
            "dask": {"n_workers": draw(st.integers(1, 64)),
                     "scheduler": draw(st.sampled_from(["local", "sync", "slurm",
                                                        "tcp://127.0.0.1:8786"]))}}


@PROPERTY
@given(valid_experiments())
def test_random_valid_configs_pass(config):
    specs = load_config(config)
    assert set(specs) == {"e"}


# field path -> bad values (each one alone makes the config invalid)
BAD_VALUES = {
    ("problem", "alpha"): [0, -1.5, "two", None, True, [1]],
    ("problem", "eta"): [0, -0.1, "x", None],
    ("problem", "lam"): [-0.5, "none"],
    ("problem", "process"): ["adam", 1],
    ("problem", "gamma"): [1],
    ("sims", "seeds"): [0, -3, 1.5, "many", None],
    ("sims", "d"): [0, [], [10, 10], "big", [-5]],
    ("sims", "dtype"): ["float16", 64],
    ("dmft", "n_samples"): [0, -5, 2.5, "many", True],
    ("dmft", "method"): ["bogus", 3, None],
    ("dmft", "n_replicas"): [0, 1, 1.5],
    ("dmft", "backend"): ["cuda"],
    ("dmft", "memory_limit"): ["lots", -1, 0],
    ("dmft", "damping"): [0, 1.5],
    ("dmft", "response_window"): [0, 1, -4, 2.5],
    ("dmft", "n_sample"): [100],
    ("dask", "n_workers"): [0, -2, "all"],
    ("dask", "scheduler"): ["nonsense", 5],
    ("dask", "threads"): [2],
    ("grid", "lam"): [[], [0.1, 0.1], {"start": -1, "stop": 1, "num": 3, "log": True}],
}


@PROPERTY
@given(valid_experiments(), st.sampled_from(sorted(BAD_VALUES)), st.data())
def test_random_bad_configs_give_an_error_naming_the_field(config, path, data):
    value = data.draw(st.sampled_from(BAD_VALUES[path]))
    section, field = path
    if section == "dask":
        config["dask"][field] = value
    else:
        config["experiments"]["e"].setdefault(section, {})[field] = value
    with pytest.raises(ConfigError) as err:  # never another exception
        load_config(config)
    assert field in str(err.value), (path, value, str(err.value))
    if section != "dask":
        assert "experiment 'e'" in str(err.value)


PROBLEM_VALUES = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["two_cluster", "three_cluster", "four", 3]),
    "alpha": st.one_of(st.floats(allow_nan=True), st.integers(-3, 3), st.text(max_size=2)),
    "delta": st.floats(-1, 2), "L": st.none() | st.floats(-1, 2),
    "lam": st.floats(-1, 2), "R": st.floats(-1, 2),
    "eta": st.sampled_from([0.0, -0.1, 0.1, 0.2, float("inf")]),
    "process": st.sampled_from(["gd", "sgd", "persistent", "adam"]),
    "b": st.floats(-0.5, 1.5), "tau": st.none() | st.floats(-1, 5),
    "t_max": st.floats(-1, 10)})


@PROPERTY
@given(PROBLEM_VALUES)
def test_problem_validation_names_the_field_or_accepts(fields):
    try:
        problem, _ = checked_problem(fields)
    except ValueError as err:
        assert str(err).startswith("Problem."), str(err)
        assert str(err).split(" ")[0].split(".")[1] in sims.Problem.__dataclass_fields__
    else:
        assert problem.n_steps >= 1 and 0 < problem.active_fraction <= 1


@pytest.mark.parametrize("change, message", [
    (dict(problem={"model": "two_cluster"}), "three_cluster' only"),
    (dict(sims=None, dmft={"seed_magnetizations": True, "d": [50]}), "needs a 'sims' section"),
    (dict(dmft={"seed_magnetizations": True, "d": [50, 70]}), "[70] are not simulated"),
    (dict(dmft={"seed_magnetizations": "yes"}), "'effective'"),  # the schema: allowed values
])
def test_seed_magnetizations_is_checked_before_any_compute(change, message):
    """dmft.seed_magnetizations needs three-cluster points and simulated seeds at every
    DMFT d; the error names the field."""
    exp = {"problem": {"model": "three_cluster", "alpha": 3, "delta": 0.05, "L": 0.7,
                       "R": 0.01, "eta": 0.2, "t_max": 1},
           "sims": {"d": [50], "seeds": 2}, "dmft": {"seed_magnetizations": True}}
    for key, value in change.items():
        if value is None:
            del exp[key]
        elif key == "problem":
            exp[key] = {k: v for k, v in {**exp[key], **value}.items() if k != "L"}
        else:
            exp[key] = value
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config({"experiments": {"e": exp}})
    assert "field 'dmft.seed_magnetizations'" in str(err.value)


def test_seed_magnetizations_count_the_seeds_and_enter_only_its_spec():
    exp = {"problem": {"model": "three_cluster", "alpha": 3, "delta": 0.05, "L": 0.7,
                       "R": 0.01, "eta": 0.2, "t_max": 1}, "sims": {"d": [50], "seeds": 3}}
    plain = load_config({"experiments": {"e": {**exp, "dmft": {}}}})["e"]
    at_seeds = load_config({"experiments": {"e": {**exp, "dmft": {
        "seed_magnetizations": True}}}})["e"]
    assert "seed_magnetizations" not in plain.dmft and at_seeds.dmft["seed_magnetizations"] == 3
    assert spec_text(plain, "sims") == spec_text(at_seeds, "sims")
    assert spec_text(plain, "dmft") != spec_text(at_seeds, "dmft")


# ---------------------------------------------------------------- issue 19 case 5: size, NaN
def _one_experiment(**changes) -> dict:
    config = tiny_config()
    del config["experiments"]["three"]
    config["experiments"]["two"].update(changes)
    return config


@pytest.mark.parametrize("where, change", [
    ("problem.lam", lambda e: e["problem"].update(lam=float("nan"))),  # every point overrides it
    ("grid.lam.1", lambda e: e["grid"].update(lam=[0.1, float("inf")])),
    ("cases.psgd.tau", lambda e: e["cases"]["psgd"].update(tau=float("-inf"))),
    ("dmft.damping", lambda e: e["dmft"].update(damping=float("nan"))),
])
def test_nan_or_inf_is_rejected_wherever_it_appears(where, change):
    config = _one_experiment()
    config["experiments"]["two"]["grid"] = {"lam": [0.1, 0.5]}
    change(config["experiments"]["two"])
    with pytest.raises(ConfigError, match=rf"experiment 'two', field '{re.escape(where)}': "
                                          r"-?(nan|inf) is not allowed: .*finite"):
        load_config(config)


def test_a_huge_grid_is_refused_by_its_size_before_it_is_expanded():
    """10^7 grid points: refused from the axis lengths (expanding them took 353 s, 1.5 GB),
    saying the size and how to allow it."""
    config = _one_experiment(grid={"lam": {"start": 0, "stop": 1, "num": 10_000_000}})
    with pytest.raises(ConfigError, match=r"20000000 grid points \(lam 10000000\) is above "
                                          r"the budget of 100000 points.*budget=\{points: "
                                          r"20000000\}"):
        load_config(config)
    config["budget"] = {"points": 10}
    config["experiments"]["two"]["grid"]["lam"]["num"] = 6
    with pytest.raises(ConfigError, match="12 grid points"):
        load_config(config)


def test_a_grid_is_checked_axis_by_axis():
    """50 000 points: the Problems built are a few per axis (the ends of a long axis, every
    value of a short one), and a bad end of a range is named."""
    grid = {"lam": {"start": 0, "stop": 1, "num": 5000},
            "b": {"start": 0.2, "stop": 1.0, "num": 5}}
    config = _one_experiment(grid=grid, problem={
        "model": "two_cluster", "alpha": 2, "delta": 0.5, "R": 0.01, "eta": 0.2,
        "process": "sgd", "t_max": 1.0})
    del config["experiments"]["two"]["cases"]
    spec = load_config(config)["two"]
    assert spec.size() == 25_000
    checked = points_to_check(spec)
    assert len(checked) == 2 * 5
    assert {fields["lam"] for _, fields in checked} == {0.0, 1.0}
    grid["b"]["stop"] = 1.5
    with pytest.raises(ConfigError,
                       match=r"grid lam=0\.0, grid b=1\.175: Problem\.b = 1\.175 is not"):
        load_config(config)


def test_a_run_above_the_cpu_budget_stops_before_compute_and_says_how_to_allow_it(tmp_path):
    """Real Snakemake: above the budget (planned CPU-hours) nothing runs and the error says
    the cost and the option; with the option given the run is planned."""
    config = {**_one_experiment(), "budget": {"cpu_hours": 1e-6}}
    path = write_config(tmp_path / "c.yaml", config)
    run = snakemake(tmp_path, "--cores", 2, "--configfile", path)
    assert run.returncode == 1
    message = re.search(r"config error: the config plans [0-9.e-]+ CPU-hours \(two/",
                        run.stderr)
    assert message, run.stderr[-2000:]
    assert "above the budget of 1e-06 CPU-hours" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "results").exists()
    allowed = snakemake(tmp_path, "--cores", 2, "--configfile", path, "-n",
                        "--config", "budget={cpu_hours: 1}")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "store" in allowed.stdout


def test_the_budget_plan_of_a_large_dmft_grid_samples_it():
    """Above PLAN_SAMPLE_POINTS DMFT points the planned CPU is the plan of a spread sample
    scaled by the number of points: within 5% of the exact plan (t_max varies: the cost
    grows as t_max^2, theory §5.7)."""
    from workflow.plan import PLAN_SAMPLE_POINTS, plan_store, planned_cpu_seconds
    config = _one_experiment(grid={"t_max": {"start": 1, "stop": 20, "num": 300},
                                   "lam": [0.1, 0.5]})
    del config["experiments"]["two"]["sims"]
    spec = load_config(config)["two"]
    assert spec.size() > PLAN_SAMPLE_POINTS
    exact = plan_store(spec, "dmft", {}, 1)["cpu_total_s"]
    assert planned_cpu_seconds(spec, "dmft") == pytest.approx(exact, rel=0.05)
