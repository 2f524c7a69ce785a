"""The exact facts of docs/theory.md §6 and the invariants, reproduced by dmft.solve."""

import math

import numpy as np
import pytest
from scipy import special

import dmft
from sims.problem import Problem, bayes_optimal_error, logistic_loss, logistic_loss_prime, \
    logistic_loss_second

ALPHA, DELTA, ETA = 2.0, 0.5, 0.2


def first_step_error(b):
    """§6.3: eps(t_1) = 1/2 erfc sqrt(alpha b / (2 Delta (alpha b + Delta))) from R = 0."""
    return 0.5 * special.erfc(math.sqrt(ALPHA * b / (2 * DELTA * (ALPHA * b + DELTA))))


@pytest.mark.parametrize("R", [0.0, 0.01])
def test_initial_values(R):
    ds = dmft.solve(Problem(R=R, t_max=0.2), n_samples=8000)
    t0 = ds.isel(time=0)
    assert t0.magnetization == 0 and t0.norm2 == pytest.approx(R, rel=1e-12)
    assert t0.train_acc == pytest.approx(0.5, abs=0.02)
    x, w = special.roots_hermitenorm(60)
    expected_loss = (w * logistic_loss(math.sqrt(DELTA * R) * x)).sum() / w.sum()
    assert t0.train_loss == pytest.approx(expected_loss, abs=3 * float(t0.train_loss_mc_error) + 1e-12)
    if R == 0:
        assert np.isnan(t0.gen_error) and t0.train_loss == pytest.approx(math.log(2), abs=1e-12)
    else:
        assert t0.gen_error == pytest.approx(0.5, abs=1e-12)


def test_first_gd_step_reaches_bayes_optimal_error():
    ds = dmft.solve(Problem(R=0.0, lam=0.0, eta=ETA, t_max=0.4), n_samples=8000)
    t1 = ds.isel(time=1)
    assert bayes_optimal_error(ALPHA, DELTA) == pytest.approx(0.10295, abs=5e-6)
    assert round(float(t1.gen_error), 3) == round(0.10295, 3)
    assert abs(t1.gen_error - 0.10295) < 1e-4
    assert t1.magnetization == pytest.approx(0.2, abs=1e-12)
    assert t1.norm2 == pytest.approx(0.05, rel=1e-3)
    assert abs(t1.train_acc - 0.9431) < 3 * t1.train_acc_mc_error + 1e-3
    assert abs(t1.train_loss - 0.5790) < 3 * t1.train_loss_mc_error + 1e-3


@pytest.mark.parametrize("process,b,tau,expected", [
    ("sgd", 0.3, None, 0.14813), ("sgd", 0.1, None, 0.22485),
    ("persistent", 0.3, 1 / 0.6, 0.14813), ("persistent", 0.1, 5.0, 0.22485)])
def test_first_step_error_and_magnetization_with_minibatches(process, b, tau, expected):
    """§6.2-6.3 with b < 1 (persistent b = 0.1 with tau = 5: unclipped chain, P(s=1) = b)."""
    assert first_step_error(b) == pytest.approx(expected, abs=5e-6)
    ds = dmft.solve(Problem(R=0.0, process=process, b=b, tau=tau, t_max=0.2), n_samples=16000)
    t1 = ds.isel(time=1)
    # stratified masks make the active count exact: the error may vanish at R = 0
    assert abs(t1.gen_error - first_step_error(b)) <= 3 * t1.gen_error_mc_error + 1e-9
    assert abs(t1.magnetization - ETA * ALPHA * b / 2) < 3 * t1.magnetization_mc_error + 1e-12


def test_first_step_magnetization_any_R():
    """§6.2: m_1 = eta alpha b / 2 (exact at R = 0; at R > 0 up to Monte-Carlo error)."""
    t1 = dmft.solve(Problem(R=0.01, t_max=0.2), n_samples=4000).isel(time=1)
    assert abs(t1.magnetization - ETA * ALPHA / 2) < 3 * t1.magnetization_mc_error


def static_ridge_logistic(lam, alpha=ALPHA, delta=DELTA):
    """§6.4 fixed point (m, C, chi) of ridge-logistic ERM, by Gauss-Hermite quadrature."""
    x, w = special.roots_hermitenorm(101)
    w = w / w.sum()
    m, C, chi = 0.5, 0.5, 1.0
    for _ in range(2000):
        omega = m + np.sqrt(delta * C) * x
        r = omega.copy()
        for _ in range(50):  # Newton for (r - omega)/(Delta chi) + ell'(r) = 0
            r -= ((r - omega) / (delta * chi) + logistic_loss_prime(r)) / (
                1 / (delta * chi) + logistic_loss_second(r))
        l1, l2 = logistic_loss_prime(r), logistic_loss_second(r)
        chi_new = 1 / (lam + alpha * delta * (w * l2 / (1 + delta * chi * l2)).sum())
        m_new = -alpha * chi_new * (w * l1).sum()
        C_new = m_new ** 2 + alpha * delta * chi_new ** 2 * (w * l1 ** 2).sum()
        m, C, chi = [0.5 * a + 0.5 * b for a, b in ((m, m_new), (C, C_new), (chi, chi_new))]
    return m, C, chi


def test_ridge_gd_converges_to_static_optimum():
    m, C, chi = static_ridge_logistic(1.0)
    assert (m, C, chi) == pytest.approx((0.5628, 0.4014, 0.8351), abs=1e-4)
    eps = 0.5 * special.erfc(m / math.sqrt(2 * DELTA * C))
    assert eps == pytest.approx(0.10452, abs=1e-5)
    end = dmft.solve(Problem(lam=1.0, t_max=20), n_samples=4000).isel(time=-1)
    assert abs(end.magnetization - m) < 3 * end.magnetization_mc_error + 1e-3
    assert abs(end.norm2 - C) < 3 * end.norm2_mc_error + 1e-3
    assert abs(end.gen_error - eps) < 3 * end.gen_error_mc_error + 2e-4


@pytest.mark.parametrize("process,b", [("gd", 1.0), ("sgd", 0.3)])
def test_three_cluster_symmetry_keeps_m_zero(process, b):
    p = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, process=process,
                b=b, t_max=10)
    ds = dmft.solve(p, d=math.inf, n_samples=1000)
    assert (ds.magnetization == 0).all() and (ds.gen_error == 0.5).all()


def test_invariants_two_cluster_persistent():
    ds = dmft.solve(Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=20),
                    n_samples=2000)
    C = ds.correlation.values
    assert (np.diagonal(C) >= 0).all()
    np.testing.assert_allclose(C, C.T, rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.diagonal(C), ds.norm2.values)
    eps = ds.gen_error.values
    assert ((eps >= 0) & (eps <= 0.5)).all()
    assert (ds.gen_error_mc_error.values[1:] > 0).all()
