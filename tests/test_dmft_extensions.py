"""DMFT with momentum, Nesterov, covariance levels and the square loss (docs/theory.md
§7.3-§7.6; the facts are numbered as in dmft-extensions §5).

Exact facts: the spectral identity of the square loss (§5.3), the first step with a
covariance (§5.2), the bit-identical beta = 0 reduction (§5.1); the lam > 0 fixed point
(§5.4) within Monte-Carlo error; and, marked slow, DMFT against finite-d simulations.
"""

import math

import numpy as np
import pytest
from scipy.special import erfc

import dmft
import sims
from dmft.extended import ExtendedSolver
from dmft.output import to_dataset
from sims import Problem
from sims.problem import momentum_polynomials

TWO_LEVELS = dict(fractions=[0.2, 0.8], variances=[3.0, 0.5])
SMALL = dict(n_samples=2000, response_samples=400, response_window=4)


def marchenko_pastur_rule(alpha: float, nodes: int = 4000):
    """Nodes and weights of the Marchenko-Pastur law of A^T A (A = Z / sqrt(d), alpha d x d):
    density sqrt((x+ - x)(x - x-)) / (2 pi x), x+- = (sqrt(alpha) +- 1)^2 (alpha > 1, no atom).
    Gauss-Chebyshev rule of the second kind in x = c + h t: exact up to the analytic 1/x."""
    lo, hi = (math.sqrt(alpha) - 1) ** 2, (math.sqrt(alpha) + 1) ** 2
    center, half = (lo + hi) / 2, (hi - lo) / 2
    theta = np.arange(1, nodes + 1) * np.pi / (nodes + 1)
    x = center + half * np.cos(theta)
    weights = np.pi / (nodes + 1) * np.sin(theta) ** 2 * half ** 2 / (2 * np.pi * x)
    return x, weights


@pytest.mark.parametrize("optimiser", [dict(momentum=0.9), dict(momentum=0.5, nesterov=True,
                                                                  lam=0.1)])
def test_square_loss_propagators_are_the_spectral_average(optimiser):
    """§5.3: square loss, GD, Sigma = I: q = 1, so T, M_R, G and Y are deterministic and
    G(k, j) = E_MP[Pi_{k-j}(Delta x)], Y(k) = E_MP[Pi^Y_k(Delta x)] exactly."""
    p = Problem(loss="square", t_max=50 * 0.2, **optimiser)
    ds = dmft.solve(p, n_samples=16, n_replicas=2, response_samples=None,
                    response_window=None, response_dtype="float64")
    x, w = marchenko_pastur_rule(p.alpha)
    assert abs(w.sum() - 1) < 1e-14 and abs(w @ x - p.alpha) < 1e-13
    kick = momentum_polynomials(p, p.delta * x, p.n_steps, kick=True) @ w
    initial = momentum_polynomials(p, p.delta * x, p.n_steps) @ w
    G = ds.response.values
    k, j = np.tril_indices(p.n_steps + 1)
    assert np.abs(G[k, j] - kick[k - j]).max() < 1e-12
    assert np.abs(G[j, k][k > j]).max() == 0  # causal
    assert np.abs(ds.initial_response.values - initial).max() < 1e-12
    # the memory really acts: without it G would be the x = alpha mean-field polynomial
    mean_field = momentum_polynomials(p, np.array(p.delta * p.alpha), p.n_steps, kick=True)
    assert np.abs(G[k, j] - mean_field[k - j]).max() > 1e-2


def test_square_loss_two_levels_match_the_empirical_spectrum():
    """§5.3 with a two-level Sigma (Nesterov): sum_a f_a G_a(k, j) = tr Pi_{k-j}(H) / d and
    sum_a f_a Y_a = tr Pi^Y(H) / d, H = Delta Sigma^1/2 A^T A Sigma^1/2, to finite-d accuracy."""
    p = Problem(loss="square", t_max=30 * 0.2, momentum=0.5, nesterov=True,
                covariance=TWO_LEVELS)
    ds = dmft.solve(p, n_samples=16, n_replicas=2, response_samples=None,
                    response_window=None, response_dtype="float64")
    d = 2000
    Z = np.random.default_rng(1).standard_normal((round(p.alpha * d), d))
    root = np.sqrt(np.repeat(p.level_variances, np.diff(p.level_bounds(d))))
    A = Z * root / math.sqrt(d)
    eig = p.delta * np.linalg.eigvalsh(A.T @ A)
    kick = momentum_polynomials(p, eig, p.n_steps, kick=True).mean(axis=1)
    initial = momentum_polynomials(p, eig, p.n_steps).mean(axis=1)
    k, j = np.tril_indices(p.n_steps + 1)
    assert np.abs(ds.response.values[k, j] - kick[k - j]).max() < 1.5e-3  # 3e-4 measured
    assert np.abs(ds.initial_response.values - initial).max() < 1.5e-3  # 2e-4 measured
    # the identity covariance is far from it: the levels matter
    identity = dmft.solve(p.replace(covariance=None), n_samples=16, n_replicas=2,
                          response_samples=None, response_window=None, response_dtype="float64")
    assert np.abs(identity.response.values[k, j] - kick[k - j]).max() > 0.1


@pytest.mark.parametrize("problem", [
    Problem(t_max=6.0),
    Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=6.0, lam=0.1, loss="square"),
    Problem(model="three_cluster", L=1.0, process="sgd", b=0.5, t_max=3.0),
], ids=["gd", "persistent-square", "three-cluster-sgd"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_extended_path_at_beta_zero_is_the_plain_solver_bit_for_bit(problem, backend):
    """§5.1: beta = 0, one level: the momentum/levels code path gives the plain solver's
    numbers bit for bit (every variable of the dataset), and `Solver` picks the plain class."""
    settings = dict(SMALL, backend=backend, d=1000 if problem.model == "three_cluster" else None)
    plain = dmft.Solver(problem, **settings)
    assert type(plain) is dmft.Solver
    assert type(dmft.Solver(problem.replace(momentum=0.5), **settings)) is ExtendedSolver
    a = to_dataset(plain.advance(problem.t_max), "causal")
    b = to_dataset(ExtendedSolver(problem, **settings).advance(problem.t_max), "causal")
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize("optimiser", [{}, dict(momentum=0.9), dict(momentum=0.5, nesterov=True)])
def test_first_step_with_covariance(optimiser):
    """§5.2: from R = 0 the first step does not depend on beta, gamma: m_a(1) = eta alpha / 2,
    C_Sigma(1) = eta^2 (alpha^2 + alpha Delta <s^2>) / 4 = 0.06, C(1) = 0.05 and
    eps(t1) = 1/2 erfc sqrt(alpha / (2 Delta (alpha + Delta <s^2>))) = 0.124107."""
    p = Problem(R=0.0, covariance=TWO_LEVELS, t_max=0.2, **optimiser)
    ds = dmft.solve(p, n_samples=400)
    s2 = sum(f * s * s for f, s in zip(p.level_fractions, p.level_variances))
    eps = 0.5 * erfc(math.sqrt(p.alpha / (2 * p.delta * (p.alpha + p.delta * s2))))
    assert abs(eps - 0.124107) < 1e-6
    assert abs(ds.gen_error[1] - eps) < 1e-12
    assert abs(ds.norm2_sigma[1] - p.eta ** 2 * (p.alpha ** 2 + p.alpha * p.delta * s2) / 4) < 1e-12
    assert abs(ds.norm2[1] - 0.05) < 1e-12
    np.testing.assert_allclose(ds.magnetization_level[:, 1], p.eta * p.alpha / 2, atol=1e-12)
    assert ds.magnetization_level.dims == ("level", "time") and ds.sizes["level"] == 2
    # C = sum f_a C_a and C_Sigma = sum f_a s_a C_a at every step
    f, s = np.array(p.level_fractions)[:, None], np.array(p.level_variances)[:, None]
    np.testing.assert_allclose((f * ds.norm2_level).sum("level"), ds.norm2, rtol=1e-12)
    np.testing.assert_allclose((f * s * ds.norm2_level).sum("level"), ds.norm2_sigma, rtol=1e-12)


def test_momentum_first_step_is_dmft_fact_3():
    """§5.1/§5.2 (dmft.md fact 3), beta = 0.9 from R = 0: eps(t1) = 0.10295, C(1) = 0.05, m1 = 0.2."""
    ds = dmft.solve(Problem(R=0.0, momentum=0.9, t_max=0.2), n_samples=400)
    assert abs(ds.gen_error[1] - 0.5 * erfc(math.sqrt(2 / (2 * 0.5 * 2.5)))) < 1e-12
    assert abs(ds.gen_error[1] - 0.10295) < 5e-6
    assert abs(ds.norm2[1] - 0.05) < 1e-12 and abs(ds.magnetization[1] - 0.2) < 1e-12


def test_equal_variances_reduce_to_one_level():
    """§5.1: two levels with s_1 = s_2 = 1 are one level (independent noises combine);
    the curves agree within Monte-Carlo error (different random numbers)."""
    base = Problem(momentum=0.5, t_max=4.0, R=0.01)
    one = dmft.solve(base, **SMALL)
    two = dmft.solve(base.replace(covariance=dict(fractions=[0.2, 0.8], variances=[1.0, 1.0])),
                     **SMALL)
    for name in ("gen_error", "norm2", "magnetization"):
        err = np.hypot(one[f"{name}_mc_error"], two[f"{name}_mc_error"])[1:]
        z = np.abs(one[name] - two[name])[1:] / err
        assert float(z.max()) < 4, name
    np.testing.assert_allclose(two.norm2_sigma, two.norm2, rtol=1e-12)


@pytest.mark.parametrize("optimiser", [dict(momentum=0.5), dict(momentum=0.9, nesterov=True)])
def test_momentum_does_not_move_the_ridge_fixed_point(optimiser):
    """§5.4: lam = 1, GD: the t -> inf state is the ridge-logistic ERM fixed point
    m = 0.5628, C = 0.4014, eps = 0.10452 (dmft.md test 4), whatever the momentum."""
    ds = dmft.solve(Problem(lam=1.0, t_max=20.0, **optimiser), n_samples=4000)
    late = ds.sel(time=slice(18, 20))
    assert float(np.abs(late.magnetization.diff("time")).max()) < 1e-4  # converged
    for name, value in dict(magnetization=0.5628, norm2=0.4014, gen_error=0.10452).items():
        err = float(ds[f"{name}_mc_error"][-1])
        assert abs(float(ds[name][-1]) - value) < 3 * err + 2e-3 * value, name


def test_extended_backends_agree_and_resume_is_exact():
    """The numba and numpy response recursions (levels, Nesterov) agree with float64
    storage; a resumed solve equals one solve to the later time bit for bit."""
    p = Problem(momentum=0.5, nesterov=True, covariance=TWO_LEVELS, process="persistent",
                b=0.3, tau=1 / 0.6, t_max=4.0)
    settings = dict(SMALL, response_dtype="float64")
    a = dmft.solve(p, backend="numba", **settings)
    b = dmft.solve(p, backend="numpy", **settings)
    for name in ("gen_error", "norm2", "memory_kernel", "norm2_level"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12, err_msg=name)
    early = dmft.solve_state(p.replace(t_max=2.0), **settings, backend="numba")
    resumed = dmft.solve(p, resume_from=early, **settings, backend="numba")
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, resumed[name].values, err_msg=name)


@pytest.mark.parametrize("optimiser", [{}, dict(momentum=0.5, nesterov=True)])
def test_memory_estimate_counts_levels_and_momentum_rows(optimiser):
    """The estimate of `memory_limit` counts what the pass allocates: per-level response
    paths (plus the last two T rows per source with momentum), per-level h, z histories
    and the Sobol' points with per-level coordinates."""
    p = Problem(covariance=TWO_LEVELS, t_max=4.0, **optimiser)
    solver = dmft.Solver(p, **SMALL).advance(p.t_max)
    held = solver.paths.T.nbytes + solver.paths.last.nbytes + solver.sobol.points.nbytes + sum(
        getattr(solver.histories, name).nbytes for name in solver.histories.NAMES)
    size = p.n_steps + 1
    assert solver.memory_estimate(p.n_steps) - 10 * solver.groups * size * size * 8 == held
    assert solver.paths.last.size > 0 if optimiser else solver.paths.last.size == 0
    with pytest.raises(dmft.MemoryLimitError, match="memory_limit"):
        dmft.Solver(p, **SMALL, memory_limit=held).advance(p.t_max)


def test_iterative_method_converges_to_the_causal_pass():
    """The fixed-point iteration (§5.2 of docs/theory.md) with momentum and levels: its
    kernels (lam_hat, the signal force mu_a, M_C, M_R) converge to the causal pass's."""
    p = Problem(momentum=0.5, nesterov=True, covariance=TWO_LEVELS, t_max=2.0)
    settings = dict(n_samples=400, response_samples=400)
    iterative = dmft.solve(p, method="iterative", tolerance=1e-10, max_iterations=80, **settings)
    causal = dmft.solve(p, **settings)
    assert iterative.attrs["converged"]
    for name in ("gen_error", "norm2_level", "magnetization_level", "memory_kernel"):
        np.testing.assert_allclose(iterative[name], causal[name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)


# --------------------------------------------------------------------- against simulations
def _agree(ds, sm, names, bound=3.0):
    """max over t > 0 of |DMFT - sims| / combined standard error, per variable."""
    worst = {}
    for name in names:
        mean = sm[name].mean("seed")
        se = sm[name].std("seed", ddof=1) / math.sqrt(sm.sizes["seed"])
        z = np.abs(ds[name] - mean) / np.sqrt(se ** 2 + ds[f"{name}_mc_error"] ** 2)
        worst[name] = float(z.isel(time=slice(1, None)).max())
    assert max(worst.values()) < bound, worst
    return worst


CURVES = ("gen_error", "norm2", "magnetization", "train_loss")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["heavy-ball-gd", "nesterov-persistent", "two-levels-gd"])
def test_dmft_matches_simulations(case):
    """DMFT vs simulations (d = 1000, 12 seeds) within 3 combined standard errors, t <= 20.

    Smaller DMFT settings than the defaults (n_samples = 8000 in 4 groups). Heavy ball
    beta = 0.9 is in the separable regime where the kernels are carried by few samples
    near the margin (dmft-extensions §6): there every sample carries a response path
    (response_samples=None); with the default 1000 (250 per group) a group can blow up
    near t = 20 and C(20) is 10-40 % too large.
    """
    problem, settings, names = {
        "heavy-ball-gd": (Problem(momentum=0.9, R=0.01, t_max=20.0),
                          dict(response_samples=None), CURVES),
        "nesterov-persistent": (Problem(momentum=0.5, nesterov=True, process="persistent",
                                        b=0.3, tau=1 / 0.6, R=0.01, t_max=20.0), {}, CURVES),
        "two-levels-gd": (Problem(covariance=TWO_LEVELS, R=0.01, t_max=20.0), {},
                          CURVES + ("norm2_sigma", "magnetization_level", "norm2_level"))}[case]
    ds = dmft.solve(problem, n_samples=8000, **settings)
    sm = sims.simulate(problem, d=1000, seeds=12)
    assert ds.attrs["status"] == "success"
    print(case, "max |z| over 0 < t <= 20:", _agree(ds, sm, names))


@pytest.mark.slow
def test_heavy_ball_matches_simulations_up_to_t_100():
    """Heavy ball beta = 0.5, GD, two-cluster: dmft.solve with 8 groups of the default size
    against simulations (d = 1000, 32 seeds) within 3 combined standard errors at every
    0 < t <= 100. With the default 4 groups the error estimate of m(100) has 3 degrees of
    freedom: solver seed 0 reported 0.008 where seed 1 reported 0.047 (|z| 3.4 against
    5.850 +- 0.015), so the test uses 8 (7 degrees of freedom)."""
    problem = Problem(momentum=0.5, R=0.01, t_max=100.0)
    ds = dmft.solve(problem, n_replicas=8)
    sm = sims.simulate(problem, d=1000, seeds=32)
    assert ds.attrs["status"] == "success" and float(ds.time[-1]) == pytest.approx(100.0)
    print("heavy ball beta = 0.5, max |z| over 0 < t <= 100:", _agree(ds, sm, CURVES))
