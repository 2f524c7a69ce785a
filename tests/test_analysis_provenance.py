"""Provenance: each store records the solver version whose numbers it holds; the analysis
refuses a store of another solver revision, the gallery flags it, the store job rebuilds
it, and a store from before revisions were recorded is opened, flagged. Real stores of a
tiny two-layer experiment (run_experiment), their metadata rewritten as an older solver's
store would have it (workflow.store.reconsolidate, the pipeline's own metadata writer)."""

from __future__ import annotations

import pytest

from analysis.gallery import write_gallery
from analysis.output import make
from analysis.store import OutdatedSolver, open_experiment
from sims.two_layer import REVISION as SIMS_REVISION
from workflow.config import load_config, spec_text
from workflow.execute import run_experiment
from workflow.store import read_attrs, reconsolidate, spec_hash, stale_stores

CONFIG = {"seed": 2, "experiments": {"tl": {
    "problem": {"model": "two_layer", "p": 2, "k": 2, "noise": 1.0e-3, "gamma0": 2.0,
                "t_max": 2.0},
    "sims": {"d": [20], "seeds": 2, "seeds_per_task": 2, "n_times": 5},
    "dmft": {"seeds": 2, "odes": ["finite_d"]}}}}


def _silent(message):
    return None


def test_an_older_solver_revision_is_refused_flagged_and_rebuilt(tmp_path):
    spec = load_config(CONFIG)["tl"]
    results = tmp_path / "results"
    stores = {s: results / "tl" / f"{s}.zarr" for s in ("sims", "dmft")}
    for solver, path in stores.items():
        run_experiment(spec, solver, path, scheduler="sync", log=_silent)
    installed = spec.model.solver_version("sims")
    assert installed.endswith(f"+two_layer.sims.r{SIMS_REVISION}") and read_attrs(
        stores["sims"])["solver_version"] == installed
    assert read_attrs(stores["dmft"])["solver_version"] == spec.model.solver_version("dmft")
    assert f'"solver_version": "{installed}"' in spec_text(spec, "sims")  # the spec file
    make("tl", str(results), {"kind": "risk_curves"})

    older = installed.replace(f".r{SIMS_REVISION}", f".r{SIMS_REVISION - 1}")  # one revision older
    reconsolidate(stores["sims"], {**read_attrs(stores["sims"]), "solver_version": older,
                                   "spec_hash": spec_hash(spec, "sims", older)})
    with pytest.raises(OutdatedSolver) as refused:
        open_experiment(results / "tl")
    assert f"solved by solver {older}, not by the installed {installed}" in str(refused.value)
    with pytest.raises(OutdatedSolver):
        make("tl", str(results), {"kind": "risk_curves"})
    assert "solved by solver" in open_experiment(results / "tl", outdated="flag")[
        "sims"].attrs["solver_note"]
    page = open(write_gallery(str(results), str(tmp_path / "docs"), ["tl"])).read()
    assert f"**Solver (sims store): solved by solver {older}" in page
    assert "dmft store" not in page  # the installed solver's: not flagged
    assert any(f"solved by solver {older}" in line for line in stale_stores(results,
                                                                          {"tl": spec}))

    messages = []
    summary = run_experiment(spec, "sims", stores["sims"], scheduler="sync",
                             log=messages.append)
    assert summary["ran"] == summary["units"] == 1  # rebuilt: nothing reused across revisions
    assert any("rebuilding store" in m for m in messages)
    assert read_attrs(stores["sims"])["solver_version"] == installed
    assert "solver_note" not in open_experiment(results / "tl")["sims"].attrs

    attrs = read_attrs(stores["dmft"])  # a store from before revisions were recorded
    del attrs["solver_version"]
    reconsolidate(stores["dmft"], attrs)
    opened = open_experiment(results / "tl")["dmft"]
    assert "solver revision not recorded" in opened.attrs["solver_note"]
