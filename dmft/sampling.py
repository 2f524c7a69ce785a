"""Effective samples of the single-sample process (docs/theory.md §3.1, §5.1, §6.6).

Samples are arranged in independent groups (replicas x initial-magnetization nodes), each
of `n` samples; inside a group, sample i < n/2 and sample i + n/2 are antithetic partners.
"""

from __future__ import annotations

import math

import numpy as np

from sims.problem import labels


def check_group_size(n: int, name: str) -> None:
    if n < 4 or n % 4:
        raise ValueError(f"{name} per group = {n} must be a positive multiple of 4 "
                         "(balanced clusters and antithetic pairs, docs/theory.md §5.1)")


def draw_inputs(model: str, delta: float, groups: int, n: int, rng: np.random.Generator):
    """Cluster c, label y, and u = c + sqrt(Delta) zeta for each sample, shape (groups, n).

    §5.1 variance reduction: the base half alternates clusters (two-cluster: +1, -1;
    three-cluster: 0, +1) and the partner half is (c, zeta) -> (-c, -zeta) for the
    three-cluster model (Z2 antithetic pairs) or (c, -zeta) for the two-cluster model
    (antithetic zeta within a cluster). Hence clusters are exactly balanced and
    E_N[zeta] = E_N[c zeta] = 0 in every group.
    """
    c, y, zeta = draw_levels(model, groups, n, 1, rng)
    return c, y, c + math.sqrt(delta) * zeta[:, 0]


def draw_levels(model: str, groups: int, n: int, levels: int, rng: np.random.Generator):
    """Cluster c, label y (groups, n) and one zeta_a per covariance level (groups, levels, n)
    (dmft-extensions §3), with the antithetic pairs of `draw_inputs` (partners flip every
    zeta_a; three-cluster partners flip c too, dmft-extensions §4)."""
    half = n // 2
    base = np.tile(np.arange(half) % 2, (groups, 1))
    c_base = np.where(base == 0, 1.0, -1.0) if model == "two_cluster" else base.astype(float)
    zeta = np.stack([rng.standard_normal((groups, half)) for _ in range(levels)], axis=1)
    partner_c = c_base if model == "two_cluster" else -c_base
    c = np.concatenate([c_base, partner_c], axis=1)
    zeta = np.concatenate([zeta, -zeta], axis=2)
    return c, labels(model, c), zeta


def shared_draws(model: str, values: np.ndarray) -> np.ndarray:
    """Expand per-draw randomness (h0, chain uniforms; three-cluster: noise normals) to all samples.

    Antithetic partners (sample i and i + n/2) share them, in both models: three-cluster
    partners (c, zeta) <-> (-c, -zeta) so that m = 0 keeps them identical (§5.1);
    two-cluster partners (c, zeta) <-> (c, -zeta) so that the zeta-odd parts of mu, M_C and
    M_R cancel exactly pair by pair (at the first step mu_0 = -alpha b/2 exactly, §6.2: the
    largest Monte-Carlo error of gen_error at early times is gone).
    """
    return np.concatenate([values, values], axis=-1)


def draws_per_group(model: str, n: int) -> int:
    """Number of independent draws per group for shared randomness (see `shared_draws`)."""
    return n // 2


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


def response_subset(n: int, n_response: int) -> np.ndarray:
    """Indices of the samples carrying a response path T (§3.2): antithetic pairs kept whole."""
    half, quarter = n // 2, n_response // 2
    return np.concatenate([np.arange(quarter), half + np.arange(quarter)])


class NodeStreams:
    """Random draws with one independent stream per initial-magnetization node (§5.7).

    Every draw has shape (groups, ...) with the groups node-major (node i holds groups
    i * replicas ... (i + 1) * replicas - 1). The rows of node i come from the stream
    SeedSequence(seed, spawn_key=(i,)), so a solver that holds any subset of the nodes draws
    for each of them exactly what a solver holding all of them draws: the nodes can be
    solved in batches without changing a number. Offers the two `numpy.random.Generator`
    methods the solver uses.
    """

    def __init__(self, seed: int, nodes, replicas: int):
        self.replicas = replicas
        self.generators = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(i),)))
                           for i in nodes]

    def standard_normal(self, shape) -> np.ndarray:
        return self._draw("standard_normal", shape)

    def random(self, shape) -> np.ndarray:
        return self._draw("random", shape)

    def _draw(self, method: str, shape) -> np.ndarray:
        shape = tuple(shape)
        if shape[0] != len(self.generators) * self.replicas:
            raise ValueError(f"draws of shape {shape}: the first axis must be the "
                             f"{len(self.generators) * self.replicas} groups")
        rest = (self.replicas,) + shape[1:]
        return np.concatenate([getattr(g, method)(rest) for g in self.generators])
