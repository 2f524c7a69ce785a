"""The average over the three-cluster initial magnetization (docs/theory.md §6.6, §5.9).

At finite d the three-cluster dynamics starts from m0 = sqrt(R/d)|x|, x ~ N(0, 1), and the
theory is the average of the solutions at fixed m0 over that law. The solution at m0 is
computed at a few nodes x_1 < ... < x_J. During the escape from the symmetric point the
curves are steps in log|x| (the escape time falls as -log|x| / gamma), so a weighted sum of
node curves is a staircase. The default rule ("escape") instead interpolates between
neighbouring nodes along the escape (§5.9): the curve at x between x_j and x_{j+1},
u = log x, w = (u - u_j) / (u_{j+1} - u_j), escape time tau(x) = (1 - w) tau_j + w tau_{j+1},

    f(t; x) = (1 - w) f_j(t - tau(x) + tau_j) + w f_{j+1}(t - tau(x) + tau_{j+1}),

and integrates it over the half-normal law on a fine quadrature in x. The result is a fixed
linear map of each node's curve (a weighted sum of its values at shifted times), so the
replica spread of the mapped curves is its Monte-Carlo error, as for a plain node average.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, erfinv

from .replicas import node_average

RULES = ("escape", "gauss")
TAIL = 0.002  # half-normal mass below the first and above the last node of the escape rule
POINTS_PER_GAP = 48  # Gauss-Legendre points of the quadrature over x per interval
X_MAX = 12.0  # the half-normal law beyond it (mass 4e-33) is left out
ESCAPE_LEVEL = 0.5  # a node escapes when its |m| first reaches this part of the largest |m|


def half_normal_quantile(p):
    """x with P(|z| <= x) = p for z ~ N(0, 1): sqrt(2) erfinv(p)."""
    return math.sqrt(2) * erfinv(np.asarray(p, dtype=float))


def initial_magnetization_nodes(model: str, R: float, d: float | None, nodes: int,
                                rule: str = "escape", values=None):
    """Initial magnetizations m0 and node weights for the finite-d average of §6.6.

    Two-cluster: m0 = 0 (one node, `d` must be None). Three-cluster: m0 = sqrt(R/d) x at
    the nodes x of `rule`: "escape" (default; nodes equally spaced in log x between the
    half-normal quantiles TAIL and 1 - TAIL, averaged by `EscapeAverage`; the weights
    returned are those of the same interpolation without shifts, used for the kernels) or
    "gauss" (the Gauss rule of the half-normal law, `half_normal_rule`, a plain weighted
    sum). d = inf gives the single node m0 = 0 (exact Z2 symmetry). `values`
    (three-cluster, d None): these m0 instead (|m0|, equal weights), e.g. the m(0) of
    simulation seeds.
    """
    if rule not in RULES:
        raise ValueError(f"magnetization_rule = {rule!r} must be one of {RULES}")
    if values is not None:
        return _given_magnetizations(model, d, values)
    if model == "two_cluster":
        if d is not None:
            raise ValueError("d sets the initial magnetization of the three-cluster model only "
                             "(docs/theory.md §6.6); leave it None for model 'two_cluster'")
        return np.zeros(1), np.ones(1)
    if d is None:
        raise ValueError("the three-cluster model needs d (finite-d initial magnetization "
                         "m0 = sqrt(R/d)|x|, docs/theory.md §6.6); d = math.inf gives m0 = 0")
    if math.isinf(d):
        return np.zeros(1), np.ones(1)
    if rule == "gauss" or nodes == 1:
        x, w = half_normal_rule(nodes)
    else:
        x = escape_nodes(nodes)
        w = _Quadrature(np.log(x)).unshifted_weights()
    return math.sqrt(R / d) * x, w


def _given_magnetizations(model: str, d, values):
    if model != "three_cluster" or d is not None:
        raise ValueError("initial_magnetizations replaces the law of m0 of the three-cluster "
                         "model (docs/theory.md §6.6): give it with model 'three_cluster' and "
                         f"d = None (got model {model!r}, d = {d!r})")
    m0 = np.abs(np.asarray(values, dtype=float))
    if m0.ndim != 1 or len(m0) == 0 or not np.isfinite(m0).all():
        raise ValueError(f"initial_magnetizations = {values!r} must be a non-empty list of "
                         "finite numbers")
    return m0, np.full(len(m0), 1 / len(m0))


def escape_nodes(nodes: int) -> np.ndarray:
    """x_1 < ... < x_J equally spaced in log x from the TAIL to the 1 - TAIL quantile of
    the half-normal law (§5.9): equal spacing in log x is equal spacing of escape times."""
    ends = np.log(half_normal_quantile([TAIL, 1 - TAIL]))
    return np.exp(np.linspace(ends[0], ends[1], nodes))


def half_normal_rule(nodes: int):
    """Gauss rule for E f(|x|), x ~ N(0, 1): exact for polynomials of |x| of degree < 2 nodes.

    The observables depend on m0 ~ |x|, not on x^2, so the rule is built for the half-normal
    density 2 phi(x) on [0, inf) (Stieltjes procedure on a 400-point Gauss-Legendre
    discretization of [0, 14], then Golub-Welsch).
    """
    t, u = np.polynomial.legendre.leggauss(400)
    x, dens = 7 * (t + 1), 7 * u * np.exp(-(7 * (t + 1)) ** 2 / 2) * math.sqrt(2 / math.pi)
    alpha, beta = [], []
    p_prev, p, norm_prev = np.zeros_like(x), np.ones_like(x), 1.0
    for k in range(nodes):
        norm = (dens * p * p).sum()
        alpha.append((dens * x * p * p).sum() / norm)
        beta.append(norm / norm_prev)
        p_prev, p, norm_prev = p, (x - alpha[-1]) * p - (beta[-1] if k else 0) * p_prev, norm
    off = np.sqrt(beta[1:])
    values, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1))
    return values, vectors[0] ** 2


class _Quadrature:
    """Points x_q and masses of the half-normal law (composite Gauss-Legendre: POINTS_PER_GAP
    points in log x between neighbouring nodes, where the interpolated curves are smooth,
    and in x below the first and above the last node up to X_MAX), each point placed
    between two neighbouring nodes: bracket j_q (pair j, j+1) and the affine weights of
    x_q between them in log x (w_log) and in x (w_lin); outside [0, 1] below the first and
    above the last node (linear extrapolation).
    """

    def __init__(self, log_nodes: np.ndarray):
        t, v = np.polynomial.legendre.leggauss(POINTS_PER_GAP)
        pieces = [_gauss_piece(t, v, math.exp(a), math.exp(b), logarithmic=True)
                  for a, b in zip(log_nodes[:-1], log_nodes[1:])]
        pieces += [_gauss_piece(t, v, 0.0, math.exp(log_nodes[0])),
                   _gauss_piece(t, v, math.exp(log_nodes[-1]), X_MAX)]
        x, mass = (np.concatenate(parts) for parts in zip(*pieces))
        self.u, self.mass = np.log(x), mass / mass.sum()
        self.bracket = np.clip(np.searchsorted(log_nodes, self.u) - 1, 0, len(log_nodes) - 2)
        low, high = log_nodes[self.bracket], log_nodes[self.bracket + 1]
        self.w_log = (self.u - low) / (high - low)
        self.w_lin = (x - np.exp(low)) / (np.exp(high) - np.exp(low))

    def unshifted_weights(self) -> np.ndarray:
        """Node weights of piecewise-linear interpolation in x (sum 1; exact for curves
        linear in m0, e.g. m at t = 0)."""
        weights = np.zeros(self.bracket.max() + 2)
        np.add.at(weights, self.bracket, self.mass * (1 - self.w_lin))
        np.add.at(weights, self.bracket + 1, self.mass * self.w_lin)
        return weights


def _gauss_piece(t, v, low: float, high: float, logarithmic=False):
    """Gauss-Legendre points (t, v on [-1, 1]) on [low, high] and their half-normal masses
    2 phi(x) dx, in u = log x when `logarithmic` (dx = x du)."""
    if logarithmic:
        a, b = math.log(low), math.log(high)
        x = np.exp((a + b) / 2 + (b - a) / 2 * t)
        jacobian = (b - a) / 2 * x
    else:
        x = (low + high) / 2 + (high - low) / 2 * t
        jacobian = np.full_like(x, (high - low) / 2)
    return x, v * jacobian * math.sqrt(2 / math.pi) * np.exp(-x * x / 2)


def interpolation_stencil(position: np.ndarray, last: int):
    """Columns and weights of f at fractional step `position` from the values f[0..last]:
    the cubic Catmull-Rom stencil (error O(dt^3) times the third derivative) where four
    neighbours exist, the linear one next to the ends, and linear extension with the end
    slopes beyond them."""
    left = np.clip(np.floor(position), 0, last - 1).astype(int)
    s = position - left
    cubic = (left >= 1) & (left <= last - 2)
    c = np.where(cubic, s, 0.0)
    weights = [np.where(cubic, (-c ** 3 + 2 * c ** 2 - c) / 2, 0.0),
               np.where(cubic, (3 * c ** 3 - 5 * c ** 2 + 2) / 2, 1 - s),
               np.where(cubic, (-3 * c ** 3 + 4 * c ** 2 + c) / 2, s),
               np.where(cubic, (c ** 3 - c ** 2) / 2, 0.0)]
    columns = [np.clip(left + offset, 0, last) for offset in (-1, 0, 1, 2)]
    return columns, weights


def escape_level(magnetization: np.ndarray) -> float:
    """The |m| at which a node has escaped: ESCAPE_LEVEL times the largest |m| of all nodes."""
    return ESCAPE_LEVEL * float(np.nanmax(magnetization))


def escape_times(time: np.ndarray, magnetization: np.ndarray, level: float) -> np.ndarray:
    """Per curve, the first time its |m| reaches `level`; NaN for a curve that never does
    (and for every curve if level is not positive). magnetization: (..., time)."""
    if not level > 0:
        return np.full(np.shape(magnetization)[:-1], np.nan)
    return first_crossing(time, magnetization, level)


def first_crossing(time: np.ndarray, values: np.ndarray, level: float) -> np.ndarray:
    """First time each curve of `values` (..., time) is >= `level`, interpolated linearly
    between the two records that bracket it; time[0] if it starts there, NaN if never.

    The one crossing rule of the project: node escape times here, the seeds' escape
    times and the mean curves' escape times in analysis.finite_size."""
    values = np.asarray(values, dtype=float)
    time = np.asarray(time, dtype=float)
    above = values >= level
    k = np.argmax(above, axis=-1)
    before = np.maximum(k - 1, 0)
    v1 = np.take_along_axis(values, k[..., None], -1)[..., 0]
    v0 = np.take_along_axis(values, before[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(k > 0, (level - v0) / (v1 - v0), 0.0)
    crossed = time[before] + fraction * (time[k] - time[before])
    return np.where(above.any(axis=-1), crossed, np.nan)


def node_escape_times(x: np.ndarray, time: np.ndarray, magnetization: np.ndarray):
    """(tau, level): escape times of every node (`escape_times` at `escape_level`, completed
    by `_complete`) and the |m| level that defines them."""
    level = escape_level(magnetization)
    return _complete(np.log(x), escape_times(time, magnetization, level), time,
                     magnetization), level


def escape_law_errors(time: np.ndarray, magnetization: np.ndarray, tau: np.ndarray,
                      level: float) -> dict:
    """What the Monte-Carlo errors of the escape-time law come from (§5.9), as attrs:

    * node_escape_time_replicas (nodes, replicas): each replica's first time at `level`
      (NaN: not escaped), the errors of the node escape times at a fixed level;
    * escape_magnetization_replicas (replicas,): half of each replica's |m| at the node
      and time of the largest mean |m|, the error of the level itself, which moves every
      node's escape time together by -d(level) / m'(tau_j);
    * node_escape_slopes (nodes,): m'(tau_j), the mean curve's slope at its escape (NaN
      for a node whose escape time was extrapolated).

    magnetization: (nodes, time, replicas)."""
    mean = magnetization.mean(axis=2)
    node, step = np.unravel_index(np.nanargmax(mean), mean.shape)
    slope = np.gradient(mean, time, axis=1)
    measured = np.isfinite(escape_times(time, mean, level))
    slopes = np.array([np.interp(t, time, row) if ok else np.nan
                       for t, row, ok in zip(tau, slope, measured)])
    return dict(
        node_escape_time_replicas=escape_times(time, np.moveaxis(magnetization, 2, 1),
                                               level).tolist(),
        escape_magnetization_replicas=(ESCAPE_LEVEL * magnetization[node, step]).tolist(),
        node_escape_slopes=slopes.tolist())


def _complete(u: np.ndarray, tau: np.ndarray, time: np.ndarray,
              magnetization: np.ndarray) -> np.ndarray:
    """Escape times of every node: the measured ones, and for nodes that have not escaped by
    the last time a linear extrapolation in log x along the escape (slope -1/gamma, from the
    two smallest escaped nodes, or with one escaped node from the growth rate gamma of the
    smallest node's |m| over the last tenth of the time). No node escaped, or no growth:
    all equal (no shifts: plain interpolation in log x)."""
    escaped = np.flatnonzero(np.isfinite(tau))
    if escaped.size == 0:
        return np.zeros_like(tau)
    if escaped.size >= 2:
        a, b = escaped[:2]
        slope = (tau[a] - tau[b]) / (u[b] - u[a])
    else:
        m = magnetization[0]
        start = int(0.9 * (len(time) - 1))
        gamma = (math.log(m[-1]) - math.log(m[start])) / (time[-1] - time[start]) \
            if m[start] > 0 and m[-1] > 0 else 0.0
        if not gamma > 0:
            return np.full_like(tau, tau[escaped[0]])
        slope = 1 / gamma
    first = escaped[0]
    return np.where(np.isfinite(tau), tau, tau[first] + (u[first] - u) * slope)


class EscapeAverage:
    """The escape rule's average over m0 as one linear map per node (§5.9).

    `operators[j]` is a (time, time) matrix A_j such that the average of a curve f over
    the law of m0 is sum_j A_j f_j, f_j the curve at node j (any trailing dims). Row t of
    A_j sums, over the quadrature points x_q bracketed by j, mass_q times the node's
    interpolation weight times the stencil of f_j at the shifted time t - s. The weights and
    shifts go from interpolation in x without shifts at t = 0 (exact for the initial
    magnetization and any curve linear in m0) to displacement interpolation in log x from
    t = the bracket's escape-time gap on (never, with no escape: gap = 0): lambda =
    min(1, t / gap), w = (1 - lambda) w_lin
    + lambda w_log, tau(x) = (1 - w) tau_j + w tau_{j+1}, s_j = lambda (tau(x) - tau_j).
    Since (1 - w) s_j + w s_{j+1} = 0 at every t, a drift common to neighbouring nodes
    cancels; outside [0, t_max] a node curve is extended linearly with its end slopes.
    """

    def __init__(self, x: np.ndarray, time: np.ndarray, tau: np.ndarray):
        q = _Quadrature(np.log(x))
        self.tau = tau
        tau_low, tau_high = tau[q.bracket][:, None], tau[q.bracket + 1][:, None]
        gap = np.abs(tau_low - tau_high)
        with np.errstate(divide="ignore", invalid="ignore"):
            blend = np.where(gap > 0, np.minimum(1.0, time[None, :] / gap), 0.0)
        w = (1 - blend) * q.w_lin[:, None] + blend * q.w_log[:, None]  # (points, time)
        tau_q = (1 - w) * tau_low + w * tau_high
        self.operators = np.zeros((len(x), len(time), len(time)))
        for side, weight, tau_node in ((0, 1 - w, tau_low), (1, w, tau_high)):
            self._add_stencils(q.bracket + side, q.mass[:, None] * weight,
                               blend * (tau_q - tau_node), time)

    def _add_stencils(self, node, coefficient, shift, time):
        """A_node[k, :] += coefficient * stencil of f(time[k] - shift), every (point, k);
        coefficient and shift are (points, time)."""
        positions = (time[None, :] - shift) / (time[1] - time[0])  # in steps
        columns, weights = interpolation_stencil(positions, len(time) - 1)
        rows = np.broadcast_to(np.arange(len(time)), positions.shape)
        nodes = np.broadcast_to(node[:, None], positions.shape)
        for column, weight in zip(columns, weights):
            np.add.at(self.operators, (nodes, rows, column), coefficient * weight)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Per node, the mapped curves: values (nodes, time, ...) -> (nodes, time, ...)."""
        flat = values.reshape(values.shape[:2] + (-1,))
        return (self.operators @ flat).reshape(values.shape)


def escape_time_cdf(solution, t):
    """P(tau <= t) over the law of m0 from a three-cluster DMFT solution of the escape rule
    (attrs `node_x`, `node_escape_times`): tau(x) is affine in log x between nodes (and
    beyond them), decreasing in x, so P(tau <= t) = 1 - F(x(t)), F the half-normal CDF."""
    x, tau = _escape_nodes_of(solution)
    order = np.argsort(tau)
    u_of_t = np.interp(t, tau[order], np.log(x)[order])
    u_of_t = _extend(np.asarray(t, dtype=float), tau[order], np.log(x)[order], u_of_t)
    return 1 - _half_normal_cdf(np.exp(u_of_t))


def escape_time_quantiles(solution, q):
    """The escape times at probabilities q over the law of m0 (inverse of escape_time_cdf):
    the seeds' escape-time distribution the DMFT predicts (docs/theory.md §5.9)."""
    x, tau = _escape_nodes_of(solution)
    return _quantile_weights(x, q).T @ tau


def escape_time_quantile_errors(solution, q):
    """Monte-Carlo standard errors of `escape_time_quantiles` (docs/theory.md §5.9).

    The quantile at q is tau(x_q) = (1 - w) tau_j + w tau_{j+1}, affine in two nodes' escape
    times. Two independent parts (attrs of `escape_law_errors`): the nodes' escape times at
    a fixed level, each from its replicas (independent solves); and the level, common to
    all nodes, which moves tau_q by -d(level) / m'_q, with
    m'_q = (1 - w) m'(tau_j) + w m'(tau_{j+1}). Both are node sums of replica values, so
    the error is `node_average`'s (Welch-Satterthwaite, unbiased by c4). NaN where a node it uses has a replica that did
    not escape by t_max; all NaN for a solution without these attrs (a store from before
    them)."""
    q = np.atleast_1d(np.asarray(q, dtype=float))
    errors = _escape_errors_of(solution)
    if errors is None:
        return np.full(q.shape, np.nan)
    x, _ = _escape_nodes_of(solution)
    replicas, level, slopes = errors
    weights = _quantile_weights(x, q)  # (nodes, quantiles)
    used = weights[:, :, None] != 0
    nodes = np.where(used, weights[:, :, None] * replicas[:, None, :], 0.0)  # unused: 0
    slope_q = np.where(weights != 0, weights * slopes[:, None], 0.0).sum(axis=0)
    level_shift = -level[None, None, :] / slope_q[None, :, None]  # (1, quantiles, replicas)
    return node_average(np.concatenate([nodes, level_shift]), replicas.shape[1])[1]


def escape_times_within_errors(solution, rng: np.random.Generator) -> np.ndarray | None:
    """Node escape times drawn within their Monte-Carlo errors (the two parts of
    `escape_time_quantile_errors`): each node's moved by N(0, s_j^2 / R), s_j its replicas'
    spread, and all of them by the level's N(0, s_L^2 / R) / m'(tau_j). None for a solution
    without the errors' attrs."""
    errors = _escape_errors_of(solution)
    if errors is None:
        return None
    replicas, level, slopes = errors
    _, tau = _escape_nodes_of(solution)
    node_sd = np.nan_to_num(np.std(replicas, axis=1, ddof=1) / math.sqrt(replicas.shape[1]))
    level_sd = np.nan_to_num(np.std(level, ddof=1) / math.sqrt(level.size) / slopes)
    return tau + node_sd * rng.standard_normal(tau.size) + level_sd * rng.standard_normal()


def _escape_errors_of(solution):
    """(node replicas' escape times, level replicas, node slopes) of `escape_law_errors`,
    or None for a solution without them (a store from before them)."""
    names = ("node_escape_time_replicas", "escape_magnetization_replicas",
             "node_escape_slopes")
    if not all(name in solution.attrs for name in names):
        return None
    return tuple(np.asarray(solution.attrs[name], dtype=float) for name in names)


def _quantile_weights(x: np.ndarray, q) -> np.ndarray:
    """(nodes, quantiles) weights of the node escape times in the quantiles: tau(x) is
    affine in u = log x between neighbouring nodes and extended affinely beyond the first
    and last (x_q: the half-normal quantile at 1 - q, a larger |m0| escaping earlier)."""
    u = np.log(half_normal_quantile(1 - np.atleast_1d(np.asarray(q, dtype=float))))
    logs = np.log(x)
    order = np.argsort(logs)
    j = np.clip(np.searchsorted(logs[order], u) - 1, 0, len(x) - 2)
    low, high = order[j], order[j + 1]
    w = (u - logs[low]) / (logs[high] - logs[low])
    out = np.zeros((len(x), len(u)))
    columns = np.arange(len(u))
    np.add.at(out, (low, columns), 1 - w)
    np.add.at(out, (high, columns), w)
    return out


def _escape_nodes_of(solution):
    if "node_escape_times" not in solution.attrs:
        raise ValueError("the solution has no node escape times: a three-cluster solve with "
                         "magnetization_rule='escape' and more than one node has them")
    return (np.asarray(solution.attrs["node_x"], dtype=float),
            np.asarray(solution.attrs["node_escape_times"], dtype=float))


def _extend(arg, xs, ys, inside):
    """Linear extrapolation of the piecewise-linear ys(xs) beyond its ends (np.interp clamps)."""
    low = ys[0] + (arg - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
    high = ys[-1] + (arg - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return np.where(arg < xs[0], low, np.where(arg > xs[-1], high, inside))


def _half_normal_cdf(x):
    return erf(np.asarray(x) / math.sqrt(2))
