"""The two-layer family (model two_layer: soft committee machines under online SGD, paper
001; docs/theory.md §8) behind the pipeline's model interface (workflow/models.py).

Config (README "Config"):

    problem: {model: two_layer, p: 8, k: 4, noise: 1.0e-3, gamma0: 8, t_max: 1.0e+4}
    grid: {lr_exponent: [0.25, -0.25]}           # any TwoLayerProblem field but p, k
    sims: {d: [100, 1000], seeds: 8, method: gram, n_times: 61, seeds_per_task: 8}
    # method: gram | full | auto (gram where d > p + k, else full; sims.two_layer)
    # overlaps: false stores the risk only (wide students: Q has p^2 entries per record)
    dmft: {d: [100, 1000], seeds: 8, odes: [finite_d, limit], rtol: 1.0e-9, atol: 1.0e-12}

Stores: sims (grid) x d x seed x time, variables risk, Q, M, P (student / teacher dims;
risk only with sims.overlaps false);
dmft (grid) x d x ode x seed x time, the Saad-Solla ODEs started from each simulation
seed's initial overlaps at that d (`sims.initial_overlaps` with the experiment's entropy,
so seed s of the dmft store is seed s of the sims store), `ode` = finite_d (coefficients
at d) and/or limit (d -> infinity). Both solvers record at the same times: 0 and n_times - 1
log-spaced times from one step at the experiment's smallest d to t_max
(`sims.two_layer.time_grid`). Coordinates per point: `regime` and `theta`; per point and d:
`width`, the student width p at d (`TwoLayerProblem.width`: p, or round(p d^kappa) for
width_scaling power). The student dims have the store's largest width; a run of a smaller
width is NaN beyond it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from dmft.two_layer import REVISION as DMFT_REVISION
from sims.two_layer import REVISION as SIMS_REVISION
from sims.two_layer import TwoLayerProblem, pad_students, time_grid

from .config import ConfigError
from .models import Model, Outcome, failure_reason
from .plan import COST
from .store import DIVERGED, ERROR, OK

ODES = ("finite_d", "limit")
SHAPE_FIELDS = ("p", "k")  # set the store's student / teacher dims: one value per experiment
SIMS_ONLY_MIXTURE = ("record_every", "dtype", "points_per_task")
DMFT_KEYS = ("d", "seeds", "seeds_per_task", "odes", "rtol", "atol", "n_times")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < value < math.inf)


def _d_list(value) -> list[int] | None:
    return None if value is None else [value] if isinstance(value, int) else list(value)


class TwoLayerModel(Model):
    """Two-layer networks under online SGD, `sims.TwoLayerProblem` (model two_layer)."""

    name = "two_layer"
    models = ("two_layer",)
    fields = ("model", *TwoLayerProblem.__dataclass_fields__)
    observables = ("risk",)
    analysis_kinds = ("risk_curves", "regions", "learning_rates", "floors", "phase_diagram")
    sims_defaults = dict(seeds=1, seeds_per_task=1, method="gram", n_times=61)
    time_attrs = dict(long_name="training time t = steps / d^(1 + theta)",
                      units="steps / d^(1 + theta)")
    solver_revisions = {"sims": SIMS_REVISION, "dmft": DMFT_REVISION}

    # --------------------------------------------------------------------- config
    def build(self, fields: dict) -> TwoLayerProblem:
        unknown = sorted(set(fields) - set(self.fields))
        if unknown:
            raise ValueError(f"field {unknown[0]!r} = {fields[unknown[0]]!r} is not allowed for "
                             f"model two_layer: its fields are {list(self.fields)}")
        return TwoLayerProblem(**{k: v for k, v in fields.items() if k != "model"})

    def check_experiment(self, where: str, spec) -> None:
        for field in SHAPE_FIELDS:
            varied = field in spec.grid or any(field in c for c in (spec.cases or {}).values())
            if varied:
                raise ConfigError(f"{where}, field '{field}': a grid axis or case override of "
                                  f"{field} is not allowed for model two_layer: the widths set "
                                  "the store's student / teacher dims; make one experiment "
                                  "per width")

    def check_sims(self, where: str, sims: dict) -> None:
        for key in SIMS_ONLY_MIXTURE:
            if key in sims:
                raise ConfigError(f"{where}, field 'sims.{key}': {sims[key]!r} is not allowed "
                                  "for model two_layer: its simulations take d, seeds, "
                                  "seeds_per_task, method, n_times")

    def check_point(self, where: str, point: str, problem, sims: dict | None) -> None:
        method = (sims or {}).get("method", self.sims_defaults["method"])
        for d in (sims or {}).get("d", []):
            try:
                problem.check_dimension(d, problem.method_at(d, method))
            except ValueError as err:
                raise ConfigError(f"{where}, field 'sims.d': {err} (at {point})") from None

    def normalise_dmft(self, where: str, dmft: dict, problems: list, sims: dict | None) -> dict:
        """d (default sims.d), seeds (default sims.seeds, else 1), seeds_per_task (default
        seeds), odes (default [finite_d]), rtol, atol, n_times (default sims.n_times)."""
        from dmft.two_layer import ATOL, RTOL
        for key in dmft:
            if key not in DMFT_KEYS:
                raise ConfigError(f"{where}, field 'dmft.{key}': unknown setting {key!r} for "
                                  f"model two_layer: allowed are {list(DMFT_KEYS)}")
        d = _d_list(dmft.get("d")) or (list(sims["d"]) if sims else None)
        if not d or not all(_positive_int(v) for v in d):
            raise ConfigError(f"{where}, field 'dmft.d': {dmft.get('d')!r} is not allowed: the "
                              "ODEs start from initial overlaps drawn at d: give dmft.d or "
                              "sims.d (integers > p + k)")
        for problem in problems[:1]:  # p, k are the same at every point (check_experiment)
            for value in d:
                try:
                    problem.check_dimension(value, "full")
                except ValueError as err:
                    raise ConfigError(f"{where}, field 'dmft.d': {err}") from None
        seeds = dmft.get("seeds", sims["seeds"] if sims else 1)
        settings = dict(odes=list(dmft.get("odes", ["finite_d"])), rtol=dmft.get("rtol", RTOL),
                        atol=dmft.get("atol", ATOL),
                        n_times=dmft.get("n_times", sims["n_times"] if sims else 61))
        checks = {"seeds": (seeds, _positive_int(seeds), "an integer >= 1"),
                  "rtol": (settings["rtol"], _positive_number(settings["rtol"]), "a number > 0"),
                  "atol": (settings["atol"], _positive_number(settings["atol"]), "a number > 0"),
                  "n_times": (settings["n_times"], _positive_int(settings["n_times"])
                              and settings["n_times"] >= 2, "an integer >= 2"),
                  "odes": (settings["odes"], bool(settings["odes"]) and set(settings["odes"])
                           <= set(ODES) and len(set(settings["odes"])) == len(settings["odes"]),
                           f"a non-empty list of distinct values from {list(ODES)}")}
        per_task = dmft.get("seeds_per_task", seeds)
        checks["seeds_per_task"] = (per_task, _positive_int(per_task), "an integer >= 1")
        for key, (value, ok, allowed) in checks.items():
            if not ok:
                raise ConfigError(f"{where}, field 'dmft.{key}': {value!r} is not allowed: "
                                  f"{key} must be {allowed}")
        return {"d": d, "seeds": seeds, "seeds_per_task": per_task, "settings": settings}

    # --------------------------------------------------------------------- stores
    def solver_seeds(self, spec, solver: str) -> int:
        return int((spec.sims if solver == "sims" else spec.dmft)["seeds"])

    def seeds_per_task(self, spec, solver: str) -> int:
        return int((spec.sims if solver == "sims" else spec.dmft)["seeds_per_task"])

    def _experiment_d(self, spec) -> list[int]:
        """Every d of the experiment (both solvers): the first recorded time is one step at
        the smallest, so that sims and ODEs are recorded at the same times."""
        return sorted(set((spec.sims or {}).get("d", [])) | set((spec.dmft or {}).get("d", [])))

    def point_times(self, spec, solver: str, problem) -> np.ndarray:
        n_times = spec.sims["n_times"] if solver == "sims" else spec.dmft["settings"]["n_times"]
        return time_grid(problem, self._experiment_d(spec), int(n_times))

    def point_coords(self, layout) -> dict:
        shape = layout.point_shape()
        regimes = np.empty(shape, dtype="<U6")
        theta = np.full(shape, np.nan)
        widths = np.zeros(shape + [len(layout.d_values)], dtype=np.int64)
        for index, problem in layout.problems.items():
            regimes[index], theta[index] = problem.regime, problem.theta
            widths[index] = [problem.width(d) for d in layout.d_values]
        dims = tuple(layout.point_dims)
        return {"regime": (dims, regimes, {"long_name": "region of paper 001's phase diagram "
                                                        "(TwoLayerProblem.regime, theory §8.2)"}),
                "theta": (dims, theta, {"long_name": "time exponent: t = steps / d^(1+theta)"}),
                "width": (dims + ("d",), widths, {
                    "long_name": "student width p at d (TwoLayerProblem.width, theory §8.1); "
                                 "student dims beyond it are NaN"})}

    def attrs(self, problem) -> dict:
        return {"model": "two_layer", **problem.as_dict()}

    def identity(self, problem) -> dict:
        """The problem's fields; width_scaling only where it is not the default "fixed"
        (runs of stores made before the field existed keep their identity)."""
        fields = problem.as_dict()
        if fields["width_scaling"] == "fixed":
            del fields["width_scaling"]
        return fields

    def run_settings(self, spec, solver: str) -> dict:
        """The settings and the recorded times' first step (the smallest d of the
        experiment): a run's numbers are its steps'."""
        settings = ({k: spec.sims[k] for k in ("method", "n_times")} if solver == "sims"
                    else dict(spec.dmft["settings"]))
        return {**settings, "times_from_d": self._experiment_d(spec)[0]}

    def data_key(self, problem):
        """No data shared between points: every point is its own task."""
        return tuple(sorted(problem.as_dict().items()))

    def describe_field(self, field: str) -> str:
        return f"TwoLayerProblem.{field}"

    # ---------------------------------------------------------------- execution
    def solve(self, layout, task, *, probe: bool = False) -> list[Outcome]:
        index = task.points[0]
        problem = layout.problems[index]
        times = layout.point_times(problem)
        seeds = [0] if probe else list(task.seeds)
        if probe:  # a short run: variable names, dims, dtypes and attributes
            times = times[:2]
        run = _simulate if layout.solver == "sims" else _solve_odes
        try:
            result, reason_words = run(layout.spec, problem, task.d, seeds, times)
        except Exception as err:  # recorded as status ERROR with this reason, job exits non-zero
            n = len(seeds)
            return [Outcome(index, None, np.full(n, ERROR, np.int8), np.full(n, np.nan),
                            failure_reason(err))]
        result = pad_students(result, store_width(layout))
        at = result["diverged_at"].values
        if at.ndim > 1:  # per ODE and seed: a seed failed if any of its ODEs did
            at = np.fmin.reduce(at, axis=0)
        bad = np.isfinite(at)
        reason = (f"{reason_words} at t = {at[bad].tolist()} for seeds "
                  f"{[seeds[j] for j in np.flatnonzero(bad)]}") if bad.any() else None
        return [Outcome(index, result.drop_vars("diverged_at"),
                        np.where(bad, DIVERGED, OK).astype(np.int8), at, reason)]

    def task_cost(self, layout, task) -> tuple[float, float]:
        """Simulations: steps x seeds x the cost per step at the width p of d, n = p + k
        (`TwoLayerProblem.step_seconds` of the method run there); ODEs: per seed and
        ODE, TL_ODE_S_TERM p^2 n^2 (the noise term's integrals per right-hand side) x
        (t_max / 1e4)^TL_ODE_T_EXPONENT (the number of steps).
        Memory: SIMS_BASE_MB + the recorded Gram matrices, seeds x times x n^2 float64,
        twice (the records and the result; 860 MB measured at p = 465, 4 seeds, 41 times)."""
        problem = layout.problems[task.points[0]]
        p = problem.width(task.d)
        n_seeds, n = len(task.seeds), p + problem.k
        if layout.solver == "sims":
            steps = problem.t_max * problem.steps_per_time(task.d)
            method = problem.method_at(task.d, layout.spec.sims["method"])
            seconds = n_seeds * steps * problem.step_seconds(task.d, method)
        else:
            odes = len(layout.spec.dmft["settings"]["odes"])
            seconds = (n_seeds * odes * COST["TL_ODE_S_TERM"] * p ** 2 * n ** 2
                       * (problem.t_max / 1e4) ** COST["TL_ODE_T_EXPONENT"])
        records_mb = 2 * 8e-6 * n_seeds * len(layout.point_times(problem)) * n ** 2
        return seconds + COST["TL_OVERHEAD_S"], COST["SIMS_BASE_MB"] + records_mb


def store_width(layout) -> int:
    """The student dims' size in a store: the largest width over its points and d."""
    return max(problem.width(d) for problem in layout.problems.values()
               for d in layout.d_values)


def _simulate(spec, problem, d, seeds, times):
    import sims.two_layer
    result = sims.two_layer.simulate(problem, d, seeds, method=spec.sims["method"],
                                     times=times, entropy=spec.entropy)
    if not spec.sims.get("overlaps", True):  # the risk only (it is computed from them)
        result = result.drop_vars(["Q", "M", "P"])
    return result, "diverged (overlaps not finite or not positive definite)"


def _solve_odes(spec, problem, d, seeds, times):
    """Each ODE of the spec from each seed's initial overlaps at d, along dim `ode`."""
    import dmft.two_layer
    import sims.two_layer
    initial = sims.two_layer.initial_overlaps(problem, d, seeds, entropy=spec.entropy)
    settings = spec.dmft["settings"]
    curves = [dmft.two_layer.solve(problem, d=d, initial=initial, limit=ode == "limit",
                                   times=times, rtol=settings["rtol"], atol=settings["atol"])
              for ode in settings["odes"]]
    result = xr.concat(curves, dim=pd.Index(settings["odes"], name="ode"),
                       combine_attrs="drop_conflicts")
    return result, "ODE solution stopped being finite"


MODEL = TwoLayerModel()
