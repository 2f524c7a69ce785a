"""Opening the pipeline's stores in a notebook (README "Stores").

    from analysis.store import open_experiment
    stores = open_experiment("results/fig1_left")   # {"sims": Dataset, "dmft": Dataset}
    stores["sims"].gen_error.mean("seed")          # lazy (dask) until .compute() / .values

Dims: (case) x grid axes x (d) x (seed) x time (x time_prime for two-time DMFT variables);
attrs: the Problem fields shared by all points (the others are coordinates), the
experiment config (JSON string `config`), `package_version`, `entropy`, solver settings.
Points whose task has not completed are NaN (`done` is False there).

Each store records the solver version whose numbers it holds (`solver_version`: the
package version and the solver's revision, workflow/models.py `Model.solver_version`). A
store solved by another revision than the installed one is refused (`OutdatedSolver`:
rerun the pipeline, whose store job rebuilds it), or, with `outdated="flag"`, opened with
the difference in its attribute `solver_note`; a store from before revisions were recorded
is always opened, flagged.
"""

from __future__ import annotations

import json
import os

import xarray as xr

from workflow.config import ExperimentSpec
from workflow.store import open_store

SOLVERS = ("sims", "dmft")


PROBLEM_KEYS = ("seed", "problem", "cases", "grid")  # the spec both solvers of it share


class StoresDisagree(ValueError):
    """The stores of one experiment were made for different problems (one is stale)."""


class OutdatedSolver(ValueError):
    """A store was solved by another solver revision than the installed one."""


def solver_note(ds: xr.Dataset, solver: str) -> tuple[str | None, bool]:
    """(what is known of the solver of a store against the installed one, whether it is
    another revision): (None, False) if it is the installed solver's."""
    installed = ExperimentSpec.from_dict(json.loads(ds.attrs["config"])).model.solver_version(
        solver)
    recorded = ds.attrs.get("solver_version")
    if recorded is None:
        return (f"solver revision not recorded (a store from before revisions, package "
                f"{ds.attrs.get('package_version')}); the installed solver is {installed}",
                False)
    if recorded != installed:
        return (f"solved by solver {recorded}, not by the installed {installed}: its numbers "
                "may differ from what the installed solver gives", True)
    return None, False


def open_experiment(path: str | os.PathLike, solvers=SOLVERS,
                    outdated: str = "refuse") -> dict[str, xr.Dataset]:
    """Open results/<experiment>/{sims,dmft}.zarr lazily; keys only for stores that exist.

    A store solved by another solver revision than the installed one (`solver_note`) is
    refused (OutdatedSolver, naming both versions and what to do), or, with
    outdated="flag", returned with the difference in attrs["solver_note"].

    Stores that disagree on the problem (seed, base problem, cases or grid of the
    experiment config stored in each) are never returned together: StoresDisagree names
    the fields and each store's values (a store left from an earlier config is stale; open
    one with `solvers=("sims",)`, or delete the stale store or rerun the pipeline).
    """
    out = {}
    for solver in solvers:
        store = os.path.join(os.fspath(path), f"{solver}.zarr")
        if os.path.isdir(store):
            out[solver] = _checked_solver(open_store(store), solver, store, outdated)
    if not out:
        raise FileNotFoundError(f"no {' or '.join(f'{s}.zarr' for s in solvers)} in "
                                f"{os.fspath(path)!r}")
    _check_same_problem(path, out)
    return out


def _checked_solver(ds: xr.Dataset, solver: str, store: str, outdated: str) -> xr.Dataset:
    if not isinstance(ds.attrs.get("config"), str):
        return ds  # not a pipeline store: nothing recorded to check
    note, other = solver_note(ds, solver)
    if other and outdated == "refuse":
        raise OutdatedSolver(f"{store}: {note}. Rerun the pipeline (its store job rebuilds "
                             "the store), or open it with open_experiment(..., "
                             "outdated='flag')")
    if note:
        ds.attrs["solver_note"] = note
    return ds


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
