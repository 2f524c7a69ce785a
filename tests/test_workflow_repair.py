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
import shutil
from pathlib import Path

import pytest

from analysis.store import StoresDisagree, open_experiment
from conftest import snakemake, write_config

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
    with pytest.raises(StoresDisagree, match=r"problem\.eta: sims 0\.25, dmft 0\.2"):
        open_experiment(workdir / "results" / "two")
    sims = open_experiment(workdir / "results" / "two", solvers=("sims",))
    assert list(sims) == ["sims"] and sims["sims"].attrs["eta"] == 0.25
