# %% [markdown]
# # Open a store and draw one panel
# Notebook-style script (cells marked `# %%`; open it in Jupyter/VS Code or run
# `python examples/one_panel.py [results-dir]`). It needs the stores of fig1_left, made by
# `snakemake --cores 2` (config/quick.yaml); without them it runs a tiny version of that
# experiment through the pipeline first (workflow.execute.run_experiment, in-process).

# %%
import os
import sys

import matplotlib.pyplot as plt

from analysis import early_stopping, open_experiment, plot_panel

results = sys.argv[1] if len(sys.argv) > 1 else "results"
path = os.path.join(results, "fig1_left")
if not os.path.isdir(path):  # no pipeline run yet: a tiny fig1_left, in about 10 s
    from workflow.config import load_config
    from workflow.execute import run_experiment
    path = "/tmp/sgd-dmft-example/fig1_left"
    spec = load_config({"seed": 1, "experiments": {"fig1_left": {
        "problem": {"model": "two_cluster", "alpha": 2, "delta": 0.5, "R": 0.01, "eta": 0.2,
                    "process": "persistent", "tau": 1.6667, "t_max": 10},
        "grid": {"b": [1.0, 0.3]}, "sims": {"d": [100], "seeds": 3},
        "dmft": {"n_samples": 400, "response_samples": 100, "n_replicas": 2}}}})["fig1_left"]
    for solver in ("sims", "dmft"):
        run_experiment(spec, solver, f"{path}/{solver}.zarr", scheduler="sync")

# %% the stores: xarray Datasets with dims (b, d, seed, time) and (b, time)
stores = open_experiment(path)
sims, dmft = stores.get("sims"), stores.get("dmft")
print(sims)

# %% one panel in one call (DMFT lines, sims markers, Bayes-optimal line, inset); the
# section is what the experiment's `analysis:` config says (analysis/spec.py)
fig = plot_panel(sims, dmft, experiment="fig1_left",
                 section={"kind": "curves", "inset": "train_acc"})
fig.savefig("fig1_left_example.png")

# %% or into your own pyplot axes (inline in a notebook)
fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
plot_panel(sims, dmft, experiment="fig1_left", ax=ax)

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
