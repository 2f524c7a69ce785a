"""Command line: python -m analysis <experiment> [...] --results results.

Writes results/figures/<experiment>.png/.pdf and, for esmap_*/fss_*,
results/tables/<experiment>.csv.
"""

from __future__ import annotations

import argparse

from .figures import draw


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("experiments", nargs="+", help="e.g. fig1_left esmap_sgd_two fss_two")
    parser.add_argument("--results", default="results", help="directory of the stores")
    parser.add_argument("--figures", default=None, help="default: <results>/figures")
    parser.add_argument("--tables", default=None, help="default: <results>/tables")
    parser.add_argument("--escape-threshold", type=float, default=0.4,
                        help="fss_three: escape = first time gen_error < this (default 0.4)")
    args = parser.parse_args(argv)
    for experiment in args.experiments:
        for path in draw(experiment, args.results, args.figures, args.tables,
                         escape_threshold=args.escape_threshold):
            print(path)


if __name__ == "__main__":
    main()
