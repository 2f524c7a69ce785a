"""Issue 19, as a new user meets it: a tiny config run once with real Snakemake and real
Zarr stores, then each case starts from a copy of that working directory.

* a plain rerun finds damage (cheap manifest check) and repairs exactly the damaged units;
* damaged metadata (a corrupt root .zattrs) is rebuilt from the spec, never a traceback;
* `verify` only reads (exit 1 naming the damage, also on a read-only store), `verify
  --repair` repairs, and its suggested command works for an absolute store path;
* a store left from an earlier config is named stale and never opened with the current
  ones.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.store import StoresDisagree, open_experiment
from conftest import snakemake, write_config
from workflow.cli import main as cli_main
from workflow.store import open_store

CONFIG = {
    "seed": 11,
    "analysis": False,
    "dask": {"progress_interval": 1, "processes": False},
    "experiments": {"two": {
        "problem": {"model": "two_cluster", "alpha": 2, "delta": 0.5, "lam": 0, "R": 0.01,
                    "eta": 0.2, "process": "gd", "t_max": 1},
        "grid": {"lam": [0, 0.1]},
        "sims": {"d": [40], "seeds": 2},
        "dmft": {"n_samples": 200, "n_replicas": 2, "response_samples": 100},
    }},
}


def _run(workdir: Path, *args):
    """A plain `snakemake --cores 2 --configfile c.yaml` in the working directory."""
    return snakemake(workdir, "--cores", 2, "--configfile", workdir / "c.yaml", *args)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """The working directory after one clean run of CONFIG."""
    workdir = tmp_path_factory.mktemp("clean")
    write_config(workdir / "c.yaml", CONFIG)
    run = _run(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


@pytest.fixture
def workdir(clean_run, tmp_path) -> Path:
    """A copy of the clean working directory (times kept, as `cp -p`)."""
    target = tmp_path / "work"
    shutil.copytree(clean_run, target, symlinks=True)
    return target


# ------------------------------------------------------------------ case 4: stale stores
@pytest.mark.slow
def test_a_store_of_an_earlier_config_is_flagged_and_never_mixed(workdir):
    """eta 0.2 -> 0.25 and the dmft section removed: the old DMFT store stays, named stale;
    open_experiment refuses to return it with the new simulations."""
    config = copy.deepcopy(CONFIG)
    experiment = config["experiments"]["two"]
    experiment["problem"]["eta"] = 0.25
    del experiment["dmft"]
    write_config(workdir / "c.yaml", config)
    run = _run(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "stale store results/two/dmft.zarr (no 'dmft' section" in run.stderr
    assert "stale store results/two/sims.zarr (made for an earlier spec" in run.stderr
    with pytest.raises(StoresDisagree, match=r"problem\.eta: sims 0\.25, dmft 0\.2"):
        open_experiment(workdir / "results" / "two")
    sims = open_experiment(workdir / "results" / "two", solvers=("sims",))
    assert list(sims) == ["sims"] and sims["sims"].attrs["eta"] == 0.25


# ------------------------------------------------------- cases 1 and 2: a plain rerun repairs
def _units(store: Path, key_part: str) -> list[Path]:
    return sorted(p for p in (store / ".tasks").iterdir() if key_part in p.name)


def _store_values(store: Path) -> dict:
    ds = open_store(store).load()
    return {name: ds[name].values for name in ds.data_vars}


@pytest.mark.slow
def test_a_plain_rerun_repairs_exactly_the_damaged_units(workdir, clean_run):
    """A sims chunk truncated to half, garbage in another unit's task marker, random bytes
    as the DMFT store's root .zattrs: a plain `snakemake` finds them (manifest), reruns
    both store jobs, recomputes exactly the two damaged units, rebuilds the attributes from
    the spec; the stores equal the clean ones; the next plain run has nothing to do."""
    sims, dmft = (workdir / "results" / "two" / f"{s}.zarr" for s in ("sims", "dmft"))
    chunk = sorted(f for f in (sims / "gen_error").iterdir() if not f.name.startswith("."))[1]
    chunk.write_bytes(chunk.read_bytes()[:chunk.stat().st_size // 2])
    marker = sorted((sims / ".tasks").glob("*/*.json"))[3]
    marker.write_text('{"key": garb')
    (dmft / ".zattrs").write_bytes(os.urandom(200))
    run = _run(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "store results/two/sims.zarr changed since its job" in run.stderr
    sims_log = (workdir / "logs" / "two" / "sims.log").read_text()
    assert "4 units (point x d x seed batch), 2 already done, 2 to run" in sims_log, sims_log
    assert f"chunk {chunk} " in sims_log and f"unreadable task marker {marker}" in sims_log
    dmft_log = (workdir / "logs" / "two" / "dmft.log").read_text()
    assert f"{dmft / '.zattrs'} missing or unreadable: rebuilt from the spec" in dmft_log
    assert "2 already done, 0 to run" in dmft_log
    for name in ("sims", "dmft"):
        repaired = _store_values(workdir / "results" / "two" / f"{name}.zarr")
        clean = _store_values(clean_run / "results" / "two" / f"{name}.zarr")
        for var, values in clean.items():
            np.testing.assert_array_equal(repaired[var], values, err_msg=f"{name} {var}")
    assert cli_main(["verify", str(sims), "--full"]) == 0
    again = _run(workdir)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


# --------------------------------------------------------------- case 3: verify only reads
def _snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def _read_only(folder: Path, on: bool) -> bool:
    """Make every file and folder immutable (root: chattr -R +i) or read-only (chmod)."""
    if os.getuid() == 0:
        if shutil.which("chattr") is None:
            return False
        flag = "+i" if on else "-i"
        return subprocess.run(["chattr", "-R", flag, str(folder)],
                              capture_output=True).returncode == 0
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o555 if path.is_dir() else 0o444) if on else 0o755)
    return True


@pytest.mark.slow
def test_verify_only_reads_names_the_damage_and_its_repair_command_works(workdir, clean_run):
    """Root .zattrs corrupt, a .zarray deleted, a coordinate chunk truncated, a data chunk
    deleted, the store read-only: verify (absolute path) exits 1 naming them, no traceback,
    and changes nothing; the command it suggests repairs the store."""
    sims = (workdir / "results" / "two" / "sims.zarr").resolve()
    (sims / ".zattrs").write_bytes(os.urandom(200))
    (sims / "norm2" / ".zarray").unlink()
    (sims / "lam" / "0").write_bytes(b"xx")
    before = _snapshot(sims)
    if not _read_only(sims, True):
        pytest.skip("cannot make the store read-only here")
    try:
        check = subprocess.run([sys.executable, "-m", "workflow.cli", "verify", str(sims)],
                               capture_output=True, text=True, timeout=120)
    finally:
        _read_only(sims, False)
    assert check.returncode == 1, check.stderr
    assert "Traceback" not in check.stderr, check.stderr
    assert f"damaged: {sims / '.zattrs'}: missing or unreadable" in check.stdout
    assert f"damaged: {sims / 'norm2' / '.zarray'}: missing or unreadable" in check.stdout
    assert _snapshot(sims) == before
    # the metadata repaired, the data check names the coordinate chunk and a deleted chunk
    command = check.stdout.split("to repair: ")[1].split(", or rerun")[0]
    assert command == f"python -m workflow.cli verify --repair {sims}"
    chunk = sorted(f for f in (sims / "train_loss").iterdir() if not f.name.startswith("."))[2]
    chunk.unlink()
    repair = subprocess.run(command.replace("python", sys.executable, 1).split(),
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert repair.returncode == 0, repair.stderr[-3000:]
    assert f"{sims / 'lam' / '0'} 2 bytes instead of" in repair.stderr
    assert f"chunk {chunk} missing" in repair.stderr and "1 to run" in repair.stderr
    assert cli_main(["verify", str(sims), "--full"]) == 0
    repaired, clean = _store_values(sims), _store_values(clean_run / "results/two/sims.zarr")
    for var, values in clean.items():
        np.testing.assert_array_equal(repaired[var], values, err_msg=var)


# ------------------------------------------------ case 6: stored status does not depend on batching
def test_stored_status_is_the_same_batched_and_alone(tmp_path):
    """Square loss, GD, eta 0.2, 0.5, 2 to t_max = 24 (eta = 2 takes 12 steps and does not
    diverge in them): the store is the same whether the points run in one batch or one by
    one; every run has status ok."""
    from workflow.config import load_config
    from workflow.execute import run_experiment
    config = copy.deepcopy(CONFIG)
    experiment = config["experiments"]["two"]
    del experiment["dmft"]
    experiment["problem"].update(loss="square", t_max=24, lam=0)
    experiment["grid"] = {"eta": [0.2, 0.5, 2.0]}
    experiment["sims"] = {"d": [100], "seeds": 2, "seeds_per_task": 2}
    stores = {}
    for label, per_task in (("batched", 3), ("alone", 1)):
        experiment["sims"]["points_per_task"] = per_task
        stores[label] = tmp_path / f"{label}.zarr"
        run_experiment(load_config(config)["two"], "sims", stores[label], scheduler="sync",
                       log=lambda message: None)
    batched, alone = (_store_values(stores[label]) for label in ("batched", "alone"))
    assert (batched["status"] == 0).all() and np.isnan(batched["failure_time"]).all()
    for name, values in alone.items():
        np.testing.assert_array_equal(batched[name], values, err_msg=name)
