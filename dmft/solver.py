"""The causal pass of the discrete DMFT (docs/theory.md §3, §5.3).

One `Solver` holds N effective samples of the single-sample process (§3.1), split into
independent groups (replicas, and for the three-cluster model initial-magnetization nodes,
§6.6). Each group has its own kernels (§3.2), estimated row by row from its own samples:
at step k everything depends only on steps <= k, so one pass is exact (no iteration).
Replicas give the Monte-Carlo error of every curve.
"""

from __future__ import annotations

import copy
import math
import re
import time as timer

import numpy as np

from sims.problem import Problem, Selection, sample_loss, sample_loss_prime, \
    sample_loss_second, correct
from . import magnetization, response, sampling
from .history import Histories
from .noise import NestedCholesky

KERNELS = ("lam_hat", "mu", "noise", "memory")


class MemoryLimitError(ValueError):
    """The solve would need more memory than the `memory_limit` setting allows."""


def parse_bytes(limit) -> float:
    """Bytes from a number or a string such as "8GB", "500 MB", "1.5GiB"."""
    if isinstance(limit, (int, float)):
        return float(limit)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(i?)B?\s*", str(limit), re.IGNORECASE)
    if not match:
        raise ValueError(f"memory_limit = {limit!r}: use bytes or a string like '8GB'")
    base = 1024 if match.group(3) else 1000
    return float(match.group(1)) * base ** " KMGT".index(match.group(2).upper() or " ")


def _per_group(total: int, groups: int, name: str) -> int:
    n = 4 * max(1, round(total / groups / 4))
    sampling.check_group_size(n, name)
    return n


DEFAULTS = dict(d=None, magnetization_nodes=8, magnetization_rule="escape",
                initial_magnetizations=None, n_samples=None,
                n_replicas=None, response_samples="auto", response_window=16, time_step=None,
                seed=0, backend="numba", response_dtype="float32", memory_limit="8GB")
GROUP_SIZE = 4096  # samples per group when n_samples is None (a power of 2: a Sobol net, §5.10)
# samples per group of a node average when n_samples is None: through the three-cluster
# escape window (Fig. 2 right, t <= 20) groups of 2048 and 4096 agree within 1e-4 (§5.10)
NODE_GROUP_SIZE = 2048
RESPONSE_PER_NODE = 512  # response samples per node (all replicas) of node averages (§5.10)
RESPONSE_PER_GROUP = 1024  # response samples per group of a one-node solve, "auto" (§5.8, §5.10)
# Working set of one batch of initial-magnetization nodes (§5.7): smaller batches run faster
# once a node's arrays are large (Fig. 2 right, K = 1000, groups of 4000, 2 cores: one node
# per batch 33-35 s wall and 0.9 GB, all 8 at once 42-47 s and 4.2 GB), and cost a Python
# pass each (K = 100: 2.8 s in 8 batches against 1.8 s in one), so nodes are grouped up to
# this size
NODE_BATCH_BYTES = 1e9


def _resolve_counts(settings: dict, nodes: int) -> None:
    """n_replicas None: 4 groups for one node, 2 per node when averaging over several
    initial magnetizations (the node average then combines 2 x nodes groups); n_samples
    None: GROUP_SIZE samples per group with one node, NODE_GROUP_SIZE with several;
    response_samples "auto": RESPONSE_PER_GROUP per group with one node (whose late-time
    error of gen_error is the M_R noise, docs/theory.md §5.8, §5.10), RESPONSE_PER_NODE per
    node for node averages."""
    if settings["n_replicas"] is None:
        settings["n_replicas"] = 4 if nodes == 1 else 2
    if settings["n_samples"] is None:
        settings["n_samples"] = (GROUP_SIZE if nodes == 1 else NODE_GROUP_SIZE) \
            * settings["n_replicas"]
    if settings["response_samples"] == "auto":
        settings["response_samples"] = (RESPONSE_PER_GROUP * settings["n_replicas"]
                                        if nodes == 1 else RESPONSE_PER_NODE)


def _check_response_samples(value) -> None:
    if value is None or (isinstance(value, str) and value == "auto"):
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"response_samples = {value!r} must be 'auto', None (every sample) "
                         "or an integer >= 1")


class Solver:
    """Causal pass of §5.3 for one Problem; `advance(t_max)` runs or extends it.

    The samples (§5.1, §5.10) are drawn at the first `advance`: a solver made only for its
    layout (groups, memory estimate, node batches: `dmft.cost`, `dmft.solve`'s probes) costs
    no draws.

    Settings (see `dmft.solve` for their meaning and DEFAULTS for their defaults): d,
    magnetization_nodes, initial_magnetizations, n_samples, n_replicas, response_samples,
    response_window, time_step, seed, backend, response_dtype, memory_limit.
    `kernels` (iterative method, §5.2): if given, the dynamics uses these kernels instead
    of the ones estimated on the fly; the estimates are still recorded (`estimates()`).
    `node_subset` (indices into the initial-magnetization rule; None: all nodes): solve
    only these nodes, with the random numbers they get in a solve of all nodes (§5.7).
    """

    # one level, no momentum; `ExtendedSolver` (dmft/extended.py) overrides these
    beta = gamma = 0.0
    levels = 1
    variances = fractions = np.ones(1)

    def __new__(cls, problem: Problem | None = None, **kwargs):
        """A problem with momentum or covariance levels gets an `ExtendedSolver`."""
        if cls is Solver and problem is not None and needs_extension(problem):
            from .extended import ExtendedSolver
            return super().__new__(ExtendedSolver)
        return super().__new__(cls)

    def __init__(self, problem: Problem, *, kernels=None, node_subset=None, **settings):
        unknown = sorted(set(settings) - set(DEFAULTS))
        if unknown:
            raise TypeError(f"unknown DMFT setting(s) {unknown}; allowed: {sorted(DEFAULTS)}")
        settings = {**DEFAULTS, **settings}
        backend = settings["backend"]
        if backend not in ("numba", "numpy"):
            raise ValueError(f"backend = {backend!r} must be 'numba' or 'numpy'")
        _check_window(settings["response_window"])
        _check_response_samples(settings["response_samples"])
        self.problem = problem
        self.grid = _grid_problem(problem, settings["time_step"])
        self.settings = settings
        d = settings["d"]
        nodes = settings["magnetization_nodes"]
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise ValueError(f"magnetization_nodes = {nodes!r} must be an integer >= 1")
        if settings["initial_magnetizations"] is not None:  # a list in the attrs
            settings["initial_magnetizations"] = [float(m) for m in
                                                  np.ravel(settings["initial_magnetizations"])]
        m0, weights = magnetization.initial_magnetization_nodes(
            problem.model, problem.R, d, nodes, settings["magnetization_rule"],
            settings["initial_magnetizations"])
        self.rule_size = len(m0)
        self.node_subset = _node_subset(node_subset, self.rule_size)
        self.m0, self.node_weights = m0[self.node_subset], weights[self.node_subset]
        _resolve_counts(settings, self.rule_size)
        n_samples, n_replicas = settings["n_samples"], settings["n_replicas"]
        response_samples = settings["response_samples"]
        if n_replicas < 2:
            raise ValueError("n_replicas must be >= 2 (the Monte-Carlo error comes from them)")
        self.groups = len(self.m0) * n_replicas
        self.n = _per_group(n_samples, n_replicas, "n_samples / n_replicas")
        self.n_response = _per_group(min(response_samples or n_samples, n_samples),
                                     n_replicas, "response_samples / n_replicas")
        self.n_response = min(self.n_response, self.n)
        self.response_index = sampling.response_subset(self.n, self.n_response)
        self.selection = Selection([self.grid])  # the simulator's law of s (§1, §9.2)
        self.given = kernels
        self.k = 0
        self.failure = None  # (step, message) once the pass stopped at a non-finite step
        self.capacity = -1  # no step-indexed arrays and no samples yet: both come at the
        self.wall_time = 0.0  # first advance, so a solver made for its layout is cheap

    # ---------------------------------------------------------------- initial state
    def _init_samples(self, seed):
        p = self.grid
        self.rng = sampling.Streams(seed, None if self.rule_size == 1 else self.node_subset,
                                    self.settings["n_replicas"])
        self.sobol = sampling.SobolDraws(p.model, self.rng, self.groups, self.n, self.levels)
        self._draw_inputs()
        self.h = math.sqrt(p.R) * self._initial_fields()
        if self.selection.fixed:  # gd: s = 1, flow: s = b; the uniforms are not read
            self.s = self.selection.initial(np.zeros((self.groups, self.n)))
        else:
            self.s = self.selection.initial(self._shared(
                lambda shape: sampling.stratified_uniforms(self.rng, shape)))
        self.z_next = self._noise_draws(np.zeros(self.groups, dtype=np.int64), 0)
        self.m_start = np.repeat(self.m0, self.settings["n_replicas"])

    def _draw_inputs(self):
        """c, y and u = c + sqrt(Delta) zeta, (groups, n) (§2, §3.1)."""
        self.c, self.y = self.sobol.clusters()
        self.u = self.c + math.sqrt(self.grid.delta) * self.sobol.zeta()[:, 0]

    def _initial_fields(self):
        """Standard normals of h(0), (groups, n) (antithetic partners share them, §5.1)."""
        return self.sobol.initial_fields()[:, 0]

    def _shared(self, draw):
        """draw((groups, n/2)) for one sample of each antithetic pair, given to both."""
        return sampling.shared_draws(draw((self.groups, sampling.draws_per_group(self.n))))

    def _noise_draws(self, slots: np.ndarray, k: int) -> np.ndarray:
        """Normals z of step k's noise slot, (groups, n); see `_level_noise`."""
        return self._level_noise(slots, k)[:, 0]

    def _level_noise(self, slots: np.ndarray, k: int) -> np.ndarray:
        """Normals z of step k's noise slot (`slots`: the groups' next free slots) per
        level, (groups, levels, n): Sobol' coordinates, pseudo-random from slot
        QMC_NOISE_SLOTS on (§5.10), drawn at every step from k = QMC_NOISE_SLOTS on whatever
        the slots, so that a node's stream does not depend on its batch (§5.7); antithetic
        partners as in `sampling.SobolDraws`."""
        fallback = None
        if k >= sampling.QMC_NOISE_SLOTS:
            draws = sampling.draws_per_group(self.n)
            fallback = self.rng.standard_normal((self.groups, self.levels, draws))
        return self.sobol.noise(slots, fallback)

    def memory_estimate(self, n_steps: int) -> float:
        """Bytes held for a solve of n_steps steps: response paths (§5.5), sample histories,
        Sobol' points (§5.10), step x step matrices."""
        size, G = n_steps + 1, self.groups
        paths = self._paths_nbytes(n_steps)
        histories = Histories.nbytes(G, self.n, n_steps, self.settings["response_dtype"],
                                     self.levels)
        square = 10 * G * size * size * 8  # kernels, Cholesky factors, result matrices
        return paths + histories + sampling.SobolDraws.nbytes(G, self.n, self.levels) + square

    def nodes_per_batch(self, n_steps: int) -> int:
        """Initial-magnetization nodes that one solve of n_steps holds within NODE_BATCH_BYTES
        and memory_limit (at least 1; every node needs the same memory, §5.7)."""
        per_node = self.memory_estimate(n_steps) / len(self.m0)
        limit = min(parse_bytes(self.settings["memory_limit"]), NODE_BATCH_BYTES)
        return int(min(len(self.m0), max(1, limit // per_node)))

    def _paths_nbytes(self, n_steps: int) -> int:
        return response.ResponsePaths.nbytes(self.groups, self.n_response, n_steps,
                                             self.settings["response_window"],
                                             self.settings["response_dtype"])

    def _reserve(self, n_steps: int):
        """Grow every step-indexed array to hold steps 0..n_steps (checks memory_limit)."""
        if n_steps <= self.capacity:
            return
        need, limit = self.memory_estimate(n_steps), parse_bytes(self.settings["memory_limit"])
        if need > limit:
            raise MemoryLimitError(
                f"the DMFT solve of {len(self.m0)} initial-magnetization node(s) to {n_steps} "
                f"steps needs about {need / 1e9:.2f} GB, more than "
                f"memory_limit = {self.settings['memory_limit']!r}; raise memory_limit, or lower "
                f"n_samples (now {self.n * self.settings['n_replicas']} per node) or "
                f"response_samples (now {self.n_response * self.settings['n_replicas']}), or "
                f"use response_dtype='float32'")
        size, G, n = n_steps + 1, self.groups, self.n
        for name, shape in self._shapes(size).items():
            new = np.zeros(shape)
            if self.capacity >= 0:
                old = getattr(self, name)
                new[tuple(slice(0, s) for s in old.shape)] = old
            setattr(self, name, new)
        if self.capacity < 0:
            self._init_samples(self.settings["seed"])
            self.m[0] = self.m_start.reshape(self.m.shape[1:2] + (1,) * (self.m.ndim - 2))
            self.histories = self._new_histories(n_steps)
            self.histories.record(0, z=self.z_next)
            self.cholesky = NestedCholesky(G, size)
            self.paths = self._new_paths(n_steps)
        else:
            self.cholesky.grow(size)
            self.histories.grow(n_steps)
            self.paths.grow(n_steps)
        self.capacity = n_steps

    def _shapes(self, size: int) -> dict:
        """Shapes of the step-indexed arrays for steps 0..size-1."""
        G = self.groups
        return dict(m=(size, G), lam_hat=(size, G), mu=(size, G), loss=(size, G),
                    acc=(size, G), active=(size, G), noise=(G, size, size),
                    memory=(G, size, size))

    def _new_histories(self, n_steps: int) -> Histories:
        return Histories(self.groups, self.n, n_steps, self.settings["response_dtype"])

    def _new_paths(self, n_steps: int):
        return response.ResponsePaths(
            self.groups, self.n_response, n_steps, self.settings["response_window"],
            self.settings["response_dtype"], self.settings["backend"])

    # ---------------------------------------------------------------- the causal pass
    def advance(self, t_max: float) -> "Solver":
        """Run the causal pass up to t_max (time of the grid, k * eta); extends a previous run.

        A pass that cannot stay finite stops at the last finite step: `failure` then holds
        (step, message), and the result has NaN after it (like scipy's solve_ivp).
        """
        start = timer.perf_counter()
        n_steps = int(round(t_max / self.grid.eta))
        self.target = max(getattr(self, "target", 0), n_steps)
        self._reserve(n_steps)
        for k in range(self.k, n_steps):
            if self.failure is not None:
                break
            self._measure(k)
            self._step(k)
        if self.failure is None:
            self._measure(n_steps)
            self.k = max(self.k, n_steps)
        self.wall_time += timer.perf_counter() - start
        return self

    def _used(self, name):
        return self.given[name] if self.given is not None else getattr(self, name)

    def _measure(self, k: int):
        """Fields, observables and kernel rows at step k (§3.1, §3.2, §3.4); idempotent."""
        p = self.grid
        ad = p.alpha * p.delta
        r, r_w, h = self._preactivations(k)
        self.g = self.s * sample_loss_prime(p.model, self.y, r, p.L, p.loss)  # real s, §9.2
        self.q = self.s * sample_loss_second(p.model, self.y, r, p.L, p.loss)
        self.loss[k] = sample_loss(p.model, self.y, r_w, p.L, p.loss).mean(axis=1)
        self.acc[k] = correct(p.model, self.y, r_w, p.L).mean(axis=1)
        self.active[k] = self.s.mean(axis=1)
        self.histories.record(k, h=h, g=self.g)
        self.lam_hat[k] = ad * self.q.mean(axis=1)
        row = ad * self.histories.gram_row(k)
        self.noise[:, k, :k + 1] = row
        self.noise[:, :k + 1, k] = row
        self.memory[:, k, :k] = self.paths.memory_row(k, self.q[:, self.response_index], ad)
        self.mu[k] = self._signal_force(k)

    def _preactivations(self, k: int):
        """(r at the gradient point, r of the iterate w_k, the field h to record) at step k."""
        r = math.sqrt(self.grid.delta) * self.h + self.m[k][:, None] * self.u
        return r, r, self.h

    def _signal_force(self, k: int) -> np.ndarray:
        """mu_k = alpha E[g_k (c + sqrt(Delta) zeta)] (§3.2)."""
        return self.grid.alpha * _pair_mean(self.g * self.u)

    def _step(self, k: int):
        """Advance h, m, T and the selection chain from step k to k+1 (§3.1, §3.2)."""
        p, eta = self.grid, self.grid.eta
        lam_hat, memory = self._used("lam_hat")[k][:, None], self._used("memory")[:, k, :k]
        factor = self.cholesky.add_row(k, self._used("noise")[:, k, :k + 1])
        xi, recall = self.histories.noise_and_recall(k, factor, memory)
        h = self.h - eta * ((p.lam + lam_hat) * self.h + math.sqrt(p.delta) * self.g
                            - eta * recall - xi)
        m = self.m[k] - eta * (p.lam * self.m[k] + self._used("mu")[k])
        if not self._finite(k + 1, h, m):
            return
        self.h, self.m[k + 1] = h, m
        q = self.q[:, self.response_index]
        self.paths.advance(k, 1 - eta * (p.lam + lam_hat + p.delta * q), memory,
                           p.delta * q, eta)
        self._next_selection(k)

    def _next_selection(self, k: int):
        """Selection weights and noise normals of step k + 1; the pass is now at k + 1.

        Chain masks stratify their uniforms by the current state; Gaussian weights are fresh
        each step, so all their samples form one stratum (§5.1, §9.2)."""
        nb = sampling.draws_per_group(self.n)
        if not self.selection.fixed:
            strata = self.s[:, :nb] != 0 if self.selection.binary else None
            self.s = self.selection.step(self.s, self._shared(
                lambda shape: sampling.stratified_uniforms(self.rng, shape, strata)))
        self.histories.record(k + 1, z=self._noise_draws(self.histories.kept, k + 1))
        self.k = k + 1

    def _finite(self, k: int, h: np.ndarray, m: np.ndarray) -> bool:
        """False (and `failure` set) if step k blew up: non-finite or |h| > 1e8."""
        h_max = np.abs(h).max()
        if np.isfinite(h_max) and h_max < 1e8 and np.isfinite(m).all():
            return True
        self.failure = (k, f"DMFT solution diverged at t = {k * self.grid.eta:.4g} (step {k}): "
                           f"max |h| = {h_max:.3g}; lower eta (or time_step), or raise "
                           f"n_samples / response_samples")
        return False

    # ---------------------------------------------------------------- outputs
    def estimates(self) -> dict:
        """Kernels estimated from the samples (§3.2), steps 0..k; see `kernels` of __init__."""
        size = self.k + 1
        return dict(lam_hat=self.lam_hat[:size].copy(), mu=self.mu[:size].copy(),
                    noise=self.noise[:, :size, :size].copy(),
                    memory=self.memory[:, :size, :size].copy())

    def copy(self) -> "Solver":
        return copy.deepcopy(self)

    def level_magnetizations(self, size: int) -> np.ndarray:
        """m_a at steps 0..size-1, shape (size, groups, levels)."""
        return self.m[:size, :, None]


def _node_subset(subset, rule_size: int) -> np.ndarray:
    if subset is None:
        return np.arange(rule_size)
    subset = np.asarray(subset, dtype=int)
    if subset.ndim != 1 or len(subset) == 0 or len(np.unique(subset)) != len(subset) \
            or subset.min() < 0 or subset.max() >= rule_size:
        raise ValueError(f"node_subset = {subset.tolist()} must be distinct node indices in "
                         f"0..{rule_size - 1}")
    return subset


def needs_extension(problem: Problem) -> bool:
    """True if the problem has momentum or several covariance levels (dmft-extensions §3)."""
    return problem.momentum != 0 or len(problem.level_fractions) > 1


def _pair_mean(x: np.ndarray) -> np.ndarray:
    """Mean over samples summing antithetic partners first (exact Z2 cancellation, §5.1)."""
    half = x.shape[1] // 2
    return (x[:, :half] + x[:, half:]).sum(axis=1) / x.shape[1]


def _check_window(window) -> None:
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 2):
        raise ValueError(f"response_window = {window!r} must be an integer >= 2 (sources "
                         "followed per octave of time lag, docs/theory.md §5.5) or None "
                         "(follow every source)")


def _grid_problem(problem: Problem, time_step) -> Problem:
    """The problem on the solver's grid: eta -> time_step for the continuous-time limit (§4)."""
    if problem.process == "smf":
        raise ValueError(
            "Problem.process = 'smf' has no DMFT solver: the DMFT of the stochastic modified "
            "flow is the time_step -> 0 limit of Gaussian masks of variance "
            "b (1 - b) eta / time_step (docs/theory.md §9.4), not implemented; "
            "'gauss_sgd' (its Euler-Maruyama scheme at dt = eta) and 'flow' are solved")
    if time_step is None or time_step == problem.eta:
        return problem
    if problem.process in ("sgd", "gauss_sgd"):
        raise ValueError(
            "time_step refines the grid towards the continuous-time limit, which classical "
            f"SGD and its Gaussian-mask form do not have (their noise vanishes as eta -> 0, "
            f"docs/theory.md §1, §9); leave time_step=None for process '{problem.process}'")
    if not time_step > 0:
        raise ValueError(f"time_step = {time_step!r} must be > 0")
    return problem.replace(eta=time_step)
