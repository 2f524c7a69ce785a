"""The causal pass with momentum, Nesterov and input-covariance levels (dmft-extensions §3, §4).

With x^p_k = (1 + gamma) x_k - gamma x_{k-1} (x_{-1} = x_0; gamma = beta for Nesterov,
0 for heavy ball), each effective sample carries one field h_a per covariance level a
(fraction f_a, variance s_a, omega_a = sqrt(f_a s_a)) and one noise path xi_a (independent
normals z_a, the group's Cholesky factor of M_C):

    r_k      = sqrt(Delta) sum_a omega_a (h^p_{a,k} + m^p_{a,k} zeta_a) + m^p_k c,
    h_{a,k+1} = (1 + beta) h_{a,k} - beta h_{a,k-1}
               - eta [(lam + s_a lam_hat_k) h^p_{a,k} - eta s_a sum_{j<k} M_R(k,j) h^p_{a,j}
                      - sqrt(s_a) xi_{a,k} + sqrt(Delta) omega_a g_k],
    m_{a,k+1} = (1 + beta) m_{a,k} - beta m_{a,k-1} - eta (lam m^p_{a,k} + mu_{a,k}).

One level: mu_k = alpha E[g_k (c + sqrt(Delta) zeta)] (the plain estimator). Several levels:
the Stein form (low variance on a small high-variance level),
    mu_{a,k} = s_a [lam_hat_k m^p_{a,k} - eta sum_{j<k} M_R(k,j) m^p_{a,j}] + alpha E[g_k c].
Response paths per level: `response.LevelPaths`. Observables (training loss and accuracy)
use the pre-activation of the iterate w_k (h, m instead of h^p, m^p).

With beta = 0 and one level every update is the plain `Solver`'s, operation for operation
(the extra factors are exact ones and the momentum terms are skipped), so this class gives
the plain solver's numbers bit for bit (tested); `Solver(problem)` picks this class only
for problems with momentum or several levels.
"""

from __future__ import annotations

import math

import numpy as np

from .history import Histories
from .response import LevelPaths
from .solver import Solver, _pair_mean


class ExtendedSolver(Solver):
    """Causal pass of dmft-extensions §4; same settings, outputs and contract as `Solver`."""

    def __init__(self, problem, *, kernels=None, node_subset=None, **settings):
        self.beta, self.gamma = float(problem.momentum), float(problem.gamma)
        self.fractions = np.array(problem.level_fractions, dtype=float)
        self.variances = np.array(problem.level_variances, dtype=float)
        self.omega = np.sqrt(self.variances * self.fractions)
        self.levels = len(self.fractions)
        super().__init__(problem, kernels=kernels, node_subset=node_subset, **settings)

    # ---------------------------------------------------------------- initial state
    def _init_samples(self, seed):
        super()._init_samples(seed)
        self.h_prev = self.h  # w_{-1} = w_0

    def _draw_inputs(self):
        """c, y and the level inputs u_a = c + sqrt(Delta s_a / f_a) zeta_a, (groups, levels, n)."""
        self.c, self.y = self.sobol.clusters()
        scale = np.sqrt(self.grid.delta * self.variances / self.fractions)[:, None]
        self.u = self.c[:, None, :] + scale * self.sobol.zeta()

    def _initial_fields(self):
        return self.sobol.initial_fields()

    def _noise_draws(self, slots, k):
        return self._level_noise(slots, k)

    def _shapes(self, size: int) -> dict:
        shapes = super()._shapes(size)
        for name in ("m", "mu"):
            shapes[name] = (size, self.groups, self.levels)
        shapes["m_point"] = (size, self.groups, self.levels)  # m^p_a
        return shapes

    def _new_histories(self, n_steps: int) -> Histories:
        return Histories(self.groups, self.n, n_steps, self.settings["response_dtype"],
                         self.levels)

    def _new_paths(self, n_steps: int) -> LevelPaths:
        return LevelPaths(self.groups, self.n_response, n_steps,
                          self.settings["response_window"], self.settings["response_dtype"],
                          self.settings["backend"], self.omega, self.beta != 0)

    def _paths_nbytes(self, n_steps: int) -> int:
        return LevelPaths.nbytes(self.groups, self.n_response, n_steps,
                                 self.settings["response_window"],
                                 self.settings["response_dtype"], self.levels, self.beta != 0)

    # ---------------------------------------------------------------- the causal pass
    def _point(self, x, previous):
        """x^p = (1 + gamma) x - gamma x_prev (x itself for heavy ball)."""
        return x if self.gamma == 0 else (1 + self.gamma) * x - self.gamma * previous

    def _preactivation(self, h, m):
        """sqrt(Delta) sum_a omega_a h_a + sum_a f_a m_a u_a, (groups, n)."""
        fields = math.sqrt(self.grid.delta) * self.omega[:, None] * h
        return fields.sum(axis=1) + (self.fractions[:, None] * m[:, :, None] * self.u).sum(axis=1)

    def _preactivations(self, k: int):
        h_point = self._point(self.h, self.h_prev)
        self.m_point[k] = self._point(self.m[k], self.m[max(k - 1, 0)])
        r = self._preactivation(h_point, self.m_point[k])
        r_w = r if self.gamma == 0 else self._preactivation(self.h, self.m[k])
        return r, r_w, h_point

    def _signal_force(self, k: int) -> np.ndarray:
        """mu_{a,k}, (groups, levels): direct with one level, Stein form with several."""
        alpha = self.grid.alpha
        if self.levels == 1:
            return alpha * _pair_mean(self.g * self.u[:, 0])[:, None]
        recall = np.einsum("gj,jga->ga", self.memory[:, k, :k], self.m_point[:k])
        stein = self.lam_hat[k][:, None] * self.m_point[k] - self.grid.eta * recall
        return self.variances * stein + alpha * _pair_mean(self.g * self.c)[:, None]

    def _step(self, k: int):
        """Advance h_a, m_a, T_a and the selection chain from step k to k+1."""
        p, eta = self.grid, self.grid.eta
        lam_hat, memory = self._used("lam_hat")[k], self._used("memory")[:, k, :k]
        factor = self.cholesky.add_row(k, self._used("noise")[:, k, :k + 1])
        xi, recall = (x.reshape(self.h.shape)
                      for x in self.histories.noise_and_recall(k, factor, memory))
        s = self.variances[:, None]
        h = self.h - eta * ((p.lam + s * lam_hat[:, None, None]) * self._point(self.h, self.h_prev)
                            + math.sqrt(p.delta) * self.omega[:, None] * self.g[:, None, :]
                            - eta * s * recall - np.sqrt(s) * xi)
        m = self.m[k] - eta * (p.lam * self.m_point[k] + self._used("mu")[k])
        if self.beta:
            h = h + self.beta * (self.h - self.h_prev)
            m = m + self.beta * (self.m[k] - self.m[max(k - 1, 0)])
        if not self._finite(k + 1, h, m):
            return
        self.h_prev, self.h, self.m[k + 1] = self.h, h, m
        dq = p.delta * self.q[:, None, self.response_index]
        omega = self.omega[:, None]
        decay = 1 - eta * (p.lam + s * lam_hat[:, None, None] + (omega ** 2) * dq)
        self.paths.advance(k, decay, memory, omega * dq, eta, variances=self.variances,
                           cross=eta * omega * dq, beta=self.beta, gamma=self.gamma)
        self._next_selection(k)

    def level_magnetizations(self, size: int) -> np.ndarray:
        return self.m[:size]
