"""Reading experiment stores and cutting them into curves.

A store (README "Data model") has dims (case) x grid axes x (d) x (seed) x time: every
combination of the dims that are not `seed`, `time` or `time_prime` is one curve. The
Problem of a curve is the base problem (the store attributes) with the fields that appear
as coordinates of that curve overridden.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator

import numpy as np
import xarray as xr

from sims.problem import Covariance, Problem, reference_error
from workflow.config import COVARIANCE_FIELDS, ExperimentSpec, problem_fields
from workflow.models import model_of

from .store import open_experiment

SAMPLE_DIMS = ("seed",)
TIME_DIMS = ("time", "time_prime")
PROBLEM_FIELDS = tuple(Problem.__dataclass_fields__)
POINT_FIELDS = PROBLEM_FIELDS + tuple(COVARIANCE_FIELDS)  # what a store coordinate can set

PRETTY = {"lam": "λ", "R": "R", "b": "b", "tau": "1/τ", "d": "d", "alpha": "α",
          "delta": "Δ", "L": "L", "eta": "η", "case": "", "momentum": "β",
          "cov_fraction": "ρ", "cov_variance": "s₁", "smf_order": "order",
          "smf_substeps": "substeps"}
CASE_NAMES = {"gd": "GD", "sgd": "SGD", "persistent": "p-SGD", "psgd": "p-SGD",
              "persistent_sgd": "p-SGD", "smf": "SMF", "gauss_sgd": "Gaussian-mask SGD",
              "flow": "flow of the mean drift"}


# ------------------------------------------------------------------------------- stores
def load_experiment(results: str | os.PathLike, experiment: str,
                    outdated: str = "refuse") -> dict[str, xr.Dataset]:
    """Open results/<experiment>/{sims,dmft}.zarr lazily (`analysis.store.open_experiment`,
    which refuses, or with outdated="flag" flags, a store of another solver revision);
    keys only for the stores that exist ({} if there are none)."""
    try:
        return open_experiment(os.path.join(os.fspath(results), experiment),
                               outdated=outdated)
    except FileNotFoundError:
        return {}


def experiment_config(ds: xr.Dataset) -> dict:
    """The experiment config stored as a JSON string in the attributes ({} if absent)."""
    raw = ds.attrs.get("config")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return {}
    return raw if isinstance(raw, dict) else {}


def experiment_model(ds: xr.Dataset):
    """The model family of a store (workflow/models.py), from its stored experiment config
    (the mixture for a store without one)."""
    config = experiment_config(ds)
    if not config:
        return model_of(None)
    return ExperimentSpec.from_dict(config).model


def at_seeds_kind(dmft: xr.Dataset | dict | None) -> str:
    """Which initial magnetizations a DMFT store's `<var>_at_seeds` average over, from its
    experiment config (the store, or the config dict; docs/theory.md §6.6): "effective m"
    (each simulation seed's m(t_lin)/G(t_lin)) or "m(0)" (each seed's initial magnetization)."""
    config = experiment_config(dmft) if isinstance(dmft, xr.Dataset) else dmft or {}
    effective = (config.get("dmft") or {}).get("seed_magnetizations_at") == "effective"
    return "effective m" if effective else "m(0)"


# ------------------------------------------------------------------------------- curves
def curve_dims(ds: xr.Dataset, var: str = "gen_error") -> list[str]:
    """Dims of `var` that label curves (everything but seed and time)."""
    return [d for d in ds[var].dims if d not in SAMPLE_DIMS + TIME_DIMS]


def iter_points(ds: xr.Dataset, dims: list[str]) -> Iterator[dict]:
    """All combinations of coordinate values of `dims` as dicts {dim: value}."""
    values = [ds[d].values.tolist() for d in dims]
    for combo in itertools.product(*values):
        yield dict(zip(dims, combo))


def select(ds: xr.Dataset, point: dict) -> xr.Dataset:
    """ds at `point`, ignoring keys that are not dims of ds."""
    sel = {k: v for k, v in point.items() if k in ds.dims}
    return ds.sel(sel) if sel else ds


def mean_and_sem(da: xr.DataArray, dim: str = "seed") -> tuple[xr.DataArray, xr.DataArray]:
    """Mean over `dim` and its standard error std/sqrt(n) (NaN-aware: diverged runs drop out)."""
    if dim not in da.dims:
        return da, xr.zeros_like(da) * np.nan
    n = da.count(dim)
    mean = da.mean(dim, skipna=True)
    std = da.std(dim, ddof=1, skipna=True) if da.sizes[dim] > 1 else xr.zeros_like(mean) * np.nan
    return mean, std / np.sqrt(n.where(n > 0))


def problem_at(ds: xr.Dataset, point: dict | None = None) -> dict:
    """Problem fields at a grid point: base attrs overridden by the point's coordinates.

    Non-dimension coordinates along the point's dims (e.g. `process(case)`) are used too;
    the config's two-level covariance scalars (cov_fraction, cov_variance: coordinates or
    the stored config's base problem) become `covariance` (workflow.config.problem_fields).
    Returns a dict (it may not be a valid Problem, e.g. for a padded grid point).
    """
    fields = {k: v for k, v in ds.attrs.items() if k in POINT_FIELDS}
    fields = {k: (None if isinstance(v, str) and v == "none" else v) for k, v in fields.items()}
    base = experiment_config(ds).get("problem") or {}  # config-only fields (not in the attrs)
    fields.update({k: base[k] for k in COVARIANCE_FIELDS if k in base})
    sub = select(ds, point or {})
    for name, coord in sub.coords.items():
        if name in POINT_FIELDS and coord.ndim == 0:
            value = coord.item()
            if isinstance(value, str):
                value = None if value == "none" else value
            elif isinstance(value, float) and math.isnan(value):
                value = None
            fields[name] = value
    for k, v in fields.items():
        if isinstance(v, np.generic):
            fields[k] = v.item()
    if not all(k in fields for k in COVARIANCE_FIELDS):
        return fields
    fields.pop("covariance", None)  # the same levels, if the attrs hold them
    return problem_fields(fields)


def is_identity(fields: dict) -> bool:
    """The problem `fields` (from `problem_at`) have the identity input covariance (no
    covariance, or levels that all have variance 1)."""
    covariance = Covariance.of(fields.get("covariance"))
    return covariance is None or all(s == 1 for s in covariance.variances)


def reference_for(fields: dict) -> float:
    """Bayes-optimal / oracle error (`sims.problem.reference_error`) of the problem `fields`;
    NaN for a non-identity input covariance (the closed forms are for Sigma = I).

    It depends on the data model only (model, alpha, delta, L), so the training-process
    fields, which may not form a valid Problem at a padded grid point, are left out.
    """
    if not is_identity(fields):
        return math.nan
    data = {k: fields[k] for k in ("model", "alpha", "delta", "L") if fields.get(k) is not None}
    return reference_error(Problem(**data))


def format_value(dim: str, value) -> str:
    if isinstance(value, str):
        return CASE_NAMES.get(value, value)
    if dim == "tau":
        return f"{1 / value:.3g}" if value else "∞"
    if dim == "d":
        return f"{int(value)}"
    return f"{value:.3g}"


def case_label(ds: xr.Dataset, case) -> str:
    """'p-SGD, b = 0.2, 1/τ = 0.2' from the Problem coordinates along `case` (its name if
    there are none): the process, then the fields that differ between cases."""
    fields = [n for n, c in ds.coords.items()
              if c.dims == ("case",) and n in POINT_FIELDS]
    if not fields:
        return CASE_NAMES.get(str(case), str(case))
    sub = ds.sel(case=case)
    process = sub["process"].item() if "process" in fields else None
    parts = [CASE_NAMES.get(str(process), str(process))] if process else []
    for name in fields:
        if name == "process":
            continue
        values = ds[name].values
        if len({str(v) for v in values}) < 2:
            continue
        value = sub[name].item()
        if isinstance(value, str) or value is None or (isinstance(value, float)
                                                       and math.isnan(value)):
            continue
        if name == "b" and process == "gd":
            continue
        if name == "nesterov":
            parts.append("Nesterov" if value else "heavy ball")
            continue
        parts.append(f"{PRETTY.get(name, name)} = {format_value(name, value)}")
    return ", ".join(parts) or CASE_NAMES.get(str(case), str(case))


def label_for(point: dict, varying: list[str], ds: xr.Dataset | None = None) -> str:
    """A legend label such as 'p-SGD, b = 0.3' from the varying coordinates of a point."""
    parts = []
    for dim in varying:
        if dim not in point:
            continue
        value = point[dim]
        if dim == "case" and ds is not None and "case" in ds.dims:
            parts.append(case_label(ds, value))
        elif dim == "case" or isinstance(value, str):
            parts.append(format_value(dim, value))
        elif isinstance(value, float) and math.isnan(value):
            continue
        else:
            parts.append(f"{PRETTY.get(dim, dim)} = {format_value(dim, value)}")
    return ", ".join(parts)


def log_subsample(time, n: int = 24, log: bool = True) -> np.ndarray:
    """Indices of about `n` points of `time`, evenly spaced in log t (t > 0) or in t."""
    time = np.asarray(time, dtype=float)
    ok = np.flatnonzero(np.isfinite(time) & ((time > 0) if log else np.ones_like(time, bool)))
    if ok.size <= n:
        return ok
    t = time[ok]
    targets = np.geomspace(t[0], t[-1], n) if log else np.linspace(t[0], t[-1], n)
    idx = np.searchsorted(t, targets).clip(0, t.size - 1)
    left = (idx - 1).clip(0)
    idx = np.where(np.abs(t[left] - targets) < np.abs(t[idx] - targets), left, idx)
    return ok[np.unique(idx)]
