"""Config checks: the shipped configs, the format, and bad configs failing early and clearly."""

from __future__ import annotations

import copy

import pytest

from conftest import ROOT, snakemake, tiny_config, write_config
from workflow.config import (ConfigError, experiment_entropy, load_config, read_yaml,
                             spec_text, write_if_changed)
from workflow.store import Layout

PAPER_EXPERIMENTS = {"fig1_left", "fig1_right", "fig2_left", "fig2_right", "fig3_left",
                     "fig3_right", "fig4_left", "fig4_right", "esmap_psgd_two",
                     "esmap_sgd_two", "esmap_sgd_three", "fss_two", "fss_three"}


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_shipped_configs_are_valid_and_name_every_experiment(name):
    specs = load_config(read_yaml(ROOT / "config" / f"{name}.yaml"))
    assert set(specs) == PAPER_EXPERIMENTS
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


def test_editing_one_experiment_changes_only_its_spec_files(tmp_path):
    config = tiny_config()
    specs = load_config(config)
    for name, spec in specs.items():
        for solver in ("sims", "dmft"):
            assert write_if_changed(tmp_path / name / solver, spec_text(spec, solver))
    config["experiments"]["two"]["dmft"]["n_samples"] = 400
    changed = {(name, solver) for name, spec in load_config(config).items()
               for solver in ("sims", "dmft")
               if write_if_changed(tmp_path / name / solver, spec_text(spec, solver))}
    assert changed == {("two", "dmft")}


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
