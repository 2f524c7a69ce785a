"""Layout of an experiment's Zarr store, its tasks, and region writes with completion marks.

One store per experiment and solver (`results/<experiment>/<solver>.zarr`), dims
(case) x grid axes x (d) x (seed) x time (x time_prime for two-time DMFT variables), chunk
size 1 along case, grid and d, `seeds_per_task` along seed, full along time: every task
owns whole chunks, so tasks never write the same chunk.

Creation writes only metadata and coords: `template(...).to_zarr(compute=False)` of a
dask-backed dataset. Each task then writes its points with `to_zarr(region=...)`; stores
are read lazily with `xr.open_zarr`. Zarr format 2 (ZARR_FORMAT), not 3: in format 3
zarr-python warns on every write/open that consolidated metadata is not in its spec and
that fixed-width unicode (the `case` coordinate) has no stable encoding; format-2 stores
have neither problem and stay readable by zarr-python 2 and other Zarr readers.

Completion: a task writes `done` (dims without time) together with its region, then the
marker `.tasks/<task key>/<run id>.json` inside the store: a task is complete
iff its marker directory is non-empty; the number of files counts its executions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr

from sims.datamodel import TIME_ATTRS, package_version
from sims.engine import recorded_steps

from .config import PROBLEM_FIELDS, ExperimentSpec, _problem, stable_hash

TASKS_DIR = ".tasks"
ZARR_FORMAT = 2
TIME_DIMS = ("time", "time_prime")


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: a batch of points, one d (or None), a batch of seeds (or None)."""

    key: str
    points: tuple  # tuple of point indices (each a tuple over case + grid axes)
    d: int | None
    d_index: int | None
    seeds: tuple | None


@dataclasses.dataclass
class Layout:
    """Dims, coordinates and tasks of one (experiment, solver) store."""

    spec: ExperimentSpec
    solver: str

    def __post_init__(self):
        spec = self.spec
        self.point_fields = dict(spec.points())
        problems = {i: _problem(f) for i, f in self.point_fields.items()}
        self.problems = problems
        self.point_dims = (["case"] if spec.cases else []) + list(spec.grid)
        if self.solver == "sims":
            self.d_values = list(spec.sims["d"])
            self.n_seeds = int(spec.sims["seeds"])
        else:
            self.d_values = spec.dmft["d"]
            self.n_seeds = None
        self.lead_dims = self.point_dims + (["d"] if self.d_values else [])
        self.sample_dims = ["seed"] if self.n_seeds else []
        self.times = self._time_axis()
        self.spec_hash = f"{stable_hash(self.spec.solver_spec(self.solver)):016x}"

    # ------------------------------------------------------------------ coordinates
    def point_times(self, problem) -> np.ndarray:
        if self.solver == "sims":
            steps = recorded_steps(problem.n_steps, int(self.spec.sims["record_every"]))
            return steps * problem.eta
        dt = self.spec.dmft["settings"].get("time_step") or problem.eta
        return np.arange(int(round(problem.t_max / dt)) + 1) * dt

    def _time_axis(self) -> np.ndarray:
        times = np.unique(np.concatenate([self.point_times(p) for p in self.problems.values()]))
        keep = np.concatenate([[True], np.diff(times) > 1e-9 * max(1.0, times[-1])])
        return times[keep]

    def time_index(self, times) -> np.ndarray:
        times = np.asarray(times, dtype=float)
        index = np.clip(np.searchsorted(self.times, times - 1e-9), 0, self.times.size - 1)
        if not np.allclose(self.times[index], times, rtol=1e-9, atol=1e-12):
            raise ValueError(f"{self.solver} result times {times[:5]}... are not on the store's "
                             f"time axis {self.times[:5]}...: the solver's time grid changed")
        return index

    def coords(self) -> dict:
        spec = self.spec
        coords = {}
        if spec.cases:
            coords["case"] = (("case",), np.array(list(spec.cases), dtype=str), {})
            for field in sorted({k for c in spec.cases.values() for k in c}):
                values = [{**spec.problem, **c}.get(field) for c in spec.cases.values()]
                coords[field] = (("case",), _coord_values(values),
                                 {"description": f"Problem.{field} of each case"})
        for axis, values in spec.grid.items():
            coords[axis] = ((axis,), _coord_values(values), {"description": f"Problem.{axis}"})
        if self.d_values:
            coords["d"] = (("d",), np.array(self.d_values, dtype=np.int64),
                           {"long_name": "input dimension d"})
        if self.n_seeds:
            coords["seed"] = (("seed",), np.arange(self.n_seeds, dtype=np.int64),
                              {"long_name": "seed of SeedSequence([entropy, d, seed])"})
        coords["time"] = (("time",), self.times, dict(TIME_ATTRS))
        return coords

    def base_attrs(self) -> dict:
        """Problem fields shared by every point ('none' for None), and the run's identity."""
        attrs = {}
        for field in PROBLEM_FIELDS:
            values = {json.dumps(getattr(p, field)) for p in self.problems.values()}
            if len(values) == 1:
                value = getattr(next(iter(self.problems.values())), field)
                attrs[field] = "none" if value is None else value
        attrs.update(experiment=self.spec.name, solver=self.solver,
                     config=json.dumps(self.spec.solver_spec(self.solver), sort_keys=True),
                     spec_hash=self.spec_hash, entropy=self.spec.entropy,
                     experiment_seed=self.spec.seed, package_version=package_version())
        return attrs

    # ----------------------------------------------------------------------- tasks
    def tasks(self) -> list[Task]:
        spec = self.spec
        tasks = []
        d_list = list(enumerate(self.d_values)) if self.d_values else [(None, None)]
        if self.solver == "sims":
            groups: dict = {}
            for index, p in self.problems.items():
                groups.setdefault((p.model, p.alpha, p.delta), []).append(index)
            size = spec.sims.get("points_per_task") or max(len(g) for g in groups.values())
            batches = [tuple(g[i:i + size]) for g in groups.values() for i in range(0, len(g), size)]
            per = int(spec.sims["seeds_per_task"])
            seed_batches = [tuple(range(s, min(s + per, self.n_seeds)))
                            for s in range(0, self.n_seeds, per)]
        else:
            batches = [(index,) for index in self.problems]
            seed_batches = [None]
        for points in batches:
            for di, d in d_list:
                for seeds in seed_batches:
                    name = f"{self.solver}-d{d}-" + (f"s{seeds[0]}-{seeds[-1]}-" if seeds else "")
                    key = name + f"{stable_hash([points, d, seeds]):016x}"
                    tasks.append(Task(key, points, d, di, seeds))
        return tasks

    def seed_chunk(self) -> int:
        return int(self.spec.sims["seeds_per_task"]) if self.n_seeds else 0


def _coord_values(values) -> np.ndarray:
    if all(isinstance(v, str) or v is None for v in values) and any(isinstance(v, str) for v in values):
        return np.array(["none" if v is None else v for v in values], dtype=str)
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


# --------------------------------------------------------------------------- creation
def template(layout: Layout, probe: xr.Dataset) -> xr.Dataset:
    """The store as a lazy (dask) dataset: coords, attrs, and empty variables chunked so
    that every task owns whole chunks.

    `probe` is a short result of the solver: it gives the variable names, their dims
    beyond the lead dims, dtypes and attributes.
    """
    coords = layout.coords()
    if any("time_prime" in var.dims for var in probe.data_vars.values()):
        coords["time_prime"] = (("time_prime",), layout.times, dict(TIME_ATTRS))
    sizes = {name: len(values) for name, (dims, values, _) in coords.items() if dims == (name,)}
    chunk = {"seed": layout.seed_chunk(), "time": sizes["time"], "time_prime": sizes["time"]}

    def empty(dims, dtype, attrs):
        dtype = np.dtype(dtype)
        fill = np.nan if dtype.kind in "fc" else 0
        data = dsa.full([sizes[d] for d in dims], fill, dtype=dtype,
                        chunks=[chunk.get(d, 1) for d in dims])
        return xr.Variable(dims, data, attrs)

    lead = list(layout.lead_dims)
    data_vars = {name: empty(lead + list(var.dims), var.dtype, var.attrs)
                 for name, var in probe.data_vars.items()}
    data_vars["done"] = empty(lead + layout.sample_dims, bool,
                              {"long_name": "this point's task has completed"})
    return xr.Dataset(data_vars, coords=coords, attrs=layout.base_attrs())


def create_store(path, layout: Layout, probe: xr.Dataset) -> None:
    """Write the store's metadata and coords (no variable data) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    template(layout, probe).to_zarr(tmp, compute=False, mode="w", consolidated=True,
                                    zarr_format=ZARR_FORMAT)
    (tmp / TASKS_DIR).mkdir()
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def store_matches(path, layout: Layout) -> bool:
    """The store exists, is complete metadata-wise, and was made for this spec."""
    try:
        return open_store(path).attrs.get("spec_hash") == layout.spec_hash
    except Exception:  # missing, or half-written: rebuild
        return False


# ------------------------------------------------------------------------- writing
def write_point(path, layout: Layout, task: Task, index: tuple, result: xr.Dataset) -> None:
    """Write one point's result (dims (seed,) time (time_prime)) and its `done` into the
    point's region: whole chunks of the store (one per variable)."""
    lead = tuple(index) + ((task.d_index,) if task.d_index is not None else ())
    region = {dim: slice(i, i + 1) for dim, i in zip(layout.lead_dims, lead)}
    if task.seeds:
        region["seed"] = slice(task.seeds[0], task.seeds[-1] + 1)
    on_axis = {dim: layout.times[layout.time_index(result[dim].values)]
               for dim in TIME_DIMS if dim in result.dims}
    part = result.assign_coords(on_axis).reindex({dim: layout.times for dim in on_axis})
    part["done"] = xr.DataArray(np.ones([part.sizes[d] for d in layout.sample_dims], bool),
                                dims=layout.sample_dims)
    part = part.drop_vars(list(part.coords)).expand_dims(list(region)[:len(lead)])
    part.to_zarr(path, region=region or None, mode="r+")


def mark_done(path, task: Task, info: dict) -> None:
    folder = Path(path) / TASKS_DIR / task.key
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.json"
    tmp = folder / (name + ".tmp")
    tmp.write_text(json.dumps(info, default=_json_default))
    tmp.replace(folder / name)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def completed(path) -> dict[str, int]:
    """{task key: number of completed executions} from the markers."""
    folder = Path(path) / TASKS_DIR
    if not folder.is_dir():
        return {}
    out = {}
    for entry in folder.iterdir():
        n = sum(1 for f in entry.iterdir() if f.suffix == ".json")
        if n:
            out[entry.name] = n
    return out


def task_records(path) -> list[dict]:
    folder = Path(path) / TASKS_DIR
    return [json.loads(f.read_text()) for f in sorted(folder.glob("*/*.json"))]


def finalize(path, layout: Layout) -> dict:
    """Add the solver attributes common to every task to the store attrs; re-consolidate."""
    records = task_records(path)
    common = None
    for record in records:
        attrs = {k: json.dumps(v, sort_keys=True) for k, v in record.get("attrs", {}).items()}
        common = attrs if common is None else {k: v for k, v in common.items()
                                               if attrs.get(k) == v}
    skip = set(PROBLEM_FIELDS) | {"d", "n", "wall_time", "package_version", "seed", "diverged_runs"}
    extra = {k: json.loads(v) for k, v in (common or {}).items() if k not in skip}
    extra["wall_time_total"] = float(sum(r.get("wall_time", 0.0) for r in records))
    extra["n_tasks"] = len({r["key"] for r in records})
    attrs = {**open_store(path).attrs, **extra}  # to_zarr replaces the group attrs
    with warnings.catch_warnings():  # the markers' folder is not a Zarr node: expected
        warnings.filterwarnings("ignore", f"Object at {TASKS_DIR} is not recognized")
        xr.Dataset(attrs=attrs).to_zarr(path, mode="a", consolidated=True)
    return extra


# ------------------------------------------------------------------------- reading
def open_store(path, *, chunks="auto") -> xr.Dataset:
    """Open a store lazily (dask-backed), from its consolidated metadata."""
    return xr.open_zarr(path, consolidated=True, chunks=chunks)
