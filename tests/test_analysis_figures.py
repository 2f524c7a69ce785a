"""Figures drawn from tiny real Zarr stores (sims.simulate at small d; the theory store is a
large-d simulation average standing in for dmft.solve, in the same layout)."""

import os
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis import draw, load_experiment, plot_panel  # noqa: E402
from analysis.__main__ import main  # noqa: E402
from analysis.synthetic import build_stores  # noqa: E402
from sims.problem import Problem, bayes_optimal_error, oracle_error  # noqa: E402

TWO = Problem(model="two_cluster", alpha=2, delta=0.5, eta=0.2, t_max=2.0)
THREE = Problem(model="three_cluster", alpha=2, delta=0.05, L=0.7, R=1.0, eta=0.2, t_max=3.0)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_stores(root / "fig1_left", TWO.replace(process="persistent", tau=1 / 0.6),
                     {"b": [1.0, 0.3]}, d=[40], seeds=3, d_theory=80, theory_seeds=2)
        build_stores(root / "fig1_right", TWO, {"lam": [0.0, 0.1, 1.0]}, d=[40], seeds=3,
                     theory=None)
        build_stores(root / "fig2_right", THREE.replace(alpha=3, R=0.01), {"lam": [0.1, 0.3]},
                     d=[40], seeds=2, theory_seeds=2, write_sims=False)
        build_stores(root / "fig3_left", THREE, {},
                     cases={"gd": {"process": "gd", "b": 1.0},
                            "psgd_b0.3": {"process": "persistent", "b": 0.3, "tau": 1 / 0.3}},
                     d=[30, 60], seeds=3, theory_seeds=2)
        build_stores(root / "esmap_sgd_two", TWO.replace(process="sgd", t_max=3.0),
                     {"lam": [0.0, 0.5], "b": [0.3, 1.0]}, d=[40], seeds=2, d_theory=80,
                     theory_seeds=2)
        build_stores(root / "fss_two", TWO, {}, d=[30, 60, 120], seeds=4, d_theory=300,
                     theory_seeds=4)
        build_stores(root / "fss_three", THREE.replace(t_max=8.0), {}, d=[30, 100], seeds=4,
                     theory_seeds=4)
    return root


def _legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_fig1_left_panel_has_one_dmft_line_and_one_marker_series_per_batch_size(results):
    stores = load_experiment(results, "fig1_left")
    assert set(stores) == {"sims", "dmft"}
    fig = plot_panel(stores["sims"], stores["dmft"], experiment="fig1_left")
    main_ax = fig.axes[0]
    inset, = main_ax.child_axes
    labels = _legend_labels(main_ax)
    ref = bayes_optimal_error(2, 0.5)
    assert labels == ["b = 1", "b = 0.3", f"Bayes-optimal error ({ref:.3g})"]
    solid = [ln for ln in main_ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in main_ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(solid) == 2 and len(dashed) == 1
    assert dashed[0].get_ydata()[0] == pytest.approx(ref)
    assert len(main_ax.containers) == 2  # errorbar series, one per b
    assert main_ax.get_xscale() == "log"
    assert main_ax.get_ylabel() == "generalization error"
    assert inset.get_ylabel() == "training accuracy" and len(inset.get_lines()) >= 2
    plt.close(fig)


def test_every_panel_is_written_as_png_and_pdf_when_a_store_is_missing(results):
    for experiment in ("fig1_left", "fig1_right", "fig2_right"):
        paths = draw(experiment, str(results))
        assert [os.path.basename(p) for p in paths] == [f"{experiment}.png", f"{experiment}.pdf"]
        assert all(os.path.getsize(p) > 1000 for p in paths)
    only_sims = plot_panel(**load_experiment(results, "fig1_right"), experiment="fig1_right")
    ax = only_sims.axes[0]
    assert _legend_labels(ax)[:3] == ["λ = 0", "λ = 0.1", "λ = 1"]
    assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]  # no DMFT lines
    only_dmft = plot_panel(**load_experiment(results, "fig2_right"), experiment="fig2_right")
    ax = only_dmft.axes[0]
    assert len(ax.containers) == 0 and len(ax.get_lines()) == 3  # 2 DMFT + oracle
    assert only_dmft.axes[0].child_axes[0].get_ylabel() == "$|w|^2/d$"  # Fig. 2 inset: weight norm
    plt.close("all")


def test_fig3_left_labels_cases_by_process_and_d_by_marker_with_oracle_line(results):
    fig = plot_panel(**load_experiment(results, "fig3_left"), experiment="fig3_left")
    ax = fig.axes[0]
    labels = _legend_labels(ax)
    assert labels[:2] == ["GD", "p-SGD, b = 0.3, 1/τ = 0.3"]  # fields that differ
    assert labels[2:4] == ["sims d = 30", "sims d = 60"]
    assert labels[4] == f"oracle error ({oracle_error(0.05, 0.7):.3g})"
    assert len(ax.containers) == 4  # 2 cases x 2 d
    assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]) == 4  # DMFT per d
    plt.close(fig)


def test_early_stopping_map_has_dmft_sims_and_difference_rows(results):
    paths = draw("esmap_sgd_two", str(results))
    assert [os.path.basename(p) for p in paths] == [
        "esmap_sgd_two.png", "esmap_sgd_two.pdf", "esmap_sgd_two.csv"]
    table = pd.read_csv(paths[-1])
    assert set(table.source) == {"dmft", "sims", "sims - dmft"}
    assert len(table) == 3 * 4  # 2 lam x 2 b per source
    assert {"min_error", "argmin_time", "gain", "no_early_stopping"} <= set(table.columns)
    assert (table[table.source != "sims - dmft"].gain >= 0).all()


def test_finite_size_outputs_table_and_figures(results):
    paths = draw("fss_two", str(results))
    table = pd.read_csv(paths[-1])
    assert set(table.observable) == {"gen_error", "train_loss", "train_acc", "norm2",
                                     "magnetization"}
    assert (table.n_d == 3).all() and np.isfinite(table.a_err).all()
    paths = draw("fss_three", str(results))
    table = pd.read_csv(paths[-1])
    assert table.d.tolist() == [30, 100] and (table.n_seeds == 4).all()
    statement = open(os.path.join(results, "tables", "fss_three.txt")).read()
    assert "agree" in statement.lower() or "disagree" in statement.lower()


def test_command_line_writes_into_the_given_directories(results, tmp_path, capsys):
    main(["fig1_left", "--results", str(results), "--figures", str(tmp_path / "figs")])
    assert (tmp_path / "figs" / "fig1_left.png").exists()
    assert "fig1_left.pdf" in capsys.readouterr().out
