"""Sweep configuration: JSON-Schema check, Problem check of every grid point, normalisation.

A config (README "Config") maps experiment names to a base problem, grid axes (their
product), optional cases (a leading string dim), and the solvers to run. `load_config`
checks it completely before anything runs and returns one normalised `ExperimentSpec` per
experiment; a bad config raises `ConfigError` naming the experiment, the field, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from sims.problem import Problem

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.json"
PROBLEM_FIELDS = tuple(f.name for f in dataclasses.fields(Problem))
SOLVERS = ("sims", "dmft")
SIMS_DEFAULTS = dict(seeds=1, record_every=1, dtype="float64", seeds_per_task=1,
                     points_per_task=None)


class ConfigError(ValueError):
    """A config that cannot run; the message names experiment, field, value and what is allowed."""


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def read_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def _where(path) -> str:
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "experiments":
        rest = ".".join(str(p) for p in parts[2:])
        return f"experiment '{parts[1]}'" + (f", field '{rest}'" if rest else "")
    return "field '" + (".".join(str(p) for p in parts) or "<top level>") + "'"


def check_schema(config: dict) -> None:
    """JSON-Schema check with a message naming where, what value and what is allowed."""
    validator = jsonschema.Draft7Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    lines = []
    for error in errors[:5]:
        best = jsonschema.exceptions.best_match([error])
        allowed = {k: v for k, v in best.schema.items()
                   if k in ("type", "enum", "minimum", "maximum", "exclusiveMinimum",
                            "minItems", "minProperties", "properties", "propertyNames",
                            "required")}
        if "properties" in allowed:
            allowed["properties"] = sorted(allowed["properties"])
        lines.append(f"{_where(best.absolute_path)}: {best.message} "
                     f"(value {best.instance!r}; allowed: {json.dumps(allowed)})")
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


# ----------------------------------------------------------------------------- specs
def axis_values(values) -> list:
    """A grid axis: a list as is, or {start, stop, num, log} as linspace / geomspace."""
    if isinstance(values, dict):
        start, stop, num = values["start"], values["stop"], values["num"]
        if values.get("log", False):
            if start <= 0 or stop <= 0:
                raise ValueError(f"a log range needs start, stop > 0, got {values}")
            out = np.geomspace(start, stop, num)
        else:
            out = np.linspace(start, stop, num)
        return [float(np.round(v, 12)) for v in out]
    return list(values)


def _as_list(d):
    return None if d is None else ([int(d)] if isinstance(d, int) else [int(v) for v in d])


def stable_hash(obj, n_bytes: int = 8) -> int:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
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

    def solver_spec(self, solver: str) -> dict:
        """What determines the results of `solver`: the content of its spec file."""
        data = self.to_dict()
        data[{"sims": "dmft", "dmft": "sims"}[solver]] = None
        if solver == "dmft":
            data["dmft"] = dict(self.dmft)
        data["solver"] = solver
        data["entropy"] = self.entropy
        return data


def _problem(fields: dict) -> Problem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the clipped persistent chain: allowed
        return Problem(**fields)


def _dmft_parameters():
    try:
        import dmft
        solve = dmft.solve
    except (ImportError, AttributeError):
        return None
    params = inspect.signature(solve).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items()
            if n not in ("problem", "d") and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def normalise_experiment(name: str, raw: dict, default_seed: int) -> ExperimentSpec:
    where = f"experiment '{name}'"
    grid = {axis: axis_values(values) for axis, values in (raw.get("grid") or {}).items()}
    cases = raw.get("cases") or None
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
        sims = {**SIMS_DEFAULTS, **sims}
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
    models = set()
    for index, fields in spec.points():
        try:
            problem = _problem(fields)
        except (TypeError, ValueError) as err:
            point = _describe(spec, index)
            raise ConfigError(f"{where}, {point}: {err}") from None
        models.add(problem.model)
        if sims is not None:
            for d in sims["d"]:
                if round(problem.alpha * d) < 1:
                    raise ConfigError(f"{where}, field 'sims.d': d = {d} gives n = alpha*d < 1 "
                                      f"samples at alpha = {problem.alpha}")
    if dmft is not None:
        d = _as_list(dmft.pop("d", None))
        if "three_cluster" in models:
            d = d or (sims["d"] if sims else None)
            if not d:
                raise ConfigError(f"{where}, field 'dmft.d': missing: three-cluster DMFT needs d "
                                  "(initial magnetization): give dmft.d or sims.d")
        elif d is not None:
            raise ConfigError(f"{where}, field 'dmft.d': {d!r} is not allowed: d is only used by "
                              "three_cluster DMFT (model here: two_cluster); remove it")
        allowed = _dmft_parameters()
        if allowed is not None:
            unknown = sorted(set(dmft) - set(allowed))
            if unknown:
                raise ConfigError(f"{where}, field 'dmft.{unknown[0]}': unknown setting "
                                  f"{unknown!r}: allowed are the keywords of dmft.solve "
                                  f"{sorted(allowed)} and d")
        spec.dmft = {"d": d, "settings": dmft}
    return spec


def _describe(spec: ExperimentSpec, index) -> str:
    parts = []
    index = list(index)
    if spec.cases:
        parts.append(f"case '{list(spec.cases)[index.pop(0)]}'")
    parts += [f"grid {axis}={values[i]!r}" for (axis, values), i in zip(spec.grid.items(), index)]
    return ", ".join(parts) or "base problem"


def load_config(config: dict) -> dict[str, ExperimentSpec]:
    """Check a config completely and return {experiment name: ExperimentSpec}."""
    config = json.loads(json.dumps(config))  # plain JSON types (snakemake passes its own)
    check_schema(config)
    seed = int(config.get("seed", 0))
    return {name: normalise_experiment(name, raw, seed)
            for name, raw in config["experiments"].items()}


def spec_text(spec: ExperimentSpec, solver: str) -> str:
    return json.dumps(spec.solver_spec(solver), indent=1, sort_keys=True) + "\n"


def write_if_changed(path, text: str) -> bool:
    """Write `text` to `path` only if its content differs (keeps mtime otherwise)."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True
