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

import json
import os

import xarray as xr

from workflow.store import open_store

SOLVERS = ("sims", "dmft")


PROBLEM_KEYS = ("seed", "problem", "cases", "grid")  # the spec both solvers of it share


class StoresDisagree(ValueError):
    """The stores of one experiment were made for different problems (one is stale)."""


def open_experiment(path: str | os.PathLike, solvers=SOLVERS) -> dict[str, xr.Dataset]:
    """Open results/<experiment>/{sims,dmft}.zarr lazily; keys only for stores that exist.

    Stores that disagree on the problem (seed, base problem, cases or grid of the
    experiment config stored in each) are never returned together: StoresDisagree names
    the fields and each store's values (a store left from an earlier config is stale; open
    one with `solvers=("sims",)`, or delete the stale store or rerun the pipeline).
    """
    out = {}
    for solver in solvers:
        store = os.path.join(os.fspath(path), f"{solver}.zarr")
        if os.path.isdir(store):
            out[solver] = open_store(store)
    if not out:
        raise FileNotFoundError(f"no {' or '.join(f'{s}.zarr' for s in solvers)} in "
                                f"{os.fspath(path)!r}")
    _check_same_problem(path, out)
    return out


def _check_same_problem(path, stores: dict[str, xr.Dataset]) -> None:
    specs = {solver: json.loads(ds.attrs["config"]) for solver, ds in stores.items()
             if isinstance(ds.attrs.get("config"), str)}
    if len(specs) < 2:
        return
    (first, a), (second, b) = list(specs.items())[:2]
    differ = [(key, field) for key in PROBLEM_KEYS if a.get(key) != b.get(key)
              for field in _differing_fields(a.get(key), b.get(key))]
    if differ:
        words = "; ".join(
            f"{key}{'.' + field if field else ''}: {first} {_at(a, key, field)!r}, "
            f"{second} {_at(b, key, field)!r}" for key, field in differ)
        raise StoresDisagree(
            f"the stores in {os.fspath(path)!r} were made for different problems ({words}): "
            "one is stale (from an earlier config) and they are not opened together. Open "
            f"one with open_experiment(path, solvers=({first!r},)), or delete the stale store "
            "(snakemake names it as stale) or rerun the pipeline on the current config")


def _differing_fields(a, b) -> list[str | None]:
    """The keys where two mappings differ ([None]: the values differ as a whole)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return [None]


def _at(spec: dict, key: str, field):
    value = spec.get(key)
    return value.get(field) if field is not None and isinstance(value, dict) else value
