"""Simulator speed against the memory-bandwidth floor, measured in the same run.

For each d (alpha = 2, GD, 100 steps) prints:
  floor   time of the two plain numpy matrix-vector products A @ w and A.T @ g on the same
          (n, d) data matrix (what any implementation of one step must at least read),
  1 run   the simulator's time per step (data generation excluded) and its ratio to the floor,
  8 runs  the time per step of 8 batched configurations, its ratio to 1 run and to the
          floor of 8 separate runs (8 x floor).
Targets (issue 3): 1 run within 1.5x of the floor, 8 configurations under 2.5x of one.

Then, in the same run, the cost of the extensions of issue 12 (theory §7) per step relative
to the plain run: heavy-ball momentum (one more d-vector per configuration), Nesterov (one
more, and the look-ahead pre-activations), a two-level input covariance (per-level
observables), the square loss; for 1 configuration and for 8 batched ones.

Last, the saving of per-configuration horizons (issue 19): a batch of step sizes 0.2, 0.5,
2.0 and 1.0 to t_max = 24 (120, 48, 12 and 24 steps; logistic loss, none diverges) is
timed against the same batch with every configuration stepped to the longest horizon (what
a batch cost before, when it stepped everyone to 120 steps); the configuration-steps of
both are printed too. An odd number of live configurations costs one more (the kernel
takes pairs).

And the cost of the stochastic modified flow (issue 22, theory §9.1) per unit time against
SGD on the same data (two-cluster, b = 0.3, eta = 0.2, one configuration each, runs
interleaved): 10 Ito-Heun substeps, two reads of the data each. Target <= 12x SGD.

And the cost of drawing a seed's data (`sims.engine.training_data`, alpha = 2) per data
entry against its floor, the normal draws alone into a preallocated array (`Generator.
standard_normal(out=...)`): the scaling is done in place, so the ratio is close to 1
(drawing into fresh temporaries cost 19 ns per entry against 15 in place, 2026-12-07).

Usage: python benchmarks/bench_sims.py [d ...]      (everything)
       python benchmarks/bench_sims.py --smf [d ...] (the SMF's cost only)
"""

import sys
import time

import numpy as np

from sims import Problem
from sims import engine as sim

STEPS = 100
REPEATS = 3  # every time is the best of REPEATS runs (least disturbed by other load)


def floor_per_step(n: int, d: int, repeats: int = 20) -> float:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, d)) / np.sqrt(d)
    w, g = rng.standard_normal(d), rng.standard_normal(n)
    A @ w, A.T @ g
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        A @ w, A.T @ g
        times.append(time.perf_counter() - start)
    return min(times)


def simulator_per_step(problems, d: int) -> float:
    """Time per step, data generation excluded (a 1-step run is subtracted), best of REPEATS."""
    def run(t_max):
        start = time.perf_counter()
        sim.simulate_batch([p.replace(t_max=t_max) for p in problems], d=d, seeds=1)
        return time.perf_counter() - start

    run(0.2)  # compile
    short = min(run(0.2) for _ in range(REPEATS))
    long = min(run(STEPS * 0.2) for _ in range(REPEATS))
    return (long - short) / (STEPS - 1)


EXTENSIONS = {"momentum": dict(momentum=0.9), "nesterov": dict(momentum=0.9, nesterov=True),
              "covariance": dict(covariance={"fractions": [0.2, 0.8], "variances": [3.0, 0.5]}),
              "square": dict(loss="square")}


def interleaved_per_step(batches: dict, d: int, clock=time.perf_counter) -> dict:
    """Time per step of several batches, their runs interleaved (so that a change of the
    machine's load hits all of them alike); best of REPEATS, a 1-step run subtracted.
    `clock=time.process_time` measures the CPU time of all threads instead (robust to other
    processes on a loaded machine)."""
    def run(problems, t_max):
        start = clock()
        sim.simulate_batch([p.replace(t_max=t_max) for p in problems], d=d, seeds=1)
        return clock() - start

    for problems in batches.values():
        run(problems, 0.2)  # compile
    short = {name: [] for name in batches}
    long = {name: [] for name in batches}
    for _ in range(REPEATS):
        for name, problems in batches.items():
            short[name].append(run(problems, 0.2))
            long[name].append(run(problems, STEPS * 0.2))
    return {name: (min(long[name]) - min(short[name])) / (STEPS - 1) for name in batches}


def main(dims):
    base = Problem(alpha=2.0, eta=0.2, process="gd", t_max=STEPS * 0.2)
    eight = [base.replace(lam=0.01 * i) for i in range(8)]
    print(f"{'d':>6} {'floor ms':>9} {'1 run ms':>9} {'1 run/floor':>12} "
          f"{'8 runs ms':>10} {'8 runs/1 run':>13} {'8 runs/8 floors':>16}")
    for d in dims:
        floor = floor_per_step(2 * d, d)
        one = simulator_per_step([base], d)
        batch = simulator_per_step(eight, d)
        print(f"{d:>6} {1e3 * floor:>9.2f} {1e3 * one:>9.2f} {one / floor:>12.2f} "
              f"{1e3 * batch:>10.2f} {batch / one:>13.2f} {batch / (8 * floor):>16.2f}")
    print(f"\n{'d':>6} {'configs':>7} {'clock':>5} " + " ".join(
        f"{name + ' ms':>13} {'/plain':>6}" for name in ["plain", *EXTENSIONS]))
    for d in dims:
        for configs in (1, 8):
            problems = eight[:configs]
            batches = {"plain": problems, **{name: [p.replace(**fields) for p in problems]
                                             for name, fields in EXTENSIONS.items()}}
            for label, clock in [("wall", time.perf_counter), ("cpu", time.process_time)]:
                times = interleaved_per_step(batches, d, clock)
                print(f"{d:>6} {configs:>7} {label:>5} " + " ".join(
                    f"{1e3 * t:>13.2f} {t / times['plain']:>6.2f}" for t in times.values()))

    print(f"\n{'d':>6} {'clock':>5} {'config-steps':>13} {'to longest':>11} {'saved':>6} "
          f"{'own horizons s':>15} {'to longest s':>13} {'time ratio':>11}")
    for d in dims:
        for label, clock in [("wall", time.perf_counter), ("cpu", time.process_time)]:
            own, longest, steps, paid = horizon_saving(d, clock)
            print(f"{d:>6} {label:>5} {steps:>13} {paid:>11} {1 - steps / paid:>6.0%} "
                  f"{own:>15.3f} {longest:>13.3f} {own / longest:>11.2f}")
    smf_cost(dims)
    data_cost(dims)


def data_cost(dims) -> None:
    """CPU ns per data entry of `training_data` (float64, float32) and of the bare normal
    draws into a preallocated (n, d) array (the floor), best of REPEATS each."""
    problem = Problem(alpha=2.0)
    print(f"\n{'d':>6} {'floor ns':>9} {'float64 ns':>11} {'/floor':>7} {'float32 ns':>11} "
          f"{'/floor':>7}")
    for d in dims:
        entries = 2 * d * d
        rng, out = np.random.default_rng(0), np.empty((2 * d, d))

        def cpu(draw):
            times = []
            for _ in range(REPEATS):
                start = time.process_time()
                draw()
                times.append(time.process_time() - start)
            return 1e9 * min(times) / entries

        floor = cpu(lambda: rng.standard_normal(out=out))
        double = cpu(lambda: sim.training_data(problem, d, 0))
        single = cpu(lambda: sim.training_data(problem, d, 0, dtype="float32"))
        print(f"{d:>6} {floor:>9.1f} {double:>11.1f} {double / floor:>7.2f} {single:>11.1f} "
              f"{single / floor:>7.2f}")


def smf_cost(dims, substeps=(10, 5)) -> None:
    """SMF and SGD time per unit time on the same data (same seed and eta, so per step),
    and their ratio; wall and CPU clocks (theory §9.1)."""
    sgd = Problem(process="sgd", b=0.3, eta=0.2, t_max=STEPS * 0.2)
    batches = {"sgd": [sgd], **{f"smf {k}": [sgd.replace(process="smf", smf_substeps=k)]
                                for k in substeps}}
    print(f"\n{'d':>6} {'clock':>5} {'sgd ms/t':>9} " + " ".join(
        f"{name + ' ms/t':>12} {'/sgd':>6}" for name in list(batches)[1:]))
    for d in dims:
        for label, clock in [("wall", time.perf_counter), ("cpu", time.process_time)]:
            times = interleaved_per_step(batches, d, clock)
            per_time = {name: t / sgd.eta for name, t in times.items()}
            print(f"{d:>6} {label:>5} {1e3 * per_time['sgd']:>9.2f} " + " ".join(
                f"{1e3 * per_time[name]:>12.2f} {per_time[name] / per_time['sgd']:>6.2f}"
                for name in list(batches)[1:]))


def horizon_saving(d: int, clock=time.perf_counter):
    """(time of a batch of mixed horizons, time of the same batch each stepped to the
    longest horizon, configuration-steps of each); runs interleaved, best of REPEATS, the
    time of a one-step batch (data generation) subtracted."""
    own = [Problem(eta=eta, t_max=24) for eta in (0.2, 0.5, 2.0, 1.0)]
    longest = max(p.n_steps for p in own)
    to_longest = [p.replace(t_max=longest * p.eta) for p in own]

    def run(problems):
        start = clock()
        sim.simulate_batch(problems, d=d, seeds=1)
        return clock() - start

    one_step = [p.replace(t_max=p.eta) for p in own]
    run(own)  # compile
    times = {"own": [], "longest": [], "one step": []}
    for _ in range(REPEATS):
        times["own"].append(run(own))
        times["longest"].append(run(to_longest))
        times["one step"].append(run(one_step))
    data = min(times["one step"])
    return (min(times["own"]) - data, min(times["longest"]) - data,
            sum(p.n_steps for p in own), len(own) * longest)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--smf"]
    dimensions = [int(a) for a in arguments] or [2000, 10000]
    if "--smf" in sys.argv[1:]:
        smf_cost([int(a) for a in arguments] or [500, 1000])
    else:
        main(dimensions)
