"""Public entry point `dmft.solve` (docs/theory.md §3, §5)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from sims.problem import Problem
from .output import NodeSums, assemble, to_dataset
from .precision import check_target, solve_to_target
from .solver import DEFAULTS, Solver

METHODS = ("causal", "iterative")


def solve(problem: Problem, *, d=DEFAULTS["d"],
          magnetization_nodes=DEFAULTS["magnetization_nodes"],
          magnetization_rule=DEFAULTS["magnetization_rule"],
          initial_magnetizations=DEFAULTS["initial_magnetizations"], method="causal",
          n_samples=DEFAULTS["n_samples"], n_replicas=DEFAULTS["n_replicas"],
          response_samples=DEFAULTS["response_samples"],
          response_window=DEFAULTS["response_window"], time_step=DEFAULTS["time_step"],
          seed=DEFAULTS["seed"], backend=DEFAULTS["backend"],
          response_dtype=DEFAULTS["response_dtype"], memory_limit=DEFAULTS["memory_limit"],
          resume_from=None, max_iterations=60, damping=0.5, tolerance=1e-4,
          target_error=None, cost_limit=None) -> xr.Dataset:
    """Solve the DMFT of (persistent-/classical) SGD, GD, SGD with Gaussian masks or the
    flow of SGD's mean drift up to problem.t_max.

    Implements the discrete DMFT of docs/theory.md §3 (effective process §3.1, kernels
    §3.2, weight side §3.3, observables §3.4) with step eta = problem.eta, i.e. the
    process the simulations run (classical SGD: the SGD-inspired discretization, a fresh
    Bernoulli(b) mask per step; persistent-SGD: the same clipped chain as `sims`;
    'gauss_sgd': fresh N(b, b(1 - b)) weights; 'flow': s = b; all from the simulator's
    `sims.problem.Selection`, §9.2). Process 'smf' is refused (§9.4).

    Args:
        problem: the `sims.problem.Problem` (same as for `sims.simulate`).
        d: used for ONE purpose: the three-cluster initial magnetization
            m0 = sqrt(R/d)|x|, x ~ N(0,1), averaged over x (one independent set of replicas
            per node, §5.9, §6.6). Required for three-cluster (math.inf gives m0 = 0, the
            exact Z2-symmetric solution); must be None for two-cluster.
        magnetization_nodes: nodes of the average over x (default 8). Cost proportional to
            it.
        magnetization_rule: "escape" (default, §5.9): nodes equally spaced in log|x|, the
            curve at any x interpolated between neighbouring nodes along their escape
            times and integrated over the half-normal law; the attrs `node_x`,
            `node_escape_times` and `escape_magnetization` give the escape-time law
            (`dmft.escape_time_cdf`, `dmft.escape_time_quantiles`), and
            `node_escape_time_replicas`, `escape_magnetization_replicas` and
            `node_escape_slopes` its Monte-Carlo error
            (`dmft.escape_time_quantile_errors`). "gauss": the Gauss rule
            of the half-normal law, a plain weighted sum of the node curves, exact for
            polynomials of |x| of degree < 2 nodes but a staircase in the escape window
            (Fig. 2 right, d = 1000, 8 nodes: 0.018-0.033 off the mean of 1000 seeds,
            against 0.007-0.012 for the escape rule).
        initial_magnetizations: three-cluster, with d = None: average over these m0 (their
            absolute values, equal weights, one node each) instead of the law of m0, e.g.
            `sims.initial_magnetizations(problem, d, seeds)`, the m(0) of simulation seeds:
            the theory for that finite sample of initial conditions (§6.6).
        method: "causal" (default): the single causal pass of §5.3, exact for the sample
            set. "iterative": the damped fixed-point iteration of §5.2 (paper's scheme),
            starting from M_R = 0 and t = 0 kernels; the samples are the same at every
            iteration, so its fixed point is the causal pass of the same seed.
        n_samples: effective samples per initial-magnetization node, all replicas together;
            None (default): 4096 per group (a power of 2, so that each group's Sobol' points
            form a net, §5.10), i.e. n_replicas x 4096; 2048 per group for the
            three-cluster node averages (through the escape window within 1e-4 of 4096).
        n_replicas: independent sample groups per node (each with its own kernels and its
            own scrambled Sobol' set, §5.10); the curves are their mean and `*_mc_error`
            their standard error. None (default): 4 for one node (two-cluster), 2 per node
            for the three-cluster average over initial magnetizations (which then combines
            2 x magnetization_nodes groups). Independent groups are what makes the error
            honest; their size is what makes the mean accurate: the feedback of kernel
            noise on the dynamics biases a group of n samples, which the replica spread
            does not show (two-cluster GD, t = 100: eps 0.1366, 0.1369, 0.1375, 0.13765
            with groups of 1024, 2048, 4096, 16384).
        response_samples: samples (per node, all replicas) carrying response paths T
            (§3.2) to estimate M_R. The other kernels and the observables use all
            n_samples. None: all samples. "auto" (default): 1024 per group with one node,
            whose late-time error of gen_error is the M_R noise (§5.8, §5.10: p-SGD at
            t = 100, group spread 0.0014 with 256, 0.00053 with 1024), and 512 per node
            (all replicas) for the three-cluster node averages (Fig. 2 left p-SGD at
            t = 100: the same curves with 512 and 1024; Fig. 2 right at K = 1000 in 27 s
            instead of 32-37 s on 2 cores).
        response_window: sources per octave of time lag whose response paths are followed
            (multiresolution M_R, §5.5); None follows every source (O(K^3)). The default
            16 moves two-cluster GD curves by up to 0.3 x the default error (t <= 100, §5.10)
            against None on the same samples; raise it with a target_error well below the
            default error.
            Cost O(n_samples K^2) for the sample histories plus
            O(response_samples window K^2 log K) for M_R, memory O(n_samples K + K^2 groups).
        time_step: None (default) solves with step eta. A smaller value refines the grid at
            fixed physical rates (§4: persistent chain P(0->1) = dt/tau,
            P(1->0) = (1-b) dt/(b tau); GD -> gradient flow); time_step -> 0 is the
            continuous-time (stochastic gradient flow) limit. Not allowed for 'sgd'.
        seed: seed of numpy.random.SeedSequence; a (problem, settings) pair is reproducible.
        backend: "numba" (parallel, cache-friendly T propagation) or "numpy" (direct).
        response_dtype: storage of the response paths T and of the sample histories
            (h, g, noise normals), "float32" (default; sums are accumulated in float64;
            curves agree with float64 storage to 1e-5 relative, tested) or "float64".
        memory_limit: bytes or a string like "8GB"; checked before allocating. Several
            initial-magnetization nodes are solved in batches that fit it, with the same
            numbers (§5.7; attr `node_batches`); `dmft.MemoryLimitError` if one node does
            not fit (or, with resume_from and `solve_state`, which hold every node, if
            all of them do not). Batches are also kept within `dmft.solver.
            NODE_BATCH_BYTES` (1 GB), which is faster for large nodes (§5.7).
        resume_from: a `dmft.Solver` (e.g. `ds.attrs` cannot hold the state; use
            `dmft.Solver(...).advance(t)` or `solve_state`) from a shorter solve of the same
            problem; the pass continues from its last step (the early part is unchanged).
        max_iterations, damping, tolerance: iterative method only (§5.2): stop when the
            relative Frobenius change of every kernel is below `tolerance`.
        target_error: None (default), or grow the solve to this precision (§5.8): batches of
            fresh independent groups (same group and response sizes, their own random
            streams) are added until `gen_error_mc_error` is <= target_error at every t,
            or until `cost_limit` stops it. attrs `precision_reached` (the largest
            gen_error_mc_error), `target_met` (1 or 0), `batches`, `cpu_seconds`.
        cost_limit: CPU seconds (this process, all threads) that a solve grown to
            target_error may spend; None: no limit. A batch that would pass it is made
            smaller or not solved.

    Returns: xarray.Dataset, dims (time,) for gen_error, train_loss, train_acc, norm2,
        magnetization (three-cluster: mean |m|), active_fraction, norm2_sigma (C_Sigma,
        which gen_error uses), initial_response Y and their `*_mc_error`; (level, time) for
        magnetization_level, norm2_level (and `*_mc_error`; one level without covariance);
        (time, time_prime) for correlation C, response G, memory_kernel M_R and
        noise_kernel M_C; attrs: Problem fields, method, n_samples, wall_time, settings,
        `status` ("success" or "diverged"), `message` and `failure_time` (NaN on success;
        like scipy's solve_ivp, a diverged solve keeps its values before failure_time and
        is NaN from it on, §5.6) and, for the iterative method, `converged`, `iterations`
        and `kernel_change`.
    """
    settings = dict(d=d, magnetization_nodes=magnetization_nodes,
                    magnetization_rule=magnetization_rule,
                    initial_magnetizations=initial_magnetizations, n_samples=n_samples,
                    n_replicas=n_replicas, response_samples=response_samples,
                    response_window=response_window, time_step=time_step, seed=seed,
                    backend=backend, response_dtype=response_dtype, memory_limit=memory_limit)
    if method not in METHODS:
        raise ValueError(f"method = {method!r} must be one of {METHODS}")
    check_target(target_error, cost_limit)
    if target_error is not None:
        if method != "causal" or resume_from is not None:
            raise ValueError("target_error grows a causal solve from scratch: use it with "
                             "method='causal' and resume_from=None")
        return solve_to_target(problem, settings, _solve_in_node_batches, target_error,
                               cost_limit)
    if method == "iterative":
        if resume_from is not None:
            raise ValueError("resume_from works with method='causal' only")
        return _solve_iterative(problem, settings, max_iterations, damping, tolerance)
    if resume_from is not None:
        return to_dataset(solve_state(problem, resume_from=resume_from, **settings), "causal")
    return _solve_in_node_batches(problem, settings)


def _solve_in_node_batches(problem: Problem, settings: dict) -> xr.Dataset:
    """The causal pass, one batch of initial-magnetization nodes after another (§5.7).

    The nodes are independent solves with their own random streams, so the result does
    not depend on the batch size (as many nodes as fit memory_limit); the memory held is
    one batch's plus the node-weighted sums of the outputs.
    """
    probe = Solver(problem, **settings)
    nodes = probe.rule_size
    per_batch = probe.nodes_per_batch(int(round(problem.t_max / probe.grid.eta)))
    if per_batch == nodes:
        return to_dataset(probe.advance(problem.t_max), "causal", node_batches=1)
    del probe
    sums = None
    for start in range(0, nodes, per_batch):
        solver = Solver(problem, node_subset=range(start, min(start + per_batch, nodes)),
                        **settings)
        part = NodeSums(solver.advance(problem.t_max))
        sums = part if sums is None else sums + part
    return assemble(sums, solver, "causal", node_batches=-(-nodes // per_batch))


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
                      converged=bool(change < tolerance),
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
