"""Surrogates of SGD (issue 22, shared docs/smf.md): the flow of the mean drift and SGD with
Gaussian masks, paired with Bernoulli SGD on the same data and initial weights."""

import math

import numpy as np
import pytest

import dmft
from sims import Problem, simulate, simulate_batch, training_data
from sims.problem import sample_loss_prime

D, SEEDS, B = 400, 16, 0.3


def _paired_difference(surrogate, sgd):
    """(mean over seeds of eps_surrogate - eps_SGD, its paired sem, SGD's own sem) for t >= 1."""
    difference = (surrogate.gen_error - sgd.gen_error).sel(time=slice(1, None))
    root = math.sqrt(sgd.sizes["seed"])
    return (difference.mean("seed"), difference.std("seed", ddof=1) / root,
            sgd.gen_error.sel(time=slice(1, None)).std("seed", ddof=1) / root)


def _runs(eta, t_max, processes=("sgd", "flow", "gauss_sgd")):
    problems = [Problem(process=p, b=B, eta=eta, t_max=t_max) for p in processes]
    return simulate_batch(problems, D, SEEDS)


def test_gaussian_masks_follow_bernoulli_sgd_and_the_flow_does_not():
    sgd, flow, gauss = _runs(eta=0.1, t_max=10)
    mean, paired_sem, sgd_sem = _paired_difference(gauss, sgd)
    assert (abs(mean) < sgd_sem).all()  # within SGD's seed sem at every t in [1, 10]
    assert float((abs(mean) / paired_sem).max()) < 4.5  # and within noise, paired
    flow_mean, flow_sem, _ = _paired_difference(flow, sgd)
    assert float((abs(flow_mean) / flow_sem).max()) > 8  # the same test sees the flow miss


def test_the_flow_misses_sgd_by_order_eta():
    misses = {}
    for eta in (0.4, 0.2, 0.1):
        sgd, flow = _runs(eta, t_max=5, processes=("sgd", "flow"))
        mean, paired_sem, _ = _paired_difference(flow, sgd)
        worst = int(np.argmax(abs(mean).values))
        assert abs(mean[worst]) > 6 * paired_sem[worst]
        misses[eta] = float(abs(mean).max())
    for eta in (0.4, 0.2):  # halving eta halves the miss (O(eta), not O(eta^2) or O(1))
        assert 1.4 < misses[eta] / misses[eta / 2] < 2.8, misses


def test_surrogates_share_data_and_initial_weights_with_sgd():
    sgd, flow, gauss = _runs(eta=0.2, t_max=0.4)
    for run in (flow, gauss):
        for name in ("train_loss", "norm2", "magnetization", "gen_error"):
            np.testing.assert_array_equal(run[name].isel(time=0), sgd[name].isel(time=0))
    # the flow's first step is w_1 = w_0 - eta (lam w_0 + b A^T Lambda'(y, A w_0)), lam = 0
    for seed in (0, 1):
        A, y, w0 = training_data(Problem(process="flow", b=B), D, seed)
        w1 = w0 - 0.2 * B * A.T @ sample_loss_prime("two_cluster", y, A @ w0)
        np.testing.assert_allclose(flow.norm2.sel(seed=seed).isel(time=1), w1 @ w1 / D,
                                   rtol=1e-12)
        np.testing.assert_allclose(flow.magnetization.sel(seed=seed).isel(time=1), w1.mean(),
                                   rtol=1e-10)
    np.testing.assert_allclose(flow.active_fraction, B, rtol=1e-14)  # mean of n b's
    n = round(2 * D)
    spread = 5 * math.sqrt(B * (1 - B) / n)  # mean of n N(b, b(1 - b)) weights
    assert (abs(gauss.active_fraction - B) < spread).all()
    assert float(gauss.active_fraction.std()) > 0.1 * spread  # fresh weights every step


def test_the_flow_at_b_one_is_gd_and_runs_alone_as_in_a_batch():
    gd, flow = simulate_batch([Problem(eta=0.2, t_max=2),
                               Problem(process="flow", b=1.0, eta=0.2, t_max=2)], 100, 3)
    np.testing.assert_array_equal(flow.gen_error, gd.gen_error)
    gauss = Problem(process="gauss_sgd", b=B, eta=0.2, t_max=2)
    alone = simulate(gauss, 100, [1, 2])
    batched = simulate_batch([Problem(process="sgd", b=0.5, eta=0.2, t_max=1), gauss], 100,
                             [1, 2])[1]
    np.testing.assert_array_equal(alone.gen_error, batched.gen_error)


@pytest.mark.parametrize("fields, words", [
    (dict(process="gauss_sgd", b=1.0), ["Problem.b = 1.0", "gauss_sgd", "no noise"]),
    (dict(process="gauss_sgd", b=0.0), ["Problem.b = 0.0", "(0, 1]"]),
    (dict(process="flow", b=1.5), ["Problem.b = 1.5"]),
    (dict(process="gauss_sgd", b=0.3, tau=2.0), ["Problem.tau", "gauss_sgd"]),
    (dict(process="smf_sgd", b=0.3), ["Problem.process", "flow", "gauss_sgd"]),
])
def test_bad_surrogate_options_name_the_field(fields, words):
    with pytest.raises(ValueError) as error:
        Problem(**fields)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("process", ["flow", "gauss_sgd"])
def test_dmft_refuses_the_surrogates_by_name(process):
    with pytest.raises(ValueError, match=f"'{process}'.*DMFT"):
        dmft.solve(Problem(process=process, b=B, t_max=0.4))
