"""The Gaussian-mixture family (models two_cluster, three_cluster; docs/theory.md §2-§7)
behind the pipeline's model interface (workflow/models.py): its problems (`sims.Problem`),
its `sims:` and `dmft:` settings, store times and coordinates, solvers
(`sims.simulate_batch`, `dmft.solve`) and cost model (workflow/plan.py COST).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import xarray as xr

from sims.datamodel import OBSERVABLES, TIME_ATTRS
from sims.engine import recorded_steps
from sims.problem import Problem

from .config import COVARIANCE_FIELDS, ConfigError, problem_fields
from .models import Model, Outcome, failure_reason
from .plan import COST
from .store import DIVERGED, ERROR, OK


# ------------------------------------------------------------------ dmft settings
def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _positive_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf


def _memory(v):
    from dmft.solver import parse_bytes
    try:
        return parse_bytes(v) > 0
    except (TypeError, ValueError):
        return False


# Allowed values of the dmft.solve keywords a config may set (docs: dmft.solve docstring).
# A keyword of dmft.solve missing here is checked by the type of its default value.
DMFT_RULES = {
    "method": (lambda v: v in ("causal", "iterative"), "one of ['causal', 'iterative']"),
    "n_samples": (lambda v: v is None or _positive_int(v), "null or an integer >= 1"),
    "n_replicas": (lambda v: v is None or (_positive_int(v) and v >= 2),
                   "null or an integer >= 2"),
    "response_samples": (lambda v: v is None or v == "auto" or _positive_int(v),
                         "'auto', null or an integer >= 1"),
    "response_window": (lambda v: v is None or (_positive_int(v) and v >= 2),
                        "null or an integer >= 2"),
    "magnetization_nodes": (_positive_int, "an integer >= 1"),
    "magnetization_rule": (lambda v: v in ("escape", "gauss"), "one of ['escape', 'gauss']"),
    "time_step": (lambda v: v is None or _positive_number(v), "null or a number > 0"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32,
             "an integer in [0, 2**32)"),
    "backend": (lambda v: v in ("numba", "numpy"), "one of ['numba', 'numpy']"),
    "response_dtype": (lambda v: v in ("float32", "float64"), "one of ['float32', 'float64']"),
    "memory_limit": (_memory, "a number of bytes > 0 or a string like '8GB'"),
    "max_iterations": (_positive_int, "an integer >= 1"),
    "damping": (lambda v: _positive_number(v) and v <= 1, "a number in (0, 1]"),
    "tolerance": (_positive_number, "a number > 0"),
}
NOT_IN_CONFIG = ("problem", "d", "resume_from", "initial_magnetizations")


def dmft_keywords() -> dict:
    """{keyword: default} of dmft.solve (of a mixture problem, dmft.api.solve) that a config
    may set."""
    from dmft.api import solve
    params = inspect.signature(solve).parameters
    return {n: p.default for n, p in params.items() if n not in NOT_IN_CONFIG
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _rule(name: str, default):
    if name in DMFT_RULES:
        return DMFT_RULES[name]
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "true or false"
    if isinstance(default, int):
        return (lambda v: isinstance(v, int) and not isinstance(v, bool)), "an integer"
    if isinstance(default, float):
        return _positive_number, "a number > 0"
    if isinstance(default, str):
        return (lambda v: isinstance(v, str)), "a string"
    return (lambda v: v is None or _positive_number(v)), "null or a number > 0"


def check_dmft_settings(where: str, settings: dict) -> None:
    """Every setting is a keyword of dmft.solve with an allowed value."""
    allowed = dmft_keywords()
    for name, value in settings.items():
        if name not in allowed:
            raise ConfigError(f"{where}, field 'dmft.{name}': unknown setting {name!r}: "
                              f"allowed are the keywords of dmft.solve {sorted(allowed)} and d")
        check, text = _rule(name, allowed[name])
        if not check(value):
            raise ConfigError(f"{where}, field 'dmft.{name}': {value!r} is not allowed: "
                              f"{name} must be {text}")


def _seed_magnetizations(where: str, value, models: set, sims: dict | None, d) -> int:
    """dmft.seed_magnetizations: true (their m(0)) or "effective" (their m(t_lin)/G(t_lin))
    -> the number of simulation seeds whose initial magnetizations the DMFT also averages
    over (docs/theory.md §6.6; part of the DMFT spec), false -> 0."""
    field = f"{where}, field 'dmft.seed_magnetizations'"  # a boolean or "effective" (schema)
    if not value:
        return 0
    if models != {"three_cluster"}:
        raise ConfigError(f"{field}: the initial magnetization matters for model "
                          f"'three_cluster' only (models here: {sorted(models)}); remove it")
    if sims is None:
        raise ConfigError(f"{field}: needs a 'sims' section (the seeds whose m(0) are used)")
    missing = sorted(set(d) - set(sims["d"]))
    if missing:
        raise ConfigError(f"{field}: dmft.d {missing} are not simulated (sims.d = "
                          f"{sims['d']}); the seeds' m(0) exist at sims.d only")
    return int(sims["seeds"])



# ------------------------------------------------------------------ solvers
def dmft_seed(spec) -> int:
    """The DMFT sampling seed: the experiment entropy (the same at every point, as the sims)."""
    return int(spec.entropy % (2**32))


def _probe_d(problem, d: int) -> int:
    """The probe's dimension: the smallest d' >= 8 that gives every covariance level a
    coordinate, at most the task's d."""
    probe = min(d, 8)
    while probe < d and min(np.diff(problem.level_bounds(probe))) < 1:
        probe += 1
    return probe


def _solve_sims(layout, points, problems, d: int, seeds) -> list[Outcome]:
    import sims
    n = len(seeds)
    try:
        results = sims.simulate_batch(problems, d, seeds,
                                      record_every=int(layout.spec.sims["record_every"]),
                                      dtype=layout.spec.sims["dtype"],
                                      entropy=layout.spec.entropy)
    except Exception as err:  # recorded as status ERROR with this reason, job exits non-zero
        reason = failure_reason(err)
        return [Outcome(i, None, np.full(n, ERROR, np.int8), np.full(n, np.nan), reason)
                for i in points]
    outcomes = []
    for index, ds in zip(points, results):
        at = ds["diverged_at"].values.astype(float)  # NaN: did not diverge
        bad = np.isfinite(at)
        reason = (f"diverged (|w|^2/d not finite or too large) at t = {at[bad].tolist()} "
                  f"for seeds {[seeds[j] for j in np.flatnonzero(bad)]}") if bad.any() else None
        outcomes.append(Outcome(index, ds, np.where(bad, DIVERGED, OK).astype(np.int8), at,
                                reason))
    return outcomes


def _solve_dmft(layout, index, problem, d) -> Outcome:
    """dmft.solve reports divergence in its attrs (status, message, failure_time; theory
    §5.6): status DIVERGED, with the values before the failure kept."""
    import dmft
    settings = {"seed": dmft_seed(layout.spec), **layout.spec.dmft["settings"]}
    kw = {"d": d} if problem.model == "three_cluster" else {}
    n_seeds = layout.spec.dmft.get("seed_magnetizations", 0)
    effective = layout.spec.dmft.get("seed_magnetizations_at") == "effective"
    try:
        ds = dmft.solve(problem, **kw, **settings)
        at_seeds = (_solve_at_seeds(layout, problem, d, n_seeds, settings, ds, effective)
                    if n_seeds else None)
    except Exception as err:  # recorded as status ERROR with this reason, job exits non-zero
        return Outcome(index, None, np.int8(ERROR), np.float64(np.nan), failure_reason(err))
    failures = []
    if ds.attrs["status"] != "success":
        failures.append((ds.attrs["failure_time"], ds.attrs["message"], ""))
    if at_seeds is not None:
        if at_seeds.attrs["status"] != "success":
            which = "effective m" if effective else "m(0)"
            failures.append((at_seeds.attrs["failure_time"], at_seeds.attrs["message"],
                             f" (at the {which} of simulation seeds 0..{n_seeds - 1})"))
        ds = ds.merge(_seed_variables(at_seeds, n_seeds, effective))
    ds = _escape_variables(ds)
    if not failures:
        return Outcome(index, ds, np.int8(OK), np.float64(np.nan))
    time, message, where = min(failures)
    return Outcome(index, ds, np.int8(DIVERGED), np.float64(time), f"diverged{where}: {message}")


ESCAPE_ATTRS = ("node_x", "node_escape_times", "node_escape_time_replicas",
                "node_escape_slopes", "escape_magnetization", "escape_magnetization_replicas")


def _escape_variables(ds: xr.Dataset) -> xr.Dataset:
    """The escape rule's node escape times and their replicas' (attrs of dmft.solve,
    docs/theory.md §5.9) as variables (dims `escape_node`, `escape_replica`), so that every
    point and d keeps its own in the store (the store attrs keep only what all tasks
    share); analysis.finite_size reads them."""
    if "node_escape_times" not in ds.attrs:
        return ds
    out = ds.assign(
        node_x=("escape_node", np.asarray(ds.attrs["node_x"], float),
                {"long_name": "|x| of the m0 nodes, m0 = sqrt(R/d) x"}),
        node_escape_times=("escape_node", np.asarray(ds.attrs["node_escape_times"], float),
                           {"long_name": "first time the node's |m| reaches "
                                         "escape_magnetization", "units": "eta * steps"}),
        node_escape_time_replicas=(("escape_node", "escape_replica"), np.asarray(
            ds.attrs["node_escape_time_replicas"], float), {
                "long_name": "escape time of each replica (sample group) of the node, NaN: "
                             "not escaped by t_max", "units": "eta * steps"}),
        node_escape_slopes=("escape_node", np.asarray(ds.attrs["node_escape_slopes"], float),
                            {"long_name": "slope of the node's |m| at its escape time (NaN: "
                                          "extrapolated)", "units": "1 / (eta * steps)"}),
        escape_magnetization_replicas=("escape_replica", np.asarray(
            ds.attrs["escape_magnetization_replicas"], float), {
                "long_name": "escape_magnetization from each replica (the error of the "
                             "level)"}),
        escape_magnetization=((), float(ds.attrs["escape_magnetization"]),
                              {"long_name": "|m| level at which a node has escaped"}))
    out.attrs = {k: v for k, v in ds.attrs.items() if k not in ESCAPE_ATTRS}
    return out


AT_SEEDS = ("gen_error", "train_loss", "train_acc", "norm2", "magnetization")


def _solve_at_seeds(layout, problem, d: int, n_seeds: int, settings: dict, law,
                    effective: bool):
    """The DMFT averaged over the initial magnetizations of simulation seeds 0..n_seeds-1 at
    d (docs/theory.md §6.6): their m(0), drawn as the simulations draw them
    (`sims.initial_magnetizations`), or, with `seed_magnetizations: effective`, their
    effective m_eff = m(t_lin) / G(t_lin) measured in the linear regime of the law's
    solve `law` (`effective`; the runs to t_lin use the simulations' own random streams)."""
    import dmft
    import sims
    entropy = layout.spec.entropy
    if effective:
        t_lin, growth = dmft.linear_growth(law, problem.R, d)
        runs = sims.simulate(problem.replace(t_max=t_lin), d, n_seeds, entropy=entropy)
        m0 = runs.magnetization.isel(time=-1).values / growth
    else:
        m0 = sims.initial_magnetizations(problem, d, n_seeds, entropy=entropy)
    return dmft.solve(problem, initial_magnetizations=m0, **settings)


def _seed_variables(ds: xr.Dataset, n_seeds: int, effective: bool) -> xr.Dataset:
    """`<observable>_at_seeds` (and its `_mc_error`) for the observables of AT_SEEDS."""
    which = "effective m = m(t_lin)/G(t_lin)" if effective else "m(0)"
    out = {}
    for name in AT_SEEDS:
        for var in (name, f"{name}_mc_error"):
            attrs = dict(ds[var].attrs)
            attrs["long_name"] = f"{attrs.get('long_name', var)}, at the seeds' {which}"
            attrs["description"] = (
                f"DMFT averaged over the initial magnetizations ({which}) of simulation "
                f"seeds 0..{n_seeds - 1} at this d (equal weights) instead of the law of m0, "
                "docs/theory.md §6.6")
            out[f"{name}_at_seeds{var[len(name):]}"] = ds[var].copy()
            out[f"{name}_at_seeds{var[len(name):]}"].attrs = attrs
    return xr.Dataset(out)



# ------------------------------------------------------------------ cost
def sims_seed_cost(problems, d: int) -> float:
    """CPU seconds of one seed of configurations that share the data (module docstring);
    each configuration stops at its own horizon (its n_steps)."""
    n = round(problems[0].alpha * d)
    steps = max(p.n_steps for p in problems)
    per_config = COST["SIMS_S_CONFIG_STEP"] + COST["SIMS_S_CONFIG_SAMPLE"] * n
    smf_passes = sum(p.n_steps * 2 * p.smf_substeps * (3 if p.smf_order == 2 else 1)
                     for p in problems if p.process == "smf")
    return (COST["SIMS_S_GEN"] * n * d + steps * COST["SIMS_S_PASS"] * n * d
            + sum(p.n_steps for p in problems) * per_config
            + smf_passes * COST["SIMS_S_SMF_PASS"] * n * d)


def sims_peak_mb(problem: Problem, d: int, dtype) -> float:
    """Peak MB of simulations at d (module docstring): the data matrix, n d values of dtype
    (one at a time, whatever the seeds), + SIMS_BASE_MB."""
    return problem.alpha * d ** 2 * np.dtype(dtype).itemsize / 1e6 + COST["SIMS_BASE_MB"]


def _as_list(d):
    return None if d is None else ([int(d)] if isinstance(d, int) else [int(v) for v in d])


# ------------------------------------------------------------------ the family
class MixtureModel(Model):
    """Gaussian-mixture classification, `sims.Problem` (models two_cluster, three_cluster)."""

    name = "mixture"
    models = ("two_cluster", "three_cluster")
    fields = tuple(f for f in Problem.__dataclass_fields__)
    observables = (*OBSERVABLES, "norm2_sigma")  # norm2_sigma: |w|^2/d in C_Sigma's metric
    analysis_kinds = ("curves", "map", "finite_size", "paired_curves", "surrogates")
    sims_defaults = dict(seeds=1, record_every=1, dtype="float64", seeds_per_task=1,
                         points_per_task=None)
    time_attrs = dict(TIME_ATTRS)
    # raise when the numbers of sims.engine (sims) or dmft.solve (dmft) change (dmft r2:
    # randomized quasi-Monte Carlo samples, docs/theory.md §5.10)
    solver_revisions = {"sims": 1, "dmft": 2}

    # --------------------------------------------------------------------- config
    def build(self, fields: dict) -> Problem:
        """`cov_fraction`, `cov_variance` become the two-level covariance
        (workflow.config.problem_fields)."""
        return Problem(**problem_fields(fields))

    def check_sims(self, where: str, sims: dict) -> None:
        for key in ("method", "n_times", "overlaps"):
            if key in sims:
                raise ConfigError(f"{where}, field 'sims.{key}': {sims[key]!r} is not allowed: "
                                  f"{key} is a setting of model two_layer; the Gaussian-mixture "
                                  "simulations take d, seeds, record_every, dtype, "
                                  "seeds_per_task, points_per_task")

    def check_point(self, where: str, point: str, problem, sims: dict | None) -> None:
        for d in (sims or {}).get("d", []):
            if round(problem.alpha * d) < 1:
                raise ConfigError(f"{where}, field 'sims.d': d = {d} gives n = alpha*d < 1 "
                                  f"samples at alpha = {problem.alpha}")
            if min(np.diff(problem.level_bounds(d))) < 1:
                raise ConfigError(f"{where}, field 'sims.d': d = {d} is not allowed at "
                                  f"{point}: the covariance levels "
                                  f"{problem.level_fractions} get "
                                  f"{np.diff(problem.level_bounds(d)).tolist()} coordinates;"
                                  " d must give every level at least one")

    def normalise_dmft(self, where: str, dmft: dict, problems: list, sims: dict | None) -> dict:
        """d only for three_cluster (its initial magnetization), seed_magnetizations, and
        the keywords of dmft.solve."""
        models = {problem.model for problem in problems}
        d = _as_list(dmft.pop("d", None))
        if "three_cluster" in models:
            d = d or (sims["d"] if sims else None)
            if not d:
                raise ConfigError(f"{where}, field 'dmft.d': missing: three-cluster DMFT needs d "
                                  "(initial magnetization): give dmft.d or sims.d")
        elif d is not None:
            raise ConfigError(f"{where}, field 'dmft.d': {d!r} is not allowed: d is only used by "
                              "three_cluster DMFT (model here: two_cluster); remove it")
        seed_mode = dmft.pop("seed_magnetizations", False)
        at_seeds = _seed_magnetizations(where, seed_mode, models, sims, d)
        check_dmft_settings(where, dmft)
        out = {"d": d, "settings": dmft}
        if at_seeds:  # absent when off: the specs (and stores) of other experiments unchanged
            out["seed_magnetizations"] = at_seeds
            if seed_mode == "effective":
                out["seed_magnetizations_at"] = "effective"
        return out

    # --------------------------------------------------------------------- stores
    def point_times(self, spec, solver: str, problem) -> np.ndarray:
        if solver == "sims":
            steps = recorded_steps(problem.n_steps, int(spec.sims["record_every"]))
            return steps * problem.eta
        dt = spec.dmft["settings"].get("time_step") or problem.eta
        return np.arange(int(round(problem.t_max / dt)) + 1) * dt

    def point_coords(self, layout) -> dict:
        fraction = np.full(layout.point_shape(), np.nan)
        for index, problem in layout.problems.items():
            fraction[index] = problem.active_fraction
        return {"effective_active_fraction": (tuple(layout.point_dims), fraction, {
            "long_name": "stationary active fraction of the training process",
            "description": "Problem.active_fraction: b, except where the persistent chain's "
                           "deactivation probability (1-b) eta/(b tau) > 1 is clipped at 1"})}

    def attrs(self, problem) -> dict:
        return problem.to_attrs()  # JSON values (covariance levels)

    def identity(self, problem) -> dict:
        return problem.to_dict()

    def run_settings(self, spec, solver: str) -> dict:
        if solver == "sims":
            return {k: spec.sims[k] for k in ("record_every", "dtype")}
        # memory_limit only sets how many nodes are solved at once (theory §5.7)
        settings = {k: v for k, v in spec.dmft["settings"].items() if k != "memory_limit"}
        for key in ("seed_magnetizations", "seed_magnetizations_at"):
            if key in spec.dmft:
                settings[key] = spec.dmft[key]
        return settings

    def data_key(self, problem):
        return problem.data_key

    def describe_field(self, field: str) -> str:
        """The Problem field, or the config scalar it stands for."""
        if field in COVARIANCE_FIELDS:
            return (f"{field}: two-level input covariance scalar, Covariance.two_levels("
                    f"{COVARIANCE_FIELDS[field]}=...) (workflow.config.COVARIANCE_FIELDS)")
        return f"Problem.{field}"

    # ---------------------------------------------------------------- execution
    def solve(self, layout, task, *, probe: bool = False) -> list[Outcome]:
        problems = [layout.problems[i] for i in task.points]
        if probe:  # a short run: variable names, dims, dtypes and attributes
            problems = [p.replace(t_max=min(p.t_max, 2 * p.eta)) for p in problems[:1]]
        if layout.solver == "sims":
            d = _probe_d(problems[0], task.d) if probe else task.d
            seeds = [0] if probe else list(task.seeds)
            return _solve_sims(layout, task.points, problems, d, seeds)
        return [_solve_dmft(layout, index, p, task.d) for index, p in zip(task.points, problems)]

    def task_cost(self, layout, task) -> tuple[float, float]:
        if layout.solver == "sims":
            problems = [layout.problems[i] for i in task.points]
            return (COST["SIMS_OVERHEAD_S"] + len(task.seeds) * sims_seed_cost(problems, task.d),
                    sims_peak_mb(problems[0], task.d, layout.spec.sims["dtype"]))
        from dmft.cost import estimate_cost
        settings = dict(layout.spec.dmft["settings"])
        p = layout.problems[task.points[0]]
        d = {"d": task.d} if p.model == "three_cluster" else {}
        costs = [estimate_cost(p, **d, **settings)]
        n_seeds = layout.spec.dmft.get("seed_magnetizations", 0)
        if n_seeds:  # and the solve at the seeds' m(0), one node per seed (theory §6.6)
            costs.append(estimate_cost(p, initial_magnetizations=np.ones(n_seeds), **settings))
        if layout.spec.dmft.get("seed_magnetizations_at") == "effective":
            # the seeds' runs to t_lin (_solve_at_seeds), t_lin known only after the solve
            t_lin = min(p.t_max, COST["DMFT_T_LIN"])
            costs.append(dict(seconds=n_seeds * sims_seed_cost([p.replace(t_max=t_lin)],
                                                               task.d),
                              bytes=sims_peak_mb(p, task.d, "float64") * 1e6))
        return (sum(c["seconds"] for c in costs) + COST["DMFT_OVERHEAD_S"],
                max(c["bytes"] for c in costs) / 1e6)


MODEL = MixtureModel()
