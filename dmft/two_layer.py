"""Saad-Solla ODEs of two-layer networks under online SGD (docs/theory.md §8.3).

For one-pass SGD every sample is fresh, so the dynamical mean-field theory has no memory
and closes on the overlaps Q = W W^T/d, M = W W*^T/d (P = W* W*^T/d is constant):

    dM_jr/dt = a1 sum_u c_u I3(j, r*, u)
    dQ_jl/dt = a1 sum_u c_u [I3(j, l, u) + I3(l, j, u)]
             + a2 [sum_uv c_u c_v I4(j, l, u, v) + Delta J2(j, l)]

with the integrals and the readout c of `sims.two_layer` (defined there once), for the
p = `TwoLayerProblem.width(d)` students at the start's d. The finite-d
ODE keeps both terms with a1 = d^theta eta, a2 = d^theta eta^2 at the actual d; the limit ODE
(`limit=True`) uses their d -> infinity limits (`TwoLayerProblem.a1_limit`, `a2_limit`).
Integrated by the embedded Dormand-Prince 5(4) pair with its step chosen by a local error
tolerance (never by d), landing exactly on every recorded time.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import xarray as xr

from sims.two_layer import (TwoLayerProblem, _overlaps_dataset, _width_coord, check_times,
                            curves_dataset, i3, i4, initial_overlaps, j2, time_grid)

REVISION = 1  # raise when a change of these ODEs' solver changes its numbers (stores record it)
RTOL, ATOL = 1e-9, 1e-12  # default local error tolerances of the integrator
_MAX_STEPS = 50_000_000


@numba.njit(cache=True)
def _rhs(state, P, p, a1, a2, noise, out):
    """Time derivative of state = [Q.ravel(), M.ravel()] (the ODEs above) into out."""
    k = P.shape[0]
    n = p + k
    omega = np.empty((n, n))
    for a in range(p):
        for b in range(p):
            omega[a, b] = state[a * p + b]
        for r in range(k):
            omega[a, p + r] = omega[p + r, a] = state[p * p + a * k + r]
    omega[p:, p:] = P
    c = np.empty(n)
    c[:p] = -1.0 / p
    c[p:] = 1.0 / k
    out[:] = 0.0
    if a1 != 0.0:
        for j in range(p):
            for b in range(n):  # sum_u c_u I3(j, b, u) for every field b
                s = 0.0
                for u in range(n):
                    s += c[u] * i3(omega[j, j], omega[u, u], omega[j, b], omega[j, u],
                                   omega[b, u])
                if b < p:
                    out[j * p + b] += a1 * s
                    out[b * p + j] += a1 * s
                else:
                    out[p * p + j * k + b - p] += a1 * s
    if a2 != 0.0:
        for j in range(p):
            for l in range(j, p):
                s = noise * j2(omega[j, j], omega[l, l], omega[j, l])
                for u in range(n):
                    for v in range(u, n):
                        weight = c[u] * c[v] * (1.0 if u == v else 2.0)
                        s += weight * i4(omega[j, j], omega[l, l], omega[u, u], omega[v, v],
                                         omega[j, l], omega[j, u], omega[j, v], omega[l, u],
                                         omega[l, v], omega[u, v])
                out[j * p + l] += a2 * s
                if l != j:
                    out[l * p + j] += a2 * s


# Dormand-Prince 5(4) tableau
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
_A = np.array([
    [0, 0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]])
_B5 = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0])
_B4 = np.array([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])


@numba.njit(cache=True)
def _integrate(state, P, p, a1, a2, noise, times, rtol, atol, max_steps, A, B5, B4, C):
    """Dormand-Prince 5(4) from times[0] through every times[i]; the states (len(times),
    len(state)) and the index of the first time not reached (len(times) if all were)."""
    size = state.shape[0]
    out = np.full((times.shape[0], size), np.nan)
    out[0] = state
    stages = np.zeros((7, size))
    trial = np.empty(size)
    y = state.copy()
    t = times[0]
    h = 1e-3 if times.shape[0] < 2 else min(1e-3, max(times[1] - times[0], 1e-12))
    steps = 0
    _rhs(y, P, p, a1, a2, noise, stages[0])
    for i in range(1, times.shape[0]):
        while t < times[i]:
            steps += 1
            if steps > max_steps:
                return out, i
            last = t + h >= times[i]
            step = times[i] - t if last else h
            for s in range(1, 7):
                for m in range(size):
                    acc = y[m]
                    for r in range(s):
                        acc += step * A[s, r] * stages[r, m]
                    trial[m] = acc
                _rhs(trial, P, p, a1, a2, noise, stages[s])
            error = 0.0
            for m in range(size):
                diff = 0.0
                for r in range(7):
                    diff += (B5[r] - B4[r]) * stages[r, m]
                scale = atol + rtol * max(abs(y[m]), abs(trial[m]))
                error = max(error, abs(step * diff) / scale)
            if not math.isfinite(error):
                h = step / 10
                if h < 1e-14 * max(1.0, t):
                    return out, i
                continue
            if error <= 1.0:
                t = times[i] if last else t + step
                y[:] = trial  # the 7th stage point is the 5th-order solution
                stages[0] = stages[6]  # first same as last
            factor = 0.9 * error ** -0.2 if error > 0 else 5.0
            new_h = step * min(5.0, max(0.2, factor))
            if not (last and error <= 1.0):
                h = new_h
            elif new_h < h:
                h = new_h
            if h < 1e-14 * max(1.0, t):
                return out, i
        out[i] = y
    return out, times.shape[0]


def solve(problem: TwoLayerProblem, d=None, initial: xr.Dataset | None = None,
          limit: bool = False, *, times=None, n_times: int = 121, rtol: float = RTOL,
          atol: float = ATOL) -> xr.Dataset:
    """Integrate the Saad-Solla ODEs of `problem` (docs/theory.md §8.3).

    Args:
        problem: the `sims.TwoLayerProblem`.
        d: the dimension. limit=False: required (a1, a2 at this d). Without `initial`, the
            start is seed 0's initial overlaps at this d (`sims.initial_overlaps`). The ODEs
            have width(d) students (p without d).
        initial: `sims.initial_overlaps(problem, d, seeds)`: one curve per seed (dim seed).
            Its d is used when d is None.
        limit: the d -> infinity ODE (a1_limit, a2_limit). With neither d nor initial it
            starts from Q = P = I, M = 0, a symmetric point: the ODE keeps all students
            alike (M_jr all equal) and never leaves the symmetric plateau.
        times: recorded times (ascending, from 0); default `sims.two_layer.time_grid`.
        rtol, atol: local error tolerances of the Dormand-Prince step control.

    Returns:
        xarray.Dataset like `sims.simulate`: risk (seed, time), Q, M, P, diverged_at (the
        first recorded time not reached when the solution stopped being finite, else NaN).
    """
    if not isinstance(problem, TwoLayerProblem):
        raise TypeError(f"problem must be a sims.TwoLayerProblem, got {type(problem).__name__}")
    if d is None and initial is not None:
        d = initial.attrs.get("d")
    if d is not None:
        d = problem.check_dimension(d, "full")
    if not limit and d is None:
        raise ValueError("d = None is not allowed with limit=False: the finite-d ODE needs "
                         "d (give d, or initial from sims.initial_overlaps, or limit=True)")
    if initial is None:
        initial = (initial_overlaps(problem, d, [0]) if d is not None
                   else _identity_start(problem))
    width = problem.p if d is None else problem.width(d)
    _check_initial(problem, initial, width)
    times = time_grid(problem, d, n_times) if times is None else check_times(times)
    a1, a2 = (problem.a1_limit, problem.a2_limit) if limit else (problem.a1(d), problem.a2(d))
    curves, diverged_at = [], []
    for seed in initial.seed.values:
        start = initial.sel(seed=seed)
        state = np.concatenate([start.Q.values.ravel(), start.M.values.ravel()])
        P = np.ascontiguousarray(start.P.values, dtype=float)
        out, reached = _integrate(state, P, width, a1, a2, problem.noise, times, rtol,
                                  atol, _MAX_STEPS, _A, _B5, _B4, _C)
        curves.append(out)
        diverged_at.append(times[reached] if reached < len(times) else np.nan)
    return _dataset(problem, initial, np.stack(curves), np.array(diverged_at), times, d,
                    limit, a1, a2, rtol, atol, width)


def _identity_start(problem: TwoLayerProblem) -> xr.Dataset:
    p, k = problem.p, problem.k
    omega = np.eye(p + k)[None]
    return _overlaps_dataset(problem, omega, [0], None, 0)


def _check_initial(problem, initial, width):
    shapes = {"Q": (width, width), "M": (width, problem.k), "P": (problem.k, problem.k)}
    for name, shape in shapes.items():
        if name not in initial or initial[name].shape[1:] != shape:
            raise ValueError(f"initial = {initial!r} is not allowed: initial must hold {name} "
                             f"of shape (seed, {shape[0]}, {shape[1]}) for width p = {width}, "
                             f"k = {problem.k} (sims.initial_overlaps at the same d)")


def _dataset(problem, initial, curves, diverged_at, times, d, limit, a1, a2, rtol, atol, p):
    k = problem.k
    seeds = initial.seed.values
    Q = curves[..., :p * p].reshape(len(seeds), len(times), p, p)
    M = curves[..., p * p:].reshape(len(seeds), len(times), p, k)
    ds = curves_dataset(problem, Q, M, initial.P.values, diverged_at, seeds, times)
    return ds.assign_coords(width=_width_coord(p)).assign_attrs(
        d="inf" if d is None else d, limit=int(limit), a1=a1, a2=a2, rtol=rtol, atol=atol,
        solver="dmft.two_layer")
