"""The model families the pipeline runs, behind one interface.

A config's `problem.model` names the model (README "Config"); each model belongs to one
family, and the family is all the workflow (config, stores, execution, cost plan) and the
analysis need to know about it:

    family = model_of("two_layer")          # or spec.model for an ExperimentSpec
    problem, warnings = family.checked(fields)   # the problem of one config point

Families (implementations in workflow/mixture.py and workflow/two_layer.py):

* `mixture`: models two_cluster and three_cluster, the Gaussian-mixture classification of
  `sims.Problem` (docs/theory.md §2-§7), solvers `sims.simulate_batch` and `dmft.solve`;
* `two_layer`: model two_layer, the soft committee machine under online SGD of
  `sims.TwoLayerProblem` (docs/theory.md §8), solvers `sims.two_layer.simulate` and the
  Saad-Solla ODEs `dmft.two_layer.solve`.

What a family provides is `Model` below; nothing outside the family modules looks at which
family an experiment has.
"""

from __future__ import annotations

import dataclasses
import importlib
import traceback

import numpy as np
import xarray as xr

# config value of `model` -> family; the family modules are imported when first used
FAMILIES = {"two_cluster": "mixture", "three_cluster": "mixture", "two_layer": "two_layer"}
DEFAULT_MODEL = "two_cluster"  # a config point without `model` (sims.Problem's default)
_MODULES = {"mixture": "workflow.mixture", "two_layer": "workflow.two_layer"}


@dataclasses.dataclass
class Outcome:
    """One point of a task: the solver's dataset (None if it raised), the status and
    failure time of each run (per seed where the store has a seed dim), and the reason if
    some run failed."""

    index: tuple
    result: xr.Dataset | None
    status: np.ndarray
    failure_time: np.ndarray
    reason: str | None = None


def failure_reason(err: Exception) -> str:
    """The error and where it was raised (the last frames of its traceback), for the marker
    and the log: a bug recorded as a failed point must still be findable."""
    frames = traceback.format_tb(err.__traceback__)[-3:]
    return f"{type(err).__name__}: {err}\n" + "".join(frames)


class Model:
    """What the pipeline needs to know about a model family (one instance per family).

    Attributes:
        name: the family ("mixture", "two_layer").
        models: the config values of `model` it serves.
        fields: the problem fields a config point may set (besides `model`).
        observables: the curve variables of its stores that the analysis may draw.
        analysis_kinds: the analysis kinds of its experiments (analysis/spec.py), the
            default first.
        sims_defaults: the defaults of an experiment's `sims:` section.
        time_attrs: attributes of the stores' time coordinate.
        solver_revisions: {solver: revision}, raised whenever a change of the solver's code
            changes its numbers: stores of another revision are rebuilt by their store job
            and refused by the analysis (`solver_version`).

    Config (workflow/config.py): `checked(fields)` builds a point's problem,
    `check_experiment`, `check_sims` and `check_point` check the rest of an experiment,
    `normalise_dmft` turns its `dmft:` section into the spec. Stores (workflow/store.py):
    `solver_d`, `solver_seeds`, `seeds_per_task`, `point_times`, `point_coords`, `attrs`,
    `identity`, `run_settings`, `data_key`, `describe_field`. Execution: `solve`. Plan: `task_cost`.
    """

    name = ""
    models: tuple = ()
    fields: tuple = ()
    observables: tuple = ()
    analysis_kinds: tuple = ()
    sims_defaults: dict = {}
    time_attrs: dict = {}
    solver_revisions: dict = {}

    def solver_version(self, solver: str) -> str:
        """The version of a solver's numbers, recorded in its stores: the package version
        and the solver's revision, e.g. "0.1.0+two_layer.sims.r1"."""
        from sims.datamodel import package_version
        return f"{package_version()}+{self.name}.{solver}.r{self.solver_revisions[solver]}"

    # --------------------------------------------------------------------- config
    def build(self, fields: dict):
        """The problem of a config point (TypeError or ValueError naming the field)."""
        raise NotImplementedError

    def checked(self, fields: dict):
        """(problem, the warnings its construction raised) of a config point."""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            problem = self.build(fields)
        return problem, [str(w.message) for w in caught]

    def check_experiment(self, where: str, spec) -> None:
        """Checks of an experiment as a whole (ConfigError)."""

    def check_sims(self, where: str, sims: dict) -> None:
        """The `sims:` settings are this family's (ConfigError)."""

    def check_point(self, where: str, point: str, problem, sims: dict | None) -> None:
        """A checked point against the experiment's solver settings (ConfigError)."""

    def normalise_dmft(self, where: str, dmft: dict, problems: list, sims: dict | None) -> dict:
        """The spec's `dmft` entry from the config's `dmft:` section (ConfigError)."""
        raise NotImplementedError

    # --------------------------------------------------------------------- stores
    def solver_d(self, spec, solver: str) -> list | None:
        """The d axis of a solver's store (None: no d dim)."""
        return list(spec.sims["d"]) if solver == "sims" else spec.dmft["d"]

    def solver_seeds(self, spec, solver: str) -> int | None:
        """The number of seeds of a solver's store (None: no seed dim)."""
        return int(spec.sims["seeds"]) if solver == "sims" else None

    def seeds_per_task(self, spec, solver: str) -> int:
        return int(spec.sims["seeds_per_task"]) if solver == "sims" else 0

    def point_times(self, spec, solver: str, problem) -> np.ndarray:
        raise NotImplementedError

    def point_coords(self, layout) -> dict:
        """Extra coordinates over the point dims, {name: (dims, values, attrs)}."""
        return {}

    def attrs(self, problem) -> dict:
        """The problem's fields as JSON values."""
        raise NotImplementedError

    def identity(self, problem) -> dict:
        """What of the problem determines a run's numbers."""
        raise NotImplementedError

    def run_settings(self, spec, solver: str) -> dict:
        """The solver settings that change a run's numbers (its identity)."""
        raise NotImplementedError

    def data_key(self, problem):
        """Points of one d and seed batch with equal keys run in one task (shared data)."""
        return None

    def describe_field(self, field: str) -> str:
        return f"{field}"

    # ---------------------------------------------------------------- execution
    def solve(self, layout, task, *, probe: bool = False) -> list[Outcome]:
        """Run the solver for one task; a failing solve is an Outcome (status DIVERGED or
        ERROR with its reason), not an exception. probe: a short run of the first point
        (the store's variable names, dims, dtypes and attributes)."""
        raise NotImplementedError

    def task_cost(self, layout, task) -> tuple[float, float]:
        """(CPU seconds, peak MB) of one task (workflow/plan.py)."""
        raise NotImplementedError


def model_of(model: str | None) -> Model:
    """The family of a config value of `model` (None: the default model)."""
    family = FAMILIES.get(DEFAULT_MODEL if model is None else model)
    if family is None:
        raise ValueError(f"Problem.model = {model!r} is not allowed: model must be one of "
                         f"{list(FAMILIES)}")
    return family_named(family)


def family_named(name: str) -> Model:
    """The family instance `name` (a key of _MODULES)."""
    return importlib.import_module(_MODULES[name]).MODEL


def model_values(problem: dict, cases: dict | None, grid: dict) -> list:
    """Every value of `model` an experiment's points take (base, cases, grid axis)."""
    values = [problem.get("model", DEFAULT_MODEL)]
    values += [case["model"] for case in (cases or {}).values() if "model" in case]
    values += list(grid.get("model", []))
    return list(dict.fromkeys(values))
