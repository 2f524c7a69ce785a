"""Opening the pipeline's stores in a notebook (README "Stores").

    from analysis.store import open_experiment
    stores = open_experiment("results/fig1_left")   # {"sims": Dataset, "dmft": Dataset}
    stores["sims"].gen_error.mean("seed")          # lazy (dask) until .compute() / .values

Dims: (case) x grid axes x (d) x (seed) x time (x time_prime for two-time DMFT variables);
attrs: the Problem fields shared by all points (the others are coordinates), the
experiment config (JSON string `config`), `package_version`, `entropy`, solver settings.
Points whose task has not completed are NaN (`done` is False there).
"""

from __future__ import annotations

import os

import xarray as xr

from workflow.store import open_store

SOLVERS = ("sims", "dmft")


def open_experiment(path: str | os.PathLike) -> dict[str, xr.Dataset]:
    """Open results/<experiment>/{sims,dmft}.zarr lazily; keys only for stores that exist."""
    out = {}
    for solver in SOLVERS:
        store = os.path.join(os.fspath(path), f"{solver}.zarr")
        if os.path.isdir(store):
            out[solver] = open_store(store)
    if not out:
        raise FileNotFoundError(f"no sims.zarr or dmft.zarr in {os.fspath(path)!r}")
    return out
