"""A DMFT solve grown to a precision target (docs/theory.md §5.8).

    dmft.solve(problem, target_error=3e-4, cost_limit=600)

The groups of a solve are independent (§5.1), so a solve can grow the way a simulation
store grows with more seeds: after the first solve (the settings as given), batches of
fresh groups (same group size, same response samples per group, their own random streams)
are solved and combined until the reported Monte-Carlo error of gen_error is at most
`target_error` at every t, or until the next batch would exceed `cost_limit` CPU seconds.

Combining batches b with R_b groups per node (batch means xbar_b, errors e_b):

    xbar = sum_b R_b xbar_b / sum_b R_b,      e^2 = sum_b (R_b / sum_b R_b)^2 e_b^2,

the mean and standard error of independent estimates weighted by their groups (each e_b
is the replica standard error of its batch, §5.1; for the three-cluster node average,
already the node-weighted one). The kernels and matrices are averaged with the same
weights.
"""

from __future__ import annotations

import math
import time as timer

import numpy as np
import xarray as xr

from .solver import Solver, parse_bytes

BATCH_ENTROPY = 20  # batch b >= 1 draws from SeedSequence([seed, BATCH_ENTROPY, b])
BATCH_GROWTH = 2  # an extra batch has at most this many times the first batch's groups
SUMMED_ATTRS = ("groups", "n_samples", "wall_time", "noise_rows_rescaled")


def check_target(target_error, cost_limit) -> None:
    """ValueError for a target or cost limit that is not a positive number."""
    for name, value in (("target_error", target_error), ("cost_limit", cost_limit)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} = {value!r} must be a positive number or None")
    if cost_limit is not None and target_error is None:
        raise ValueError("cost_limit bounds a solve grown to target_error; give target_error")


def precision_reached(ds: xr.Dataset) -> float:
    """The largest reported Monte-Carlo error of gen_error over t (NaN steps ignored)."""
    err = ds.gen_error_mc_error.values
    return float(np.nanmax(err)) if np.isfinite(err).any() else math.inf


def solve_to_target(problem, settings: dict, solve_batch, target_error: float,
                    cost_limit: float | None) -> xr.Dataset:
    """`solve_batch(problem, settings)` repeated with fresh groups until the target is met.

    Each extra batch has the groups that the error's 1/sqrt(groups) law says are missing
    (at least 2 per node; at most BATCH_GROWTH times the first batch's, so that a batch
    holds about the memory of a plain solve, and what memory_limit holds), or fewer if
    cost_limit would be exceeded; the cost is the CPU time of this process (all threads).
    """
    start = timer.process_time()
    batches = [solve_batch(problem, settings)]
    combined = batches[0]
    batch = 0
    while precision_reached(combined) > target_error and combined.attrs["status"] == "success":
        replicas = _missing_replicas(combined, target_error)
        replicas = min(replicas, BATCH_GROWTH * _replicas(batches[0]),
                       _replicas_in_memory(problem, settings, combined))
        if cost_limit is not None:
            spent = timer.process_time() - start
            per_group = spent / _replicas(combined)  # CPU seconds per group so far
            replicas = min(replicas, int((cost_limit - spent) / per_group))
        if replicas < 2:
            break
        batch += 1
        batches.append(solve_batch(problem, _batch_settings(settings, combined, replicas,
                                                            batch)))
        combined = combine(batches)
    return _with_precision(combined, target_error, cost_limit,
                           timer.process_time() - start, len(batches))


def _replicas(ds: xr.Dataset) -> int:
    return int(ds.attrs["setting_n_replicas"])


def _missing_replicas(ds: xr.Dataset, target_error: float) -> int:
    """Groups per node still needed if the error falls as 1/sqrt(groups)."""
    ratio = (precision_reached(ds) / target_error) ** 2
    return max(2, math.ceil(_replicas(ds) * (ratio - 1)))


def _replicas_in_memory(problem, settings: dict, ds: xr.Dataset) -> int:
    """Most groups per node whose solve fits memory_limit (one node at least, §5.7)."""
    probe = Solver(problem.replace(t_max=problem.eta),
                   **_batch_settings(settings, ds, 2, 0))
    n_steps = int(round(problem.t_max / probe.grid.eta))
    per_replica = probe.memory_estimate(n_steps) / len(probe.m0) / 2
    return int(parse_bytes(settings["memory_limit"]) // per_replica)


def _batch_settings(settings: dict, ds: xr.Dataset, replicas: int, batch: int) -> dict:
    """Settings of extra batch `batch`: `replicas` groups per node of the first batch's size."""
    seed = settings["seed"]
    return dict(settings, n_replicas=replicas,
                n_samples=replicas * int(ds.attrs["samples_per_group"]),
                response_samples=replicas * int(ds.attrs["response_samples_per_group"]),
                seed=[int(seed), BATCH_ENTROPY, batch] if batch else seed)


def combine(batches: list[xr.Dataset]) -> xr.Dataset:
    """The group-weighted combination of independent batches (module docstring)."""
    weights = np.array([_replicas(ds) for ds in batches], dtype=float)
    weights /= weights.sum()
    out = batches[0].copy()
    for name in out.data_vars:
        if name.endswith("_mc_error"):
            value = np.sqrt(sum(w * w * ds[name] ** 2 for w, ds in zip(weights, batches)))
        else:
            value = sum(w * ds[name] for w, ds in zip(weights, batches))
        out[name] = value.assign_attrs(batches[0][name].attrs)
    out.attrs = dict(batches[0].attrs)
    for key in SUMMED_ATTRS:
        out.attrs[key] = type(batches[0].attrs[key])(sum(ds.attrs[key] for ds in batches))
    out.attrs["setting_n_replicas"] = int(sum(_replicas(ds) for ds in batches))
    failed = [ds for ds in batches if ds.attrs["status"] != "success"]
    if failed:
        first = min(failed, key=lambda ds: ds.attrs["failure_time"])
        out.attrs.update({k: first.attrs[k] for k in ("status", "message", "failure_time")})
    return out


def _with_precision(ds: xr.Dataset, target_error, cost_limit, cpu_seconds: float,
                    batches: int) -> xr.Dataset:
    reached = precision_reached(ds)
    ds.attrs.update(target_error=float(target_error),
                    cost_limit="none" if cost_limit is None else float(cost_limit),
                    precision_reached=reached, target_met=int(reached <= target_error),
                    cpu_seconds=cpu_seconds, batches=batches)
    return ds
