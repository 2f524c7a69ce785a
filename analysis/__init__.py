"""Analysis stage: learning-curve panels, early-stopping maps, finite-size scaling.

What is drawn for an experiment is declared in its config (`analysis: {kind: ...}`,
analysis.spec); `make` writes the figure and tables, the plot_* functions return figures:

    from analysis import open_experiment, plot_panel
    stores = open_experiment("results/fig1_left")
    fig = plot_panel(stores.get("sims"), stores.get("dmft"), experiment="fig1_left",
                     section={"kind": "curves", "inset": "train_acc"})

Modules: spec (the analysis section), style (look, as a context), curves (learning curves on
an Axes), panels (kind curves), maps (kind map), fss_plots and finite_size (kind
finite_size), agreement (simulations against DMFT), status (failed and clipped points),
output (files), gallery (docs/gallery.md), data and store (reading stores).
"""

from .agreement import agreement_table
from .data import load_experiment, mean_and_sem, problem_at
from .early_stopping import early_stopping
from .finite_size import (agreement_statement, escape_table, escape_time, finite_size_table,
                          fit_inverse_d, fit_log_d)
from .fss_plots import plot_escape, plot_finite_size
from .maps import early_stopping_maps, plot_maps
from .output import make
from .panels import plot_panel
from .spec import check_analysis
from .store import open_experiment

__all__ = ["open_experiment", "load_experiment", "make", "check_analysis", "plot_panel",
           "plot_maps", "plot_finite_size", "plot_escape", "early_stopping",
           "early_stopping_maps", "agreement_table", "finite_size_table", "fit_inverse_d",
           "fit_log_d", "escape_time", "escape_table", "agreement_statement", "mean_and_sem",
           "problem_at"]
