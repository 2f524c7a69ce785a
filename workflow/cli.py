"""Command-line entry points the Snakefile calls (`python -m workflow.cli ...`).

    python -m workflow.cli check CONFIG.yaml
        validate a config (schema + Problem check of every grid point); exit 1 on error
    python -m workflow.cli run SPEC.json --store results/E/sims.zarr --summary OUT.json
            [--threads N] [--scheduler local|sync|slurm|tcp://...] [--dask-config JSON]
        compute what is missing in the store of one (experiment, solver) spec file
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, ExperimentSpec, load_config, read_yaml


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config")
    run = sub.add_parser("run", help="compute the missing part of one store")
    run.add_argument("spec", help="spec file written by the Snakefile (results/E/.spec/S.json)")
    run.add_argument("--store", required=True)
    run.add_argument("--summary", help="write the run summary (JSON) here at the end")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--scheduler", default=None)
    run.add_argument("--dask-config", default="{}", help="JSON of the config's dask section")
    args = parser.parse_args(argv)

    if args.command == "check":
        try:
            specs = load_config(read_yaml(args.config))
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for name, spec in specs.items():
            n = sum(1 for _ in spec.points())
            print(f"{name}: {n} points, sims={'yes' if spec.sims else 'no'}, "
                  f"dmft={'yes' if spec.dmft else 'no'}")
        return 0

    from .execute import run_experiment
    with open(args.spec) as f:
        data = json.load(f)
    spec = ExperimentSpec.from_dict(data)
    summary = run_experiment(spec, data["solver"], args.store, threads=args.threads,
                             dask_cfg=json.loads(args.dask_config),
                             scheduler=None if args.scheduler in (None, "", "default") else args.scheduler)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
