"""Public entry point `dmft.solve` (docs/theory.md §3, §5)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from sims.problem import Problem
from .output import to_dataset
from .solver import Solver

METHODS = ("causal", "iterative")


def solve(problem: Problem, *, d=None, method="causal", n_samples=4000, n_replicas=8,
          response_samples=400, time_step=None, seed=0, backend="numba",
          response_dtype="float32", memory_limit="8GB", resume_from=None,
          max_iterations=60, damping=0.5, tolerance=1e-4) -> xr.Dataset:
    """Solve the DMFT of (persistent-/classical) SGD or GD up to problem.t_max.

    Implements the discrete DMFT of docs/theory.md §3 (effective process §3.1, kernels
    §3.2, weight side §3.3, observables §3.4) with step eta = problem.eta, i.e. the
    process the simulations run (classical SGD: the SGD-inspired discretization, a fresh
    Bernoulli(b) mask per step; persistent-SGD: the same clipped chain as `sims`, from
    `SelectionChain.of`).

    Args:
        problem: the `sims.problem.Problem` (same as for `sims.simulate`).
        d: used for ONE purpose: the three-cluster initial magnetization
            m0 = sqrt(R/d)|x|, x ~ N(0,1), averaged by Gauss-Hermite (6 nodes on x > 0, one
            independent solve group each, §6.6). Required for three-cluster (math.inf gives
            m0 = 0, the exact Z2-symmetric solution); must be None for two-cluster.
        method: "causal" (default): the single causal pass of §5.3, exact for the sample
            set. "iterative": the damped fixed-point iteration of §5.2 (paper's scheme),
            starting from M_R = 0 and t = 0 kernels; the samples are the same at every
            iteration, so its fixed point is the causal pass of the same seed.
        n_samples: effective samples per initial-magnetization node, all replicas together.
        n_replicas: independent sample groups (each with its own kernels); the curves are
            their mean and `*_mc_error` their standard error.
        response_samples: samples (per node, all replicas) carrying a response path T
            (§3.2) to estimate M_R; the cost is O(response_samples K^3 / 6). The other
            kernels and observables use all n_samples. None: all samples.

            Defaults (n_samples=4000, response_samples=400, n_replicas=8) and their
            trade-off, measured on the paper's Fig. 1 left (two-cluster, persistent-SGD
            1/tau=0.6, t_max=100, K=500) against a solve with 4x both sample counts, one
            seed, 2 idle cores: about 6-7 s per curve; max over t of |gen_error - ref| =
            0.0016 (b=0.3), 0.0012 (b=0.1), and 0.002-0.0065 for b=1 (GD, lam=0), whose
            late-time error grows with |w| (replica error at t=100: 0.004-0.010 over
            seeds). K=1000: ~40 s, 1.6 GB. Time is O(response_samples K^3) (the T paths,
            ~2/3 of it) plus O(n_samples K^2). Both noise sources matter about equally:
            4x only one of them lowers the error by 10-20%; 4x both halves it.
            Keep at least ~500 samples per replica group (n_samples / n_replicas): with
            250 the kernels are noisy enough to destabilise the non-convex three-cluster
            dynamics (a DivergenceError, or a wrong plateau). Fewer replicas reduce the
            O(1/samples-per-group) bias but make `*_mc_error` noisier (n_replicas >= 2).
        time_step: None (default) solves with step eta. A smaller value refines the grid at
            fixed physical rates (§4: persistent chain P(0->1) = dt/tau,
            P(1->0) = (1-b) dt/(b tau); GD -> gradient flow); time_step -> 0 is the
            continuous-time (stochastic gradient flow) limit. Not allowed for 'sgd'.
        seed: seed of numpy.random.SeedSequence; a (problem, settings) pair is reproducible.
        backend: "numba" (parallel, cache-friendly T propagation) or "numpy" (direct).
        response_dtype: storage of T, "float32" (default, accuracy tested) or "float64".
        memory_limit: bytes or a string like "8GB"; checked before allocating
            (raises `dmft.MemoryLimitError`).
        resume_from: a `dmft.Solver` (e.g. `ds.attrs` cannot hold the state; use
            `dmft.Solver(...).advance(t)` or `solve_state`) from a shorter solve of the same
            problem; the pass continues from its last step (the early part is unchanged).
        max_iterations, damping, tolerance: iterative method only (§5.2): stop when the
            relative Frobenius change of every kernel is below `tolerance`.

    Returns: xarray.Dataset, dims (time,) for gen_error, train_loss, train_acc, norm2,
        magnetization (three-cluster: mean |m|), active_fraction and their `*_mc_error`;
        (time, time_prime) for correlation C, response G, memory_kernel M_R and
        noise_kernel M_C; attrs: Problem fields, method, n_samples, wall_time, settings and,
        for the iterative method, iterations and kernel_change.
    Raises: `dmft.DivergenceError` naming the time at which the solution blew up.
    """
    settings = dict(d=d, n_samples=n_samples, n_replicas=n_replicas,
                    response_samples=response_samples, time_step=time_step, seed=seed,
                    backend=backend, response_dtype=response_dtype, memory_limit=memory_limit)
    if method not in METHODS:
        raise ValueError(f"method = {method!r} must be one of {METHODS}")
    if method == "iterative":
        if resume_from is not None:
            raise ValueError("resume_from works with method='causal' only")
        return _solve_iterative(problem, settings, max_iterations, damping, tolerance)
    solver = solve_state(problem, resume_from=resume_from, **settings)
    return to_dataset(solver, "causal")


def solve_state(problem: Problem, *, resume_from: Solver | None = None, **settings) -> Solver:
    """The causal-pass `Solver` after reaching problem.t_max (resumable, §5.3).

    With `resume_from`, continues a copy of that solver (same problem except t_max, same
    settings); the result equals a single solve to the later t_max.
    """
    if resume_from is None:
        return Solver(problem, **settings).advance(problem.t_max)
    if not isinstance(resume_from, Solver):
        raise TypeError("resume_from must be a dmft.Solver (a dataset does not hold the "
                        "samples' state); get one from dmft.solve_state")
    if resume_from.problem.replace(t_max=problem.t_max) != problem:
        raise ValueError("resume_from solved a different problem (only t_max may change)")
    solver = resume_from.copy()
    solver.problem = problem
    return solver.advance(problem.t_max)


def _solve_iterative(problem, settings, max_iterations, damping, tolerance) -> xr.Dataset:
    """Damped fixed-point iteration of §5.2 on a fixed sample set."""
    kernels = _initial_guess(problem, settings)
    history = []
    for iteration in range(1, max_iterations + 1):
        solver = Solver(problem, kernels=kernels, **settings).advance(problem.t_max)
        new = solver.estimates()
        change = max(np.linalg.norm(new[x] - kernels[x]) / max(np.linalg.norm(new[x]), 1e-300)
                     for x in kernels)
        history.append(change)
        kernels = {x: (1 - damping) * kernels[x] + damping * new[x] for x in kernels}
        if change < tolerance:
            break
    return to_dataset(solver, "iterative", iterations=iteration, kernel_change=change,
                      kernel_change_history=np.array(history))


def _initial_guess(problem, settings) -> dict:
    """M_R = 0; lam_hat, mu, M_C constant at their t = 0 values (§5.2 step 1)."""
    probe = Solver(problem, **settings).advance(0.0)
    size = probe.grid.n_steps + 1
    groups = probe.groups
    est = probe.estimates()
    return dict(lam_hat=np.repeat(est["lam_hat"], size, axis=0),
                mu=np.repeat(est["mu"], size, axis=0),
                noise=np.broadcast_to(est["noise"][:, :1, :1], (groups, size, size)).copy(),
                memory=np.zeros((groups, size, size)))
