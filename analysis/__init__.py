"""Analysis stage: paper figures, early-stopping maps, finite-size scaling (issue 6).

    from analysis import open_experiment, plot_panel
    stores = open_experiment("results/fig1_left")
    fig = plot_panel(stores.get("sims"), stores.get("dmft"), experiment="fig1_left")
"""

from .data import load_experiment, mean_and_sem, problem_at
from .early_stopping import early_stopping
from .figures import (PANELS, draw, early_stopping_figure, early_stopping_maps,
                      finite_size_three, finite_size_two, paper_panel, plot_early_stopping,
                      plot_panel)
from .finite_size import (agreement_statement, escape_table, escape_time, finite_size_table,
                          fit_inverse_d, fit_log_d)

from .store import open_experiment

__all__ = ["open_experiment", "load_experiment", "plot_panel", "paper_panel", "draw",
           "early_stopping", "early_stopping_maps", "early_stopping_figure",
           "plot_early_stopping", "finite_size_table", "finite_size_two", "finite_size_three",
           "fit_inverse_d", "fit_log_d", "escape_time", "escape_table", "agreement_statement",
           "mean_and_sem", "problem_at", "PANELS"]
