"""Command line: python -m analysis <experiment> [...] --results results [--section JSON].

Writes, per experiment (analysis.output.make): figures/<experiment>.png/.pdf,
tables/<experiment>.csv, tables/<experiment>_agreement.csv (and tables/<experiment>.txt for
an escape-time analysis). --section is the experiment's `analysis:` config section as JSON
(the Snakemake rule passes it); without it, the paper's blocks for their names, else the
default (learning curves).
"""

from __future__ import annotations

import argparse
import json
import sys

from .output import make


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", help="e.g. fig1_left esmap_sgd_two fss_two")
    parser.add_argument("--results", default="results", help="directory of the stores")
    parser.add_argument("--figures", default=None, help="default: <results>/figures")
    parser.add_argument("--tables", default=None, help="default: <results>/tables")
    parser.add_argument("--section", default=None,
                        help="the experiments' analysis section, JSON (e.g. '{\"kind\": \"map\"}')")
    args = parser.parse_args(argv)
    try:
        section = json.loads(args.section) if args.section else None
        for experiment in args.experiments:
            for path in make(experiment, args.results, section, figures=args.figures,
                             tables=args.tables):
                print(path)
    except (ValueError, FileNotFoundError) as err:  # a user error: its message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
