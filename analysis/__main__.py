"""Command line: python -m analysis <experiment> [...] --results results
                    [--config config/quick.yaml | --section JSON]

Writes, per experiment (analysis.output.make): figures/<experiment>.png/.pdf,
tables/<experiment>.csv, tables/<experiment>_agreement.csv (and tables/<experiment>.txt for
an escape-time analysis). What is drawn is the experiment's `analysis:` section: read from
the config file given with --config, or given as JSON with --section (the Snakemake rule
passes it); without either, learning curves.
"""

from __future__ import annotations

import argparse
import json
import sys

from workflow.config import read_yaml

from .output import make


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", help="e.g. fig1_left esmap_sgd_two fss_two")
    parser.add_argument("--results", default="results", help="directory of the stores")
    parser.add_argument("--figures", default=None, help="default: <results>/figures")
    parser.add_argument("--tables", default=None, help="default: <results>/tables")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", default=None,
                       help="config file: each experiment's analysis section is read from it")
    which.add_argument("--section", default=None,
                       help="the experiments' analysis section, JSON (e.g. '{\"kind\": \"map\"}')")
    args = parser.parse_args(argv)
    try:
        for experiment in args.experiments:
            for path in make(experiment, args.results, _section(args, experiment),
                             figures=args.figures, tables=args.tables):
                print(path)
    except (ValueError, FileNotFoundError) as err:  # a user error: its message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _section(args, experiment: str) -> dict | None:
    """The experiment's analysis section from --section or --config (None: the default)."""
    if args.section:
        return json.loads(args.section)
    if args.config:
        experiments = read_yaml(args.config).get("experiments") or {}
        if experiment not in experiments:
            raise ValueError(f"experiment '{experiment}' is not in {args.config}: its "
                             f"experiments are {list(experiments)}")
        return experiments[experiment].get("analysis")
    return None


if __name__ == "__main__":
    sys.exit(main())
