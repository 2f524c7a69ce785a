"""Stores check themselves: metadata, markers and data agree, or we say what is damaged.

Checking only reads; repairing is the store job's (`execute.run_experiment`) or
`python -m workflow.cli verify --repair`'s.

* `metadata_damage`: every metadata file (.zgroup, .zattrs, .zarray, .zmetadata) readable
  and equal to its consolidated copy; `rebuild_metadata` rewrites the damaged ones from
  the spec (the store's template, `store.template`).
* The manifest `<store>/.manifest.json`, written at the end of every store job: size,
  modification time and CRC-32 of every file. `changed_files` compares sizes and times
  only (one stat per file: the cheap check Snakemake runs before every run, well under a
  second for 10^4 chunks); `manifest_damage` drops the files whose content is unchanged
  (same size and checksum, e.g. a copy that did not keep the times).
* `damaged_tasks` finds the completed units whose marker is unreadable, whose chunks are
  missing or changed since the job (manifest), and, in a full check (no manifest, or
  `verify --full`), whose chunks do not decode or are not marked done.
* `copy_runs` fills a new store (a grown experiment) with the runs of the old store that
  have the same identity (Layout.run_identity), so only what is new is computed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zlib
from pathlib import Path

import xarray as xr

from .config import ExperimentSpec
from .store import (NOT_COMPUTED, RUN_VARIABLES, TASKS_DIR, ZARR_FORMAT, Layout, StoreError,
                    Task, mark_done, markers, read_attrs, read_marker, reconsolidate,
                    stored_version, template, write_point)

MANIFEST = ".manifest.json"
ROOT_METADATA = (".zgroup", ".zattrs")


def _json(file: Path):
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------- metadata
def metadata_damage(path) -> dict[str, str]:
    """{metadata file (relative to the store): why it is damaged}; reads only. Every
    array's .zarray/.zattrs and the root .zgroup/.zattrs must be readable JSON objects
    equal to their copies in the consolidated .zmetadata, which must list every array."""
    path = Path(path)
    damage = {}
    meta = _json(path / ".zmetadata")
    meta = meta.get("metadata") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        damage[".zmetadata"] = "missing or unreadable"
        meta = None
    arrays = {p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}
    arrays |= {key.split("/")[0] for key in meta or {} if key.endswith("/.zarray")}
    for rel in [*ROOT_METADATA, *(f"{a}/{part}" for a in sorted(arrays)
                                  for part in (".zarray", ".zattrs"))]:
        value = _json(path / rel)
        if not isinstance(value, dict):
            damage[rel] = "missing or unreadable"
        elif rel.endswith((".zgroup", ".zarray")) and value.get("zarr_format") != ZARR_FORMAT:
            damage[rel] = f"not Zarr format {ZARR_FORMAT} metadata"
        elif meta is not None and rel not in meta:
            damage[".zmetadata"] = f"does not list {rel}"
        elif meta is not None and meta[rel] != value:
            damage[rel] = "differs from its copy in .zmetadata"
    return damage


def rebuild_metadata(path, layout: Layout, probe: xr.Dataset, damage: dict,
                     changed: dict) -> tuple[list[str], str | None]:
    """Rewrite from the spec the damaged metadata files (`damage`, `metadata_damage`) and
    the coordinate chunks and metadata changed since the job (`changed`, relative paths):
    the store's template is written aside and its files copied, then the root attributes
    and the consolidated metadata are rewritten. Returns (the files rebuilt, why the store
    cannot be repaired: its arrays are not those of this spec, or None)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        made = template(layout, probe)
        made.to_zarr(tmp, compute=False, mode="w", consolidated=True, zarr_format=ZARR_FORMAT)
        rebuilt = set(made.coords) | set(ROOT_METADATA)
        files = sorted(set(damage) | {rel for rel in changed if rel.split("/")[0] in rebuilt
                                      or rel.rsplit("/", 1)[-1].startswith(".z")})
        for rel in files:
            if rel == ".zmetadata":
                continue  # rewritten below
            if not (tmp / rel).is_file():
                return files, f"{path / rel}: not a file of a store of this spec"
            (path / rel).parent.mkdir(exist_ok=True)
            shutil.copy(tmp / rel, path / rel)
        for zarray in sorted(tmp.glob("*/.zarray")):
            ours, spec = _json(path / zarray.relative_to(tmp)), _json(zarray)
            if ours is None or any(ours.get(k) != spec.get(k) for k in ("shape", "chunks",
                                                                         "dtype")):
                return files, f"{path / zarray.relative_to(tmp)} does not match the spec"
        attrs = read_attrs(path)
        if attrs is None or attrs.get("spec_hash") != layout.spec_hash:
            attrs = made.attrs  # the finished job adds the solver attributes (finalize)
        reconsolidate(path, attrs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files, None


# ------------------------------------------------------------------------- manifest
def _files(path: Path) -> dict[str, os.stat_result]:
    """{relative path: stat} of every file of the store but the manifest and temporaries."""
    out, folders = {}, [(path, "")]
    while folders:
        folder, prefix = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, rel + "/"))
                elif rel != MANIFEST and not entry.name.endswith(".tmp"):
                    out[rel] = entry.stat(follow_symlinks=False)
    return out


def _checksum(file: Path) -> int:
    return zlib.crc32(file.read_bytes())


def write_manifest(path) -> None:
    """Record [size, mtime_ns, CRC-32] of every file of the store (files whose size and
    time are those of the previous manifest keep their checksum: not read again)."""
    path = Path(path)
    old = _manifest(path) or {}
    entries = {}
    for rel, stat in _files(path).items():
        entry = [stat.st_size, stat.st_mtime_ns]
        entries[rel] = old[rel] if old.get(rel, [])[:2] == entry else entry + [
            _checksum(path / rel)]
    tmp = path / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"files": entries}))
    tmp.replace(path / MANIFEST)


def forget_manifest(path) -> None:
    """Remove the manifest (before a job writes into the store: until it is rewritten, the
    next job checks the store completely)."""
    (Path(path) / MANIFEST).unlink(missing_ok=True)


def _manifest(path: Path) -> dict | None:
    data = _json(path / MANIFEST)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(v, list) and len(v) == 3 for v in files.values()):
        return None
    return files


def changed_files(path) -> dict[str, str] | None:
    """The cheap check: {file: what changed} since the store job, from sizes and
    modification times only (one stat per file); None if there is no readable manifest."""
    path = Path(path)
    files = _manifest(path)
    if files is None:
        return None
    now = _files(path)
    out = {}
    for rel, (size, mtime, _) in files.items():
        stat = now.get(rel)
        if stat is None:
            out[rel] = "missing"
        elif stat.st_size != size:
            out[rel] = f"{stat.st_size} bytes instead of {size}"
        elif stat.st_mtime_ns != mtime:
            out[rel] = "modified"
    return out


def manifest_damage(path) -> dict[str, str] | None:
    """{file: damage} of the files changed since the store job whose content changed (a
    modified file of the same size counts if its checksum differs); None without a
    manifest."""
    path = Path(path)
    changed = changed_files(path)
    if not changed:
        return changed
    files = _manifest(path)
    return {rel: ("content changed (checksum)" if why == "modified" else why)
            for rel, why in changed.items()
            if why != "modified" or _checksum(path / rel) != files[rel][2]}


def _chunk_names(path: Path, ds: xr.Dataset) -> dict:
    """{variable: (its dims, chunk sizes, dimension separator)} from the arrays' metadata."""
    out = {}
    for name, var in ds.data_vars.items():
        meta = json.loads((path / name / ".zarray").read_text())
        out[name] = (var.dims, meta["chunks"], meta.get("dimension_separator", "."))
    return out


def _chunk_file(chunking: tuple, name: str, region: dict) -> str:
    """The chunk of variable `name` holding `region`, relative to the store."""
    dims, chunks, separator = chunking
    index = [region[d].start // c if d in region else 0 for d, c in zip(dims, chunks)]
    return f"{name}/{separator.join(map(str, index))}"


def check_task(path, ds: xr.Dataset, layout: Layout, task: Task, data: bool, *,
               chunking: dict, changed: dict, full: bool) -> str | None:
    """Why a completed task's region is damaged, or None: its markers and chunks not
    changed since the job (`changed`, from the manifest), chunks present; in a `full`
    check also readable, every run done and with a status."""
    path = Path(path)
    for rel in (r for r in changed if r.startswith(f"{TASKS_DIR}/{task.key}/")):
        return f"task marker {path / rel} {changed[rel]} since the store job"
    for index in task.points:
        region = layout.region(task, index)
        for name, var in ds.data_vars.items():
            if not data and name not in RUN_VARIABLES:
                continue  # a failed task wrote no data (status 2)
            rel = _chunk_file(chunking[name], name, region)
            chunk = path / rel
            if rel in changed:
                return f"chunk {chunk} {changed[rel]} since the store job"
            if not chunk.exists():
                return f"chunk {chunk} missing"
            if not full:
                continue
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


def damaged_tasks(path, layout: Layout, *, full: bool | None = None) -> tuple[dict, dict]:
    """({key: marker record} of sound completed tasks, {key: damage} of damaged ones).

    Markers are read, chunks are checked against the manifest and for presence; a `full`
    check (by default when the store has no manifest) also reads every chunk."""
    path = Path(path)
    changed = manifest_damage(path)
    full = changed is None if full is None else full
    changed = changed or {}
    records, damage = completed_records(path)
    ds = xr.open_zarr(path, consolidated=True, chunks=None)
    missing = set(ds.attrs.get("variables", [])) - set(ds.data_vars)
    if missing:
        raise StoreError(f"{path}: variables {sorted(missing)} missing from the metadata")
    chunking = _chunk_names(path, ds)
    for task in layout.units():
        if task.key not in records:
            continue
        reason = check_task(path, ds, layout, task, records[task.key].get("data", True),
                            chunking=chunking, changed=changed, full=full)
        if reason:
            damage[task.key] = reason
            del records[task.key]
    known = {t.key for t in layout.units()}
    return ({k: r for k, r in records.items() if k in known},
            {k: v for k, v in damage.items() if k in known})


def store_spec(path) -> tuple[ExperimentSpec, str] | None:
    """(spec, solver) a store was made for: from its metadata, else from its spec file
    beside it (results/<experiment>/.spec/<solver>-*.json); None if neither is readable."""
    path = Path(path)
    attrs = read_attrs(path) or {}
    solver = attrs.get("solver") or path.name.removesuffix(".zarr")
    texts = [attrs["config"]] if isinstance(attrs.get("config"), str) else []
    texts += [f.read_text() for f in sorted((path.parent / ".spec").glob(f"{solver}-*.json"))]
    for text in texts:
        try:
            data = json.loads(text)
            return ExperimentSpec.from_dict(data), data["solver"]
        except (ValueError, KeyError, TypeError):
            continue
    return None


# ------------------------------------------------------------------------- growing
def copy_runs(old_path, new_path, layout: Layout, run_id: str) -> list[str]:
    """Copy into the new store (`layout`) every task whose runs all exist, sound, in the
    old store with the same identity; mark them done. Returns the copied task keys."""
    attrs = read_attrs(old_path)
    if attrs is None or "status" not in attrs.get("variables", []) or "config" not in attrs:
        return []  # unreadable, or from before run identities: nothing to reuse
    if metadata_damage(old_path):
        return []
    old = Layout(ExperimentSpec.from_dict(json.loads(attrs["config"])), layout.solver,
                 version=stored_version(attrs))
    records, _ = damaged_tasks(old_path, old, full=True)
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
