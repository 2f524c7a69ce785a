# The config (read strictly, checked completely before anything runs), the spec files and
# the store targets. A spec file results/<experiment>/.spec/<solver>-<hash>.json holds what
# determines that store; its name carries its content hash, so it is written (by rule spec)
# only when the content changes, and never on a dry run, --lint or --report. Before every
# run (dry runs too), finished stores are checked against their manifests
# (mark_damaged_stores): a damaged store's completion file is removed, so its job reruns.
import functools
import json
import os
import sys
from pathlib import Path

import yaml

from workflow.config import (ConfigError, budget, load_config, resolve_config,
                             spec_text, stable_hash)
from workflow.models import family_named
from workflow.plan import check_budget, plan_store, planned_cpu, store_threads
from workflow.store import stale_stores
from workflow.verify import changed_files

try:  # --configfile replaces the default; --config key=value overrides on top
    _config = resolve_config(workflow.config_settings.configfiles,
                             workflow.config_settings.config,
                             default=os.path.join(workflow.basedir, "config", "quick.yaml"))
    for _key in ("analysis", "retry_failed"):  # --config key=false arrives as a string
        if str(_config.get(_key)).lower() in ("true", "false"):
            _config[_key] = str(_config[_key]).lower() == "true"
    if isinstance(_config.get("budget"), dict):  # --config 'budget={...}': strings too
        _config["budget"] = {k: yaml.safe_load(v) if isinstance(v, str) else v
                             for k, v in _config["budget"].items()}
    EXPERIMENTS = load_config(_config)
    PLANNED_CPU = planned_cpu(EXPERIMENTS)  # {(experiment, solver): CPU seconds}
    check_budget(PLANNED_CPU, budget(_config))  # stops here, before any job, if above
except ConfigError as err:  # a user error: the message, no traceback
    print(f"config error: {err}", file=sys.stderr)
    sys.exit(1)
config.clear()
config.update(_config)

RESULTS = "results"
DASK = json.dumps(config.get("dask", {}))
SCHEDULER = str(config.get("dask_scheduler", "") or "default")
RETRY_FAILED = config.get("retry_failed", False) is True
SPECS = {(name, solver): (f"{stable_hash(spec_text(spec, solver)):016x}", spec_text(spec, solver))
         for name, spec in EXPERIMENTS.items() for solver in ("sims", "dmft")
         if getattr(spec, solver) is not None}


def spec_file(experiment, solver):
    """The spec file of one store, named by the hash of its content."""
    return f"{RESULTS}/{experiment}/.spec/{solver}-{SPECS[(experiment, solver)][0]}.json"


def mark_damaged_stores():
    """The cheap check before every run (sizes and times of a finished store's files
    against its manifest, workflow.verify.changed_files; < 1 s for 10^4 chunks): the
    completion file of a store changed since its job is removed (a false claim now), so
    that Snakemake reruns that store job, which repairs exactly what is damaged. (Dating
    it back would not do: Snakemake ignores a newer input whose checksum is unchanged.)"""
    for experiment, solver in SPECS:
        done = Path(f"{RESULTS}/{experiment}/{solver}.done.json")
        store = Path(f"{RESULTS}/{experiment}/{solver}.zarr")
        if not done.exists():
            continue  # the store job runs anyway
        changed = changed_files(store) if store.is_dir() else {"": "missing"}
        if changed == {}:
            continue
        words = ("no manifest (an unfinished or older store job)" if changed is None else
                 ", ".join(f"{rel or 'the store'} {why}" for rel, why in
                           sorted(changed.items())[:3])
                 + (f" and {len(changed) - 3} more" if len(changed) > 3 else ""))
        print(f"store {store} changed since its job: {words}; {done} removed: its job "
              "reruns and repairs it", file=sys.stderr)
        done.unlink()


if workflow.is_main_process:
    mark_damaged_stores()
    for _store in stale_stores(RESULTS, EXPERIMENTS):
        print(f"warning: stale store {_store}", file=sys.stderr)


wildcard_constraints:
    experiment="|".join(EXPERIMENTS) or "NONE",
    solver="sims|dmft",
    hash="[0-9a-f]{16}",


def experiments_with(solver):
    return [n for n, s in EXPERIMENTS.items() if getattr(s, solver) is not None]


def retry_flag(experiment, solver):
    """--retry-failed for a store that holds failed runs, when retry_failed=true (a changed
    parameter: Snakemake reruns exactly those jobs)."""
    done = Path(f"{RESULTS}/{experiment}/{solver}.done.json")
    if not RETRY_FAILED or not done.exists():
        return "--retry-failed" if RETRY_FAILED else ""
    try:
        failed = json.loads(done.read_text()).get("failed_runs")
    except (OSError, ValueError):  # unreadable: the job runs (and verifies the store) anyway
        failed = True
    return "--retry-failed" if failed else ""


def threads_of(experiment, solver):
    """Cores of one store job: all of them, or one for a small store (workflow/plan.py
    store_threads), so that small stores run side by side."""
    return store_threads(PLANNED_CPU[(experiment, solver)], config.get("dask", {}),
                         workflow.cores)


@functools.cache
def plan_of(experiment, solver, threads):
    """Snakemake resources of one store job on `threads` cores, from the cost model
    (workflow/plan.py)."""
    return plan_store(EXPERIMENTS[experiment], solver, config.get("dask", {}), threads)


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
import json as _json

from analysis.spec import check_analysis, uses

if isinstance(config.get("analysis"), dict) and config["analysis"]:
    raise WorkflowError(
        f"field 'analysis': {config['analysis']!r} is not allowed: true or false at the top "
        "level; the analysis settings (e.g. threshold) go in each experiment's "
        "'analysis:' section (analysis/spec.py)")
try:
    ANALYSIS = {name: check_analysis(raw.get("analysis"), name, list(EXPERIMENTS[name].grid),
                                     EXPERIMENTS[name].model)
                for name, raw in config["experiments"].items()}
except ValueError as err:
    raise WorkflowError(str(err)) from None


REPORT_DIR = os.path.join(workflow.basedir, "workflow", "report")


def _of_kind(*kinds):
    return "|".join(n for n, s in ANALYSIS.items() if s["kind"] in kinds) or "NO_EXPERIMENT"


def analysis_inputs(experiment):
    """The completion files of the stores an experiment's analysis reads: its own
    ({solver: file}) and those of the experiments it uses ({<experiment>_<solver>: file})."""
    out = store_inputs(experiment)
    for other in uses(ANALYSIS[experiment]):
        out.update({f"{other}_{s}": path for s, path in store_inputs(other).items()})
    return out


def analysis_targets(config):
    """Every file the analysis makes for the experiments of the config (for `rule all`)."""
    out = [f"{RESULTS}/{folder}/{name}{suffix}" for name in ANALYSIS
           for folder, suffix in (("figures", ".png"), ("figures", ".pdf"),
                                  ("tables", ".csv"), ("tables", "_agreement.csv"))]
    return out + [f"{RESULTS}/tables/{name}.txt" for name, spec in ANALYSIS.items()
                  if spec["kind"] == "finite_size"]


def _caption(name):
    """workflow/report/<name>.rst, else the caption of the experiment's kind."""
    for stem in (name, f"kind_{ANALYSIS[name]['kind']}"):
        path = os.path.join(REPORT_DIR, f"{stem}.rst")
        if os.path.exists(path):
            return open(path).read()
    return name


def _outputs(category, label):
    """Report entries of an analysis rule, in the experiment's `analysis: category` (the
    given category of its kind by default)."""
    section = lambda wc: ANALYSIS[wc.experiment]["category"] or category
    return dict(
        png=report(f"{RESULTS}/figures/{{experiment}}.png", caption="../report/figure.rst",
                   category=section, labels={label: "{experiment}"}),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
        csv=report(f"{RESULTS}/tables/{{experiment}}.csv", caption="../report/table.rst",
                   category=section, labels={"table": "{experiment}"}),
        agreement=report(f"{RESULTS}/tables/{{experiment}}_agreement.csv",
                         caption="../report/agreement.rst",
                         category="Simulations against DMFT",
                         labels={"agreement": "{experiment}"}),
    )


ANALYSIS_SHELL = ("python -m analysis {wildcards.experiment} --results {params.results:q} "
                  "--section {params.section:q} > {log:q} 2>&1")
