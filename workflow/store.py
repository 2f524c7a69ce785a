"""Layout of an experiment's Zarr store, its tasks, and region writes with completion marks.

One store per experiment and solver (`results/<experiment>/<solver>.zarr`), dims
(case) x grid axes x (d) x (seed) x time (x time_prime for two-time DMFT variables), chunk
size 1 along case, grid and d, `seeds_per_task` along seed, full along time: every task
owns whole chunks, so tasks never write the same chunk.

Creation writes the metadata, the coords and the small per-run variables (`done`, `status`,
`failure_time`, no time dim); the solver's variables get their chunks from the tasks'
`to_zarr(region=...)` writes (every chunk written, even all-NaN, so a missing chunk is
damage). Zarr format 2 (ZARR_FORMAT), not 3: in format 3 zarr-python warns on every
write/open that consolidated metadata is not in its spec and that fixed-width unicode (the
`case` coordinate) has no stable encoding; format-2 stores have neither problem.

Per run (every dim but time): `done` (the run's task completed), `status` (STATUS_FLAGS:
0 ok, 1 diverged, 2 error, -1 not computed) and `failure_time` (NaN if it did not fail).
Per grid point: the model family's coordinates (workflow/models.py; the mixture's
`effective_active_fraction`, Problem.active_fraction, which differs from b where the
persistent chain is clipped; the two-layer model's `regime` and `theta`).

Completion is tracked per unit (one point x one d x one seed batch: one chunk of every
variable): a task (a batch of units run together) writes each unit's region, then its
marker `.tasks/<unit key>/<time>-<id>.json` (wall time, failures with their reasons,
warnings): a unit is complete iff its marker directory holds a readable marker; the number
of markers counts its executions. Unit and task keys contain the store's spec hash (config +
package version), so two experiments never share a key on one Dask scheduler.
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

from sims.datamodel import package_version

from .config import ExperimentSpec, stable_hash

TASKS_DIR = ".tasks"
ZARR_FORMAT = 2
TIME_DIMS = ("time", "time_prime")
OK, DIVERGED, ERROR, NOT_COMPUTED = 0, 1, 2, -1
STATUS_FLAGS = {NOT_COMPUTED: "not_computed", OK: "ok", DIVERGED: "diverged", ERROR: "error"}
RUN_VARIABLES = ("done", "status", "failure_time")  # written at creation, then per task


class StoreError(RuntimeError):
    """A store that cannot be written or read; the message names the file and what to do."""


@dataclasses.dataclass(frozen=True)
class Task:
    """Work on a batch of points, one d (or None), a batch of seeds (or None)."""

    key: str
    points: tuple  # tuple of point indices (each a tuple over case + grid axes)
    d: int | None
    d_index: int | None
    seeds: tuple | None
    units: tuple = ()  # keys of its units (one per point; a unit is a task of one point)


def spec_hash(spec: ExperimentSpec, solver: str, version: str | None = None) -> str:
    """What identifies a store: its solver's spec and the package version (of `version`,
    a solver version, default the installed one) whose numbers it holds. The solver's
    revision is checked beside it (`store_matches`), so that stores made before revisions
    were recorded keep their hash."""
    version = (version or package_version()).split("+")[0]
    return f"{stable_hash([spec.solver_spec(solver), version]):016x}"


def stored_version(attrs: dict) -> str | None:
    """The solver version whose numbers a store holds (`solver_version`; a store from
    before solver revisions has only its `package_version`)."""
    return attrs.get("solver_version") or attrs.get("package_version")


@dataclasses.dataclass
class Layout:
    """Dims, coordinates and tasks of one (experiment, solver) store.

    `version` is the solver version whose numbers the store holds (default: the installed
    one, `Model.solver_version`: the package version and the solver's revision).
    """

    spec: ExperimentSpec
    solver: str
    version: str | None = None

    def __post_init__(self):
        spec = self.spec
        self.model = spec.model  # the model family: problems, times, solvers (models.py)
        self.version = self.version or self.model.solver_version(self.solver)
        self.point_fields = dict(spec.points())
        self.problems, self.warnings = {}, {}
        for index, fields in self.point_fields.items():
            self.problems[index], self.warnings[index] = self.model.checked(fields)
        self.point_dims = (["case"] if spec.cases else []) + list(spec.grid)
        self.d_values = self.model.solver_d(spec, self.solver)
        self.n_seeds = self.model.solver_seeds(spec, self.solver)
        self.lead_dims = self.point_dims + (["d"] if self.d_values else [])
        self.sample_dims = ["seed"] if self.n_seeds else []
        self.times = self._time_axis()
        self.spec_hash = spec_hash(spec, self.solver, self.version)

    # ------------------------------------------------------------------ coordinates
    def point_times(self, problem) -> np.ndarray:
        return self.model.point_times(self.spec, self.solver, problem)

    def point_shape(self) -> list[int]:
        """Sizes of the point dims (case, grid axes)."""
        return ([len(self.spec.cases)] if self.spec.cases else []) + [
            len(values) for values in self.spec.grid.values()]

    def _time_axis(self) -> np.ndarray:
        """The union of the points' times; times equal up to rounding (relative 1e-9, the
        tolerance of `time_index`) once."""
        times = np.unique(np.concatenate([self.point_times(p) for p in self.problems.values()]))
        keep = np.concatenate([[True], np.diff(times) > 1e-9 * times[1:]])
        return times[keep]

    def time_index(self, times) -> np.ndarray:
        times = np.asarray(times, dtype=float)
        index = np.clip(np.searchsorted(self.times, times * (1 - 1e-9)), 0, self.times.size - 1)
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
                                 {"description": f"{self.model.describe_field(field)} of each case"})
        for axis, values in spec.grid.items():
            coords[axis] = ((axis,), _coord_values(values), {"description": self.model.describe_field(axis)})
        coords.update(self.model.point_coords(self))
        if self.d_values:
            coords["d"] = (("d",), np.array(self.d_values, dtype=np.int64),
                           {"long_name": "input dimension d"})
        if self.n_seeds:
            coords["seed"] = (("seed",), np.arange(self.n_seeds, dtype=np.int64),
                              {"long_name": "seed of SeedSequence([entropy, d, seed])"})
        coords["time"] = (("time",), self.times, dict(self.model.time_attrs))
        return coords

    def base_attrs(self) -> dict:
        """Problem fields shared by every point ('none' for None), and the run's identity."""
        attrs = {}
        points = [self.model.attrs(p) for p in self.problems.values()]  # JSON values
        for field in self.model.fields:
            if len({json.dumps(p[field], sort_keys=True) for p in points}) == 1:
                attrs[field] = points[0][field]
        attrs.update(experiment=self.spec.name, solver=self.solver,
                     config=json.dumps(self.spec.solver_spec(self.solver), sort_keys=True),
                     spec_hash=self.spec_hash, entropy=self.spec.entropy,
                     experiment_seed=self.spec.seed, solver_version=self.version,
                     package_version=self.version.split("+")[0])
        return attrs

    # ----------------------------------------------------------------------- tasks
    def units(self) -> list[Task]:
        """The units of completion: one point x one d x one seed batch (one chunk of every
        variable), each with its own marker. Keys contain the spec hash."""
        d_list = list(enumerate(self.d_values)) if self.d_values else [(None, None)]
        if self.n_seeds:
            per = self.model.seeds_per_task(self.spec, self.solver)
            seed_batches = [tuple(range(s, min(s + per, self.n_seeds)))
                            for s in range(0, self.n_seeds, per)]
        else:
            seed_batches = [None]
        units = []
        for index in self.problems:
            for di, d in d_list:
                for seeds in seed_batches:
                    name = (f"{self.solver}-{self.spec.name}-d{d}-"
                            + (f"s{seeds[0]}-{seeds[-1]}-" if seeds else ""))
                    key = name + f"{stable_hash([self.spec_hash, index, d, seeds]):016x}"
                    units.append(Task(key, (index,), d, di, seeds, (key,)))
        return units

    def batches(self, units: list[Task]) -> list[Task]:
        """Dask tasks: units of one d and seed batch whose points share the training data
        (the model's data_key, e.g. Problem.data_key) run together (common random numbers,
        one data matrix), at most sims.points_per_task of them; DMFT: one unit per task."""
        if self.solver != "sims":
            return list(units)
        groups: dict = {}
        for unit in units:
            key = self.model.data_key(self.problems[unit.points[0]])
            groups.setdefault((key, unit.d, unit.seeds), []).append(unit)
        size = self.spec.sims.get("points_per_task")
        out = []
        for (_, d, seeds), group in groups.items():
            step = size or len(group)
            for i in range(0, len(group), step):
                part = group[i:i + step]
                keys = tuple(u.key for u in part)
                name = f"{self.solver}-{self.spec.name}-d{d}-s{seeds[0]}-{seeds[-1]}-"
                out.append(Task(name + f"{stable_hash(list(keys)):016x}",
                                tuple(u.points[0] for u in part), d, part[0].d_index, seeds,
                                keys))
        return out

    def seed_chunk(self) -> int:
        return self.model.seeds_per_task(self.spec, self.solver) if self.n_seeds else 0

    def region(self, task: Task, index: tuple) -> dict:
        """{dim: slice} of one point of a task in the store (lead dims and seeds)."""
        lead = tuple(index) + ((task.d_index,) if task.d_index is not None else ())
        region = {dim: slice(i, i + 1) for dim, i in zip(self.lead_dims, lead)}
        if task.seeds:
            region["seed"] = slice(task.seeds[0], task.seeds[-1] + 1)
        return region

    # ------------------------------------------------------------------- identities
    def describe(self, index, d=None, seeds=None) -> str:
        """A run in words: "case 'gd', grid lam=0.1, d=200, seeds [0, 1]"."""
        parts = [self.spec.describe(index)]
        if d is not None:
            parts.append(f"d={d}")
        if seeds:
            parts.append(f"seeds {list(seeds)}")
        return ", ".join(parts)

    def run_identity(self, index, d, seed) -> int:
        """What determines the numbers of one run (point, d, seed): the Problem, the solver
        settings that change numbers, the entropy and the package version. Equal identities
        in two stores mean bit-identical results (used when a store grows)."""
        spec = self.spec
        settings = self.model.run_settings(spec, self.solver)
        return stable_hash([self.solver, self.model.identity(self.problems[index]), d, seed,
                            settings, spec.entropy, self.version])


def _coord_values(values) -> np.ndarray:
    if all(isinstance(v, str) or v is None for v in values) and any(isinstance(v, str) for v in values):
        return np.array(["none" if v is None else v for v in values], dtype=str)
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


# --------------------------------------------------------------------------- creation
def template(layout: Layout, probe: xr.Dataset) -> xr.Dataset:
    """The store as a lazy (dask) dataset: coords, attrs, the per-run variables, and empty
    solver variables chunked so that every task owns whole chunks.

    `probe` is a short result of the solver: it gives the variable names, their dims
    beyond the lead dims, dtypes and attributes.
    """
    coords = layout.coords()
    if any("time_prime" in var.dims for var in probe.data_vars.values()):
        coords["time_prime"] = (("time_prime",), layout.times, dict(layout.model.time_attrs))
    for dim in probe.dims:  # a solver's own dims (e.g. covariance levels): as in the probe
        if dim not in coords and dim not in ("seed", "time"):
            values = probe[dim].values if dim in probe.coords else np.arange(probe.sizes[dim])
            coords[dim] = ((dim,), values, dict(probe[dim].attrs) if dim in probe.coords else {})
    sizes = {name: len(values) for name, (dims, values, _) in coords.items() if dims == (name,)}
    chunk = {"seed": layout.seed_chunk(), "time": sizes["time"], "time_prime": sizes["time"],
             **{dim: sizes[dim] for dim in probe.dims if dim not in ("seed", "time")}}

    def empty(dims, dtype, attrs):
        dtype = np.dtype(dtype)
        fill = np.nan if dtype.kind in "fc" else 0
        data = dsa.full([sizes[d] for d in dims], fill, dtype=dtype,
                        chunks=[chunk.get(d, 1) for d in dims])
        return xr.Variable(dims, data, attrs)

    def run_variable(fill, dtype, attrs):  # small: written at creation
        dims = layout.lead_dims + layout.sample_dims
        var = xr.Variable(dims, np.full([sizes[d] for d in dims], fill, dtype=dtype), attrs)
        var.encoding["chunks"] = tuple(chunk.get(d, 1) for d in dims)
        return var

    lead = list(layout.lead_dims)
    data_vars = {name: empty(lead + list(var.dims), var.dtype, var.attrs)
                 for name, var in probe.data_vars.items()}
    data_vars["done"] = run_variable(False, bool, {"long_name": "this run's task has completed"})
    data_vars["status"] = run_variable(NOT_COMPUTED, np.int8, {
        "long_name": "outcome of the run",
        "flag_values": np.array(list(STATUS_FLAGS), dtype=np.int8),
        "flag_meanings": " ".join(STATUS_FLAGS.values()),
        "description": "reasons: the task markers (python -m workflow.cli verify STORE)"})
    data_vars["failure_time"] = run_variable(np.nan, float, {
        "long_name": "time at which the run diverged or failed (NaN: it did not)",
        "units": "eta * steps"})
    attrs = {**layout.base_attrs(), "variables": sorted(data_vars)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def create_store(path, layout: Layout, probe: xr.Dataset, fill=None) -> None:
    """Write the store's metadata and coords atomically: into `<path>.tmp-*`, then `fill(tmp)`
    (e.g. copy runs of an older store), then rename over `path`. Nothing is left behind on
    failure; a folder we cannot write is a StoreError naming it."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        template(layout, probe).to_zarr(tmp, compute=False, mode="w", consolidated=True,
                                        zarr_format=ZARR_FORMAT)
        (tmp / TASKS_DIR).mkdir()
        if fill is not None:
            fill(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except PermissionError as err:
        raise StoreError(f"cannot write the store {path}: {err.strerror} ({err.filename}); "
                         "make the results folder writable or run elsewhere") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path) -> None:
    """Raise StoreError unless the store (or the folder it will be made in) is writable."""
    path = Path(path)
    target = path if path.exists() else next(p for p in path.parents if p.exists())
    if not os.access(target, os.W_OK):
        raise StoreError(f"cannot write the store {path}: {target} is not writable; make it "
                         "writable or run elsewhere")


def store_matches(path, layout: Layout) -> bool:
    """The store was made for this spec and package version, by this solver revision (its
    attrs say so; a store from before solver revisions were recorded has the numbers of
    the first revision)."""
    attrs = read_attrs(path)
    return (attrs is not None and attrs.get("spec_hash") == layout.spec_hash
            and attrs.get("solver_version", layout.version) == layout.version)


def stale_stores(results, specs: dict) -> list[str]:
    """Stores under `results` that the config does not make as they are, with why: the
    solver was removed from its experiment or the experiment from the config (not used),
    or the store was made for an earlier spec (its store job rebuilds it). The analysis
    never opens stores of different problems together (analysis.store.open_experiment)."""
    out = []
    for store in sorted(Path(results).glob("*/*.zarr")):
        spec = specs.get(store.parent.name)
        solver = store.name[:-len(".zarr")]
        if solver not in ("sims", "dmft"):
            continue
        if spec is None or getattr(spec, solver) is None:
            why = ("experiment not in the config" if spec is None
                   else f"no '{solver}' section in the experiment")
            out.append(f"{store} ({why}): not used; delete it if it is not needed")
            continue
        attrs = read_attrs(store)
        if attrs is not None and attrs.get("spec_hash") != spec_hash(spec, solver):
            out.append(f"{store} (made for an earlier spec of the experiment): its store "
                       "job rebuilds it")
            continue
        installed = spec.model.solver_version(solver)
        if attrs is not None and attrs.get("solver_version", installed) != installed:
            out.append(f"{store} (solved by solver {attrs['solver_version']}, installed "
                       f"{installed}): its store job rebuilds it")
    return out


def read_attrs(path) -> dict | None:
    """The store's root attributes (consolidated, else .zattrs), None if unreadable."""
    for name, pick in ((".zmetadata", lambda m: m["metadata"][".zattrs"]), (".zattrs", dict)):
        try:
            return pick(json.loads((Path(path) / name).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


# ------------------------------------------------------------------------- writing
def write_point(path, layout: Layout, task: Task, index: tuple, result: xr.Dataset) -> None:
    """Write one point's result (dims (seed,) time (time_prime); `status` and `failure_time`
    included) and its `done` into the point's region: whole chunks of the store."""
    region = layout.region(task, index)
    on_axis = {dim: layout.times[layout.time_index(result[dim].values)]
               for dim in TIME_DIMS if dim in result.dims}
    part = result.assign_coords(on_axis).reindex({dim: layout.times for dim in on_axis})
    part["done"] = xr.DataArray(np.ones([part.sizes[d] for d in layout.sample_dims], bool),
                                dims=layout.sample_dims)
    n_lead = len(region) - (1 if task.seeds else 0)
    part = part.drop_vars(list(part.coords)).expand_dims(list(region)[:n_lead])
    part.to_zarr(path, region=region or None, mode="r+", write_empty_chunks=True)


def mark_done(path, unit_key: str, info: dict) -> None:
    folder = Path(path) / TASKS_DIR / unit_key
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


def markers(path) -> dict[str, list]:
    """{task key: [marker file, ...]} of the store's completion markers."""
    folder = Path(path) / TASKS_DIR
    if not folder.is_dir():
        return {}
    out = {}
    for entry in folder.iterdir():
        files = sorted(f for f in entry.iterdir() if f.suffix == ".json")
        if files:
            out[entry.name] = files
    return out


def completed(path) -> dict[str, int]:
    """{task key: number of completed executions} from the markers."""
    return {key: len(files) for key, files in markers(path).items()}


def read_marker(file) -> dict:
    """One marker's record; StoreError naming the file if it is not readable JSON."""
    try:
        return json.loads(Path(file).read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"unreadable task marker {file}: {err}") from None


def task_records(path) -> list[dict]:
    return [read_marker(f) for files in markers(path).values() for f in files]


def forget_task(path, key: str) -> None:
    """Remove a task's markers (it will be computed again)."""
    shutil.rmtree(Path(path) / TASKS_DIR / key, ignore_errors=False)


def finalize(path, layout: Layout) -> dict:
    """Add the solver attributes common to every task to the store attrs; re-consolidate.
    The store's own attributes (problem fields, experiment, solver, config, versions) are
    never replaced by a solver's attribute of the same name."""
    keys = {t.key for t in layout.units()}
    records = [r for r in task_records(path) if r.get("key") in keys]
    common = None
    for record in records:
        if record.get("data") is False:
            continue
        attrs = {k: json.dumps(v, sort_keys=True) for k, v in record.get("attrs", {}).items()}
        common = attrs if common is None else {k: v for k, v in common.items()
                                               if attrs.get(k) == v}
    skip = set(layout.base_attrs()) | set(layout.model.fields) | {
        "d", "n", "wall_time", "seed", "diverged_runs", "status", "message", "failure_time"}
    extra = {k: json.loads(v) for k, v in (common or {}).items() if k not in skip}
    extra["wall_time_total"] = float(sum(r.get("wall_time", 0.0) for r in records))
    extra["cpu_time_total"] = float(sum(r.get("cpu_time", 0.0) for r in records))
    extra["worker_peak_rss_mb"] = float(max([r.get("worker_peak_rss_mb", 0.0) for r in records],
                                            default=0.0))
    extra["n_tasks"] = len({r["key"] for r in records})
    reconsolidate(path, {**read_attrs(path), **extra})  # to_zarr replaces the group attrs
    return extra


def reconsolidate(path, attrs: dict) -> None:
    """Rewrite the root attrs and the consolidated metadata from the arrays' own files."""
    with warnings.catch_warnings():  # markers' folder, manifest: not Zarr nodes, expected
        warnings.filterwarnings("ignore", r"Object at \.\S+ is not recognized")
        xr.Dataset(attrs=attrs).to_zarr(path, mode="a", consolidated=True)


# ------------------------------------------------------------------------- reading
def open_store(path, *, chunks="auto") -> xr.Dataset:
    """Open a store lazily (dask-backed), from its consolidated metadata."""
    return xr.open_zarr(path, consolidated=True, chunks=chunks)
