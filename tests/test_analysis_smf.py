"""SGD against its surrogates drawn from real stores (issue 22, analysis/smf.py): the
`paired_curves` and `surrogates` analysis kinds on stores made by the pipeline in process,
their config checks, and their Snakemake rule."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY_DMFT
from helpers_analysis import build_experiment

from analysis import load_experiment, make, plot_panel
from workflow.config import ConfigError, load_config

TWO = {"model": "two_cluster", "alpha": 2, "delta": 0.5, "lam": 0, "R": 0.01, "b": 0.3,
       "t_max": 4.0}
SURROGATES = {"sgd": {"process": "sgd"}, "smf": {"process": "smf", "smf_substeps": 4},
              "flow": {"process": "flow"}}
EXPERIMENTS = {
    "paired": {"problem": TWO, "cases": SURROGATES, "grid": {"eta": [0.1, 0.4]},
               "sims": {"d": [200], "seeds": 12, "seeds_per_task": 5},
               "analysis": {"kind": "paired_curves", "dmft_experiment": "theory"}},
    "theory": {"problem": TWO, "cases": {"sgd": {"process": "sgd"}, "flow": {"process": "flow"}},
               "grid": {"eta": [0.1, 0.4]}, "sims": {"d": [200], "seeds": 4},
               "dmft": dict(TINY_DMFT, n_samples=2000)},
    "surrogate_map": {"problem": {**TWO, "t_max": 2.0},
                      "cases": {"sgd": {"process": "sgd"}, "smf": {"process": "smf",
                                                                    "smf_substeps": 2}},
                      "grid": {"eta": [0.1, 0.4], "b": [0.3, 0.7]},
                      "sims": {"d": [100], "seeds": 6},
                      "analysis": {"kind": "surrogates", "curve_experiments": ["paired"]}},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for name, experiment in EXPERIMENTS.items():
        build_experiment(root, name, {k: v for k, v in experiment.items() if k != "analysis"})
    return root


def _make(results, name):
    return make(name, str(results), EXPERIMENTS[name]["analysis"])


def test_paired_curves_pair_the_seeds_and_the_flow_misses_sgd_by_more_at_larger_eta(results):
    paths = _make(results, "paired")
    assert {p.rsplit(".", 1)[-1] for p in paths} == {"png", "pdf", "csv"}
    table = pd.read_csv(results / "tables" / "paired.csv")
    assert sorted(table.case.unique()) == ["flow", "smf"]  # the reference is not a row
    assert (table.seeds == 12).all()
    flow = table[table.case == "flow"].set_index("eta")
    # the flow's deterministic bias grows with eta and is resolved in paired sems
    assert flow.max_abs[0.4] > 2 * flow.max_abs[0.1]
    assert (flow.in_paired_sems > 3).all()
    # pairing: on shared data, w(0) and masks the difference is far sharper than one curve
    smf = table[table.case == "smf"].set_index("eta")
    assert (smf.paired_sem < smf.sgd_sem).all()
    # the table's largest difference is the store's own seed-mean difference
    eps = load_experiment(str(results), "paired")["sims"].gen_error.isel(d=0)
    diff = (eps.sel(case="flow") - eps.sel(case="sgd")).mean("seed").sel(time=slice(1, None))
    expected = np.abs(diff).max("time")
    np.testing.assert_allclose(flow.max_abs.loc[expected.eta.values], expected.values)


def test_paired_curves_leave_the_verdict_to_the_dmft_experiment(results):
    """The DMFT drawn over the paired curves is judged in its own experiment (its
    agreement table, against the seeds chosen for that), not against the paired seeds."""
    _make(results, "paired")
    assert pd.read_csv(results / "tables" / "paired_agreement.csv").empty
    make("theory", str(results), {"kind": "curves", "facet": "eta"})
    agreement = pd.read_csv(results / "tables" / "theory_agreement.csv")
    assert sorted(set(agreement.case)) == ["flow", "sgd"] and len(agreement) == 4
    assert (agreement.n_times > 10).all()  # eta = 0.4 too, on its own records
    assert (agreement.max_abs_z < 4).all(), agreement


def test_surrogates_map_every_cell_and_draw_the_curve_experiments(results):
    _make(results, "surrogate_map")
    table = pd.read_csv(results / "tables" / "surrogate_map.csv")
    cells = table[table.experiment == "surrogate_map"]
    assert set(zip(cells.eta, cells.b)) == {(0.1, 0.3), (0.1, 0.7), (0.4, 0.3), (0.4, 0.7)}
    assert set(cells.case) == {"smf"}
    curves = table[table.experiment == "paired"]
    assert set(curves.case) == {"smf", "flow"} and set(curves.eta) == {0.1, 0.4}
    assert pd.read_csv(results / "tables" / "surrogate_map_agreement.csv").empty
    assert (results / "figures" / "surrogate_map.png").stat().st_size > 10_000


def test_a_facet_per_eta_marks_every_record_of_the_larger_eta(results):
    """At eta = 0.4 the store's common time axis (step 0.1) is NaN between the records:
    the markers are placed on the 10 records of t in (0, 4], not on the NaN."""
    stores = load_experiment(str(results), "theory")
    fig = plot_panel(stores["sims"], stores["dmft"], experiment="theory",
                     section={"kind": "curves", "facet": "eta"})
    panel = next(ax for ax in fig.axes if ax.get_title() == "η = 0.4")
    marked = {round(float(t), 6) for line in panel.lines if line.get_linestyle() == "None"
              for t in line.get_xdata()}
    assert marked == {round(0.4 * i, 6) for i in range(1, 11)}


@pytest.mark.parametrize("section, words", [
    ({"kind": "surrogates", "curve_experiments": ["paired"], "reference": "gd"},
     ["analysis.reference", "'gd'", "not a case", "'surrogate_map'"]),
    ({"kind": "surrogates", "curve_experiments": ["missing"]}, ["'missing'", "not in the config"]),
    ({"kind": "surrogates", "curve_experiments": "paired"}, ["analysis.curve_experiments",
                                                             "a list"]),
    ({"kind": "surrogates", "x": "eta", "y": "eta"}, ["analysis.y", "other than x"]),
    ({"kind": "surrogates", "escape_error": 0.7}, ["analysis.escape_error", "(0, 0.5)"]),
    ({"kind": "surrogates", "surrogate": "flow"}, ["analysis.surrogate", "'flow'"]),
])
def test_bad_surrogate_sections_name_the_field_before_any_compute(section, words):
    experiments = {name: dict(e) for name, e in EXPERIMENTS.items()}
    experiments["surrogate_map"]["analysis"] = section
    with pytest.raises((ConfigError, ValueError)) as error:
        load_config({"seed": 1, "experiments": experiments})
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_snakemake_plans_the_surrogate_figures_of_the_smf_config_in_the_report_rule():
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                           "--configfile", "config/smf.yaml", "--quiet", "rules"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    assert "surrogate_figure" in plan.stdout, plan.stdout


def test_the_plan_charges_the_smf_substeps_and_the_second_order_drift():
    """workflow/plan.py: an SMF configuration reads the data 2 smf_substeps times per step
    (x 3 at order 2) beyond the shared pass; SGD, flow and Gaussian masks do not."""
    from sims import Problem
    from workflow.mixture import sims_seed_cost
    from workflow.plan import COST

    base = dict(TWO, eta=0.2, t_max=2.0)
    n, d = round(2 * 100), 100
    sgd = sims_seed_cost([Problem(process="sgd", **base)], d)
    for fields, passes in (({"smf_substeps": 10}, 20), ({"smf_substeps": 5}, 10),
                           ({"smf_substeps": 5, "smf_order": 2}, 30)):
        smf = sims_seed_cost([Problem(process="smf", **base, **fields)], d)
        assert smf - sgd == pytest.approx(10 * passes * COST["SIMS_S_SMF_PASS"] * n * d)
    assert sims_seed_cost([Problem(process="flow", **base)], d) == pytest.approx(sgd)
