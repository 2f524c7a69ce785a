"""The learning problem, defined once: data model, loss, training processes, closed forms.

Everything that both the finite-d simulator (`sims`) and the d -> infinity theory (`dmft`)
need about the problem lives here and nowhere else (docs/theory.md §1).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping
from typing import Literal

import numba
import numpy as np
from scipy import optimize, special

MODELS = ("two_cluster", "three_cluster")
PROCESSES = ("gd", "sgd", "persistent", "flow", "gauss_sgd", "smf")
CHAIN_PROCESSES = ("gd", "sgd", "persistent")  # masks from a two-state chain (SelectionChain)
LOSSES = ("logistic", "square")
LEVEL_TOLERANCE = 1e-6  # |sum f_a - 1| and |sum f_a s_a - 1| allowed in a covariance

Model = Literal["two_cluster", "three_cluster"]
Process = Literal["gd", "sgd", "persistent", "flow", "gauss_sgd", "smf"]
Loss = Literal["logistic", "square"]


def _bad(field: str, value, allowed: str) -> ValueError:
    return ValueError(f"Problem.{field} = {value!r} is not allowed: {field} must be {allowed}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Covariance:
    """Diagonal input covariance Sigma given by variance levels (docs/theory.md §7).

    Level a holds a fraction `fractions[a]` of the d coordinates, all with variance
    `variances[a]`; the levels are laid out in order (the first f_0 d coordinates form level
    0, and so on). Fractions sum to 1 and the mean variance sum_a f_a s_a is 1 (both within
    LEVEL_TOLERANCE). Immutable and hashable; build it with `Covariance.of(value)`.
    """

    fractions: tuple[float, ...]
    variances: tuple[float, ...]

    @classmethod
    def of(cls, value) -> "Covariance | None":
        """A validated Covariance from a Covariance, a mapping {fractions: [...],
        variances: [...]} or a pair (fractions, variances); None stays None. One level is the
        identity and gives None."""
        if value is None or isinstance(value, cls):
            levels = value
        elif isinstance(value, Mapping) and set(value) == {"fractions", "variances"}:
            levels = cls(_floats(value["fractions"], value),
                         _floats(value["variances"], value))
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            levels = cls(_floats(value[0], value), _floats(value[1], value))
        else:
            raise _bad("covariance", value, _COVARIANCE_ALLOWED)
        if levels is None:
            return None
        levels._validate()
        return None if len(levels.fractions) == 1 else levels

    @classmethod
    def two_levels(cls, fraction: float, variance: float) -> "Covariance | None":
        """Level 0: a fraction f of the coordinates with variance s; level 1 the rest, with
        the variance (1 - f s) / (1 - f) that makes the mean 1 (needs f s < 1). A sweep
        over (f, s) is a sweep over this family; s = 1 gives two levels of variance 1 (the
        identity's data and numbers, with the two levels recorded like the others')."""
        if not (_is_number(fraction) and 0 < fraction < 1 and _is_number(variance)
                and 0 < variance and fraction * variance < 1):
            raise _bad("covariance", {"fraction": fraction, "variance": variance},
                       "two levels with 0 < fraction < 1, variance > 0 and "
                       "fraction * variance < 1 (the other level's variance "
                       "(1 - f s)/(1 - f) must be > 0)")
        return cls.of(((fraction, 1 - fraction),
                       (variance, (1 - fraction * variance) / (1 - fraction))))

    def _validate(self):
        f, s = self.fractions, self.variances
        if len(f) != len(s) or not f:
            raise _bad("covariance", self.to_attrs(), "as many fractions as variances (>= 1): "
                       + _COVARIANCE_ALLOWED)
        if not all(math.isfinite(v) and v > 0 for v in f + s):
            raise _bad("covariance", self.to_attrs(), "finite fractions and variances > 0")
        if abs(math.fsum(f) - 1) > LEVEL_TOLERANCE:
            raise _bad("covariance", self.to_attrs(), f"fractions summing to 1 (they sum to "
                       f"{math.fsum(f):.10g}; tolerance {LEVEL_TOLERANCE:g})")
        mean = math.fsum(a * b for a, b in zip(f, s))
        if abs(mean - 1) > LEVEL_TOLERANCE:
            raise _bad("covariance", self.to_attrs(), f"normalised to mean variance "
                       f"sum_a f_a s_a = 1 (it is {mean:.10g}; tolerance {LEVEL_TOLERANCE:g}); "
                       "e.g. two levels: s_2 = (1 - f_1 s_1) / (1 - f_1)")

    def level_bounds(self, d: int) -> tuple[int, ...]:
        """Coordinate boundaries (0, d_0, d_0 + d_1, ..., d) of the levels at dimension d:
        level a is coordinates bounds[a]:bounds[a+1], bounds[a+1] = round(d sum_{b<=a} f_b)."""
        cumulative = np.round(np.cumsum(self.fractions[:-1]) * d).astype(int)
        return (0, *map(int, cumulative), int(d))

    def to_attrs(self) -> dict:
        """{"fractions": [...], "variances": [...]} (JSON/Zarr attributes)."""
        return {"fractions": list(self.fractions), "variances": list(self.variances)}


_COVARIANCE_ALLOWED = ("None (identity) or levels {fractions: [f_1, ...], variances: "
                       "[s_1, ...]} (or a pair (fractions, variances)) with f_a > 0 summing to 1, "
                       "s_a > 0 and sum_a f_a s_a = 1")


def _floats(values, whole) -> tuple[float, ...]:
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise _bad("covariance", whole, _COVARIANCE_ALLOWED)
    values = tuple(values)
    if not all(_is_number(v) for v in values):
        raise _bad("covariance", whole, "numbers as fractions and variances: "
                   + _COVARIANCE_ALLOWED)
    return tuple(float(v) for v in values)



@dataclasses.dataclass(frozen=True)
class Problem:
    """One training problem: Gaussian-mixture data, loss, ridge, training process, momentum.

    Fields (docs/theory.md §1):
        model: "two_cluster" (linear activation) or "three_cluster" (door activation).
        alpha: sample ratio, n = alpha * d.
        delta: cluster variance Delta.
        L: door onset (three_cluster only; must be None for two_cluster).
        lam: ridge strength lambda >= 0.
        R: variance of the initial weights, w(0) ~ N(0, R I).
        eta: learning rate (time step; time t = step * eta).
        process: "gd" (full batch), "sgd" (fresh Bernoulli(b) mask each step),
            "persistent" (persistent-SGD, a two-state Markov chain per sample), "flow"
            (every sample with weight b at every step: the mean drift of SGD, GD on the
            b-scaled loss) or "gauss_sgd" (fresh Gaussian weights s ~ N(b, b(1 - b)) per
            sample and step: Euler-Maruyama of the stochastic modified flow at dt = eta,
            shared docs/smf.md §2, issue 22) or "smf" (the stochastic modified flow
            dW = -grad Phi dt + sqrt(eta b (1 - b)) sum_mu G_mu dbeta_mu, one Brownian motion
            per sample, integrated with `smf_substeps` Heun substeps per eta; smf.md §2(b), §3).
        b: batch fraction in (0, 1]; must be 1 for "gd", in (0, 1) for "gauss_sgd" and "smf".
        tau: persistence time (persistent only), eta / tau <= 1.
        t_max: final time; the run makes round(t_max / eta) steps.
        momentum: heavy-ball coefficient beta in [0, 1) (docs/theory.md §7); 0 is plain GD/SGD.
        nesterov: evaluate the gradient (ridge included) at the look-ahead point
            p_k = (1 + beta) w_k - beta w_{k-1} (gamma = beta); needs momentum > 0.
        covariance: None (identity) or the levels of a diagonal input covariance, given as
            {fractions: [...], variances: [...]}, a pair or a `Covariance` (stored as a
            `Covariance`; one level is the identity and is stored as None).
        loss: "logistic" (ell(v) = log(1 + e^-v)) or "square" (ell(v) = (1 - v)^2 / 2),
            as a function of the margin v = y phi(h) (docs/theory.md §1, §7).
        smf_order: drift of "smf": 1 (grad Phi) or 2 (grad Phi + eta/2 Hess Phi grad Phi,
            the eta/4 |grad Phi|^2 correction; smf.md §2(c)); 1 for other processes.
        smf_substeps: Heun substeps per eta of "smf" (integer >= 1); 10 for other processes.
    """

    model: Model = "two_cluster"
    alpha: float = 2.0
    delta: float = 0.5
    L: float | None = None
    lam: float = 0.0
    R: float = 0.01
    eta: float = 0.2
    process: Process = "gd"
    b: float = 1.0
    tau: float | None = None
    t_max: float = 20.0
    momentum: float = 0.0
    nesterov: bool = False
    covariance: Covariance | None = None
    loss: Loss = "logistic"
    smf_order: int = 1
    smf_substeps: int = 10

    def __post_init__(self):
        object.__setattr__(self, "covariance", Covariance.of(self.covariance))
        self._validate()
        if self.process == "persistent" and self.deactivation_probability_unclipped > 1:
            warnings.warn(
                f"persistent-SGD deactivation probability (1-b)*eta/(b*tau) = "
                f"{self.deactivation_probability_unclipped:.4g} > 1 (b={self.b}, eta={self.eta}, "
                f"tau={self.tau}); clipped at 1, so the stationary active fraction is "
                f"{self.active_fraction:.4g} instead of b = {self.b}",
                stacklevel=3,
            )

    def _validate(self):
        if self.model not in MODELS:
            raise _bad("model", self.model, f"one of {MODELS}")
        if self.process not in PROCESSES:
            raise _bad("process", self.process, f"one of {PROCESSES}")
        for field in ("alpha", "delta", "eta", "t_max"):
            value = getattr(self, field)
            if not _is_number(value) or not value > 0 or not math.isfinite(value):
                raise _bad(field, value, "a finite number > 0")
        for field in ("lam", "R"):
            value = getattr(self, field)
            if not _is_number(value) or not value >= 0 or not math.isfinite(value):
                raise _bad(field, value, "a finite number >= 0")
        if self.model == "two_cluster" and self.L is not None:
            raise _bad("L", self.L, "None (omitted) for model 'two_cluster'; L is the door onset "
                       "of 'three_cluster'")
        if self.model == "three_cluster" and (not _is_number(self.L) or not self.L > 0):
            raise _bad("L", self.L, "a number > 0 for model 'three_cluster'")
        if not _is_number(self.b) or not 0 < self.b <= 1:
            raise _bad("b", self.b, "a number in (0, 1]")
        if self.process == "gd" and self.b != 1:
            raise _bad("b", self.b, "1 for process 'gd' (use 'sgd' or 'persistent' for b < 1)")
        if self.process in ("gauss_sgd", "smf") and self.b == 1:
            raise _bad("b", self.b, f"in (0, 1) for process '{self.process}': b = 1 has no "
                       "noise (variance b(1 - b) = 0); use 'flow' or 'gd' for the noiseless "
                       "process")
        self._validate_smf()
        if self.process == "persistent":
            if not _is_number(self.tau) or not self.tau > 0:
                raise _bad("tau", self.tau, "a number > 0 for process 'persistent'")
            if self.eta / self.tau > 1:
                raise _bad("tau", self.tau, f"at least eta = {self.eta} (the activation "
                           f"probability eta/tau = {self.eta / self.tau:.4g} must be <= 1)")
        elif self.tau is not None:
            raise _bad("tau", self.tau, f"None (omitted) for process '{self.process}'; tau is "
                       "the persistence time of 'persistent'")
        if self.n_steps < 1:
            raise _bad("t_max", self.t_max, f"at least one step, t_max >= eta = {self.eta}")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise _bad("momentum", self.momentum, "a number in [0, 1) (heavy-ball beta)")
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise _bad("nesterov", self.nesterov, "True or False")
        if self.nesterov and self.momentum == 0:
            raise _bad("nesterov", self.nesterov, "False when momentum = 0 (Nesterov uses "
                       "gamma = momentum: give momentum in (0, 1) with nesterov=True)")
        if self.loss not in LOSSES:
            raise _bad("loss", self.loss, f"one of {LOSSES}")
        object.__setattr__(self, "nesterov", bool(self.nesterov))

    def _validate_smf(self):
        for field, allowed, default in (("smf_order", (1, 2), 1),
                                        ("smf_substeps", None, 10)):
            value = getattr(self, field)
            if (not _is_number(value) or not float(value).is_integer()  # 2.0 (a CLI) is 2
                    or (allowed is not None and value not in allowed) or value < 1):
                raise _bad(field, value, "1 or 2 (the eta/4 second-order drift)"
                           if allowed else "an integer >= 1 (Heun substeps per eta)")
            if self.process != "smf" and value != default:
                raise _bad(field, value, f"{default} (the default) for process "
                           f"'{self.process}'; {field} is an option of 'smf'")
            object.__setattr__(self, field, int(value))
        if self.process == "smf" and self.momentum != 0:
            raise _bad("momentum", self.momentum, "0 for process 'smf' (the stochastic "
                       "modified flow has no momentum form here)")

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_steps(self) -> int:
        """Number of steps K = round(t_max / eta)."""
        return int(round(self.t_max / self.eta))

    @property
    def activation_probability(self) -> float:
        """P(s: 0 -> 1) per step: eta/tau (persistent), b (sgd), 1 (gd)."""
        if self.process == "persistent":
            return self.eta / self.tau
        return self.b

    @property
    def deactivation_probability_unclipped(self) -> float:
        """(1 - b) eta / (b tau), the persistent chain's P(1 -> 0) before clipping."""
        return (1 - self.b) * self.eta / (self.b * self.tau)

    @property
    def deactivation_probability(self) -> float:
        """P(s: 1 -> 0) per step: min(1, (1-b) eta/(b tau)) (persistent), 1-b (sgd), 0 (gd)."""
        if self.process == "persistent":
            return min(1.0, self.deactivation_probability_unclipped)
        return 1.0 - self.b

    @property
    def active_fraction(self) -> float:
        """Stationary P(s = 1) = p01 / (p01 + p10); equals b unless p10 was clipped."""
        p01, p10 = self.activation_probability, self.deactivation_probability
        return p01 / (p01 + p10)

    @property
    def smf_noise_amplitude(self) -> float:
        """sqrt(eta b (1 - b)): dW = ... + amplitude sum_mu G_mu dbeta_mu (smf.md §2(b))."""
        return math.sqrt(self.eta * self.b * (1 - self.b))

    @property
    def gamma(self) -> float:
        """Look-ahead coefficient of the gradient point: beta (Nesterov) or 0 (heavy ball)."""
        return self.momentum if self.nesterov else 0.0

    @property
    def level_fractions(self) -> tuple[float, ...]:
        """Fractions f_a of the covariance levels; (1.0,) for the identity."""
        return (1.0,) if self.covariance is None else self.covariance.fractions

    @property
    def level_variances(self) -> tuple[float, ...]:
        """Variances s_a of the covariance levels; (1.0,) for the identity."""
        return (1.0,) if self.covariance is None else self.covariance.variances

    def level_bounds(self, d: int) -> tuple[int, ...]:
        """Coordinate boundaries of the levels at dimension d; (0, d) for the identity."""
        return (0, int(d)) if self.covariance is None else self.covariance.level_bounds(d)

    @property
    def data_key(self) -> tuple:
        """What fixes the training data: problems with equal keys can share a data matrix."""
        return (self.model, self.alpha, self.delta, self.covariance)

    def replace(self, **changes) -> "Problem":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field; the covariance as {"fractions": [...], "variances": [...]} or None."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.covariance is not None:
            values["covariance"] = self.covariance.to_attrs()
        return values

    def to_attrs(self) -> dict:
        """Flat attributes for a dataset; None becomes NaN-free string 'none'."""
        return {k: ("none" if v is None else v) for k, v in self.to_dict().items()}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "Problem":
        """Inverse of `to_attrs` (extra attributes are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: (None if v == "none" else v) for k, v in attrs.items() if k in fields}
        return cls(**values)


# ---------------------------------------------------------------------------- data model
def sample_clusters(model: str, size, rng: np.random.Generator) -> np.ndarray:
    """Cluster index c: two-cluster c = +-1 (1/2 each); three-cluster c = 0 (1/2), +-1 (1/4 each)."""
    u = rng.random(size)
    if model == "two_cluster":
        return np.where(u < 0.5, -1.0, 1.0)
    return np.where(u < 0.5, 0.0, np.where(u < 0.75, -1.0, 1.0))


def labels(model: str, c: np.ndarray) -> np.ndarray:
    """Label y(c): two-cluster y = c; three-cluster y = -1 for c = 0, +1 for c = +-1."""
    if model == "two_cluster":
        return np.asarray(c, dtype=float)
    return np.where(np.asarray(c) == 0, -1.0, 1.0)


# ----------------------------------------------------------------- activation and loss
# Scalar definitions compiled with numba, so that the simulator's one-pass kernel and the
# numpy callers (DMFT, observables) use the very same formulas; `door` selects the model.
@numba.njit(cache=True)
def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True)
def _activation(h, L, door):
    return h * h - L * L if door else h


@numba.njit(cache=True)
def _activation_prime(h, door):
    return 2.0 * h if door else 1.0


@numba.njit(cache=True)
def _logistic_loss(v):
    return max(-v, 0.0) + math.log1p(math.exp(-abs(v)))


@numba.njit(cache=True)
def _logistic_loss_prime(v):
    return -_sigmoid(-v)


@numba.njit(cache=True)
def _logistic_loss_second(v):
    return _sigmoid(v) * _sigmoid(-v)


@numba.njit(cache=True)
def _square_loss(v):
    return 0.5 * (1.0 - v) * (1.0 - v)


@numba.njit(cache=True)
def _square_loss_prime(v):
    return v - 1.0


@numba.njit(cache=True)
def _square_loss_second(v):
    return 1.0 + 0.0 * v


# loss codes of the compiled functions: LOSSES.index(problem.loss)
_LOGISTIC, _SQUARE = LOSSES.index("logistic"), LOSSES.index("square")


@numba.njit(cache=True)
def _loss(v, kind):
    return _square_loss(v) if kind == _SQUARE else _logistic_loss(v)


@numba.njit(cache=True)
def _loss_prime(v, kind):
    return _square_loss_prime(v) if kind == _SQUARE else _logistic_loss_prime(v)


@numba.njit(cache=True)
def _loss_second(v, kind):
    return _square_loss_second(v) if kind == _SQUARE else _logistic_loss_second(v)


@numba.njit(cache=True)
def gradient_factor(y, h, L, door, kind):
    """Lambda'(y, h) = y ell'(y phi(h)) phi'(h) (scalar, numba; theory §1); `kind` is the
    loss code `loss_code(loss)`."""
    return y * _loss_prime(y * _activation(h, L, door), kind) * _activation_prime(h, door)


@numba.njit(cache=True)
def _curvature(y, h, L, door, kind):
    v = y * _activation(h, L, door)
    second = _loss_second(v, kind) * _activation_prime(h, door) ** 2
    return second + (2.0 * y * _loss_prime(v, kind) if door else 0.0)


# float32 first: numpy picks the first loop the inputs cast to safely
_SIGNATURES = ["float32(float32, float32, float32, boolean, int64)",
               "float64(float64, float64, float64, boolean, int64)"]
_UNARY = ["float32(float32)", "float64(float64)"]
_UFUNCS = {"gradient_factor": (_SIGNATURES, gradient_factor),
           "curvature": (_SIGNATURES, _curvature),
           "loss": (["float32(float32, int64)", "float64(float64, int64)"], _loss),
           "logistic_loss": (_UNARY, _logistic_loss),
           "logistic_loss_prime": (_UNARY, _logistic_loss_prime),
           "logistic_loss_second": (_UNARY, _logistic_loss_second)}


@functools.cache
def _ufunc(name: str):
    """The numpy ufunc of a scalar function of _UFUNCS, built at its first use and not at
    import: building the six of them (from numba's cache) costs about 1 s, which every
    process importing sims would pay (pipeline workers, analysis jobs)."""
    signatures, function = _UFUNCS[name]
    return numba.vectorize(signatures, cache=True)(function)


def loss_code(loss) -> np.ndarray:
    """Integer code(s) of loss name(s) for the compiled functions (array broadcasting like
    `loss`)."""
    names = np.asarray(loss)
    if not np.isin(names, LOSSES).all():
        raise ValueError(f"loss = {loss!r} is not allowed: loss must be one of {LOSSES}")
    return np.vectorize(LOSSES.index, otypes=[np.int64])(names)


def _ufunc_args(model: str, y, h, L, loss):
    """(y, h, L, door, code) in one float dtype (float32 only if y and h are float32)."""
    dtype = np.float32 if np.result_type(y, h) == np.float32 else np.float64
    door = model == "three_cluster"
    return (np.asarray(y, dtype), np.asarray(h, dtype), np.asarray(L if door else 0.0, dtype),
            door, loss_code(loss))


def activation(model: str, h, L=None):
    """phi(h): h (two-cluster) or h^2 - L^2 (door, three-cluster)."""
    return h if model == "two_cluster" else h * h - L * L


def logistic_loss(v):
    """ell(v) = log(1 + exp(-v)), computed stably."""
    return _ufunc("logistic_loss")(v)


def logistic_loss_prime(v):
    """ell'(v) = -sigma(-v)."""
    return _ufunc("logistic_loss_prime")(v)


def logistic_loss_second(v):
    """ell''(v) = sigma(v) sigma(-v)."""
    return _ufunc("logistic_loss_second")(v)


def margin_loss(v, loss="logistic"):
    """ell(v) of the margin v = y phi(h): logistic log(1 + e^-v) or square (1 - v)^2 / 2.

    `loss` is a name of LOSSES or an array of names broadcasting against v (theory §1, §7).
    """
    return _ufunc("loss")(v, loss_code(loss))


def sample_loss(model: str, y, h, L=None, loss="logistic"):
    """Lambda(y, h) = ell(y phi(h)) (theory §1, §7); `loss` as in `margin_loss`."""
    return margin_loss(y * activation(model, h, L), loss)


def sample_loss_prime(model: str, y, h, L=None, loss="logistic"):
    """Lambda'(y, h) = y ell'(y phi) phi'(h), the per-sample gradient factor (theory §1)."""
    return _ufunc("gradient_factor")(*_ufunc_args(model, y, h, L, loss))


def sample_loss_second(model: str, y, h, L=None, loss="logistic"):
    """Lambda''(y, h) = ell''(y phi) phi'^2 + y ell'(y phi) phi'' (theory §1); < 0 possible (door)."""
    return _ufunc("curvature")(*_ufunc_args(model, y, h, L, loss))


def correct(model: str, y, h, L=None):
    """Theta(y phi(h)): 1 where the sample is classified correctly, 1/2 on the boundary."""
    return np.heaviside(y * activation(model, h, L), 0.5)


# -------------------------------------------------------- momentum on a quadratic loss
def momentum_polynomials(problem: Problem, x, n_steps: int, *, kick: bool = False):
    """The momentum polynomials Pi_k(x), k = 0..n_steps, of the problem's optimiser.

    Pi_{k+1} = (1 + beta) Pi_k - beta Pi_{k-1} - eta (lam + x) [(1 + gamma) Pi_k - gamma Pi_{k-1}]
    with (Pi_0, Pi_-1) = (1, 1) (an initial condition, w_{-1} = w_0) or, with kick=True,
    (1, 0) (a unit kick at step 0). On a quadratic loss with Hessian H the error of the
    iterates is e_k = Pi_k(H) e_0 (docs/theory.md §7.2; dmft-extensions §5.3, where the
    kick and initial-condition versions are the propagator G and the response Y).
    Returns an array (n_steps + 1, *shape of x).
    """
    x = np.asarray(x, dtype=float)
    beta, gamma, eta, lam = problem.momentum, problem.gamma, problem.eta, problem.lam
    out = np.empty((n_steps + 1, *x.shape))
    out[0] = 1.0
    previous = np.zeros_like(x) if kick else np.ones_like(x)
    for k in range(n_steps):
        out[k + 1] = ((1 + beta) * out[k] - beta * previous
                      - eta * (lam + x) * ((1 + gamma) * out[k] - gamma * previous))
        previous = out[k]
    return out


# ------------------------------------------------------------------- closed-form errors
def generalization_error(model: str, m, norm2, delta: float, L=None):
    """Test error from the order parameters m = w.v*/d and C = |w|^2/d (theory §1).

    With a covariance Sigma pass C_Sigma = w^T Sigma w / d as `norm2` (theory §7): the
    noise of a fresh point's pre-activation has variance Delta C_Sigma.

    two-cluster:   eps = 1/2 erfc(m / sqrt(2 Delta C))
    three-cluster: eps = 1/2 erfc(L / sqrt(2 Delta C))
                         + 1/4 [erf((L - m)/sqrt(2 Delta C)) + erf((L + m)/sqrt(2 Delta C))]
    C = 0 gives NaN (0/0).
    """
    m = np.asarray(m, dtype=float)
    norm2 = np.asarray(norm2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm2 > 0, np.sqrt(2 * delta * norm2), np.nan)
        if model == "two_cluster":
            return 0.5 * special.erfc(m / scale)
        return 0.5 * special.erfc(L / scale) + 0.25 * (
            special.erf((L - m) / scale) + special.erf((L + m) / scale))


def bayes_optimal_error(alpha: float, delta: float) -> float:
    """Two-cluster Bayes-optimal error 1/2 erfc(sqrt(alpha / (2 Delta (alpha + Delta))))."""
    return 0.5 * special.erfc(math.sqrt(alpha / (2 * delta * (alpha + delta))))


def oracle_error(delta: float, L: float) -> float:
    """Three-cluster oracle error: min over kappa > 0 of the closed form with m = kappa, C = kappa^2.

    It depends only on u = L / kappa: eps(u) = 1/2 erfc(u/sqrt(2 Delta))
    + 1/4 [erf((u - 1)/sqrt(2 Delta)) + erf((u + 1)/sqrt(2 Delta))].
    """
    def error(kappa):
        return float(generalization_error("three_cluster", kappa, kappa * kappa, delta, L))

    # the minimiser kappa* lies between L / 2 (u = 2) and 2 L (u = 1/2) for any Delta > 0
    result = optimize.minimize_scalar(error, bounds=(0.05 * L, 20 * L), method="bounded",
                                      options={"xatol": 1e-12})
    return float(result.fun)


def reference_error(problem: Problem) -> float:
    """Bayes-optimal (two-cluster) or oracle (three-cluster) error: the dashed line of the figures."""
    if problem.model == "two_cluster":
        return bayes_optimal_error(problem.alpha, problem.delta)
    return oracle_error(problem.delta, problem.L)


# -------------------------------------------------------------------- selection process
class SelectionChain:
    """The sample-selection process s_k in {0, 1} of a training process (theory §1).

    GD: s = 1. SGD: i.i.d. Bernoulli(b). Persistent-SGD: P(0->1) = eta/tau,
    P(1->0) = min(1, (1-b) eta/(b tau)), s_0 ~ Bernoulli(active fraction). All three are
    the same two-state chain with (p01, p10) = (1, 0), (b, 1-b), (eta/tau, p10), driven by
    one uniform number per sample and step: s' = [u < p01] if s = 0 else [u >= p10].
    Vectorized over any array of samples; parameters may be arrays broadcasting against it.
    """

    def __init__(self, p01, p10):
        self.p01 = np.asarray(p01, dtype=float)
        self.p10 = np.asarray(p10, dtype=float)

    @classmethod
    def of(cls, problem: Problem) -> "SelectionChain":
        """The chain of a problem whose process is one of CHAIN_PROCESSES (ValueError else)."""
        if problem.process not in CHAIN_PROCESSES:
            raise ValueError(
                f"Problem.process = {problem.process!r} has no two-state selection chain (only "
                f"{CHAIN_PROCESSES} do): its weights are real (`Selection`, the law that the "
                "simulator and the DMFT both draw from, docs/theory.md §9.2)")
        return cls(problem.activation_probability, problem.deactivation_probability)

    @property
    def stationary(self):
        return self.p01 / (self.p01 + self.p10)

    def initial(self, u: np.ndarray) -> np.ndarray:
        """s_0 from uniforms u: active with the stationary probability."""
        return u < self.stationary

    def step(self, s: np.ndarray, u: np.ndarray) -> np.ndarray:
        """s_{k+1} from s_k and uniforms u."""
        return np.where(s, u >= self.p10, u < self.p01)


_UNIFORM_OFFSET = 2.0 ** -54  # half the spacing of Generator.random(): u + offset is in (0, 1)


class Selection:
    """The selection weights s_mu(k) of a batch of problems, one per problem and sample.

    (theory §1, §9; for flow and gauss_sgd the shared docs/smf.md §2, issue 22.)

    Chain processes (gd, sgd, persistent) have s in {0, 1} from their `SelectionChain`;
    "flow" and "smf" have s = b (the drift; the engine adds the SMF's noise); "gauss_sgd"
    has s = b + sqrt(b (1 - b)) Phi^-1(u), i.e. N(b, b(1 - b))
    i.i.d. per sample and step. All are driven by the same one uniform u per sample and
    step, so every process consumes the random stream alike: a problem's weights do not
    depend on the batch, and processes of the same seed share their uniforms.

    The simulator passes uniforms of shape (n,) and gets weights (P, n); the DMFT builds
    `Selection([problem])` and passes uniforms (groups, n) of its effective samples (the
    (1, 1) parameters broadcast): both draw s from this one law (theory §9.2).
    """

    def __init__(self, problems: list[Problem]):
        def column(values):
            return np.array(values)[:, None]
        self.chain = SelectionChain(column([p.activation_probability for p in problems]),
                                    column([p.deactivation_probability for p in problems]))
        self.b = column([float(p.b) for p in problems])
        self.gaussian = column([p.process == "gauss_sgd" for p in problems])
        self.constant = column([p.process in ("flow", "smf") for p in problems])

    @property
    def fixed(self) -> bool:
        """True if every weight is fixed in time (gd: s = 1, flow and smf: s = b), whatever
        the uniforms: there is nothing to draw."""
        gd_chain = (self.chain.p01 == 1) & (self.chain.p10 == 0)
        return bool(np.all(self.constant | (gd_chain & ~self.gaussian)))

    @property
    def binary(self) -> bool:
        """True if every weight is a chain mask in {0, 1} (no flow, smf or gauss_sgd)."""
        return not bool(np.any(self.constant | self.gaussian))

    def _real(self, chain_masks: np.ndarray, u: np.ndarray) -> np.ndarray:
        """float weights: the chain's masks, b (flow) or N(b, b(1 - b)) from u (gauss_sgd)."""
        s = chain_masks.astype(float)
        if self.constant.any():
            s = np.where(self.constant, self.b, s)
        if self.gaussian.any():
            normal = special.ndtri(u + _UNIFORM_OFFSET)
            s = np.where(self.gaussian, self.b + np.sqrt(self.b * (1 - self.b)) * normal, s)
        return s

    def initial(self, u: np.ndarray) -> np.ndarray:
        """s_0 (P, n) from uniforms u (n,)."""
        return self._real(self.chain.initial(u), u)

    def step(self, s: np.ndarray, u: np.ndarray) -> np.ndarray:
        """s_{k+1} (P, n) from s_k and uniforms u (n,) (the chain reads s != 0 as active)."""
        return self._real(self.chain.step(s != 0, u), u)
