"""The simulator with momentum, Nesterov, input covariance and the square loss (theory §7).

Reference computations here are independent of the engine's kernel: a plain numpy loop of
the update of dmft-extensions §1, and the exact spectral solution of the (linear) square-loss
GD with momentum; both run on the engine's own data (`training_data`).
"""

import math

import numpy as np
import pytest
import xarray as xr

from sims import Problem, simulate, simulate_batch
from sims import problem as pb
from sims.engine import training_data

LEVELS = {"fractions": [0.2, 0.8], "variances": [3.0, 0.5]}
OBSERVABLES = ("gen_error", "train_loss", "train_acc", "norm2", "magnetization",
               "active_fraction", "norm2_sigma", "magnetization_level", "norm2_level")


def _observables(problem, w, A, y, d):
    """norm2, magnetization, train_loss, per-level m_a and C_a, C_Sigma of weights w."""
    bounds = problem.level_bounds(d)
    levels = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return dict(norm2=w @ w / d, magnetization=w.mean(),
                train_loss=pb.sample_loss(problem.model, y, A @ w, problem.L,
                                          problem.loss).mean(),
                magnetization_level=[w[a].mean() for a in levels],
                norm2_level=[w[a] @ w[a] / w[a].size for a in levels],
                norm2_sigma=sum(s * (w[a] @ w[a]) for s, a in
                                zip(problem.level_variances, levels)) / d)


def _reference(problem, d, seed, *, ridge_at_iterate=False):
    """The update of dmft-extensions §1 written plainly (GD): gradient and ridge at
    p_k = (1 + gamma) w_k - gamma w_{k-1}, w_{-1} = w_0. `ridge_at_iterate` puts the ridge
    at w_k instead (a wrong Nesterov, to show the comparison can tell)."""
    A, y, w = training_data(problem, d, seed)
    w_prev = w.copy()
    beta, gamma, eta, lam = problem.momentum, problem.gamma, problem.eta, problem.lam
    rows = []
    for _ in range(problem.n_steps + 1):
        rows.append(_observables(problem, w, A, y, d))
        p = (1 + gamma) * w - gamma * w_prev
        grad = A.T @ pb.sample_loss_prime(problem.model, y, A @ p, problem.L, problem.loss)
        ridge = lam * (w if ridge_at_iterate else p)
        w, w_prev = w + beta * (w - w_prev) - eta * (ridge + grad), w
    return {name: np.array([r[name] for r in rows]) for name in rows[0]}


def _compare(ds, reference, rtol):
    for name, values in reference.items():
        simulated = ds[name].isel(seed=0).values
        if simulated.ndim == 2:  # (level, time)
            simulated = simulated.T
        np.testing.assert_allclose(simulated, values, rtol=rtol, atol=1e-14, err_msg=name)


# --------------------------------------------------------------- the update rule itself
@pytest.mark.parametrize("fields", [
    dict(momentum=0.9),
    dict(momentum=0.5, nesterov=True, lam=0.3),
    dict(momentum=0.7, nesterov=True, covariance=LEVELS),
])
def test_update_equals_the_plain_momentum_recursion(fields):
    problem = Problem(t_max=3.0, **fields)
    ds = simulate(problem, d=120, seeds=[3])
    _compare(ds, _reference(problem, 120, 3), rtol=1e-10)


def test_nesterov_differs_from_heavy_ball_and_puts_the_ridge_at_the_look_ahead():
    nesterov = Problem(t_max=3.0, momentum=0.5, nesterov=True, lam=0.3)
    ds = simulate_batch([nesterov, nesterov.replace(nesterov=False)], d=120, seeds=[3])
    # the two methods differ at the scale of the signal, so the 1e-10 comparison above
    # distinguishes them; so does a ridge placed at the iterate instead of the look-ahead
    gap = np.abs(ds[0].norm2 - ds[1].norm2).max()
    assert gap > 1e-3 * float(ds[0].norm2.max())
    wrong = _reference(nesterov, 120, 3, ridge_at_iterate=True)["norm2"]
    assert np.abs(ds[0].norm2.isel(seed=0).values - wrong).max() > 1e-6


# ------------------------------------------------- square loss: exact spectral solution
def _spectral(problem, d, seed):
    """Square-loss GD with momentum solved exactly: e_k = w_k - w* obeys
    e_{k+1} = (1 + beta) e_k - beta e_{k-1} - eta (lam + H) [(1 + gamma) e_k - gamma e_{k-1}],
    H = A^T A, e_{-1} = e_0, so e_k = V Pi_k(x) V^T e_0 with Pi the momentum polynomial of
    dmft-extensions §5.3 ((Pi_0, Pi_-1) = (1, 1)) on the eigenvalues x of H; the engine is
    a time-stepping kernel, this an eigendecomposition and a scalar recursion."""
    A, y, w0 = training_data(problem, d, seed)
    x, V = np.linalg.eigh(A.T @ A)
    w_star = np.linalg.solve(A.T @ A + problem.lam * np.eye(d), A.T @ y)
    e0 = V.T @ (w0 - w_star)
    rows = [_observables(problem, w_star + V @ (pi * e0), A, y, d)
            for pi in pb.momentum_polynomials(problem, x, problem.n_steps)]
    return {name: np.array([r[name] for r in rows]) for name in rows[0]}


def test_momentum_polynomials_reduce_to_powers_and_the_two_step_recursion():
    x = np.linspace(0, 3, 7)
    gd = Problem(eta=0.2, lam=0.1)
    np.testing.assert_allclose(pb.momentum_polynomials(gd, x, 5),
                               (1 - 0.2 * (0.1 + x)) ** np.arange(6)[:, None], rtol=1e-13)
    np.testing.assert_allclose(pb.momentum_polynomials(gd, x, 5, kick=True),
                               pb.momentum_polynomials(gd, x, 5), rtol=1e-13)  # beta = 0
    nesterov = Problem(eta=0.2, momentum=0.5, nesterov=True)
    first, second = pb.momentum_polynomials(nesterov, x, 2, kick=True)[1:]
    a = 0.2 * x  # Pi_1 = 1.5 - 1.5 a; Pi_2 = 1.5 Pi_1 - 0.5 - a (1.5 Pi_1 - 0.5)
    np.testing.assert_allclose(first, 1.5 - 1.5 * a, rtol=1e-13)
    np.testing.assert_allclose(second, 1.5 * first - 0.5 - a * (1.5 * first - 0.5),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("fields", [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.5, nesterov=True, lam=0.1),
    dict(momentum=0.5, nesterov=True, covariance=LEVELS, R=1.0),
])
def test_square_loss_gd_equals_the_spectral_solution(fields):
    problem = Problem(loss="square", t_max=6.0, **fields)
    ds = simulate(problem, d=150, seeds=[1])
    _compare(ds, _spectral(problem, 150, 1), rtol=1e-9)


# --------------------------------------------------------------------- input covariance
def test_data_columns_have_the_level_variances():
    problem = Problem(covariance=LEVELS, delta=0.5)
    A, _, _ = training_data(problem, 400, 0)
    column_variance = (A * math.sqrt(400)).var(axis=0)  # Delta s_a + (c/sqrt(d))^2 spread
    expected = 0.5 * np.repeat(LEVELS["variances"], [80, 320]) + 1 / 400
    # 800 rows: each column variance has relative s.e. sqrt(2/800) = 5%; average per level
    for lo, hi in [(0, 80), (80, 400)]:
        mean = column_variance[lo:hi].mean()
        assert mean == pytest.approx(expected[lo], rel=4 * math.sqrt(2 / 800 / (hi - lo)))


def test_first_step_with_covariance_matches_the_closed_form():
    # dmft-extensions §5.2: R = 0, GD, rho = 0.2, s1 = 3 (<s^2> = 2):
    # eps(t_1) = 1/2 erfc sqrt(alpha b / (2 Delta (alpha b + Delta <s^2>))) = 0.124107,
    # m_a(1) = eta alpha b / 2 = 0.2 on every level, C_Sigma(1) = 0.06, C(1) = 0.05
    alpha, delta, eta, s2 = 2.0, 0.5, 0.2, 0.2 * 9 + 0.8 * 0.25
    closed = 0.5 * math.erfc(math.sqrt(alpha / (2 * delta * (alpha + delta * s2))))
    assert closed == pytest.approx(0.124107, abs=5e-7)
    plain = Problem(R=0.0, t_max=0.2, covariance=LEVELS)
    runs = simulate_batch([plain, plain.replace(momentum=0.9, nesterov=True)], d=1000, seeds=6)
    first = runs[0].isel(time=1)
    checks = [(first[name].values, expected, name) for name, expected in
              [("gen_error", closed), ("norm2_sigma", 0.06), ("norm2", 0.05)]]
    checks += [(first.magnetization_level.values[:, a], eta * alpha / 2, f"m_{a}")
               for a in range(2)]
    for values, expected, name in checks:
        mean, se = values.mean(), values.std(ddof=1) / math.sqrt(values.size)
        assert abs(mean - expected) < 3 * se, name
        assert se < 0.03 * expected, name  # tight enough to mean something
    # the first step does not depend on the momentum (w_{-1} = w_0)
    for name in OBSERVABLES:
        np.testing.assert_allclose(runs[1][name].isel(time=1), first[name], rtol=1e-13)


def test_equal_variance_levels_reproduce_the_identity():
    equal = Problem(t_max=2.0, covariance={"fractions": [0.3, 0.7], "variances": [1.0, 1.0]})
    levels, plain = simulate(equal, d=100, seeds=2), simulate(equal.replace(covariance=None),
                                                             d=100, seeds=2)
    for name in ("train_loss", "train_acc", "norm2", "magnetization"):
        np.testing.assert_array_equal(levels[name], plain[name])
    np.testing.assert_allclose(levels.norm2_sigma, plain.norm2, rtol=1e-13)
    np.testing.assert_allclose(levels.gen_error, plain.gen_error, rtol=1e-12)
    # levels add up: m = sum_a f_a m_a, C = sum_a f_a C_a (f_a = 30/100, 70/100 at d = 100)
    f = xr.DataArray([0.3, 0.7], dims="level")
    np.testing.assert_allclose((f * levels.magnetization_level).sum("level"),
                               levels.magnetization, rtol=1e-12)
    np.testing.assert_allclose((f * levels.norm2_level).sum("level"), levels.norm2, rtol=1e-12)


def test_too_small_d_for_the_levels_is_named():
    problem = Problem(covariance={"fractions": [0.01, 0.99], "variances": [50.5, 0.5]})
    with pytest.raises(ValueError, match=r"d = 20 is not allowed.*every level"):
        simulate(problem, d=20, seeds=1)


# ------------------------------------------------------- batching and reproducibility
def test_batched_extensions_equal_single_runs_bit_for_bit():
    base = Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=2.0, covariance=LEVELS)
    problems = [base, base.replace(momentum=0.9), base.replace(momentum=0.5, nesterov=True),
                base.replace(loss="square", lam=0.1), base.replace(momentum=0.3, eta=0.1)]
    batched = simulate_batch(problems, d=96, seeds=[0, 4])
    for problem, together in zip(problems, batched):
        alone = simulate(problem, d=96, seeds=[0, 4])
        for name in OBSERVABLES:
            np.testing.assert_array_equal(alone[name].values, together[name].values, name)
    assert not np.array_equal(batched[0].norm2, batched[1].norm2)


def test_zero_momentum_in_a_momentum_batch_is_the_plain_run_bit_for_bit():
    plain = Problem(process="sgd", b=0.5, t_max=2.0, R=0.0)
    batched = simulate_batch([plain, plain.replace(momentum=0.9, nesterov=True)], d=96,
                             seeds=[2])
    alone = simulate(plain, d=96, seeds=[2])
    for name in OBSERVABLES:
        np.testing.assert_array_equal(alone[name].values, batched[0][name].values, name)


def test_batch_needs_one_covariance():
    with pytest.raises(ValueError, match=r"same \(model, alpha, delta\) and covariance"):
        simulate_batch([Problem(), Problem(covariance=LEVELS)], d=10, seeds=1)


def test_extended_dataset_follows_the_data_model_through_zarr(tmp_path):
    problem = Problem(momentum=0.5, nesterov=True, covariance=LEVELS, loss="square", t_max=0.6)
    ds = simulate(problem, d=50, seeds=2)
    assert ds.magnetization_level.dims == ("seed", "level", "time")
    assert ds.norm2_level.dims == ("seed", "level", "time")
    assert ds.norm2_sigma.dims == ("seed", "time")
    assert list(ds.level.values) == [0, 1]
    assert "long_name" in ds.norm2_sigma.attrs and "long_name" in ds.level.attrs
    ds.to_zarr(tmp_path / "run.zarr", consolidated=False)
    back = xr.open_zarr(tmp_path / "run.zarr", consolidated=False)
    assert Problem.from_attrs(back.attrs) == problem
    np.testing.assert_array_equal(back.magnetization_level, ds.magnetization_level)
    # generalization error uses C_Sigma, not |w|^2/d
    np.testing.assert_array_equal(
        ds.gen_error, pb.generalization_error("two_cluster", ds.magnetization, ds.norm2_sigma,
                                              0.5))


def test_identity_covariance_has_one_level_equal_to_the_totals():
    ds = simulate(Problem(t_max=0.4), d=20, seeds=1)
    assert ds.sizes["level"] == 1
    np.testing.assert_array_equal(ds.norm2_sigma, ds.norm2)
    np.testing.assert_array_equal(ds.norm2_level.isel(level=0), ds.norm2)
    np.testing.assert_array_equal(ds.magnetization_level.isel(level=0), ds.magnetization)
