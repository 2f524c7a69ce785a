"""Sweep configuration: JSON-Schema check, Problem check of every grid point, normalisation.

A config (README "Config") maps experiment names to a base problem, grid axes (their
product), optional cases (a leading string dim), and the solvers to run. `load_config`
checks it completely before anything runs and returns one normalised `ExperimentSpec` per
experiment; a bad config raises `ConfigError` naming the experiment, the field, the value
and what is allowed. What depends on the model (its problem, its `sims:` and `dmft:`
settings) is the model family's (workflow/models.py, `ExperimentSpec.model`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from sims.problem import Covariance

from .models import model_of, model_values

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.json"
# Scalar stand-ins for a two-level input covariance (a grid axis or case field takes numbers,
# Problem.covariance takes levels): {config field: argument of Covariance.two_levels}.
COVARIANCE_FIELDS = {"cov_fraction": "fraction", "cov_variance": "variance"}
SOLVERS = ("sims", "dmft")
# Above these a run stops before computing anything, saying what it would cost and how to
# allow it (config `budget:`): grid points per experiment, planned CPU-hours of the config.
BUDGET = dict(points=100_000, cpu_hours=24.0)
AXIS_VALUES_CHECKED = 50  # a longer axis is checked at its smallest and largest values
MAX_CHECKED_POINTS = 1000  # more combinations of checked values: checked axis by axis


class ConfigError(ValueError):
    """A config that cannot run; the message names experiment, field, value and what is allowed."""


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


class _StrictLoader(yaml.SafeLoader):
    """YAML loader that refuses a key given twice in one mapping (also through `<<:`)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen, merged = {}, set()
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                        else [value_node]
                    merged |= {k.value for s in sources if isinstance(s, yaml.MappingNode)
                               for k, _ in s.value}
                    continue
                key = key_node.value
                if key in seen:
                    raise ConfigError(f"line {key_node.start_mark.line + 1}: key '{key}' is "
                                      f"given twice (first on line {seen[key]}): every key "
                                      "of a mapping must be unique")
                seen[key] = key_node.start_mark.line + 1
            for key in sorted(merged & set(seen)):
                raise ConfigError(f"line {seen[key]}: key '{key}' is given here and by a "
                                  "'<<:' merge into the same mapping: give it once")
        return super().construct_mapping(node, deep=deep)


def read_yaml(path) -> dict:
    """A YAML config file; ConfigError naming the file (and line) if it cannot be used."""
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_StrictLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}, {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping (experiments: ...), not "
                          f"{type(data).__name__}")
    return data


def resolve_config(configfiles, overrides: dict, default) -> dict:
    """The config a Snakemake run means: the given config files (each read strictly, later
    ones updating earlier ones at the top level) or, only if none was given, the default
    file; then the `--config key=value` overrides."""
    config = {}
    for path in configfiles or [default]:
        config.update(read_yaml(path))
    config.update(json.loads(json.dumps(dict(overrides), default=str)))
    return config


def _where(path) -> str:
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "experiments":
        rest = ".".join(str(p) for p in parts[2:])
        return f"experiment '{parts[1]}'" + (f", field '{rest}'" if rest else "")
    return "field '" + (".".join(str(p) for p in parts) or "<top level>") + "'"


def check_schema(config: dict) -> None:
    """JSON-Schema check with a message naming where, what value and what is allowed."""
    validator = jsonschema.validators.validator_for(schema())(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    lines = []
    for error in errors[:5]:
        best = jsonschema.exceptions.best_match([error])
        allowed = {k: v for k, v in best.schema.items()
                   if k in ("type", "enum", "minimum", "maximum", "exclusiveMinimum",
                            "exclusiveMaximum",
                            "minItems", "minProperties", "properties", "propertyNames",
                            "required")}
        if "properties" in allowed:
            allowed["properties"] = sorted(allowed["properties"])
        lines.append(f"{_where(best.absolute_path)}: {best.message} "
                     f"(value {best.instance!r}; allowed: {json.dumps(allowed)})")
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


# ----------------------------------------------------------------------------- specs
def axis_values(values, where: str = "grid axis") -> list:
    """A grid axis: a list as is, or {start, stop, num, log} as linspace / geomspace."""
    if isinstance(values, dict):
        start, stop, num = values["start"], values["stop"], values["num"]
        if values.get("log", False):
            if start <= 0 or stop <= 0:
                raise ConfigError(f"{where}: {values!r} is not allowed: a log range needs "
                                  "start > 0 and stop > 0")
            out = np.geomspace(start, stop, num)
        else:
            out = np.linspace(start, stop, num)
        return [float(np.round(v, 12)) for v in out]
    return list(values)


def _as_list(d):
    return None if d is None else ([int(d)] if isinstance(d, int) else [int(v) for v in d])


def stable_hash(obj, n_bytes: int = 8) -> int:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:n_bytes], "big")


def experiment_entropy(name: str, seed: int) -> int:
    """Entropy of an experiment's random streams: a stable hash of (name, seed), < 2**63."""
    return stable_hash(["sgd-dmft experiment", name, int(seed)]) >> 1


@dataclasses.dataclass
class ExperimentSpec:
    """One normalised experiment (JSON-able via `to_dict`)."""

    name: str
    seed: int
    problem: dict
    cases: dict | None
    grid: dict
    sims: dict | None
    dmft: dict | None

    @property
    def model(self):
        """The model family of the experiment's points (workflow/models.py)."""
        return model_of(model_values(self.problem, self.cases, self.grid)[0])

    @property
    def entropy(self) -> int:
        return experiment_entropy(self.name, self.seed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentSpec":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    # ---- the points of the sweep
    def case_names(self) -> list[str] | None:
        return list(self.cases) if self.cases else None

    def points(self):
        """Yield (index, fields) over case x grid axes, index a tuple of positions."""
        cases = list(self.cases.items()) if self.cases else [(None, {})]
        axes = list(self.grid.items())
        for ci, (_, overrides) in enumerate(cases):
            for gi in itertools.product(*(range(len(v)) for _, v in axes)):
                fields = {**self.problem, **overrides}
                fields.update({name: values[i] for (name, values), i in zip(axes, gi)})
                yield ((ci,) if self.cases else ()) + gi, fields

    def size(self) -> int:
        """The number of grid points (cases x the product of the axes)."""
        return len(self.cases or [None]) * math.prod(len(v) for v in self.grid.values())

    def describe(self, index) -> str:
        """A grid point in words, e.g. "case 'gd', grid lam=0.1"."""
        index, parts = list(index), []
        if self.cases:
            parts.append(f"case '{list(self.cases)[index.pop(0)]}'")
        parts += [f"grid {axis}={values[i]!r}" for (axis, values), i in zip(self.grid.items(), index)]
        return ", ".join(parts) or "base problem"

    def solver_spec(self, solver: str) -> dict:
        """What determines the results of `solver`: the content of its spec file."""
        data = self.to_dict()
        data[{"sims": "dmft", "dmft": "sims"}[solver]] = None
        if solver == "dmft":
            data["dmft"] = dict(self.dmft)
        data["solver"] = solver
        data["entropy"] = self.entropy
        return data


def points_to_check(spec: ExperimentSpec) -> list[tuple[str, dict]]:
    """(the point in words, its config fields) of the grid points whose Problems are
    built to check an experiment, chosen axis by axis so that their number does not grow
    with the grid: each axis's values, or its smallest and largest (and every non-number)
    if it has more than AXIS_VALUES_CHECKED (a range's values lie between its ends and a
    Problem's constraints on a field are intervals); all their combinations if there are
    at most MAX_CHECKED_POINTS, else each value with the other axes at their first, and
    every combination of the axes' ends."""
    axes = {axis: _values_to_check(values) for axis, values in spec.grid.items()}
    cases = list(spec.cases.items()) if spec.cases else [(None, {})]
    if len(cases) * math.prod(len(v) for v in axes.values()) <= MAX_CHECKED_POINTS:
        chosen = list(itertools.product(*axes.values()))
    else:
        first = [values[0] for values in axes.values()]
        chosen = [tuple(first[:i] + [value] + first[i + 1:])
                  for i, values in enumerate(axes.values()) for value in values]
        chosen += itertools.product(*({values[0], values[-1]} for values in axes.values()))
    out = []
    for case, overrides in cases:
        for values in dict.fromkeys(chosen):
            words = ([f"case '{case}'"] if case is not None else []) + [
                f"grid {axis}={value!r}" for axis, value in zip(axes, values)]
            out.append((", ".join(words) or "base problem",
                        {**spec.problem, **overrides, **dict(zip(axes, values))}))
    return out


def _values_to_check(values: list) -> list:
    if len(values) <= AXIS_VALUES_CHECKED:
        return list(values)
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    others = [v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool)]
    return list(dict.fromkeys(others)) + ([min(numbers), max(numbers)] if numbers else [])


def problem_fields(fields: dict) -> dict:
    """The Problem fields of a config point: `cov_fraction` rho and `cov_variance` s1 (given
    together, instead of `covariance`) become covariance = Covariance.two_levels(rho, s1):
    a fraction rho of the coordinates with variance s1, the rest with (1 - rho s1)/(1 - rho)
    (docs/theory.md §7.1). ValueError naming both fields if they cannot form it."""
    given = {name: fields[name] for name in COVARIANCE_FIELDS if name in fields}
    out = {k: v for k, v in fields.items() if k not in COVARIANCE_FIELDS}
    if not given:
        return out
    if len(given) == 1:
        (name, value), = given.items()
        other, = set(COVARIANCE_FIELDS) - {name}
        raise ValueError(f"{name} = {value!r} is not allowed alone: {other} must be given too "
                         f"(the two-level covariance needs both {list(COVARIANCE_FIELDS)})")
    if out.get("covariance") is not None:
        raise ValueError(f"covariance = {out['covariance']!r} is not allowed together with "
                         f"{list(COVARIANCE_FIELDS)}: give the levels or the two scalars")
    words = ", ".join(f"{name} = {value!r}" for name, value in given.items())
    try:
        out["covariance"] = Covariance.two_levels(
            **{COVARIANCE_FIELDS[name]: value for name, value in given.items()})
    except ValueError:
        raise ValueError(f"{words} is not allowed: cov_fraction must be in (0, 1), "
                         "cov_variance > 0 and cov_fraction * cov_variance < 1 (the other "
                         "level's variance (1 - cov_fraction * cov_variance) / "
                         "(1 - cov_fraction) must be > 0)") from None
    return out


def checked_problem(fields: dict):
    """The problem of a grid point (config fields; built by its model family,
    workflow/models.py) and the warnings its construction raised (e.g. the clipped
    persistent chain), returned so the caller can name the point in its log."""
    return model_of(fields.get("model")).checked(fields)


SCHEDULERS = ("local", "sync", "slurm")


def check_scheduler(field: str, value) -> None:
    """local, sync, slurm or the address of a running scheduler (tcp://host:port)."""
    if value in SCHEDULERS or (isinstance(value, str) and "://" in value):
        return
    raise ConfigError(f"field '{field}': {value!r} is not allowed: one of {list(SCHEDULERS)} "
                      "or the address of a running scheduler such as tcp://host:8786")


def check_analysis_section(name: str, raw: dict, grid_axes: list, model) -> None:
    """The experiment's `analysis:` section, checked by analysis.spec (owned by the analysis)."""
    if "analysis" not in raw:
        return
    from analysis.spec import check_analysis
    try:
        check_analysis(raw["analysis"], name, grid_axes, model)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def normalise_experiment(name: str, raw: dict, default_seed: int,
                         max_points: int = BUDGET["points"]) -> ExperimentSpec:
    where = f"experiment '{name}'"
    _check_size(where, raw, max_points)
    grid = {axis: axis_values(values, f"{where}, field 'grid.{axis}'")
            for axis, values in (raw.get("grid") or {}).items()}
    cases = raw.get("cases") or None
    model = _experiment_model(where, raw["problem"], cases, grid)
    check_analysis_section(name, raw, [a for a in grid if a != "d"], model)
    sims = dict(raw["sims"]) if raw.get("sims") is not None else None
    dmft = dict(raw["dmft"]) if raw.get("dmft") is not None else None
    if sims is None and dmft is None:
        raise ConfigError(f"{where}: no solver: give 'sims', 'dmft' or both")
    if "d" in grid:
        if sims is None or "d" in sims:
            raise ConfigError(f"{where}, field 'grid.d': d is a simulation axis: give it either "
                              "as grid.d (with a 'sims' section) or as sims.d, not both")
        sims["d"] = grid.pop("d")
    if sims is not None:
        model.check_sims(where, sims)
        sims = {**model.sims_defaults, **sims}
        sims["d"] = _as_list(sims.get("d"))
        if not sims["d"]:
            raise ConfigError(f"{where}, field 'sims.d': missing: the simulations need d "
                              "(an integer >= 1 or a list of them)")
        if any((not isinstance(v, int)) or v < 1 for v in sims["d"]):
            raise ConfigError(f"{where}, field 'sims.d': {sims['d']!r} is not allowed: "
                              "d must be integers >= 1")
    for axis, values in grid.items():
        if len(values) == 0:
            raise ConfigError(f"{where}, field 'grid.{axis}': empty axis: give at least one value")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{where}, field 'grid.{axis}': {values!r} has repeated values: "
                              "grid values must be distinct")
        if cases and any(axis in c for c in cases.values()):
            raise ConfigError(f"{where}, field 'grid.{axis}': {axis} is both a grid axis and a "
                              "case override: set it in one place only")
    spec = ExperimentSpec(name=name, seed=int(raw.get("seed", default_seed)),
                          problem=dict(raw["problem"]), cases=cases, grid=grid, sims=sims,
                          dmft=None)
    model.check_experiment(where, spec)
    problems = []
    for point, fields in points_to_check(spec):
        try:
            problem, _ = model.checked(fields)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}, {point}: {err}") from None
        problems.append(problem)
        model.check_point(where, point, problem, sims)
    if dmft is not None:
        spec.dmft = model.normalise_dmft(where, dmft, problems, sims)
    return spec


def _experiment_model(where: str, problem: dict, cases, grid: dict):
    """The one model family of an experiment's points (ConfigError if they mix families:
    the solvers and the store layout are the family's)."""
    values = model_values(problem, cases, grid)
    try:
        families = {value: model_of(value) for value in values}
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    if len({family.name for family in families.values()}) > 1:
        raise ConfigError(f"{where}, field 'model': {values!r} is not allowed: the points of "
                          "one experiment must be of one model family (two_cluster and "
                          "three_cluster; or two_layer): make one experiment per family")
    return families[values[0]]


def _check_size(where: str, raw: dict, max_points: int) -> None:
    """The number of grid points from the axes' lengths (nothing expanded): above the
    budget, a ConfigError that says how to allow it."""
    sizes = {axis: values["num"] if isinstance(values, dict) else len(values)
             for axis, values in (raw.get("grid") or {}).items()}
    points = len(raw.get("cases") or [None]) * math.prod(sizes.values())
    if points > max_points:
        axes = " x ".join(f"{axis} {n}" for axis, n in sizes.items())
        raise ConfigError(f"{where}: {points} grid points ({axes}) is above the budget of "
                          f"{max_points} points per experiment; nothing was computed. "
                          + allow_budget("points", points))


def allow_budget(field: str, value) -> str:
    """How to raise the budget `field` to `value`."""
    return (f"To allow it, set 'budget: {{{field}: {value}}}' at the top of the config or "
            f"run snakemake with --config 'budget={{{field}: {value}}}'")


def budget(config: dict) -> dict:
    """The config's budget (BUDGET where it does not say)."""
    return {**BUDGET, **(config.get("budget") or {})}


def reject_non_finite(value, path=()) -> None:
    """ConfigError naming the field of any NaN or infinite number, wherever it is (also a
    base-problem field that every grid point overrides)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_where(path)}: {value!r} is not allowed: every number of a "
                          "config must be finite (no NaN or infinity)")
    if isinstance(value, dict):
        for key, item in value.items():
            reject_non_finite(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            reject_non_finite(item, (*path, i))


def load_config(config: dict) -> dict[str, ExperimentSpec]:
    """Check a config completely and return {experiment name: ExperimentSpec}."""
    config = json.loads(json.dumps(config))  # plain JSON types (snakemake passes its own)
    reject_non_finite(config)
    check_schema(config)
    for field, value in (("dask_scheduler", config.get("dask_scheduler")),
                         ("dask.scheduler", (config.get("dask") or {}).get("scheduler"))):
        if value not in (None, "", "default"):
            check_scheduler(field, value)
    seed = int(config.get("seed", 0))
    points = budget(config)["points"]
    specs = {name: normalise_experiment(name, raw, seed, points)
             for name, raw in config["experiments"].items()}
    _check_analysis_uses(config["experiments"], specs)
    return specs


def _check_analysis_uses(experiments: dict, specs: dict) -> None:
    """The experiments an analysis reads besides its own (analysis.spec.uses) exist, and
    the cases it names (`reference`, `surrogate`) are cases of the experiments it reads."""
    from analysis.spec import check_analysis, uses
    for name, raw in experiments.items():
        if "analysis" not in raw:
            continue
        section = check_analysis(raw["analysis"], name, None, specs[name].model)
        for other in uses(section):
            if other not in specs:
                raise ConfigError(f"experiment '{name}', field 'analysis': it reads the stores "
                                  f"of experiment {other!r}, which is not in the config "
                                  f"(experiments: {list(specs)})")
        # the reference is a case of every experiment it pairs, the surrogate of this one
        paired = {"reference": [name, *section.get("curve_experiments", [])],
                  "surrogate": [name]}
        for field, experiments in paired.items():
            for where in experiments:
                cases = list(specs[where].cases or {})
                if field in section and section[field] not in cases:
                    raise ConfigError(f"experiment '{name}', field 'analysis.{field}': "
                                      f"{section[field]!r} is not a case of experiment "
                                      f"'{where}' (its cases: {cases})")


def spec_text(spec: ExperimentSpec, solver: str) -> str:
    """The content of a store's spec file: the solver's spec and the installed solver
    version (a new solver revision changes the file, so Snakemake reruns the store job,
    which rebuilds the store)."""
    return json.dumps({**spec.solver_spec(solver),
                       "solver_version": spec.model.solver_version(solver)},
                      indent=1, sort_keys=True) + "\n"
