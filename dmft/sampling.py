"""Effective samples of the single-sample process (docs/theory.md §3.1, §5.1, §5.10, §6.6).

Samples are arranged in independent groups (replicas x initial-magnetization nodes), each
of `n` samples; inside a group, sample i < n/2 and sample i + n/2 are antithetic partners.
The randomness of a pair that is not the selection chain (cluster, zeta, h(0) and the
normals of the first `QMC_NOISE_SLOTS` noise slots) is one point of a scrambled Sobol' set,
one independent set per group (randomized quasi-Monte Carlo, §5.10).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from sims.problem import labels

# Noise slots (kept pivots of M_C's Cholesky factor, dmft/history.py) whose normals come
# from the Sobol' points; later slots take pseudo-random normals (§5.10)
QMC_NOISE_SLOTS = 256


def check_group_size(n: int, name: str) -> None:
    if n < 4 or n % 4:
        raise ValueError(f"{name} per group = {n} must be a positive multiple of 4 "
                         "(balanced clusters and antithetic pairs, docs/theory.md §5.1)")


def draws_per_group(n: int) -> int:
    """Independent draws (Sobol' points, chain uniforms) per group: one per antithetic pair."""
    return n // 2


def shared_draws(values: np.ndarray) -> np.ndarray:
    """Expand per-pair values (groups, ..., n/2) to both partners (groups, ..., n): h(0) and
    the selection chain's uniforms (and the three-cluster noise normals, `SobolDraws.noise`)."""
    return np.concatenate([values, values], axis=-1)


def response_subset(n: int, n_response: int) -> np.ndarray:
    """Indices of the samples carrying a response path T (§3.2): the pairs of the first
    Sobol' points of the group (a well spread set in its own right, §5.10)."""
    half, quarter = n // 2, n_response // 2
    return np.concatenate([np.arange(quarter), half + np.arange(quarter)])


class SobolDraws:
    """The Sobol' coordinates of every antithetic pair of every group (§5.1, §5.10).

    One scrambled Sobol' set per group (`Streams.sobol`), point i for pair i; coordinates:
    0 the cluster, 1 + a zeta of level a, 1 + levels + a h(0) of level a, then noise slot r
    of level a at 1 + levels (2 + r) + a for r < QMC_NOISE_SLOTS. Partners: two-cluster
    (c, zeta, h0, z) -> (c, -zeta, h0, -z), so that E_n[zeta] = E_n[c zeta] = 0 in every
    group (at the first step mu_0 = -alpha b/2 exactly, §6.2); three-cluster
    (c, zeta, h0, z) -> (-c, -zeta, h0, z), the Z2 images that keep mu = 0 exactly at
    m = 0 (§6.6).
    """

    def __init__(self, model: str, streams, groups: int, n: int, levels: int):
        self.model, self.levels = model, levels
        self.points = streams.sobol(groups, draws_per_group(n), self.dimensions(levels))

    @staticmethod
    def dimensions(levels: int) -> int:
        return 1 + levels * (2 + QMC_NOISE_SLOTS)

    @staticmethod
    def nbytes(groups: int, n: int, levels: int) -> int:
        return groups * draws_per_group(n) * SobolDraws.dimensions(levels) * 8

    def clusters(self):
        """Cluster c and label y, (groups, n): the base half has c = +1, -1 (two-cluster) or
        0, +1 (three-cluster) with probability 1/2 each (§1)."""
        upper = self.points[:, :, 0] >= 0.5
        if self.model == "three_cluster":
            c = np.where(upper, 1.0, 0.0)
            c = np.concatenate([c, -c], axis=1)
        else:
            c = shared_draws(np.where(upper, 1.0, -1.0))
        return c, labels(self.model, c)

    def zeta(self) -> np.ndarray:
        """zeta_a ~ N(0, 1) per level, (groups, levels, n); partners flip it."""
        zeta = self._normals(1 + np.arange(self.levels))
        return np.concatenate([zeta, -zeta], axis=2)

    def initial_fields(self) -> np.ndarray:
        """Standard normals of h(0) per level, (groups, levels, n); partners share them."""
        return shared_draws(self._normals(1 + self.levels + np.arange(self.levels)))

    def noise(self, slots: np.ndarray, fallback) -> np.ndarray:
        """Normals z of the next noise slot per group (`slots`, (groups,)) and level,
        (groups, levels, n): Sobol' coordinates for slots < QMC_NOISE_SLOTS, else the
        pseudo-random `fallback` (groups, levels, n/2), which may be None if no slot needs it."""
        groups = len(slots)
        dims = 1 + self.levels * (2 + np.minimum(slots, QMC_NOISE_SLOTS - 1))[:, None] \
            + np.arange(self.levels)[None, :]
        z = ndtri(self.points[np.arange(groups)[:, None], :, dims])  # (groups, levels, n/2)
        late = slots >= QMC_NOISE_SLOTS
        if late.any():
            z[late] = fallback[late]
        partner = z if self.model == "three_cluster" else -z
        return np.concatenate([z, partner], axis=2)

    def _normals(self, dims) -> np.ndarray:
        return ndtri(np.moveaxis(self.points[:, :, dims], 2, 1))


def stratified_uniforms(rng: np.random.Generator, shape, strata=None) -> np.ndarray:
    """Uniforms for the selection chain, stratified within each group (§5.1 variance reduction).

    Along the last axis, the samples of each stratum (all samples, or those with equal
    `strata` value, e.g. the current s) get u = (rank + U) / size with a uniformly random
    rank permutation: each u is still U(0, 1) given the past (so every sample runs the exact
    chain), but the number of samples activated/deactivated in a step is exact up to one,
    which removes most of the Monte-Carlo noise of the active fraction.
    """
    keys, jitter = rng.random(shape), rng.random(shape)
    strata = np.zeros(shape, dtype=bool) if strata is None else np.asarray(strata, dtype=bool)
    order = np.argsort(keys + 2.0 * strata, axis=-1)  # by stratum, then key
    rank = np.empty(shape, dtype=float)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(shape[-1], dtype=float), shape),
                      axis=-1)
    inactive = (~strata).sum(axis=-1, keepdims=True)
    size = np.where(strata, shape[-1] - inactive, inactive)
    rank = np.where(strata, rank - inactive, rank)
    return (rank + jitter) / size


class Streams:
    """Random draws with one independent stream per initial-magnetization node (§5.7).

    Every draw has shape (groups, ...) with the groups node-major (node i holds groups
    i * replicas ... (i + 1) * replicas - 1). With several nodes the rows of node i come from
    the stream SeedSequence(seed, spawn_key=(i,)), so a solver that holds any subset of the
    nodes draws for each of them exactly what a solver holding all of them draws: the nodes
    can be solved in batches without changing a number. A single-node solve has the plain
    stream SeedSequence(seed). Offers the two `numpy.random.Generator` methods the solver
    uses and the groups' Sobol' sets (§5.10).
    """

    def __init__(self, seed: int, nodes, replicas: int):
        self.replicas = replicas
        sequences = ([np.random.SeedSequence(seed)] if nodes is None else
                     [np.random.SeedSequence(seed, spawn_key=(int(i),)) for i in nodes])
        self.generators = [np.random.default_rng(s) for s in sequences]

    def standard_normal(self, shape) -> np.ndarray:
        return self._draw("standard_normal", shape)

    def random(self, shape) -> np.ndarray:
        return self._draw("random", shape)

    def sobol(self, groups: int, points: int, dims: int) -> np.ndarray:
        """(groups, points, dims) uniforms: per group the first `points` points of its own
        scrambled Sobol' sequence (Owen's scrambling plus a digital shift, scipy.stats.qmc:
        every point is uniform on [0, 1)^dims, the set is a (t, m, dims)-net when `points`
        is a power of 2). scipy.stats is imported here, not with the module: it takes about
        1.5 s, which every process importing dmft would pay (pipeline workers, analysis)."""
        from scipy.stats import qmc
        self._check_groups(groups)
        exponent = max(0, math.ceil(math.log2(points)))
        return np.stack([qmc.Sobol(d=dims, scramble=True, seed=g).random_base2(exponent)[:points]
                         for g in self.generators for _ in range(self.replicas)])

    def _draw(self, method: str, shape) -> np.ndarray:
        shape = tuple(shape)
        self._check_groups(shape[0])
        rest = (self.replicas,) + shape[1:]
        return np.concatenate([getattr(g, method)(rest) for g in self.generators])

    def _check_groups(self, groups: int) -> None:
        if groups != len(self.generators) * self.replicas:
            raise ValueError(f"draws for {groups} groups: the first axis must be the "
                             f"{len(self.generators) * self.replicas} groups")
