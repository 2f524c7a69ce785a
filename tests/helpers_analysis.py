"""Test stores for the analysis, made by the real pipeline (workflow.execute.run_experiment,
in-process scheduler "sync"): the same code path as `snakemake`, at tiny sizes."""

from __future__ import annotations

from pathlib import Path

from workflow.config import load_config
from workflow.execute import PointsFailed, run_experiment


def build_experiment(results: Path, name: str, experiment: dict, seed: int = 7,
                     expect_failures: bool = False) -> dict:
    """Run every solver of one experiment (a config's `experiments:` entry) into
    results/<name>/{sims,dmft}.zarr; returns {solver: run summary}. With expect_failures,
    runs that fail (stored with their status) are part of the test, not an error."""
    spec = load_config({"seed": seed, "experiments": {name: experiment}})[name]
    out = {}
    for solver in ("sims", "dmft"):
        if getattr(spec, solver) is None:
            continue
        store = Path(results) / name / f"{solver}.zarr"
        try:
            out[solver] = run_experiment(spec, solver, store, scheduler="sync",
                                         log=lambda message: None)
        except PointsFailed as failed:
            if not expect_failures:
                raise
            out[solver] = failed.summary
    return out
