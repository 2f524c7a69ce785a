"""The problem definition: validation, loss derivatives, closed forms, the selection chain."""

import math
import warnings

import numpy as np
import pytest

from sims import Problem, SelectionChain, bayes_optimal_error, oracle_error
from sims import problem as pb


@pytest.mark.parametrize("model, L", [("two_cluster", None), ("three_cluster", 0.7)])
def test_gradient_factor_matches_finite_differences_of_the_loss(model, L):
    rng = np.random.default_rng(1)
    y = pb.labels(model, pb.sample_clusters(model, 200, rng))
    h = rng.normal(0, 1.5, 200)
    step = 1e-6
    numeric = (pb.sample_loss(model, y, h + step, L) - pb.sample_loss(model, y, h - step, L)) / (2 * step)
    np.testing.assert_allclose(pb.sample_loss_prime(model, y, h, L), numeric, rtol=1e-6, atol=1e-8)
    numeric2 = (pb.sample_loss_prime(model, y, h + step, L)
                - pb.sample_loss_prime(model, y, h - step, L)) / (2 * step)
    np.testing.assert_allclose(pb.sample_loss_second(model, y, h, L), numeric2, rtol=1e-5, atol=1e-7)


def test_door_curvature_is_negative_somewhere():
    h = np.linspace(-0.3, 0.3, 7)
    assert (pb.sample_loss_second("three_cluster", np.ones(7), h, 0.7) < 0).any()


def test_logistic_loss_is_stable_for_large_margins():
    v = np.array([-800.0, 0.0, 800.0])
    np.testing.assert_allclose(pb.logistic_loss(v), [800.0, math.log(2), 0.0], atol=1e-300)
    assert np.isfinite(pb.logistic_loss_prime(v)).all()


def test_bayes_optimal_error_at_the_papers_point():
    assert bayes_optimal_error(2, 0.5) == pytest.approx(0.5 * math.erfc(math.sqrt(2 / (2 * 0.5 * 2.5))))
    assert bayes_optimal_error(2, 0.5) == pytest.approx(0.10295, abs=5e-6)


def test_oracle_error_is_the_minimum_along_the_true_direction():
    best = oracle_error(0.05, 0.7)
    assert best == pytest.approx(0.01776, abs=5e-6)
    kappas = np.linspace(0.2, 3, 2000)
    along = pb.generalization_error("three_cluster", kappas, kappas**2, 0.05, 0.7)
    assert best <= along.min() + 1e-12
    assert best == pytest.approx(along.min(), abs=1e-5)


def test_generalization_error_limits():
    # two-cluster: m = 0 is chance, large m/sqrt(C) is perfect, C = 0 is undefined
    assert pb.generalization_error("two_cluster", 0.0, 1.0, 0.5) == pytest.approx(0.5)
    assert pb.generalization_error("two_cluster", 50.0, 1.0, 0.5) == pytest.approx(0.0)
    assert np.isnan(pb.generalization_error("two_cluster", 0.0, 0.0, 0.5))
    # three-cluster: m = 0 is chance by symmetry whatever C
    assert pb.generalization_error("three_cluster", 0.0, 0.3, 0.05, 0.7) == pytest.approx(0.5)


def test_persistent_chain_keeps_fraction_b_and_mean_active_time():
    problem = Problem(process="persistent", b=0.3, tau=1 / 0.6, eta=0.2)
    chain = SelectionChain.of(problem)
    rng = np.random.default_rng(0)
    samples, steps = 4000, 2000
    s = chain.initial(rng.random(samples))
    active_steps = 0
    sojourns_ended = 0
    for _ in range(steps):
        new = chain.step(s, rng.random(samples))
        active_steps += s.sum()
        sojourns_ended += (s & ~new).sum()
        s = new
    fraction = active_steps / (samples * steps)
    # neighbouring steps are correlated over ~ b tau / eta = 2.5 steps: s.e. inflated accordingly
    se_fraction = math.sqrt(problem.b * (1 - problem.b) / (samples * steps) * 2 * 2.5 / 0.2 * 0.2)
    assert fraction == pytest.approx(problem.b, abs=4 * se_fraction + 1e-4)
    mean_active_time = active_steps / sojourns_ended * problem.eta
    expected = problem.b * problem.tau / (1 - problem.b)
    # sojourn lengths are geometric: relative s.e. about 1/sqrt(number of sojourns)
    assert mean_active_time == pytest.approx(expected, rel=4 / math.sqrt(sojourns_ended))


def test_clipped_chain_warns_and_states_the_active_fraction():
    with pytest.warns(UserWarning, match=r"clipped at 1.*0\.1071"):
        problem = Problem(process="persistent", b=0.1, tau=1 / 0.6, eta=0.2)
    assert problem.deactivation_probability == 1.0
    assert problem.active_fraction == pytest.approx(0.12 / 1.12)


def test_problem_round_trips_through_attributes():
    problem = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1,
                      process="persistent", b=0.3, tau=1 / 0.3)
    assert Problem.from_attrs(problem.to_attrs()) == problem


@pytest.mark.parametrize("fields, field", [
    (dict(alpha=0), "alpha"), (dict(alpha=-1), "alpha"), (dict(delta=0), "delta"),
    (dict(eta=0), "eta"), (dict(t_max=-1), "t_max"), (dict(lam=-0.1), "lam"),
    (dict(R=-1), "R"), (dict(model="four_cluster"), "model"), (dict(process="adam"), "process"),
    (dict(process="sgd", b=0), "b"), (dict(process="sgd", b=1.5), "b"),
    (dict(process="gd", b=0.5), "b"), (dict(process="persistent", b=0.3), "tau"),
    (dict(process="persistent", b=0.3, tau=0), "tau"),
    (dict(process="persistent", b=0.3, tau=0.1, eta=0.2), "tau"),
    (dict(process="sgd", b=0.3, tau=2.0), "tau"), (dict(L=0.7), "L"),
    (dict(model="three_cluster"), "L"), (dict(model="three_cluster", L=-1), "L"),
    (dict(alpha="2"), "alpha"), (dict(t_max=0.01), "t_max"),
])
def test_bad_values_name_the_field_and_what_is_allowed(fields, field):
    with pytest.raises(ValueError, match=rf"Problem\.{field} = .* must be"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Problem(**fields)
