# Config check (schema + every grid point) and the per-experiment spec files.
# A spec file results/<experiment>/.spec/<solver>.json holds what determines that store;
# it is rewritten only when its content changes, so editing one experiment reruns only it.
import json
import os

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
    """The analysis rules' targets, unless `analysis: false` in the config."""
    if config.get("analysis", True) is False:
        return []
    return analysis_targets(config)


# ------------------------------------------------------------------ analysis (analysis.smk)
PAPER_PANELS = [f"fig{i}_{side}" for i in (1, 2, 3, 4) for side in ("left", "right")]
ES_MAPS = ["esmap_psgd_two", "esmap_sgd_two", "esmap_sgd_three"]
FSS = ["fss_two", "fss_three"]
REPORT_DIR = os.path.join(workflow.basedir, "workflow", "report")


def _analysis_settings(config):
    settings = config.get("analysis", True)
    return settings if isinstance(settings, dict) else {}


def analysis_targets(config):
    """Every file the analysis produces for the experiments of `config` (for `rule all`)."""
    names = list(config.get("experiments", {}))
    out = []
    for name in names:
        if name in PAPER_PANELS or name in ES_MAPS or name in FSS:
            out += [f"{RESULTS}/figures/{name}.png", f"{RESULTS}/figures/{name}.pdf"]
        if name in ES_MAPS or name in FSS:
            out.append(f"{RESULTS}/tables/{name}.csv")
    return out


def _caption(name):
    """Text of workflow/report/<name>.rst (rendered into the report by figure.rst)."""
    path = os.path.join(REPORT_DIR, f"{name}.rst")
    return open(path).read() if os.path.exists(path) else name


def _statement(wc):
    """fss_three: the simulations-vs-DMFT verdict written by the analysis (if made yet)."""
    path = f"{RESULTS}/tables/{wc.experiment}.txt"
    return open(path).read().strip() if os.path.exists(path) else ""


def results_dir(wildcards, output):
    """The results directory, from an output <results>/figures/<experiment>.png."""
    return os.path.dirname(os.path.dirname(output.png))
