"""Stores check themselves: metadata, markers and data agree, or we say what is damaged.

`repair_metadata` restores a variable's metadata from the consolidated copy (or the
consolidated copy from the variables'); `damaged_tasks` finds the completed tasks whose
marker is unreadable or whose region lacks a chunk, holds an unreadable one, or is not
marked done; `copy_runs` fills a new store (a grown experiment) with the runs of the old
store that have the same identity (Layout.run_identity), so only what is new is computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from .config import ExperimentSpec
from .store import (NOT_COMPUTED, RUN_VARIABLES, TASKS_DIR, Layout, StoreError, Task,
                    reconsolidate,
                    mark_done, markers, read_attrs, read_marker, write_point)


def _json(file: Path):
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


def repair_metadata(path) -> tuple[list[str], str | None]:
    """Check every array's metadata; restore what the consolidated copy still has.

    Returns (what was found and repaired, reason the store must be rebuilt or None).
    """
    path = Path(path)
    attrs = read_attrs(path)
    if attrs is None or "variables" not in attrs:
        return [], f"{path}: root metadata (.zmetadata and .zattrs) missing or unreadable"
    found = []
    meta = _json(path / ".zmetadata")
    meta = meta.get("metadata") if isinstance(meta, dict) else None
    if meta is None:
        found.append(f"{path / '.zmetadata'} missing or unreadable: rebuilt from the arrays")
    arrays = set(attrs["variables"]) | {k.split("/")[0] for k in (meta or {})
                                        if k.endswith("/.zarray")}
    for name in sorted(arrays):
        for part in (".zarray", ".zattrs"):
            file = path / name / part
            if _json(file) is not None:
                continue
            if meta and f"{name}/{part}" in meta:
                file.parent.mkdir(exist_ok=True)
                file.write_text(json.dumps(meta[f"{name}/{part}"], indent=4))
                found.append(f"{file} missing or unreadable: restored from .zmetadata")
            else:
                return found, f"{file} missing or unreadable (no copy in .zmetadata)"
    if found:
        reconsolidate(path, attrs)
    return found, None


def _chunk_file(path: Path, name: str, dims, region: dict) -> Path:
    meta = json.loads((path / name / ".zarray").read_text())
    index = [region[d].start // c if d in region else 0 for d, c in zip(dims, meta["chunks"])]
    return path / name / meta.get("dimension_separator", ".").join(map(str, index))


def check_task(path, ds: xr.Dataset, layout: Layout, task: Task, data: bool) -> str | None:
    """Why a completed task's region is damaged, or None: chunks present and readable,
    every run done and with a status."""
    path = Path(path)
    for index in task.points:
        region = layout.region(task, index)
        for name, var in ds.data_vars.items():
            if not data and name not in RUN_VARIABLES:
                continue  # a failed task wrote no data (status 2)
            chunk = _chunk_file(path, name, var.dims, region)
            if not chunk.exists():
                return f"chunk {chunk} missing"
            try:
                values = var.isel(region).values
            except Exception as err:  # any read error of a chunk is damage; named below
                return f"chunk {chunk} unreadable ({type(err).__name__}: {err})"
            if name == "done" and not values.all():
                return f"{layout.describe(index, task.d)}: marked complete but `done` is False"
            if name == "status" and (values == NOT_COMPUTED).any():
                return f"{layout.describe(index, task.d)}: marked complete but has no status"
    return None


def completed_records(path) -> tuple[dict, dict]:
    """({unit key: its last readable marker}, {unit key: damage}) from the markers."""
    marks = markers(path)
    records, damage = {}, {}
    for key, files in marks.items():
        readable = []
        for file in files:
            try:
                readable.append(read_marker(file))
            except StoreError as err:
                damage[key] = str(err)
        if readable:
            records[key] = readable[-1]
            damage.pop(key, None)
    return records, damage


def damaged_tasks(path, layout: Layout) -> tuple[dict, dict]:
    """({key: marker record} of sound completed tasks, {key: damage} of damaged ones)."""
    records, damage = completed_records(path)
    ds = xr.open_zarr(path, consolidated=True, chunks=None)
    missing = set(ds.attrs.get("variables", [])) - set(ds.data_vars)
    if missing:
        raise StoreError(f"{path}: variables {sorted(missing)} missing from the metadata")
    for task in layout.units():
        if task.key not in records:
            continue
        reason = check_task(path, ds, layout, task, records[task.key].get("data", True))
        if reason:
            damage[task.key] = reason
            del records[task.key]
    known = {t.key for t in layout.units()}
    return ({k: r for k, r in records.items() if k in known},
            {k: v for k, v in damage.items() if k in known})


# ------------------------------------------------------------------------- growing
def copy_runs(old_path, new_path, layout: Layout, run_id: str) -> list[str]:
    """Copy into the new store (`layout`) every task whose runs all exist, sound, in the
    old store with the same identity; mark them done. Returns the copied task keys."""
    attrs = read_attrs(old_path)
    if attrs is None or "status" not in attrs.get("variables", []) or "config" not in attrs:
        return []  # unreadable, or from before run identities: nothing to reuse
    if repair_metadata(old_path)[1] is not None:
        return []
    old = Layout(ExperimentSpec.from_dict(json.loads(attrs["config"])), layout.solver,
                 version=attrs.get("package_version"))
    records, _ = damaged_tasks(old_path, old)
    cells, reasons = {}, {}
    for task in old.units():
        if task.key in records:
            for index in task.points:
                for seed in task.seeds or [None]:
                    cells[old.run_identity(index, task.d, seed)] = (index, task.d_index, seed)
            for failure in records[task.key].get("failures", []):
                reasons[failure["identity"]] = failure
    ds = xr.open_zarr(old_path, consolidated=True, chunks=None)
    copied = []
    for task in layout.units():
        found = [[cells.get(layout.run_identity(i, task.d, s)) for s in task.seeds or [None]]
                 for i in task.points]
        if any(c is None for row in found for c in row):
            continue
        failures = []
        for index, row in zip(task.points, found):
            part = _old_point(ds, old, row)
            write_point(new_path, layout, task, index, part)
            failures += [reasons[i] for i in (layout.run_identity(index, task.d, s)
                                              for s in task.seeds or [None]) if i in reasons]
        mark_done(new_path, task.key, dict(key=task.key, run_id=run_id, copied_from=str(old_path),
                                       wall_time=0.0, data=True, failures=failures,
                                       warnings=[], attrs={}))
        copied.append(task.key)
    return copied


def _old_point(ds: xr.Dataset, old: Layout, row) -> xr.Dataset:
    """One point's runs from the old store, on that point's own times (as a solver gives)."""
    index, d_index, _ = row[0]
    select = dict(zip(old.point_dims, index))
    if d_index is not None:
        select["d"] = d_index
    if old.n_seeds:
        select["seed"] = [seed for _, _, seed in row]
    times = old.time_index(old.point_times(old.problems[index]))
    select.update({dim: times for dim in ("time", "time_prime") if dim in ds.dims})
    part = ds.drop_vars("done").isel(select).load()
    return part.drop_vars([c for c in part.coords if c not in ("time", "time_prime")])


def describe_damage(damage: dict) -> list[str]:
    return [f"task {key}: {reason}" for key, reason in sorted(damage.items())]
