"""From a solver's state to the project's dataset (docs/theory.md §3.3, §3.4, §6.6).

Per group: weight-side propagator G and correlation C (§3.3), observables (§3.4). Groups
are averaged over replicas (the Monte-Carlo error is the replica standard error) and, for
the three-cluster model, over the initial-magnetization nodes with their weights (§6.6).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from sims.datamodel import annotate, dataset_attrs
from sims.problem import generalization_error
from .solver import Solver
from .weight_side import correlation, propagator

CURVES = ("gen_error", "train_loss", "train_acc", "norm2", "magnetization", "active_fraction")
MATRICES = dict(
    correlation=dict(long_name="correlation C(t, t')", units="1",
                     description="w(t).w(t')/d = m m' + C_perp, docs/theory.md §3.3"),
    response=dict(long_name="weight-side response G(t, t')", units="1",
                  description="propagator G(k, j) of a unit kick at j, docs/theory.md §3.3"),
    memory_kernel=dict(long_name="memory kernel M_R(t, t')", units="1",
                       description="alpha Delta E[q_k T_kj], docs/theory.md §3.2"),
    noise_kernel=dict(long_name="noise kernel M_C(t, t')", units="1",
                      description="alpha Delta E[g_k g_j], docs/theory.md §3.2"),
)


def group_results(solver: Solver):
    """Curves (name -> (k+1, groups)) and matrices (name -> (groups, k+1, k+1)) up to the
    last step solved, and the first step (or None) at which C(t, t) is not finite."""
    p, size = solver.grid, solver.k + 1
    lam_hat, noise = solver._used("lam_hat")[:size], solver._used("noise")[:, :size, :size]
    memory, m = solver._used("memory")[:, :size, :size], solver.m[:size]
    response_, corr = [], []
    for g in range(solver.groups):
        G = propagator(lam_hat[:, g], memory[g], p.lam, p.eta)
        response_.append(G)
        corr.append(correlation(G, noise[g], m[:, g], p.R, p.eta))
    corr = np.array(corr)
    norm2 = np.diagonal(corr, axis1=1, axis2=2).T
    curves = dict(gen_error=generalization_error(p.model, m, norm2, p.delta, p.L),
                  train_loss=solver.loss[:size], train_acc=solver.acc[:size], norm2=norm2,
                  magnetization=m, active_fraction=solver.active[:size])
    matrices = dict(correlation=corr, response=np.array(response_), memory_kernel=memory,
                    noise_kernel=noise)
    return curves, matrices, _first_blowup(norm2)


def _first_blowup(norm2: np.ndarray):
    """First step at which some group's C(t, t) is non-finite or beyond 1e16, or None."""
    bad = ~(np.isfinite(norm2) & (np.abs(norm2) < 1e16))
    return int(np.argmax(bad.any(axis=1))) if bad.any() else None


def _status(solver: Solver, blowup) -> dict:
    """solve_ivp-like diagnosis: status, message and failure_time (NaN when it succeeded)."""
    eta = solver.grid.eta
    failures = []
    if solver.failure is not None:
        failures.append(solver.failure)
    if blowup is not None:
        failures.append((blowup, f"DMFT solution diverged at t = {blowup * eta:.4g} "
                                 f"(step {blowup}): C(t, t) is not finite; lower eta (or "
                                 f"time_step), or raise n_samples / response_samples"))
    if not failures:
        return dict(status="success", message="reached t_max", failure_time=float("nan"))
    step, message = min(failures)
    return dict(status="diverged", message=message, failure_time=step * eta)


def _pad(values: np.ndarray, valid: int, size: int, axes) -> np.ndarray:
    """Values of steps >= valid set to NaN, and the step axes extended with NaN to size."""
    out = np.full(tuple(size if a in axes else n for a, n in enumerate(values.shape)), np.nan)
    index = tuple(slice(0, min(valid, values.shape[a])) if a in axes else slice(None)
                  for a in range(values.ndim))
    out[index] = values[index]
    return out


def _combine(values: np.ndarray, weights: np.ndarray, replicas: int, axis: int):
    """Replica mean and its standard error, then the weighted sum over nodes.

    The standard error is s / (c4 sqrt(R)): the sample standard deviation s of R replicas
    underestimates sigma by the factor c4(R) = sqrt(2/(R-1)) Gamma(R/2) / Gamma((R-1)/2)
    (0.92 for R = 4), which matters with few replicas.
    """
    shape = values.shape[:axis] + (len(weights), replicas) + values.shape[axis + 1:]
    values = values.reshape(shape)
    mean = values.mean(axis=axis + 1)
    err = values.std(axis=axis + 1, ddof=1) / (_c4(replicas) * np.sqrt(replicas))
    w = weights.reshape((-1,) + (1,) * (mean.ndim - axis - 1))
    return (w * mean).sum(axis=axis), np.sqrt((w ** 2 * err ** 2).sum(axis=axis))


def _c4(replicas: int) -> float:
    return math.sqrt(2 / (replicas - 1)) * math.exp(
        math.lgamma(replicas / 2) - math.lgamma((replicas - 1) / 2))


def to_dataset(solver: Solver, method: str, **diagnostics) -> xr.Dataset:
    """The dataset of `dmft.solve`: curves (time,), their *_mc_error, kernels (time, time_prime).

    A pass that diverged keeps every value before the failure and NaN from it on; attrs
    `status` ("success" or "diverged"), `message` and `failure_time` say what happened.
    """
    curves, matrices, blowup = group_results(solver)
    status = _status(solver, blowup)
    size = solver.target + 1
    valid = min(solver.k + 1, size if blowup is None else blowup)
    weights, replicas = solver.node_weights, solver.settings["n_replicas"]
    time = np.arange(size) * solver.grid.eta
    data = {}
    for name in CURVES:
        mean, err = _combine(curves[name], weights, replicas, axis=1)
        data[name] = ("time", _pad(mean, valid, size, (0,)))
        data[f"{name}_mc_error"] = ("time", _pad(err, valid, size, (0,)), dict(
            long_name=f"Monte-Carlo standard error of {name}", units="1",
            description=f"standard error over {replicas} independent sample groups "
                        "(s / (c4 sqrt(R)), docs/theory.md §5.1)"))
    for name, attrs in MATRICES.items():
        mean = _combine(matrices[name], weights, replicas, 0)[0]
        data[name] = (("time", "time_prime"), _pad(mean, valid, size, (0, 1)), attrs)
    ds = xr.Dataset(data, coords=dict(time=time, time_prime=("time_prime", time)))
    settings = {k: ("none" if v is None else v) for k, v in solver.settings.items()}
    ds.attrs = dataset_attrs(
        solver.problem, method=method, wall_time=solver.wall_time,
        n_samples=solver.n * replicas, samples_per_group=solver.n,
        response_samples_per_group=solver.n_response, groups=solver.groups,
        grid_eta=solver.grid.eta, **status,
        **{f"setting_{k}": v for k, v in settings.items() if k not in ("n_samples",)},
        **diagnostics)
    return annotate(ds)
