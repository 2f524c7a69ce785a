"""Command-line entry points (`python -m workflow.cli ...`); no traceback for user errors.

    python -m workflow.cli check CONFIG.yaml
        check a config (YAML, schema, no NaN or inf anywhere, the grid axis by axis in a
        time independent of its size, dmft/sims/dask/analysis settings, the budget of points
        and planned CPU-hours); list the experiments and the warnings of the checked points;
        exit 1 on error
    python -m workflow.cli plan CONFIG.yaml [--cores N] [--measured RESULTS]
        tasks, CPU time and peak memory per experiment and solver (workflow/plan.py); with
        --measured, next to what the runs in RESULTS took
    python -m workflow.cli verify results/E/sims.zarr [--full] [--repair]
        check a store, reading only (metadata, markers, chunks against the manifest; --full
        reads every chunk); list failed runs; exit 1 naming the damage. --repair rebuilds
        damaged metadata from the spec and recomputes the damaged units
    python -m workflow.cli run SPEC.json --store results/E/sims.zarr --summary OUT.json
            [--threads N] [--scheduler local|sync|slurm|tcp://...] [--dask-config JSON]
            [--retry-failed]
        compute what is missing or damaged in the store of one (experiment, solver) spec;
        exit 3 if runs failed (saved as failed, listed), 1 on other errors
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .config import ConfigError, ExperimentSpec, checked_problem, load_config, read_yaml


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config")
    plan = sub.add_parser("plan", help="cost plan of a config (tasks, CPU, memory)")
    plan.add_argument("config")
    plan.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    plan.add_argument("--measured", metavar="RESULTS",
                      help="add the measured CPU, wall time and peak memory of the runs in "
                           "this results folder, and the estimate over the measurement")
    verify = sub.add_parser("verify", help="check a store (reading only) and list its failed "
                                           "runs; --repair repairs it")
    verify.add_argument("store")
    verify.add_argument("--full", action="store_true",
                        help="read every chunk (default: only without a manifest)")
    verify.add_argument("--repair", action="store_true",
                        help="rebuild damaged metadata from the spec and recompute the "
                             "damaged units (what the store job does)")
    verify.add_argument("--threads", type=int, default=1, help="with --repair")
    verify.add_argument("--scheduler", default="sync",
                        help="with --repair: sync (in-process, default), local or an address")
    run = sub.add_parser("run", help="compute the missing part of one store")
    run.add_argument("spec", help="spec file written by the Snakefile (results/E/.spec/S-*.json)")
    run.add_argument("--store", required=True)
    run.add_argument("--summary", help="write the run summary (JSON) here at the end")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--scheduler", default=None)
    run.add_argument("--dask-config", default="{}", help="JSON of the config's dask section")
    run.add_argument("--retry-failed", action="store_true",
                     help="compute the runs stored as failed again")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from .execute import PointsFailed
    from .store import StoreError
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 1
    except StoreError as err:
        print(f"store error: {err}", file=sys.stderr)
        return 1
    except PointsFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 3


def _check(args) -> int:
    """Check a config in a time that does not grow with its grids: the axes, the Problems
    of the points chosen axis by axis (config.points_to_check), the budget (points and
    planned CPU-hours)."""
    from .config import budget, points_to_check
    from .plan import check_budget, planned_cpu
    config = read_yaml(args.config)
    specs = load_config(config)
    for name, spec in specs.items():
        checked = points_to_check(spec)
        print(f"{name}: {spec.size()} points ({len(checked)} checked), "
              f"sims={'yes' if spec.sims else 'no'}, dmft={'yes' if spec.dmft else 'no'}")
        for point, fields in checked:
            for message in checked_problem(fields)[1]:
                print(f"  warning at {point}: {message}")
    limits = budget(config)
    hours = check_budget(planned_cpu(specs), limits)
    print(f"planned: {hours:.3g} CPU-hours (budget {limits['cpu_hours']:g}; "
          f"python -m workflow.cli plan for each store)")
    return 0


def _plan(args) -> int:
    from .plan import plan_table
    config = read_yaml(args.config)
    print(plan_table(load_config(config), config.get("dask") or {}, args.cores,
                     args.measured))
    return 0


def _verify(args) -> int:
    """Check a store, reading only; exit 1 naming the damage. --repair repairs it (as its
    store job does)."""
    from .execute import failure_lines
    from .store import Layout, StoreError, TASKS_DIR, read_attrs, stored_version
    from .verify import damaged_tasks, describe_damage, manifest_damage, metadata_damage
    store = args.store
    if not os.path.isdir(store):
        raise StoreError(f"{store}: no such store (a folder results/<experiment>/<solver>.zarr)")
    if args.repair:
        return _repair(args)
    repair = (f"to repair: python -m workflow.cli verify --repair {store}, or rerun "
              "snakemake (the store job repairs exactly what is damaged)")
    meta = metadata_damage(store)
    if meta:
        print(f"{store}: damaged metadata (the store cannot be opened until it is rebuilt "
              "from the spec)")
        for rel, why in sorted(meta.items()):
            print(f"  damaged: {os.path.join(store, rel)}: {why}")
        print(repair)
        return 1
    attrs = read_attrs(store)
    if attrs is None or "config" not in attrs:
        raise StoreError(f"{store}: not a store of this pipeline (no experiment config in "
                         "its metadata)")
    layout = Layout(ExperimentSpec.from_dict(json.loads(attrs["config"])), attrs["solver"],
                    version=stored_version(attrs))
    changed = manifest_damage(store)
    if changed is None:
        print(f"{store}: no manifest (its last store job did not finish, or the store is "
              "older): every chunk is read")
    coords = {rel: why for rel, why in (changed or {}).items()
              if not rel.startswith(TASKS_DIR) and rel.split("/")[0] not in attrs["variables"]}
    records, damage = damaged_tasks(store, layout, full=True if args.full else None)
    tasks = layout.units()
    missing = [t.key for t in tasks if t.key not in records and t.key not in damage]
    failures = [f for r in records.values() for f in r.get("failures", [])]
    print(f"{store}: {len(records)} of {len(tasks)} units (point x d x seed batch) "
          f"complete and sound, "
          f"{len(damage)} damaged, {len(missing)} not computed, {len(failures)} failed runs")
    for rel, why in sorted(coords.items()):
        print(f"  damaged: {os.path.join(store, rel)} {why} since the store job")
    for line in describe_damage(damage):
        print(f"  damaged: {line}")
    for line in failure_lines(failures):
        print(f"  failed: {line}")
    if damage or coords:
        print(repair)
        return 1
    if missing:
        print("to compute what is missing: rerun snakemake (or python -m workflow.cli "
              f"verify --repair {store})")
        return 1
    return 0


def _repair(args) -> int:
    """Repair a store as its store job would: metadata rebuilt from the spec (the store's
    own, else its spec file results/<experiment>/.spec/<solver>-*.json), damaged units
    recomputed, the manifest rewritten."""
    from .execute import run_experiment
    from .store import StoreError
    from .verify import store_spec
    found = store_spec(args.store)
    if found is None:
        raise StoreError(f"{args.store}: no readable spec (neither in the store's metadata "
                         "nor a spec file beside it in .spec/): cannot repair it; rerun its "
                         "Snakemake job (snakemake --forcerun store)")
    spec, solver = found
    summary = run_experiment(spec, solver, args.store, threads=args.threads,
                             scheduler=args.scheduler)
    print(f"{args.store}: repaired; {summary['ran']} of {summary['units']} units computed")
    return 0


def _run(args) -> int:
    from .execute import run_experiment
    with open(args.spec) as f:
        data = json.load(f)
    spec = ExperimentSpec.from_dict(data)
    scheduler = None if args.scheduler in (None, "", "default") else args.scheduler
    summary = run_experiment(spec, data["solver"], args.store, threads=args.threads,
                             dask_cfg=json.loads(args.dask_config), scheduler=scheduler,
                             retry_failed=args.retry_failed)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


COMMANDS = {"check": _check, "plan": _plan, "verify": _verify, "run": _run}


if __name__ == "__main__":
    sys.exit(main())
