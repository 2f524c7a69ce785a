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
                             read_yaml, spec_text, stable_hash)
from workflow.store import Layout

PAPER_EXPERIMENTS = {"fig1_left", "fig1_right", "fig2_left", "fig2_right", "fig3_left",
                     "fig3_right", "fig4_left", "fig4_right", "esmap_psgd_two",
                     "esmap_sgd_two", "esmap_sgd_three", "fss_two", "fss_three"}


EXTENSIONS_QUICK = {"momentum_quick", "covariance_quick"}  # small config/extensions.yaml


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_shipped_configs_are_valid_and_name_every_experiment(name):
    specs = load_config(read_yaml(ROOT / "config" / f"{name}.yaml"))
    assert set(specs) == PAPER_EXPERIMENTS | (EXTENSIONS_QUICK if name == "quick" else set())
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
