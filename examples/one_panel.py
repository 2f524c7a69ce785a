# %% [markdown]
# # Open a store and draw one panel
# Notebook-style script (cells marked `# %%`; open it in Jupyter/VS Code or run
# `python examples/one_panel.py [results-dir]`). It needs the stores of fig1_left, made by
# `snakemake --cores 2` (config/quick.yaml); without them it builds a tiny demo store first.

# %%
import os
import sys

import matplotlib.pyplot as plt

from analysis import early_stopping, open_experiment, plot_panel

results = sys.argv[1] if len(sys.argv) > 1 else "results"
path = os.path.join(results, "fig1_left")
if not os.path.isdir(path):  # no pipeline run yet: a tiny real store from sims.simulate
    from analysis.synthetic import build_stores
    from sims import Problem
    results, path = "/tmp/sgd-dmft-example", "/tmp/sgd-dmft-example/fig1_left"
    build_stores(path, Problem(process="persistent", tau=1 / 0.6, t_max=10),
                 {"b": [1.0, 0.3]}, d=[100], seeds=3, theory_seeds=2)

# %% the stores: xarray Datasets with dims (b, d, seed, time) and (b, time)
stores = open_experiment(path)
sims, dmft = stores.get("sims"), stores.get("dmft")
print(sims)

# %% one panel of the paper in one call (DMFT lines, sims markers, Bayes-optimal line, inset)
fig = plot_panel(sims, dmft, experiment="fig1_left")
fig.savefig("fig1_left_example.png")

# %% or by hand: seed mean of the simulations at b = 0.3 against the DMFT curve
curve = sims.gen_error.sel(b=0.3).isel(d=0)
fig, ax = plt.subplots()
ax.plot(curve.time, curve.mean("seed"), "o", label="sims")
if dmft is not None:
    ax.plot(dmft.time, dmft.gen_error.sel(b=0.3), "-", label="DMFT")
ax.set(xscale="log", xlabel="t", ylabel="generalization error")
ax.legend()

# %% the early-stopping summary of every curve
print(early_stopping(sims).to_dataframe())
