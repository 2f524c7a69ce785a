"""Command-line entry points (`python -m workflow.cli ...`); no traceback for user errors.

    python -m workflow.cli check CONFIG.yaml
        check a config completely (YAML, schema, every grid point, dmft/sims/dask/analysis
        settings); list the experiments and the warnings of their grid points; exit 1 on error
    python -m workflow.cli plan CONFIG.yaml [--cores N] [--measured RESULTS]
        tasks, CPU time and peak memory per experiment and solver (workflow/plan.py); with
        --measured, next to what the runs in RESULTS took
    python -m workflow.cli verify results/E/sims.zarr
        check a store (metadata, markers, chunks, done); list failed runs; exit 1 if damaged
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
    verify = sub.add_parser("verify", help="check a store and list its failed runs")
    verify.add_argument("store")
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
    config = read_yaml(args.config)
    specs = load_config(config)
    for name, spec in specs.items():
        n = sum(1 for _ in spec.points())
        print(f"{name}: {n} points, sims={'yes' if spec.sims else 'no'}, "
              f"dmft={'yes' if spec.dmft else 'no'}")
        for index, fields in spec.points():
            for message in checked_problem(fields)[1]:
                print(f"  warning at {spec.describe(index)}: {message}")
    return 0


def _plan(args) -> int:
    from .plan import plan_table
    config = read_yaml(args.config)
    print(plan_table(load_config(config), config.get("dask") or {}, args.cores,
                     args.measured))
    return 0


def _verify(args) -> int:
    from .execute import failure_lines
    from .store import Layout, StoreError, read_attrs
    from .verify import damaged_tasks, describe_damage, repair_metadata
    attrs = read_attrs(args.store)
    if attrs is None or "config" not in attrs:
        raise StoreError(f"{args.store}: not a store of this pipeline (no readable metadata)")
    layout = Layout(ExperimentSpec.from_dict(json.loads(attrs["config"])), attrs["solver"],
                    version=attrs.get("package_version"))
    found, broken = repair_metadata(args.store)
    for line in found:
        print(f"repaired: {line}")
    if broken:
        raise StoreError(f"{broken}; rerun the store's job (snakemake --forcerun) to rebuild it")
    records, damage = damaged_tasks(args.store, layout)
    tasks = layout.units()
    missing = [t.key for t in tasks if t.key not in records and t.key not in damage]
    failures = [f for r in records.values() for f in r.get("failures", [])]
    print(f"{args.store}: {len(records)} of {len(tasks)} units (point x d x seed batch) "
          f"complete and sound, "
          f"{len(damage)} damaged, {len(missing)} not computed, {len(failures)} failed runs")
    for line in describe_damage(damage):
        print(f"  damaged: {line}")
    for line in failure_lines(failures):
        print(f"  failed: {line}")
    if damage or missing:
        print(f"to compute what is damaged or missing: rerun its Snakemake job, e.g. "
              f"snakemake --cores N --forcerun {os.path.splitext(args.store)[0]}.done.json")
        return 1
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
