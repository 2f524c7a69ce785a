"""Momentum and covariance in the pipeline: the two-level covariance scalars of the config
(cov_fraction, cov_variance), their validation, a real Snakemake run through Zarr with a
covariance axis and its faceted figure, and the shipped extensions configs."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

import dmft
import sims
from analysis.data import problem_at, reference_for
from analysis.panels import plot_panel
from analysis.store import open_experiment
from conftest import ROOT, TINY_DMFT, snakemake, write_config
from helpers_analysis import build_experiment
from sims.problem import Covariance, generalization_error
from workflow.config import ConfigError, checked_problem, load_config, problem_fields, read_yaml

BASE = {"model": "two_cluster", "alpha": 2, "delta": 0.5, "R": 0.01, "eta": 0.2,
        "process": "gd", "t_max": 1.0}
CATEGORY = "Extensions: momentum, Nesterov, input covariance"


def _config(grid=None, cases=None, **problem) -> dict:
    experiment = {"problem": {**BASE, **problem}, "dmft": dict(TINY_DMFT),
                  "sims": {"d": [40], "seeds": 2}}
    if grid is not None:
        experiment["grid"] = grid
    if cases is not None:
        experiment["cases"] = cases
    return {"seed": 5, "analysis": False, "dask": {"processes": False, "progress_interval": 1},
            "experiments": {"cov": experiment}}


# --------------------------------------------------------------------------- the scalars
def test_the_scalars_are_the_two_level_family_with_mean_variance_one():
    fields = problem_fields({**BASE, "cov_fraction": 0.2, "cov_variance": 3.0})
    assert "cov_fraction" not in fields and "cov_variance" not in fields
    covariance = fields["covariance"]
    assert covariance == Covariance.two_levels(0.2, 3.0)
    assert covariance.fractions == pytest.approx((0.2, 0.8))
    assert covariance.variances == pytest.approx((3.0, 0.5))  # (1 - 0.6) / 0.8
    problem, _ = checked_problem({**BASE, "cov_fraction": 0.1, "cov_variance": 1})
    assert problem.level_variances == (1.0, 1.0)  # s1 = 1: two levels of variance 1
    assert problem_fields(BASE) == BASE  # no scalars: unchanged


def test_a_covariance_grid_gives_one_problem_per_point():
    spec = load_config(_config(grid={"cov_fraction": [0.1, 0.4],
                                     "cov_variance": [1, 2]}))["cov"]
    problems = [checked_problem(f)[0] for _, f in spec.points()]
    assert [p.level_variances[0] for p in problems] == [1, 2, 1, 2]
    assert [p.level_fractions[0] for p in problems] == [0.1, 0.1, 0.4, 0.4]
    assert problems[3].level_variances[1] == pytest.approx((1 - 0.8) / 0.6)


BAD = {
    "fraction above 1": (dict(grid={"cov_fraction": [0.2, 1.2], "cov_variance": [0.5]}),
                         ["experiment 'cov'", "grid cov_fraction=1.2",
                          "cov_fraction = 1.2, cov_variance = 0.5 is not allowed",
                          "cov_fraction must be in (0, 1)"]),
    "fraction 1 in problem": (dict(cov_fraction=1, cov_variance=0.5),
                              ["experiment 'cov'", "problem.cov_fraction", "exclusiveMaximum"]),
    "variance 0": (dict(cov_fraction=0.2, cov_variance=0),
                   ["experiment 'cov'", "problem.cov_variance", "exclusiveMinimum"]),
    "rho s1 = 1": (dict(grid={"cov_fraction": [0.2, 0.5], "cov_variance": [1, 2]}),
                   ["experiment 'cov'", "grid cov_fraction=0.5, grid cov_variance=2",
                    "cov_fraction = 0.5, cov_variance = 2 is not allowed",
                    "cov_fraction * cov_variance < 1", "cov_fraction must be in (0, 1)"]),
    "rho s1 > 1 in a case": (dict(cases={"ok": {"cov_variance": 2},
                                         "bad": {"cov_variance": 4}}, cov_fraction=0.3),
                             ["case 'bad'", "cov_fraction = 0.3, cov_variance = 4",
                              "cov_fraction * cov_variance < 1"]),
    "fraction alone": (dict(grid={"cov_fraction": [0.2]}),
                       ["cov_fraction = 0.2 is not allowed alone", "cov_variance must be given"]),
    "with levels": (dict(cov_fraction=0.2, cov_variance=2,
                         covariance={"fractions": [0.5, 0.5], "variances": [1.5, 0.5]}),
                    ["not allowed together with ['cov_fraction', 'cov_variance']"]),
    "empty level at d": (dict(grid={"cov_fraction": [0.01, 0.2], "cov_variance": [2]}),
                         ["sims.d", "d = 40", "grid cov_fraction=0.01", "[0, 40] coordinates",
                          "every level at least one"]),
    "unknown axis": (dict(grid={"cov_level": [1]}), ["grid", "cov_level", "enum"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_covariance_scalars_give_a_clear_error(case):
    arguments, words = BAD[case]
    with pytest.raises(ConfigError) as err:
        load_config(_config(**arguments))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize("section, field", [
    ({"kind": "curves", "facet": "cov_level"}, "facet"),
    ({"kind": "curves", "facet": 3}, "facet"),
    ({"kind": "map", "category": ["a"]}, "category")])
def test_bad_facet_or_category_is_named(section, field):
    config = _config(grid={"cov_fraction": [0.2], "cov_variance": [1, 2]})
    config["experiments"]["cov"]["analysis"] = section
    with pytest.raises(ConfigError, match=f"experiment 'cov', field 'analysis.{field}'"):
        load_config(config)


# ----------------------------------------------------------------- through Snakemake + Zarr
def test_a_covariance_axis_runs_through_snakemake_into_zarr(tmp_path):
    """Stores with dims (cov_fraction, cov_variance, ..., level, time), equal to direct
    solver calls on Covariance.two_levels; the per-level variables recombine into m, C, C_Sigma
    and eps_g; the faceted figure has one panel per cov_fraction; the report puts it in the
    experiment's category."""
    config = _config(grid={"cov_fraction": [0.2, 0.5], "cov_variance": [1, 1.5]},
                     momentum=0.5)
    config["analysis"] = True
    config["experiments"]["cov"]["analysis"] = {"kind": "curves", "facet": "cov_fraction",
                                                "category": CATEGORY}
    path = write_config(tmp_path / "cov.yaml", config)
    result = snakemake(tmp_path, "--configfile", path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "results" / "figures" / "cov.png").stat().st_size > 0
    report = snakemake(tmp_path, "--configfile", path, "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    # the report's index: {category: {subcategory: [files]}}
    assert re.search(rf'"{re.escape(CATEGORY)}": {{"Other": \[[^\]]*"results/figures/cov.png"',
                     html), "the figure is not in its category"
    stores = open_experiment(tmp_path / "results" / "cov")
    s, m = stores["sims"].load(), stores["dmft"].load()
    assert s.norm2_level.dims == ("cov_fraction", "cov_variance", "d", "seed", "level", "time")
    assert m.magnetization_level.dims == ("cov_fraction", "cov_variance", "level", "time")
    np.testing.assert_array_equal(s.cov_fraction.values, [0.2, 0.5])
    np.testing.assert_array_equal(m.cov_variance.values, [1.0, 1.5])
    assert list(s.level.values) == [0, 1] and bool(s.done.all()) and bool(m.done.all())
    assert "covariance" not in s.attrs and s.attrs["momentum"] == 0.5

    entropy = load_config(config)["cov"].entropy
    problem = sims.Problem(**{**BASE, "momentum": 0.5},
                           covariance=Covariance.two_levels(0.5, 1.5))
    point = dict(cov_fraction=0.5, cov_variance=1.5)
    direct = sims.simulate(problem, 40, 2, entropy=entropy)
    solved = dmft.solve(problem, seed=int(entropy % 2**32), **TINY_DMFT)
    for name in ("gen_error", "norm2_sigma", "magnetization_level", "norm2_level"):
        np.testing.assert_array_equal(s[name].sel(dict(point, d=40)).values, direct[name].values)
        np.testing.assert_array_equal(m[name].sel(point).values, solved[name].values)

    f, v = np.array([0.5, 0.5]), np.array([1.5, 0.5])  # level 1: (1 - 0.75) / 0.5
    runs = s.sel(dict(point, d=40))
    c_sigma = (f[:, None] * v[:, None] * runs.norm2_level.values).sum(axis=-2)
    np.testing.assert_allclose(runs.norm2_sigma.values, c_sigma, rtol=1e-12)
    np.testing.assert_allclose(runs.norm2.values, (f[:, None] * runs.norm2_level.values)
                               .sum(axis=-2), rtol=1e-12)
    np.testing.assert_allclose(runs.gen_error.values, generalization_error(
        "two_cluster", runs.magnetization.values, c_sigma, 0.5), rtol=1e-12)

    fig = plot_panel(s, m, experiment="cov",
                     section={"kind": "curves", "facet": "cov_fraction", "inset": "norm2_sigma"})
    main = [ax for ax in fig.axes if ax.get_title() in ("ρ = 0.2", "ρ = 0.5")]
    assert len(main) == 2
    assert all(ax.get_title(loc="left") == "" for ax in main)  # the figure's title is above
    legend = fig.axes[-1].get_legend() or next(ax.get_legend() for ax in fig.axes
                                                 if ax.get_legend())
    labels = [t.get_text() for t in legend.get_texts()]
    assert "s₁ = 1" in labels and "s₁ = 1.5" in labels
    assert any(label.startswith("Bayes-optimal error, Σ = I") for label in labels)


def test_a_fixed_fraction_with_a_variance_axis_is_drawn_as_a_covariance(tmp_path):
    """cov_fraction in the base problem, cov_variance a grid axis: the analysis rebuilds
    each point's covariance from the stored config and draws the Sigma = I reference only
    for s1 = 1, labelled as such."""
    experiment = _config(grid={"cov_variance": [1, 3]}, cov_fraction=0.2)["experiments"]["cov"]
    experiment["sims"] = {"d": [20], "seeds": 2}
    build_experiment(tmp_path, "cov", experiment)
    stores = open_experiment(tmp_path / "cov")
    for ds in stores.values():
        assert problem_at(ds, {"cov_variance": 3.0})["covariance"] == Covariance.two_levels(0.2, 3)
        assert problem_at(ds, {"cov_variance": 1.0})["covariance"] == Covariance.two_levels(0.2, 1)
    assert math.isnan(reference_for(problem_at(stores["dmft"], {"cov_variance": 3.0})))
    fig = plot_panel(stores["sims"], stores["dmft"], experiment="cov")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "Bayes-optimal error, Σ = I (0.103)" in labels, labels


def test_a_covariance_shared_by_every_point_is_stored(tmp_path):
    experiment = _config(cases={"gd": {"momentum": 0.0}, "hb": {"momentum": 0.5}},
                         cov_fraction=0.2, cov_variance=3)["experiments"]["cov"]
    experiment.pop("dmft")
    build_experiment(tmp_path, "cov", experiment)
    ds = open_experiment(tmp_path / "cov")["sims"].load()
    stored = Covariance.of(problem_at(ds, {"case": "hb"})["covariance"])
    assert stored == Covariance.two_levels(0.2, 3)
    assert "two-level input covariance" not in ds.case.attrs.get("description", "")


def test_a_small_level_gets_a_coordinate_in_the_probe_run(tmp_path):
    """rho = 0.05 has no coordinate at d = 8 (round(0.4) = 0): the probe takes a larger d."""
    experiment = _config(grid={"cov_variance": [2.0, 4.0]}, cov_fraction=0.05)["experiments"]["cov"]
    experiment.pop("dmft")
    build_experiment(tmp_path, "cov", experiment)
    ds = open_experiment(tmp_path / "cov")["sims"].load()
    assert ds.magnetization_level.sizes["level"] == 2
    assert np.isfinite(ds.magnetization_level.values).all()
    assert "two-level input covariance" in ds.cov_variance.attrs["description"]


# --------------------------------------------------------------------------- shipped configs
def test_the_extensions_config_sweeps_momentum_and_covariance():
    raw = read_yaml(ROOT / "config" / "extensions.yaml")
    specs = load_config(copy.deepcopy(raw))
    assert {"momentum_gd", "momentum_psgd", "esmap_momentum", "covariance_gd",
            "esmap_covariance"} <= set(specs)
    cov = specs["covariance_gd"]
    assert set(cov.grid) == {"cov_fraction", "cov_variance"} and 1 in cov.grid["cov_variance"]
    assert cov.sims["d"] == [1000] and cov.sims["seeds"] >= 10 and cov.dmft is not None
    assert raw["experiments"]["covariance_gd"]["analysis"]["facet"] == "cov_fraction"
    for name in ("covariance_gd", "esmap_covariance"):
        for _, fields in specs[name].points():
            assert checked_problem(fields)[0].covariance is not None
