"""Figures and tables drawn from stores made by the real pipeline (run_experiment, in
process) at tiny sizes: learning curves, failed runs, clipped chains, maps, finite size."""

import json
import os
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from conftest import TINY_DMFT
from helpers_analysis import build_experiment

from analysis import load_experiment, make, plot_panel
from analysis.agreement import compare
from analysis.__main__ import main
from analysis.finite_size import VERDICTS
from analysis.status import DIVERGED, OK, status
from sims.problem import Problem, bayes_optimal_error

TWO = {"model": "two_cluster", "alpha": 2, "delta": 0.5, "R": 0.01, "eta": 0.2, "t_max": 2.0}
EXPERIMENTS = {
    "curves": {"problem": {**TWO, "process": "persistent", "tau": 1.6667},
               "grid": {"b": [1.0, 0.3]}, "sims": {"d": [40], "seeds": 3}, "dmft": TINY_DMFT},
    # b = 0.05 at tau = 0.5 and 2: the persistent chain is clipped (active fraction > b)
    "esmap": {"problem": {**TWO, "process": "persistent"},
              "grid": {"b": [0.05, 0.3], "tau": [0.5, 2.0]}, "sims": {"d": [30], "seeds": 2},
              "dmft": TINY_DMFT},
    # ridge lam = 10 at eta = 0.5: w -> -4 w per step, every seed diverges
    "diverge": {"problem": {**TWO, "eta": 0.5, "process": "gd", "t_max": 20.0},
                "grid": {"lam": [0.0, 10.0]}, "sims": {"d": [30], "seeds": 2}},
    "fss3": {"problem": {"model": "three_cluster", "alpha": 2, "delta": 0.05, "L": 0.7,
                         "R": 1.0, "eta": 0.2, "process": "gd", "t_max": 8.0},
             "sims": {"d": [30, 100], "seeds": 6}, "dmft": TINY_DMFT},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for name, experiment in EXPERIMENTS.items():
        summary = build_experiment(root, name, experiment, expect_failures=name == "diverge")
        assert name != "diverge" or summary["sims"]["failed_runs"] == 2
    return root


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_learning_curves_panel_draws_each_solver_and_changes_no_global_state(results):
    import matplotlib
    before = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    stores = load_experiment(results, "curves")
    fig = plot_panel(stores["sims"], stores["dmft"], experiment="curves",
                     section={"inset": "train_acc"})
    ax = fig.axes[0]
    ref = bayes_optimal_error(2, 0.5)
    assert _legend(ax) == ["b = 1", "b = 0.3", f"Bayes-optimal error ({ref:.3g})"]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(solid) == 2 and len(ax.containers) == 2  # a DMFT line, a marker series per b
    assert dashed[0].get_ydata()[0] == pytest.approx(ref)
    np.testing.assert_array_equal(  # the line is the stored DMFT curve (t > 0, log axis)
        solid[1].get_ydata(), stores["dmft"].gen_error.sel(b=0.3).values[1:])
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "generalization error"
    inset, = ax.child_axes
    assert inset.get_title() == "training accuracy" and len(inset.get_lines()) >= 2
    assert plt.get_fignums() == []  # not registered with pyplot
    assert {k: v for k, v in matplotlib.rcParams.items() if k != "backend"} == before


def test_importing_the_analysis_selects_no_backend_and_sets_no_rcparams():
    code = ("import matplotlib as m; before = dict(m.rcParams.copy()); import analysis; "
            "after = dict(m.rcParams.copy()); "
            "assert m.rcParams._get_backend_or_none() is None, 'a backend was chosen'; "
            "assert before == after, 'rcParams changed'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": ""})
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_diverged_run_ends_with_an_x_at_its_failure_time_and_is_named(results):
    stores = load_experiment(results, "diverge")
    sims = stores["sims"]
    assert status(sims).sel(lam=10.0).values.ravel().tolist() == [DIVERGED, DIVERGED]
    assert status(sims).sel(lam=0.0).values.ravel().tolist() == [OK, OK]
    when = "failure_time" if "failure_time" in sims else "diverged_at"
    t_fail = float(sims[when].sel(lam=10.0).min())
    fig = plot_panel(sims, None, experiment="diverge")
    ax = fig.axes[0]
    labels = _legend(ax)
    assert labels[0] == "λ = 0"
    assert labels[1] == f"λ = 10; sims: 2/2 seeds diverged at t = {t_fail:.3g}"
    assert "run failed (diverged or error): curve ends there" in labels
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert len(crosses) == 1
    mean = sims.gen_error.sel(lam=10.0).isel(d=0).mean("seed").values
    last = np.flatnonzero(np.isfinite(mean))[-1]
    assert crosses[0].get_xdata()[0] == pytest.approx(sims.time.values[last])
    assert sims.time.values[last] <= t_fail
    table = pd.read_csv(make("diverge", str(results), {"kind": "map"})[2])  # one axis: a row
    assert table.set_index("lam").failed.to_dict() == {0.0: False, 10.0: True}
    assert np.isnan(table.set_index("lam").min_error[10.0])  # failed runs are left out


def test_map_marks_clipped_chains_with_their_effective_fraction(results):
    paths = make("esmap", str(results), {"kind": "map", "x": "b", "y": "tau"})
    assert [os.path.basename(p) for p in paths] == [
        "esmap.png", "esmap.pdf", "esmap.csv", "esmap_agreement.csv"]
    table = pd.read_csv(paths[2])
    assert set(table.source) == {"dmft", "sims", "sims - dmft"} and len(table) == 3 * 4
    dmft = table[table.source == "dmft"].set_index(["b", "tau"])
    for tau in (0.5, 2.0):
        with pytest.warns(UserWarning, match="clipped"):
            expected = Problem(**{**TWO, "process": "persistent", "b": 0.05, "tau": tau})
        assert dmft.clipped_active_fraction[(0.05, tau)] == pytest.approx(
            expected.active_fraction)
        assert np.isnan(dmft.clipped_active_fraction[(0.3, tau)])  # not clipped
    assert not table.failed.any()
    assert (table[table.source != "sims - dmft"].gain >= 0).all()


def test_agreement_table_is_the_largest_difference_and_z_over_time(results):
    paths = make("curves", str(results))  # no section, not a paper name: learning curves
    table = pd.read_csv(paths[-1])
    stores = load_experiment(results, "curves")
    assert table.b.tolist() == [1.0, 0.3] and (table.d == 40).all()
    for row in table.itertuples():
        sims = stores["sims"].sel(b=row.b, d=40)
        dmft = stores["dmft"].sel(b=row.b)
        runs = sims.gen_error.values  # (seed, time), same time axis as the DMFT here
        mean = runs.mean(0)
        se = runs.std(0, ddof=1) / np.sqrt(runs.shape[0])
        diff = dmft.gen_error.values - mean
        z = diff / np.sqrt(se ** 2 + dmft.gen_error_mc_error.values ** 2 + 1e-4 ** 2)
        assert row.max_abs_diff == pytest.approx(np.abs(diff).max())
        assert row.max_abs_z == pytest.approx(np.nanmax(np.abs(z)))
        assert row.disagree == (row.max_abs_z > 3)
    early = pd.read_csv(paths[2])
    assert set(early.source) == {"dmft", "sims"} and {"min_error", "gain"} <= set(early)


def test_escape_time_analysis_states_a_verdict_on_the_gap(results):
    paths = make("fss3", str(results), {"kind": "finite_size", "measure": "escape_time"})
    table = pd.read_csv(paths[2])
    assert table.d.tolist() == [30, 100] and (table.n_seeds == 6).all()
    threshold = table.threshold.iloc[0]
    assert 0.25 < threshold < 0.5  # halfway between 1/2 and a plateau below it
    assert (table.sims_q25 <= table.sims_median).all()
    assert (table.sims_median <= table.sims_q75).all()
    assert table.ks_pvalue.between(0, 1).all()  # the seeds against the DMFT's law, per d
    assert (table.dmft_p10 < table.dmft_p50).all() and (table.dmft_p50 < table.dmft_p90).all()
    statement = open(paths[3]).read()
    assert statement.startswith("Escape time (first t with |m| ≥ ")
    assert statement.count("KS D = ") == 2 and "Verdict: the seeds' escape times " in statement
    secondary = statement.split("Secondary (threshold gen_error < ")[1]
    assert "Escape time of the mean curve, simulations minus DMFT: " in secondary
    said = [k for k, v in VERDICTS.items() if v.split("{")[0] in secondary]
    assert len(said) == 1  # exactly one verdict on whether the mean curve's gap closes


def test_command_line_takes_the_section_and_reports_bad_ones_without_traceback(
        results, tmp_path, capsys):
    assert main(["diverge", "--results", str(results), "--figures", str(tmp_path / "f"),
                 "--tables", str(tmp_path / "t"), "--section",
                 json.dumps({"kind": "curves", "ylim": [0, 1]})]) == 0
    assert (tmp_path / "f" / "diverge.png").exists()
    assert (tmp_path / "t" / "diverge_agreement.csv").exists()
    assert main(["esmap", "--results", str(results), "--section", '{"kind": "maps"}']) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: experiment 'esmap', field 'analysis.kind': 'maps'")
    assert "Traceback" not in err
    config = tmp_path / "c.yaml"  # the section read from a config file
    config.write_text(yaml.safe_dump({"experiments": {"diverge": {
        "analysis": {"kind": "finite_size", "measure": "nope"}}}}))
    assert main(["diverge", "--results", str(results), "--config", str(config)]) == 1
    assert "field 'analysis.measure': 'nope'" in capsys.readouterr().err
    assert main(["esmap", "--results", str(results), "--config", str(config)]) == 1
    assert "experiment 'esmap' is not in" in capsys.readouterr().err


def test_gallery_shows_each_figure_small_with_its_sizes_and_agreement(results, tmp_path):
    from PIL import Image

    from analysis.gallery import write_gallery
    make("curves", str(results))
    page = open(write_gallery(str(results), str(tmp_path), ["curves"])).read()
    assert "![curves](gallery/curves.png)" in page
    assert "* Simulations: d = [40], 3 seeds" in page and "* Grid: b ∈ [1.0, 0.3]" in page
    table = pd.read_csv(results / "tables" / "curves_agreement.csv")
    assert f"max |ε_DMFT − ε_sims| = {table.max_abs_diff.max():.3g}" in page
    assert f"max |z| = {table.max_abs_z.max():.2g}" in page
    assert Image.open(tmp_path / "gallery" / "curves.png").width <= 1000


def test_a_plateau_offset_far_below_the_resolution_is_not_a_disagreement():
    """The three-cluster symmetric point: 500 seeds sit 3e-6 below the DMFT's eps = 1/2 with
    errors of 1e-7 (fig2_right_seeds); a real gap of 0.01 with the same errors is judged."""
    time = np.linspace(0, 4, 21)
    seeds = 0.5 - 3e-6 + 2e-6 * np.random.default_rng(0).standard_normal((500, 21))
    sims = xr.DataArray(seeds, dims=("seed", "time"), coords={"time": time})
    dmft, err = (xr.DataArray(np.full(21, value), dims="time", coords={"time": time})
                 for value in (0.5, 1e-7))
    assert compare(sims, dmft, err)["max_abs_z"] < 0.1
    assert compare(sims - 0.01, dmft, err)["max_abs_z"] > 90
