"""From a solver's state to the project's dataset (docs/theory.md §3.3, §3.4, §6.6).

Per group: weight-side propagator G and correlation C (§3.3), observables (§3.4). Groups
are averaged over replicas (the Monte-Carlo error is the replica standard error) and, for
the three-cluster model, over the initial-magnetization nodes with their weights (§6.6).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import xarray as xr

from sims.datamodel import annotate, dataset_attrs
from sims.problem import generalization_error
from .magnetization import EscapeAverage, escape_law_errors, node_escape_times
from .replicas import node_average
from .solver import Solver
from .weight_side import correlation, propagator

CURVES = ("gen_error", "train_loss", "train_acc", "norm2", "magnetization", "active_fraction",
          "norm2_sigma", "initial_response")
LEVEL_CURVES = ("magnetization_level", "norm2_level")
INITIAL_RESPONSE = dict(
    long_name="initial-condition response Y(t)", units="1",
    description="weight-side response to the initial condition (Y_0 = Y_-1 = 1), "
                "sum_a f_a Y_a; equals response(t, 0) without momentum, dmft-extensions §3.1")
MATRICES = dict(
    correlation=dict(long_name="correlation C(t, t')", units="1",
                     description="w(t).w(t')/d = m m' + C_perp, docs/theory.md §3.3"),
    response=dict(long_name="weight-side response G(t, t')", units="1",
                  description="propagator G(k, j) of a unit kick at j (sum_a f_a G_a over "
                              "covariance levels), docs/theory.md §3.3, dmft-extensions §3.1"),
    memory_kernel=dict(long_name="memory kernel M_R(t, t')", units="1",
                       description="alpha Delta E[q_k T_kj], docs/theory.md §3.2"),
    noise_kernel=dict(long_name="noise kernel M_C(t, t')", units="1",
                      description="alpha Delta E[g_k g_j], docs/theory.md §3.2"),
)


def group_results(solver: Solver):
    """Curves (name -> (k+1, groups)), level curves (name -> (k+1, groups, levels)) and
    matrices (name -> (groups, k+1, k+1)) up to the last step solved, and the first step (or
    None) at which C(t, t) is not finite.

    Per covariance level a (one level without covariance): G_a, Y_a and C_a from the
    level's weight side (dmft-extensions §3.1, scale s_a); C = sum_a f_a C_a,
    C_Sigma = sum_a f_a s_a C_a(t, t), m = sum_a f_a m_a; the test error uses C_Sigma.
    """
    p, size = solver.grid, solver.k + 1
    lam_hat, noise = solver._used("lam_hat")[:size], solver._used("noise")[:, :size, :size]
    memory, m_levels = solver._used("memory")[:, :size, :size], solver.level_magnetizations(size)
    fractions, variances = solver.fractions, solver.variances
    matrices = dict(correlation=[], response=[])
    initial, c_levels = [], []
    for g in range(solver.groups):
        parts = [_level_weight_side(solver, lam_hat[:, g], memory[g], noise[g],
                                    m_levels[:, g, a], s) for a, s in enumerate(variances)]
        matrices["response"].append(sum(f * G for f, (G, _, _) in zip(fractions, parts)))
        initial.append(sum(f * Y for f, (_, Y, _) in zip(fractions, parts)))
        matrices["correlation"].append(sum(f * C for f, (_, _, C) in zip(fractions, parts)))
        c_levels.append([np.diagonal(C).copy() for _, _, C in parts])
    matrices = {name: np.array(value) for name, value in matrices.items()}
    norm2_level = np.array(c_levels).transpose(2, 0, 1)  # (time, groups, levels)
    norm2 = np.diagonal(matrices["correlation"], axis1=1, axis2=2).T
    norm2_sigma = (fractions * variances * norm2_level).sum(axis=2)
    m = (fractions * m_levels).sum(axis=2)
    curves = dict(gen_error=generalization_error(p.model, m, norm2_sigma, p.delta, p.L),
                  train_loss=solver.loss[:size], train_acc=solver.acc[:size], norm2=norm2,
                  magnetization=m, active_fraction=solver.active[:size],
                  norm2_sigma=norm2_sigma, initial_response=np.array(initial).T)
    levels = dict(magnetization_level=m_levels, norm2_level=norm2_level)
    matrices.update(memory_kernel=memory, noise_kernel=noise)
    return curves, levels, matrices, _first_blowup(norm2_sigma)


def _level_weight_side(solver, lam_hat, memory, noise, m, scale):
    """(G_a, Y_a, C_a) of one group and level (dmft-extensions §3.1; docs/theory.md §3.3)."""
    p = solver.grid
    G, Y = propagator(lam_hat, memory, p.lam, p.eta, solver.beta, solver.gamma, scale)
    return G, Y, correlation(G, noise, m, p.R, p.eta, Y, scale)


def _first_blowup(norm2: np.ndarray):
    """First step at which some group's C(t, t) is non-finite or beyond 1e16, or None."""
    bad = ~(np.isfinite(norm2) & (np.abs(norm2) < 1e16))
    return int(np.argmax(bad.any(axis=1))) if bad.any() else None


def _failure(solver: Solver, blowup):
    """(step, message) of the first failure of the pass (§5.6), or None."""
    failures = [] if solver.failure is None else [solver.failure]
    if blowup is not None:
        failures.append((blowup, f"DMFT solution diverged at t = {blowup * solver.grid.eta:.4g} "
                                 f"(step {blowup}): C(t, t) is not finite; lower eta (or "
                                 f"time_step), or raise n_samples / response_samples"))
    return min(failures) if failures else None


def _status(failure, eta: float) -> dict:
    """solve_ivp-like diagnosis: status, message and failure_time (NaN when it succeeded)."""
    if failure is None:
        return dict(status="success", message="reached t_max", failure_time=float("nan"))
    step, message = failure
    return dict(status="diverged", message=message, failure_time=step * eta)


def _pad(values: np.ndarray, valid: int, size: int, axes) -> np.ndarray:
    """Values of steps >= valid set to NaN, and the step axes extended with NaN to size."""
    out = np.full(tuple(size if a in axes else n for a, n in enumerate(values.shape)), np.nan)
    index = tuple(slice(0, min(valid, values.shape[a])) if a in axes else slice(None)
                  for a in range(values.ndim))
    out[index] = values[index]
    return out


class NodeSums:
    """One solve's outputs per initial-magnetization node (§5.7); solves of disjoint nodes
    add up (their nodes are joined).

    Curves: name -> (nodes, time, replicas[, level]); kernels (matrices): the node-weighted
    sum. Values after a failure (§5.6) are NaN.
    """

    def __init__(self, solver: Solver):
        curves, level_curves, matrices, blowup = group_results(solver)
        self.failure = _failure(solver, blowup)
        size = solver.target + 1
        valid = min(solver.k + 1, size if self.failure is None else self.failure[0])
        weights, replicas = solver.node_weights, solver.settings["n_replicas"]
        nodes = len(weights)
        self.m0, self.weights, self.index = solver.m0, weights, solver.node_subset
        self.curves = {}
        for name, values in {**curves, **level_curves}.items():
            values = _pad(values, valid, size, (0,))
            values = values.reshape((size, nodes, replicas) + values.shape[2:])
            self.curves[name] = np.moveaxis(values, 1, 0)
        self.matrices = {}
        for name, values in matrices.items():
            values = _pad(values, valid, size, (1, 2)).reshape((nodes, replicas, size, size))
            self.matrices[name] = np.einsum("j,jrkl->kl", weights, values) / replicas
        self.wall_time = solver.wall_time
        self.groups = solver.groups
        self.rescaled_rows = solver.cholesky.rescaled_rows

    def __add__(self, other: "NodeSums") -> "NodeSums":
        total = copy.copy(self)
        join = lambda a, b: np.concatenate([a, b])  # noqa: E731
        total.m0, total.weights = join(self.m0, other.m0), join(self.weights, other.weights)
        total.index = join(self.index, other.index)
        total.curves = {name: join(value, other.curves[name])
                        for name, value in self.curves.items()}
        total.matrices = {name: value + other.matrices[name]
                          for name, value in self.matrices.items()}
        failures = [f for f in (self.failure, other.failure) if f is not None]
        total.failure = min(failures) if failures else None
        total.wall_time = self.wall_time + other.wall_time
        total.groups = self.groups + other.groups
        total.rescaled_rows = self.rescaled_rows + other.rescaled_rows
        return total

    def averages(self, solver: Solver, time: np.ndarray) -> tuple[dict, dict]:
        """Per curve, the average over m0 and its Monte-Carlo error (§5.9, §6.6), and the
        diagnostics of the escape rule (escape times of the nodes and what gives their
        errors, `escape_law_errors`; empty otherwise).

        The escape rule maps each node's replica curves by `EscapeAverage` (fixed shifts
        from the nodes' mean |m|, so the replica spread of the mapped curves is the error);
        a single node, given magnetizations, the Gauss rule or a failed solve use the plain
        weighted sum.
        """
        replicas, order = solver.settings["n_replicas"], np.argsort(self.index)
        curves, m0, weights = {k: v[order] for k, v in self.curves.items()}, \
            self.m0[order], self.weights[order]
        escape = (len(m0) > 1 and self.failure is None
                  and solver.settings["magnetization_rule"] == "escape"
                  and solver.settings["initial_magnetizations"] is None)
        if escape:
            x = m0 * math.sqrt(solver.settings["d"] / solver.problem.R)
            magnetization = curves["magnetization"]  # (nodes, time, replicas)
            tau, level = node_escape_times(x, time, magnetization.mean(axis=2))
            average = EscapeAverage(x, time, tau)
            mapped = {name: average.apply(values) for name, values in curves.items()}
            diagnostics = dict(node_x=x.tolist(), node_escape_times=tau.tolist(),
                               escape_magnetization=level,
                               **escape_law_errors(time, magnetization, tau, level))
        else:
            mapped = {name: weights.reshape((-1,) + (1,) * (values.ndim - 1)) * values
                      for name, values in curves.items()}
            diagnostics = {}
        return {name: node_average(values, replicas) for name, values in mapped.items()}, \
            diagnostics


def to_dataset(solver: Solver, method: str, **diagnostics) -> xr.Dataset:
    """The dataset of `dmft.solve` from one solver holding every node (see `assemble`)."""
    return assemble(NodeSums(solver), solver, method, **diagnostics)


def assemble(sums: NodeSums, solver: Solver, method: str, **diagnostics) -> xr.Dataset:
    """The dataset of `dmft.solve`: curves (time,), their *_mc_error, kernels (time, time_prime).

    `sums` covers every initial-magnetization node (one solver, or batches added up);
    `solver` is any of them (problem, settings, grid). A pass that diverged keeps every
    value before the failure and NaN from it on; attrs `status` ("success" or "diverged"),
    `message` and `failure_time` say what happened.
    """
    replicas = solver.settings["n_replicas"]
    time = np.arange(solver.target + 1) * solver.grid.eta
    averages, escape = sums.averages(solver, time)
    data = {}
    for name in CURVES + LEVEL_CURVES:
        mean, err = averages[name]
        dims = "time" if name in CURVES else ("level", "time")  # level curves: (time, level)
        data[name] = (dims, mean if name in CURVES else mean.T)
        data[f"{name}_mc_error"] = (dims, err if name in CURVES else err.T, dict(
            long_name=f"Monte-Carlo standard error of {name}", units="1",
            description=f"standard error over {replicas} independent sample groups per "
                        "initial-magnetization node (Welch-Satterthwaite, docs/theory.md "
                        "§5.1, §5.9)"))
    data["initial_response"] += (INITIAL_RESPONSE,)
    for name, attrs in MATRICES.items():
        data[name] = (("time", "time_prime"), sums.matrices[name], attrs)
    ds = xr.Dataset(data, coords=dict(time=time, time_prime=("time_prime", time),
                                      level=np.arange(solver.levels)))
    settings = {k: ("none" if v is None else v) for k, v in solver.settings.items()}
    ds.attrs = dataset_attrs(
        solver.problem, method=method, wall_time=sums.wall_time,
        n_samples=solver.n * replicas, samples_per_group=solver.n,
        response_samples_per_group=solver.n_response, groups=sums.groups,
        grid_eta=solver.grid.eta, noise_rows_rescaled=sums.rescaled_rows,
        **_status(sums.failure, solver.grid.eta), **escape,
        **{f"setting_{k}": v for k, v in settings.items() if k not in ("n_samples",)},
        **diagnostics)
    return annotate(ds)
