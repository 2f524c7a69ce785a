"""Speed of the two-layer simulator and ODE (docs/theory.md §8), as ratios within one run.

At d = 1000, p = 8, k = 4 (blue line, eta = 1) prints, best of REPEATS, CPU time
(time.process_time, robust to other processes on a loaded machine) and wall time:
  rng floor  numpy drawing the gram method's random numbers for one step (n + 1 normals and
             one chi^2): what any exact O(n^3) step must at least pay,
  gram       the Gram chain per step per seed (1 and 8 seeds), and its ratio to that floor,
  full       the d-dimensional update per step per seed, and its ratio to gram.
Then the limit ODE of p = 8, k = 4 to t = 1e4 (Saad-Solla point, one curve), its time, the time
of one right-hand side and their ratio (how many right-hand sides the step control spent).
Targets (issue 21): gram >= 100x full per step, <= 2 us per step per seed; ODE <= 10 s.
Then growing widths (width_scaling power, p = round(2 d^kappa), k = 2) at d = 128: gram and
full per step per seed and full/gram (method auto takes gram where d > p + k), their ratio
to gram at p = 2 (the O((p+k)^3) and O((p+k) d) growth).

Usage: python benchmarks/bench_two_layer.py
"""

import time

import numpy as np

import dmft
import sims
from dmft.two_layer import _rhs
from sims.two_layer import TwoLayerProblem

D, P, K = 1000, 8, 4
REPEATS = 3
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def best(run, clock, repeats=REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append(clock() - start)
    return min(times)


def per_step(problem, method, steps, seeds, clock, d=D) -> float:
    """Seconds per step per seed at d, a 1-step run subtracted (t_max = n steps / d^(1+theta))."""
    def run(n):
        t_max = n / problem.steps_per_time(d)
        return lambda: sims.simulate(problem.replace(t_max=t_max), d, seeds, method=method,
                                     n_times=3)
    run(1)()  # compile
    return (best(run(steps), clock) - best(run(1), clock)) / ((steps - 1) * seeds)


def rng_floor(clock, steps=100_000) -> float:
    rng = np.random.default_rng(0)

    def draw():
        rng.standard_normal((steps, P + K + 1))
        rng.chisquare(D - P - K, steps)
    return best(draw, clock) / steps


def rhs_time(problem, clock, calls=2000) -> float:
    start = sims.initial_overlaps(problem, D, [0])
    state = np.concatenate([start.Q.values.ravel(), start.M.values.ravel()])
    Pm, out = start.P.values[0], np.empty_like(state)
    a1, a2 = problem.a1_limit, problem.a2_limit

    def run():
        for _ in range(calls):
            _rhs(state, Pm, problem.p, a1, a2, problem.noise, out)
    run()
    return best(run, clock) / calls


def main():
    problem = TwoLayerProblem(p=P, k=K, noise=1e-3, gamma0=float(P), t_max=1e4)
    print(f"d = {D}, p = {P}, k = {K}; microseconds per step per seed")
    print(f"{'clock':>5} {'rng floor':>10} {'gram 1':>8} {'gram 8':>8} {'gram/floor':>11} "
          f"{'full 1':>9} {'full/gram':>10}")
    for label, clock in CLOCKS.items():
        floor = rng_floor(clock)
        gram1 = per_step(problem, "gram", 200_000, 1, clock)
        gram8 = per_step(problem, "gram", 50_000, 8, clock)
        full1 = per_step(problem, "full", 2_000, 1, clock)
        print(f"{label:>5} {1e6 * floor:>10.3f} {1e6 * gram1:>8.3f} {1e6 * gram8:>8.3f} "
              f"{gram1 / floor:>11.2f} {1e6 * full1:>9.2f} {full1 / gram1:>10.1f}")
    print(f"\nlimit ODE p = {P}, k = {K} to t = 1e4 (one curve, rtol 1e-9)")
    print(f"{'clock':>5} {'ODE s':>8} {'rhs us':>8} {'ODE/rhs':>9}")
    dmft.solve(problem.replace(t_max=1.0), d=D, limit=True, n_times=3)  # compile
    for label, clock in CLOCKS.items():
        ode = best(lambda: dmft.solve(problem, d=D, limit=True, n_times=121), clock, 1)
        rhs = rhs_time(problem, clock)
        print(f"{label:>5} {ode:>8.2f} {1e6 * rhs:>8.1f} {ode / rhs:>9.0f}")
    wide(time.process_time)


def wide(clock, d=128):
    """Per-step cost of growing widths at d: gram and full, and their growth over p = 2."""
    base = TwoLayerProblem(p=2, k=2, gamma0=2.0, t_max=1.0, width_scaling="power")
    narrow = per_step(base, "gram", 50_000, 1, clock, d)
    print(f"\nwidth p = round(2 d^kappa) at d = {d}, k = 2; gram at p = 2: "
          f"{1e6 * narrow:.2f} us per step per seed")
    print(f"{'kappa':>5} {'p':>4} {'gram us':>8} {'gram/p=2':>9} {'full us':>8} {'full/gram':>10}")
    for kappa, steps in ((0.5, 20_000), (0.75, 5_000), (1.0, 2_000)):
        problem = base.replace(width_exponent=kappa)
        full = per_step(problem, "full", steps // 4, 1, clock, d)
        if problem.method_at(d, "auto") == "gram":
            gram = per_step(problem, "gram", steps, 1, clock, d)
            print(f"{kappa:>5} {problem.width(d):>4} {1e6 * gram:>8.2f} {gram / narrow:>9.0f} "
                  f"{1e6 * full:>8.2f} {full / gram:>10.2f}")
        else:
            print(f"{kappa:>5} {problem.width(d):>4} {'(p+k>d)':>8} {'':>9} {1e6 * full:>8.2f}")


if __name__ == "__main__":
    main()
