# Config check (schema + every grid point) and the per-experiment spec files.
# A spec file results/<experiment>/.spec/<solver>.json holds what determines that store;
# it is rewritten only when its content changes, so editing one experiment reruns only it.
import json

from snakemake.utils import validate

from workflow.config import SCHEMA_PATH, ConfigError, load_config, spec_text, write_if_changed

if str(config.get("analysis", "")).lower() in ("false", "no", "0"):
    config["analysis"] = False  # --config analysis=false arrives as a string
try:
    EXPERIMENTS = load_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, str(SCHEMA_PATH))

RESULTS = "results"
DASK = json.dumps(config.get("dask", {}))
SCHEDULER = str(config.get("dask_scheduler", "") or "default")


wildcard_constraints:
    experiment="|".join(EXPERIMENTS) or "NONE",


def experiments_with(solver):
    return [n for n, s in EXPERIMENTS.items() if getattr(s, solver) is not None]


for _name, _spec in EXPERIMENTS.items():
    for _solver in ("sims", "dmft"):
        if getattr(_spec, _solver) is not None:
            write_if_changed(f"{RESULTS}/{_name}/.spec/{_solver}.json", spec_text(_spec, _solver))


def store_targets(solvers=("sims", "dmft")):
    """The completion files of every store of the config (what `rule all` requests)."""
    return [f"{RESULTS}/{n}/{s}.done.json" for s in solvers for n in experiments_with(s)]


def store_inputs(experiment):
    """For other rules: {solver: completion file} of one experiment; the store is
    results/<experiment>/<solver>.zarr (open with analysis.store.open_experiment)."""
    return {s: f"{RESULTS}/{experiment}/{s}.done.json" for s in ("sims", "dmft")
            if getattr(EXPERIMENTS[experiment], s) is not None}


def analysis_targets_or_none():
    """The analysis rules' targets, unless `analysis: false` or analysis.smk is absent."""
    if config.get("analysis", True) is False or "analysis_targets" not in globals():
        return []
    return analysis_targets(config)
