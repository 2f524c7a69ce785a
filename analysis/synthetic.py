"""Small real stores in the pipeline's layout, for tests and demos (not for the paper).

`build_stores` runs `sims.simulate` on a (case) x grid x d product and writes
<path>/sims.zarr; for <path>/dmft.zarr it uses `dmft.solve` when asked (`theory="dmft"`),
or a large-d simulation average as a stand-in (`theory="large_d"`, attrs mark it as such).
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import xarray as xr

from sims import simulate
from sims.datamodel import OBSERVABLES, annotate, dataset_attrs
from sims.problem import Problem
from workflow.store import ZARR_FORMAT


def _nan_like(template: xr.Dataset) -> xr.Dataset:
    return template.map(lambda v: v.astype(float) * np.nan)


def _grid(base: Problem, grid: dict, cases: dict | None):
    cases = cases or {None: {}}
    for case, fields in cases.items():
        for values in itertools.product(*grid.values()):
            yield case, values, dict(zip(grid, values)), fields


def _stack(datasets: dict, grid: dict, cases: dict | None) -> xr.Dataset:
    """datasets[(case, values)] -> one dataset with dims (case) x grid x ..."""
    names = list(grid)
    case_list = list((cases or {None: {}}).keys())
    per_case = []
    for case in case_list:
        arr = np.empty([len(v) for v in grid.values()], dtype=object)
        for idx in itertools.product(*[range(len(v)) for v in grid.values()]):
            values = tuple(list(grid.values())[k][i] for k, i in enumerate(idx))
            arr[idx] = datasets[(case, values)]
        nested = arr.tolist() if names else arr.item()
        ds = xr.combine_nested(nested, concat_dim=names, combine_attrs="override") \
            if names else nested
        if names:
            ds = ds.assign_coords({n: list(v) for n, v in grid.items()})
        per_case.append(ds)
    if cases:
        out = xr.concat(per_case, dim="case", combine_attrs="override")
        return out.assign_coords(case=[str(c) for c in case_list])
    return per_case[0]


def build_stores(path, base: Problem, grid: dict | None = None, *, cases: dict | None = None,
                 d=(200,), seeds: int = 3, theory: str | None = "large_d", d_theory=2000,
                 theory_seeds: int = 4, record_every: int = 1, experiment: str = "synthetic",
                 write_sims: bool = True) -> dict[str, xr.Dataset]:
    """Write <path>/sims.zarr (dims (case) x grid x d x seed x time) and <path>/dmft.zarr.

    grid: {field: values} overriding `base` (config order); cases: {name: {field: value}}.
    theory: "dmft" (dmft.solve; d dim for three-cluster), "large_d" (mean of `theory_seeds`
    simulations at d_theory, `*_mc_error` = its s.e.; d dim = d for three-cluster) or None.
    """
    grid = dict(grid or {})
    d = list(d)
    sims_parts, theory_parts = {}, {}
    template = None
    for case, values, changes, fields in _grid(base, grid, cases):
        try:
            problem = base.replace(**fields, **changes)
        except ValueError:
            problem = None
        per_d, per_d_theory = [], []
        for dd in d:
            if problem is None:
                per_d.append(None)
                continue
            run = simulate(problem, dd, seeds, record_every=record_every)
            per_d.append(run[list(OBSERVABLES) + ["active_fraction"]].drop_vars(
                "step", errors="ignore"))
            template = per_d[-1]
        if theory is not None and problem is not None:
            theory_d = d if problem.model == "three_cluster" else [None]
            for dd in theory_d:
                if theory == "dmft":
                    import dmft
                    res = dmft.solve(problem, d=dd) if dd is not None else dmft.solve(problem)
                    keep = [v for v in res.data_vars if "time_prime" not in res[v].dims]
                    res = res[keep]
                else:
                    run = simulate(problem, dd or d_theory, theory_seeds,
                                   record_every=record_every, entropy=1)
                    mean = run[list(OBSERVABLES)].mean("seed")
                    sem = run[list(OBSERVABLES)].std("seed", ddof=1) / np.sqrt(theory_seeds)
                    res = mean.merge(sem.rename({v: f"{v}_mc_error" for v in OBSERVABLES}))
                    res = res.drop_vars("step", errors="ignore")
                per_d_theory.append(res)
            theory_parts[(case, values)] = (
                xr.concat(per_d_theory, dim=xr.Variable("d", d), combine_attrs="override")
                if problem.model == "three_cluster" else per_d_theory[0])
        sims_parts[(case, values)] = per_d
    for key, per_d in sims_parts.items():
        per_d = [p if p is not None else _nan_like(template) for p in per_d]
        sims_parts[key] = xr.concat(per_d, dim=xr.Variable("d", d), combine_attrs="override")
    config = json.dumps({"experiment": experiment, "base": base.to_dict(), "grid": grid,
                         "cases": cases, "d": d, "seeds": seeds})
    attrs = dataset_attrs(base, config=config)
    out = {}
    if write_sims:
        ds = annotate(_stack(sims_parts, grid, cases).transpose(..., "seed", "time"))
        ds.attrs = dict(attrs)
        out["sims"] = ds
    if theory_parts:
        ttemplate = next(iter(theory_parts.values()))
        for key in sims_parts:
            theory_parts.setdefault(key, _nan_like(ttemplate))
        ds = annotate(_stack(theory_parts, grid, cases).transpose(..., "time"))
        ds.attrs = {**attrs, "theory": theory}
        out["dmft"] = ds
    os.makedirs(path, exist_ok=True)
    for key, ds in out.items():
        if cases:
            for field in sorted({k for c in cases.values() for k in c}):
                values = [c.get(field, getattr(base, field)) for c in cases.values()]
                values = (["none" if v is None else v for v in values]
                          if any(isinstance(v, str) for v in values)
                          else [np.nan if v is None else float(v) for v in values])
                ds = ds.assign_coords({field: ("case", values)})
            out[key] = ds
        ds.to_zarr(os.path.join(path, f"{key}.zarr"), mode="w", consolidated=True,
                   zarr_format=ZARR_FORMAT)
    return out

