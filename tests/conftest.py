"""Shared fixtures: the repository root, tiny configs, and a Snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY_DMFT = {"n_samples": 200, "response_samples": 100, "n_replicas": 2}


def tiny_config(t_max: float = 2.0) -> dict:
    """Two experiments covering grid, cases, ranges, d axes, sims and DMFT, in seconds."""
    return {
        "seed": 7,
        "dask": {"progress_interval": 1, "processes": False},  # fast-starting LocalCluster
        "analysis": False,
        "experiments": {
            "two": {
                "problem": {"model": "two_cluster", "alpha": 2, "delta": 0.5, "R": 0.01,
                            "eta": 0.2, "t_max": t_max},
                "cases": {"gd": {"process": "gd", "b": 1},
                          "psgd": {"process": "persistent", "b": 0.3, "tau": 3.3333}},
                "grid": {"lam": {"start": 0.1, "stop": 1, "num": 2, "log": True}},
                "sims": {"d": [40, 60], "seeds": 3, "seeds_per_task": 2},
                "dmft": dict(TINY_DMFT),
            },
            "three": {
                "problem": {"model": "three_cluster", "alpha": 3, "delta": 0.05, "L": 0.7,
                            "lam": 0.1, "R": 0.01, "eta": 0.2, "process": "gd",
                            "t_max": t_max},
                "sims": {"d": [50], "seeds": 2},
                "dmft": {**TINY_DMFT, "seed_magnetizations": True},
            },
        },
    }


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in `workdir` (a subprocess, like a user would)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "--directory", str(workdir), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, **kw)


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, dict]:
    config = tiny_config()
    return write_config(tmp_path / "tiny.yaml", config), config
