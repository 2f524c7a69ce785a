"""Two-layer networks (soft committee machines) trained by online SGD: the problem, its
closed-form Gaussian integrals and population risk, and the finite-d simulator.

Everything about the model is defined here once (docs/theory.md §8) and used by both the
simulator below and the Saad-Solla ODEs of `dmft.two_layer`:

- `TwoLayerProblem`: widths, label noise, learning-rate and width exponents, regime
  (green / blue / orange / red), time exponent theta and the ODE coefficients a1, a2 (§8.2);
- the activation g(h) = erf(h / sqrt 2) and the integrals I2, I3, I4, J2 over Gaussian
  local fields (§8.3), as numba ufuncs callable from numpy and from compiled code;
- `population_risk(Q, M, P)` (§8.4);
- `simulate(problem, d, seeds, method="gram" | "full" | "auto")` and `initial_overlaps`
  (§8.5).

The student width is p at every d (`width_scaling="fixed"`, kappa scales the step only) or
p d^kappa rounded (`width_scaling="power"`, p the width at d = 1), `TwoLayerProblem.width`.

The label noise variance is `noise` (Delta of paper 001), not the cluster variance `delta`
of the Gaussian-mixture `Problem`; the learning-rate exponent is `lr_exponent`.
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np
import xarray as xr

REVISION = 2  # raise when a change of this simulator changes its numbers (stores record it)
# r2: method "auto" takes the cheaper method by STEP_SECONDS (r1: gram wherever d > p + k)
REGIMES = ("green", "blue", "orange", "red")
TEACHERS = ("orthonormal", "gaussian")
METHODS = ("gram", "full", "auto")
WIDTH_SCALINGS = ("fixed", "power")
EXPONENT_TOLERANCE = 1e-12  # |kappa + delta| below this is the blue line
_CHUNK_STEPS = 8192  # random numbers are drawn per seed in chunks of this many steps
# Seconds per step and seed, n = p + k (one core, numba; benchmarks/bench_two_layer.py):
# gram c0 + c2 n^2 + c3 n^3 (the n^3 Cholesky: 0.2 us at n = 4, 0.96 at n = 12, 4.3 at
# n = 25, 71 at n = 78); full c0 + cd d + cnd n d (drawing x, the n d products: 1.0 us at
# n = 4, d = 30; 25 us at n = 12, d = 1000; 54 us at n = 467, d = 60; within 0.85-1.24 of
# this model at 8 sizes).
STEP_SECONDS = {"gram": (1.2e-7, 4.8e-9, 6e-11), "full": (5.3e-7, 8.6e-9, 1.8e-9)}


def _bad(field: str, value, allowed: str) -> ValueError:
    return ValueError(f"TwoLayerProblem.{field} = {value!r} is not allowed: "
                      f"{field} must be {allowed}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def regime(width_exponent: float, lr_exponent: float) -> str:
    """Region of paper 001's phase diagram at (kappa, delta) (docs/theory.md §8.2).

    green kappa + delta > 0; blue kappa + delta = 0; orange kappa < -delta < (1 + kappa)/2;
    red -delta >= (1 + kappa)/2 (the paper's boundary).
    """
    s = width_exponent + lr_exponent
    if abs(s) <= EXPONENT_TOLERANCE:
        return "blue"
    if s > 0:
        return "green"
    return "orange" if -lr_exponent < (1 + width_exponent) / 2 else "red"


def time_exponent(width_exponent: float, lr_exponent: float) -> float:
    """theta of t = steps / d^(1 + theta): kappa + delta (green, blue), 2 (kappa + delta)
    below the blue line (orange, and red points flagged as outside the theorem)."""
    s = width_exponent + lr_exponent
    return s if s > -EXPONENT_TOLERANCE else 2 * s


@dataclasses.dataclass(frozen=True)
class TwoLayerProblem:
    """One-pass SGD of a p-unit soft committee machine learning a k-unit teacher (§8.1).

    Fields:
        p, k: student and teacher widths (hidden units; second layers fixed to 1/p, 1/k).
        noise: variance Delta >= 0 of the additive Gaussian label noise.
        gamma0: learning-rate prefactor; gamma0 / p is the d-independent per-neuron step
            (gamma0 = p is the classical Saad-Solla point, eta = 1).
        lr_exponent: delta, learning rate gamma = gamma0 d^-delta.
        width_exponent: kappa, the width exponent (p ~ d^kappa).
        t_max: final time, in units t = steps / d^(1 + theta).
        teacher: "orthonormal" (P = I exactly) or "gaussian" (independent Gaussian
            directions of norm sqrt d: P_rr = 1, P_rs = O(d^-1/2)).
        width_scaling: how the student width follows d (§8.1), `width(d)`:
            "fixed": the width is p at every d, and kappa scales the step as if the width
            grew like d^kappa: eta = (gamma0 / p) d^-(kappa + delta);
            "power": the width is p(d) = round(p d^kappa) (p: the width at d = 1), and
            eta = gamma0 d^-delta / p(d), paper 001's gamma / p.
            Both give eta = gamma0 d^-delta / (p d^kappa) when p d^kappa is an integer.

    Derived: `regime`, `theta`, `outside_theorem` and, at dimension d, `width(d)`, `eta(d)`,
    `steps_per_time(d)`, `a1(d)`, `a2(d)`; the limit-ODE coefficients `a1_limit`,
    `a2_limit`. Points with kappa + 1/2 > -delta >= (1 + kappa)/2 (red in the paper, but a
    single step still moves Q by o(1)) are flagged `outside_theorem`, not refused; points
    with -delta >= kappa + 1/2 (O(1) jumps per step, no time scale) are refused.
    """

    p: int = 8
    k: int = 4
    noise: float = 1e-3
    gamma0: float = 8.0
    lr_exponent: float = 0.0
    width_exponent: float = 0.0
    t_max: float = 1e4
    teacher: str = "orthonormal"
    width_scaling: str = "fixed"

    def __post_init__(self):
        for name in ("p", "k"):
            value = getattr(self, name)
            if not _is_count(value) or value < 1:
                raise _bad(name, value, "an integer >= 1")
        for name, low in (("noise", 0.0), ("gamma0", None), ("t_max", None)):
            value = getattr(self, name)
            ok = _is_number(value) and math.isfinite(value) and (
                value >= low if low is not None else value > 0)
            if not ok:
                raise _bad(name, value, ">= 0 (finite)" if low is not None else "> 0 (finite)")
        for name in ("lr_exponent", "width_exponent"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value)):
                raise _bad(name, value, "a finite number")
        if self.width_exponent < 0:
            raise _bad("width_exponent", self.width_exponent, ">= 0 (kappa: p ~ d^kappa)")
        if -self.lr_exponent >= self.width_exponent + 0.5:
            raise _bad("lr_exponent", self.lr_exponent,
                       f"> -(kappa + 1/2) = {-(self.width_exponent + 0.5)} at width_exponent "
                       f"{self.width_exponent}: below it one step moves Q by O(1) and no time "
                       "scale exists (red region)")
        if self.teacher not in TEACHERS:
            raise _bad("teacher", self.teacher, f"one of {TEACHERS}")
        if self.width_scaling not in WIDTH_SCALINGS:
            raise _bad("width_scaling", self.width_scaling, f"one of {WIDTH_SCALINGS} "
                       "(the width p at every d, or round(p d^width_exponent))")
        for name in ("noise", "gamma0", "lr_exponent", "width_exponent", "t_max"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("p", "k"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def replace(self, **changes) -> "TwoLayerProblem":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def regime(self) -> str:
        return regime(self.width_exponent, self.lr_exponent)

    @property
    def theta(self) -> float:
        return time_exponent(self.width_exponent, self.lr_exponent)

    @property
    def outside_theorem(self) -> bool:
        """Red by the paper's boundary -delta >= (1 + kappa)/2, yet simulable."""
        return self.regime == "red"

    def width(self, d) -> int:
        """The student width at dimension d (§8.1): p ("fixed"), or round(p d^kappa) (half
        up, at least 1; "power")."""
        if self.width_scaling == "fixed":
            return self.p
        return max(1, math.floor(self.p * float(d) ** self.width_exponent + 0.5))

    def readout(self, d=None) -> np.ndarray:
        """c_u: -1/p for the p = width(d) student fields (p without d), +1/k for the k
        teacher fields (§8.3)."""
        p = self.p if d is None else self.width(d)
        return np.concatenate([np.full(p, -1.0 / p), np.full(self.k, 1.0 / self.k)])

    def eta(self, d) -> float:
        """Per-neuron step (8.1): (gamma0 / p) d^-(kappa + delta) for "fixed" (kappa scales
        the step only), gamma0 d^-delta / width(d) for "power" (the actual width)."""
        if self.width_scaling == "fixed":
            return self.gamma0 / self.p * float(d) ** (-(self.width_exponent + self.lr_exponent))
        return self.gamma0 * float(d) ** -self.lr_exponent / self.width(d)

    def steps_per_time(self, d) -> float:
        """N_t = d^(1 + theta) SGD steps per unit of t."""
        return float(d) ** (1 + self.theta)

    def a1(self, d) -> float:
        """Gradient-term coefficient d^theta eta of the finite-d ODE (§8.3)."""
        return float(d) ** self.theta * self.eta(d)

    def a2(self, d) -> float:
        """SGD-noise-term coefficient d^theta eta^2 of the finite-d ODE (§8.3)."""
        return float(d) ** self.theta * self.eta(d) ** 2

    @property
    def a1_limit(self) -> float:
        """d -> infinity limit of a1: gamma0/p on and above the blue line, 0 below (for
        "power" also the limit of gamma0 d^kappa / round(p d^kappa))."""
        return self.gamma0 / self.p if self.regime in ("green", "blue") else 0.0

    @property
    def a2_limit(self) -> float:
        """d -> infinity limit of a2: (gamma0/p)^2 on and below the blue line, 0 above."""
        return (self.gamma0 / self.p) ** 2 if self.regime != "green" else 0.0

    def check_dimension(self, d, method: str = "gram") -> int:
        """d as an int, or a ValueError. The gram method needs the p + k weight vectors
        independent (d > width(d) + k); the full method and the ODEs only an orthonormal
        teacher (d > k)."""
        if not _is_count(d) or d <= self.k:
            raise ValueError(f"d = {d!r} is not allowed: d must be an integer > k = {self.k}")
        if method == "gram" and d <= self.width(d) + self.k:
            raise ValueError(f"d = {d!r} is not allowed: d must be an integer > p + k = "
                             f"{self.width(d) + self.k} for method 'gram' (width p = "
                             f"{self.width(d)} at this d; method 'full' or 'auto' runs it)")
        return int(d)

    def step_seconds(self, d, method: str) -> float:
        """Seconds per step and seed of method "gram" or "full" at d (STEP_SECONDS)."""
        n = self.width(d) + self.k
        c0, c1, c2 = STEP_SECONDS[method]
        return c0 + c1 * n ** 2 + c2 * n ** 3 if method == "gram" else c0 + c1 * d + c2 * n * d

    def method_at(self, d, method: str) -> str:
        """The simulation method at d: "auto" is "gram" where the p + k weight vectors can
        be independent (d > width(d) + k) and its O((p+k)^3) step is the cheaper
        (`step_seconds`), else "full" (O((p+k) d) per step)."""
        if method != "auto":
            return method
        gram_cheaper = self.step_seconds(d, "gram") <= self.step_seconds(d, "full")
        return "gram" if d > self.width(d) + self.k and gram_cheaper else "full"


# --- activation and closed-form Gaussian integrals (docs/theory.md §8.3) ---------------------
# h ~ N(0, C); D_a = 1 + C_aa. Arguments are covariance entries, so repeated indices work.
# Ufuncs without signatures: each is compiled (or read from numba's cache) at its first
# call, float64 in practice, not at import, which would cost every process importing
# sims about 1 s.

@numba.vectorize(cache=True)
def activation(h):
    """g(h) = erf(h / sqrt 2)."""
    return math.erf(h / math.sqrt(2.0))


@numba.vectorize(cache=True)
def activation_derivative(h):
    """g'(h) = sqrt(2/pi) exp(-h^2/2)."""
    return math.sqrt(2.0 / math.pi) * math.exp(-0.5 * h * h)


@numba.vectorize(cache=True)
def i2(caa, cbb, cab):
    """I2 = E[g(h_a) g(h_b)] = (2/pi) arcsin(C_ab / sqrt(D_a D_b))."""
    return 2.0 / math.pi * math.asin(cab / math.sqrt((1.0 + caa) * (1.0 + cbb)))


@numba.vectorize(cache=True)
def i3(caa, ccc, cab, cac, cbc):
    """I3 = E[g'(h_a) h_b g(h_c)] = (2/pi) (C_bc D_a - C_ab C_ac) / (D_a sqrt(D_a D_c - C_ac^2))."""
    da, dc = 1.0 + caa, 1.0 + ccc
    return 2.0 / math.pi * (cbc * da - cab * cac) / (da * math.sqrt(da * dc - cac * cac))


@numba.vectorize(cache=True)
def i4(caa, cbb, ccc, cee, cab, cac, cae, cbc, cbe, cce):
    """I4 = E[g'(h_a) g'(h_b) g(h_c) g(h_e)] = (4/pi^2) arcsin(L0 / sqrt(L1 L2)) / sqrt(L4)."""
    da, db, dc, de = 1.0 + caa, 1.0 + cbb, 1.0 + ccc, 1.0 + cee
    l4 = da * db - cab * cab
    l0 = l4 * cce - cbc * cbe * da - cac * cae * db + cab * cac * cbe + cab * cae * cbc
    l1 = l4 * dc - cbc * cbc * da - cac * cac * db + 2.0 * cab * cac * cbc
    l2 = l4 * de - cbe * cbe * da - cae * cae * db + 2.0 * cab * cae * cbe
    return 4.0 / math.pi ** 2 * math.asin(l0 / math.sqrt(l1 * l2)) / math.sqrt(l4)


@numba.vectorize(cache=True)
def j2(caa, cbb, cab):
    """J2 = E[g'(h_a) g'(h_b)] = (2/pi) / sqrt(D_a D_b - C_ab^2)."""
    return 2.0 / math.pi / math.sqrt((1.0 + caa) * (1.0 + cbb) - cab * cab)


def population_risk(Q, M, P) -> np.ndarray:
    """eps = E_x (f*(x) - f(x))^2 / 2 from the overlaps (label noise excluded; §8.4).

    Q (..., p, p), M (..., p, k), P (..., k, k); returns shape (...).
    """
    Q, M, P = (np.asarray(a, dtype=float) for a in (Q, M, P))
    p, k = Q.shape[-1], P.shape[-1]
    q, r = np.diagonal(Q, axis1=-2, axis2=-1), np.diagonal(P, axis1=-2, axis2=-1)
    teacher = i2(r[..., :, None], r[..., None, :], P).sum(axis=(-2, -1)) / k ** 2
    student = i2(q[..., :, None], q[..., None, :], Q).sum(axis=(-2, -1)) / p ** 2
    cross = i2(q[..., :, None], r[..., None, :], M).sum(axis=(-2, -1)) / (p * k)
    return 0.5 * (teacher + student - 2.0 * cross)


# --- seeds, streams, recorded times --------------------------------------------------------

class _Streams:
    """Independent random streams of one (entropy, d, seed): initial weights, the fields
    of every step, the norm of x outside the weights' span, the label noise (full method:
    the d-dimensional inputs)."""

    def __init__(self, entropy: int, d: int, seed: int):
        init, fields, rest, inputs = np.random.SeedSequence([entropy, d, seed, 2]).spawn(4)
        self.init = np.random.default_rng(init)
        self.fields = np.random.default_rng(fields)
        self.rest = np.random.default_rng(rest)
        self.inputs = np.random.default_rng(inputs)


def _seed_list(seeds) -> list[int]:
    if _is_count(seeds):
        if seeds < 1:
            raise ValueError(f"seeds = {seeds} is not allowed: seeds must be >= 1 or a list")
        return list(range(int(seeds)))
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds = {seeds!r} is not allowed: seeds must be distinct "
                         "non-negative integers (or a count >= 1)")
    return seeds


def time_grid(problem: TwoLayerProblem, d=None, n_times: int = 121) -> np.ndarray:
    """Recorded times: 0 and n_times - 1 log-spaced times from one step of the smallest d
    (or t_max 1e-6 without d) to t_max."""
    if not _is_count(n_times) or n_times < 2:
        raise ValueError(f"n_times = {n_times!r} is not allowed: an integer >= 2")
    ds = [] if d is None else [d] if _is_count(d) else list(d)
    first = (1.0 / problem.steps_per_time(min(ds)) if ds else problem.t_max * 1e-6)
    first = min(first, problem.t_max)
    return np.concatenate([[0.0], np.geomspace(first, problem.t_max, n_times - 1)])


def check_times(times) -> np.ndarray:
    """Recorded times as a float array: 1-d, ascending from 0, at least two (ValueError)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) < 2 or times[0] != 0 or np.any(np.diff(times) < 0):
        raise ValueError(f"times = {times!r} is not allowed: times must be a 1-d ascending "
                         "array from 0 of length >= 2")
    return times


def initial_weights(problem: TwoLayerProblem, d: int, rng: np.random.Generator):
    """Student rows W0 (width(d), d) and teacher rows W* (k, d), each of norm sqrt d; the
    teacher's orthonormalised for teacher = "orthonormal" (§8.5)."""
    student = rng.standard_normal((problem.width(d), d))
    teacher = rng.standard_normal((problem.k, d))
    student *= math.sqrt(d) / np.linalg.norm(student, axis=1, keepdims=True)
    if problem.teacher == "orthonormal":
        teacher = np.linalg.qr(teacher.T)[0].T
        teacher *= math.sqrt(d)
    else:
        teacher *= math.sqrt(d) / np.linalg.norm(teacher, axis=1, keepdims=True)
    return student, teacher


def _gram(student, teacher, d) -> np.ndarray:
    both = np.concatenate([student, teacher])
    return both @ both.T / d


def initial_overlaps(problem: TwoLayerProblem, d: int, seeds, *, entropy: int = 0) -> xr.Dataset:
    """Each seed's initial overlaps Q0 (seed, student, student2), M0 (seed, student, teacher)
    and P (seed, teacher, teacher2), from the same stream as `simulate` (so seed s here is
    seed s's start there)."""
    d = problem.check_dimension(d, "full")
    seeds = _seed_list(seeds)
    omega = np.stack([_gram(*initial_weights(problem, d, _Streams(entropy, d, s).init), d)
                      for s in seeds])
    return _overlaps_dataset(problem, omega, seeds, d, entropy)


def _overlaps_dataset(problem, omega, seeds, d, entropy) -> xr.Dataset:
    p = omega.shape[-1] - problem.k
    return xr.Dataset(
        {"Q": (("seed", "student", "student2"), omega[:, :p, :p]),
         "M": (("seed", "student", "teacher"), omega[:, :p, p:]),
         "P": (("seed", "teacher", "teacher2"), omega[:, p:, p:])},
        coords={"seed": seeds, "width": _width_coord(p)},
        attrs={"d": d, "entropy": entropy, **_attrs(problem)})


def _width_coord(p: int) -> xr.DataArray:
    return xr.DataArray(p, attrs={"long_name": "student width p at this d "
                                               "(TwoLayerProblem.width)"})


def pad_students(ds: xr.Dataset, width: int) -> xr.Dataset:
    """ds with its student dims (student, student2) padded with NaN to `width` units: the
    layout of several widths in one array (width_scaling "power" at several d)."""
    pad = {dim: (0, width - ds.sizes[dim]) for dim in ("student", "student2")
           if dim in ds.dims and ds.sizes[dim] < width}
    return ds.pad(pad, constant_values=np.nan) if pad else ds


def _attrs(problem: TwoLayerProblem) -> dict:
    return {"model": "two_layer", **{k: v for k, v in problem.as_dict().items()},
            "regime": problem.regime, "theta": problem.theta,
            "outside_theorem": int(problem.outside_theorem)}


# --- the gram method: the Markov chain of the Gram matrix (§8.5) -----------------------------

@numba.njit(cache=True)
def _cholesky(a, out, inverse_diagonal):
    """Lower Cholesky factor of a into out (and 1/out_ii); False if a is not positive
    definite."""
    n = a.shape[0]
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j]
            for m in range(j):
                s -= out[i, m] * out[j, m]
            if i == j:
                if not s > 0.0:
                    return False
                out[i, i] = math.sqrt(s)
                inverse_diagonal[i] = 1.0 / out[i, i]
            else:
                out[i, j] = s * inverse_diagonal[j]
    return True


@numba.njit(cache=True)
def _gram_steps(omega, normals, rest_norm2, p, eta, noise_sd, d):
    """Advance the Gram matrix omega of [W; W*] / sqrt d by len(rest_norm2) SGD steps.

    Step i: fields z = chol(omega) g with g = normals[i, :n]; label noise normals[i, n];
    |x|^2 = |g|^2 + rest_norm2[i] (chi^2_(d-n)). With b_j = eta E g'(z_j) (zero for teacher
    fields): omega_ab += (b_a z_b + z_a b_b)/d + b_a b_b |x|^2/d^2. Returns the number of
    steps done (fewer if omega lost positive definiteness or became non-finite).
    """
    n = omega.shape[0]
    chol = np.zeros((n, n))
    inverse_diagonal = np.empty(n)
    z = np.empty(n)
    b = np.zeros(n)
    inverse_d = 1.0 / d
    teacher_weight, student_weight = 1.0 / (n - p), -1.0 / p
    for i in range(rest_norm2.shape[0]):
        if not _cholesky(omega, chol, inverse_diagonal):
            return i
        norm2 = rest_norm2[i]
        for a in range(n):
            s = 0.0
            for m in range(a + 1):
                s += chol[a, m] * normals[i, m]
            z[a] = s
            norm2 += normals[i, a] * normals[i, a]
        error = noise_sd * normals[i, n]
        for a in range(n):
            error += (student_weight if a < p else teacher_weight) * activation(z[a])
        if not math.isfinite(error):
            return i
        for a in range(p):
            b[a] = eta * error * activation_derivative(z[a])
        noise_scale = norm2 * inverse_d
        for a in range(p):
            for c in range(n):
                change = (b[a] * z[c] + z[a] * b[c] + b[a] * b[c] * noise_scale) * inverse_d
                omega[a, c] += change
                if c >= p:
                    omega[c, a] += change
    return rest_norm2.shape[0]


def _advance_gram(problem, omega, streams, steps, d, eta) -> int:
    """Advance one seed by `steps` steps in chunks; the steps done."""
    n = omega.shape[0]
    p = n - problem.k
    done = 0
    while done < steps:
        m = min(_CHUNK_STEPS, steps - done)
        normals = streams.fields.standard_normal((m, n + 1))
        rest = streams.rest.chisquare(d - n, m)
        made = _gram_steps(omega, normals, rest, p, eta, math.sqrt(problem.noise), d)
        done += made
        if made < m:
            return done
    return done


@numba.njit(cache=True)
def _full_steps(weights, inputs, label_noise, p, readout, eta, noise_sd, sqrt_d):
    """Advance the weights (p + k, d) by len(inputs) d-dimensional SGD steps (8.1):
    h = W x / sqrt d, error = c . g(h) + noise_sd xi, w_j += (eta / sqrt d) error g'(h_j) x
    for the p students. Returns the number of steps done (fewer if a student's weights
    stopped being finite; that step's update is then in the weights)."""
    for i in range(inputs.shape[0]):
        x = inputs[i]
        fields = weights @ x / sqrt_d
        error = readout @ activation(fields) + noise_sd * label_noise[i]
        step = eta / sqrt_d * error * activation_derivative(fields[:p])
        finite = True
        for a in range(p):
            for j in range(x.shape[0]):
                weights[a, j] += step[a] * x[j]
                finite &= math.isfinite(weights[a, j])
        if not finite:
            return i
    return inputs.shape[0]


def _advance_full(problem, weights, streams, steps, d, eta) -> int:
    """Advance one seed's weights (p + k, d) by `steps` d-dimensional SGD steps, the inputs
    drawn in chunks of 256; the steps done."""
    p = weights.shape[0] - problem.k
    readout, noise_sd = problem.readout(d), math.sqrt(problem.noise)
    done = 0
    while done < steps:
        m = min(256, steps - done)
        inputs = streams.inputs.standard_normal((m, d))
        label_noise = streams.fields.standard_normal(m)
        made = _full_steps(weights, inputs, label_noise, p, readout, eta, noise_sd,
                           math.sqrt(d))
        done += made
        if made < m:
            return done
    return done


# --- the simulator ------------------------------------------------------------------------

def simulate(problem: TwoLayerProblem, d, seeds, *, method: str = "gram", n_times: int = 121,
             times=None, entropy: int = 0) -> xr.Dataset:
    """Online SGD of `problem` at dimension d (an int, or several: a `d` dim) for many seeds.

    Args:
        problem: the `TwoLayerProblem`.
        d: input dimension, or a sequence of them (result gains a leading `d` dim).
        seeds: number of seeds (0..seeds-1) or a list of distinct non-negative integers.
        method: "gram" (the Gram-matrix chain, exact in law, O((p+k)^3) per step whatever d;
            needs d > p + k), "full" (the d-dimensional update (8.1), the check, O((p+k) d)
            per step) or "auto" (the cheaper of the two where gram runs: `method_at`).
        n_times: number of recorded times (0 and log-spaced up to t_max, `time_grid`).
        times: the recorded times instead (ascending from 0, `check_times`); each is
            reached at the nearest step.
        entropy: extra entropy of the streams SeedSequence([entropy, d, seed, 2]); seed s at d
            gives the same numbers whatever the other seeds, d or the chunking.

    Returns:
        xarray.Dataset, dims (seed, time), time = steps / d^(1 + theta) (the nominal grid;
        `step` holds each record's step): risk (§8.4, exact from the overlaps), Q (seed,
        time, student, student2), M (seed, time, student, teacher), P (seed, teacher,
        teacher2), diverged_at (seed,): the time at which the weights stopped being finite
        or independent, NaN if never (later records are NaN); coordinate `width`: the
        student width at d (along `d` for several; then the student dims have the largest
        width, NaN beyond a d's own).
    """
    if not isinstance(problem, TwoLayerProblem):
        raise TypeError(f"problem must be a sims.TwoLayerProblem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method = {method!r} is not allowed: method must be one of {METHODS}")
    dims = [d] if _is_count(d) else list(d)
    for value in dims:
        problem.check_dimension(value, problem.method_at(value, method))
    seeds = _seed_list(seeds)
    times = time_grid(problem, dims, n_times) if times is None else check_times(times)
    per_d = [_simulate_one_d(problem, value, seeds, problem.method_at(value, method), times,
                             entropy) for value in dims]
    if _is_count(d):
        return per_d[0]
    widest = max(problem.width(value) for value in dims)
    return xr.concat([pad_students(ds, widest) for ds in per_d],
                     dim=xr.DataArray(dims, dims="d", name="d"), combine_attrs="drop_conflicts")


def _simulate_one_d(problem, d, seeds, method, times, entropy) -> xr.Dataset:
    steps = np.rint(times * problem.steps_per_time(d)).astype(np.int64)
    eta = problem.eta(d)
    p = problem.width(d)
    n = p + problem.k
    records = np.full((len(seeds), len(steps), n, n), np.nan)
    diverged_at = np.full(len(seeds), np.nan)
    for s, seed in enumerate(seeds):
        streams = _Streams(entropy, d, seed)
        student, teacher = initial_weights(problem, d, streams.init)
        weights = np.concatenate([student, teacher])
        omega = _gram(student, teacher, d)
        done = 0
        for i, target in enumerate(steps):
            if method == "gram":
                made = _advance_gram(problem, omega, streams, target - done, d, eta)
            else:
                made = _advance_full(problem, weights, streams, target - done, d, eta)
                omega = _gram(weights[:p], weights[p:], d)
            done += made
            if done < target:
                diverged_at[s] = done / problem.steps_per_time(d)
                break
            records[s, i] = omega
    return _records_dataset(problem, d, seeds, times, steps, records, diverged_at, method,
                            entropy)


def _records_dataset(problem, d, seeds, times, steps, records, diverged_at, method,
                     entropy) -> xr.Dataset:
    p = problem.width(d)
    ds = curves_dataset(problem, records[..., :p, :p], records[..., :p, p:],
                        records[:, 0, p:, p:], diverged_at, seeds, times)
    return ds.assign_coords(step=("time", steps), width=_width_coord(p)).assign_attrs(
        d=d, method=method, entropy=entropy, eta=problem.eta(d), a1=problem.a1(d),
        a2=problem.a2(d))


def curves_dataset(problem: TwoLayerProblem, Q, M, P, diverged_at, seeds, times) -> xr.Dataset:
    """The layout shared by `simulate` and `dmft.solve`: risk (seed, time) from the overlaps
    (§8.4), Q (seed, time, student, student2), M (seed, time, student, teacher), P (seed,
    teacher, teacher2), diverged_at (seed,); the problem's fields and region as attrs."""
    return xr.Dataset(
        {"risk": (("seed", "time"), population_risk(Q, M, P[:, None])),
         "Q": (("seed", "time", "student", "student2"), Q),
         "M": (("seed", "time", "student", "teacher"), M),
         "P": (("seed", "teacher", "teacher2"), P),
         "diverged_at": (("seed",), diverged_at)},
        coords={"seed": seeds, "time": times}, attrs=_attrs(problem))
