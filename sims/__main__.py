"""Command line: simulate one problem and print the seed-averaged curves.

    python -m sims --model two_cluster --process persistent --b 0.3 --tau 1.6667 --d 500 --seeds 8
    python -m sims --momentum 0.5 --nesterov --covariance 0.2:3,0.8:0.5 --d 500
"""

import argparse
import dataclasses

import numpy as np

from . import Problem, simulate


def _levels(text: str) -> dict:
    """'0.2:3,0.8:0.5' -> {fractions: [0.2, 0.8], variances: [3.0, 0.5]}."""
    try:
        pairs = [tuple(map(float, level.split(":"))) for level in text.split(",")]
        fractions, variances = zip(*pairs)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give fraction:variance pairs separated by commas, e.g. 0.2:3,0.8:0.5")
    return {"fractions": list(fractions), "variances": list(variances)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sims", description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Problem):
        if field.name == "nesterov":
            parser.add_argument("--nesterov", action="store_true",
                                help="gradient at the look-ahead point (needs --momentum)")
        elif field.name == "covariance":
            parser.add_argument("--covariance", type=_levels, default=None,
                                metavar="F1:S1,F2:S2,...",
                                help="diagonal input covariance: fraction:variance per level")
        else:
            kind = str if field.name in ("model", "process", "loss") else float
            parser.add_argument(f"--{field.name}", type=kind, default=field.default)
    parser.add_argument("--d", type=int, default=500, help="input dimension")
    parser.add_argument("--seeds", type=int, default=4, help="number of seeds")
    parser.add_argument("--rows", type=int, default=10, help="table rows")
    return parser


def main(argv=None):
    args = vars(_parser().parse_args(argv))
    d, seeds, rows = args.pop("d"), args.pop("seeds"), args.pop("rows")
    try:
        problem = Problem(**args)
    except ValueError as error:
        raise SystemExit(f"error: {error}")
    ds = simulate(problem, d=d, seeds=seeds)
    mean = ds.mean("seed")
    se = ds.std("seed", ddof=1) / np.sqrt(seeds) if seeds > 1 else 0 * mean
    print(f"{problem}\nd = {d}, {seeds} seeds (mean ± standard error)")
    print(f"{'time':>8} {'gen_error':>18} {'train_loss':>10} {'train_acc':>9} {'norm2':>9} "
          f"{'m':>8}")
    for i in np.unique(np.linspace(0, ds.time.size - 1, rows).round().astype(int)):
        row, err = mean.isel(time=i), se.isel(time=i)
        print(f"{float(row.time):8.2f} {float(row.gen_error):9.4f} ± {float(err.gen_error):6.4f} "
              f"{float(row.train_loss):10.4f} {float(row.train_acc):9.4f} "
              f"{float(row.norm2):9.4f} {float(row.magnetization):8.4f}")


if __name__ == "__main__":
    main()
