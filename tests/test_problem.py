"""The problem definition: validation, loss derivatives, closed forms, the selection chain."""

import json
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


# ------------------------------------------------ momentum, covariance, square loss (§7)
LEVELS = {"fractions": [0.2, 0.8], "variances": [3.0, 0.5]}


@pytest.mark.parametrize("fields, field", [
    (dict(momentum=-0.1), "momentum"), (dict(momentum=1.0), "momentum"),
    (dict(momentum="0.5"), "momentum"), (dict(momentum=float("nan")), "momentum"),
    (dict(nesterov=True), "nesterov"), (dict(momentum=0.5, nesterov="yes"), "nesterov"),
    (dict(loss="hinge"), "loss"),
    (dict(covariance={"fractions": [0.2, 0.7], "variances": [3.0, 0.5]}), "covariance"),
    (dict(covariance={"fractions": [0.2, 0.8], "variances": [3.0, 1.0]}), "covariance"),
    (dict(covariance={"fractions": [0.2, 0.8], "variances": [-3.0, 2.0]}), "covariance"),
    (dict(covariance={"fractions": [-0.2, 1.2], "variances": [1.0, 1.0]}), "covariance"),
    (dict(covariance={"fractions": [0.2, 0.8], "variances": [3.0]}), "covariance"),
    (dict(covariance={"fractions": [], "variances": []}), "covariance"),
    (dict(covariance={"fraction": [1.0], "variances": [1.0]}), "covariance"),
    (dict(covariance={"fractions": ["a", 1], "variances": [1, 1]}), "covariance"),
    (dict(covariance="diagonal"), "covariance"), (dict(covariance=3.0), "covariance"),
])
def test_bad_extension_values_name_the_field_and_what_is_allowed(fields, field):
    with pytest.raises(ValueError, match=rf"Problem\.{field} = .* must be"):
        Problem(**fields)


def test_nesterov_without_momentum_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"False when momentum = 0.*momentum in \(0, 1\)"):
        Problem(nesterov=True)
    assert Problem(momentum=0.5, nesterov=True).gamma == 0.5
    assert Problem(momentum=0.5).gamma == 0.0


def test_covariance_is_stored_immutable_and_hashable():
    problem = Problem(momentum=0.9, nesterov=True, covariance=LEVELS, loss="square")
    assert isinstance(problem.covariance, pb.Covariance)
    assert problem.covariance.fractions == (0.2, 0.8)
    same = Problem(momentum=0.9, nesterov=True, loss="square",
                   covariance=([0.2, 0.8], [3, 0.5]))  # a pair, integer variance
    assert same == problem and hash(same) == hash(problem)
    assert len({problem, same, Problem()}) == 2
    assert problem.level_fractions == (0.2, 0.8) and problem.level_variances == (3.0, 0.5)
    assert problem.replace(alpha=3.0).covariance == problem.covariance
    assert problem.replace(covariance=None).level_variances == (1.0,)
    assert problem.data_key != problem.replace(covariance=None).data_key
    # one level is the identity; mean variance within the stated tolerance is accepted
    assert Problem(covariance={"fractions": [1], "variances": [1]}).covariance is None
    assert Problem(covariance={"fractions": [1 / 3, 2 / 3],
                               "variances": [2.0, 0.5 + 1e-8]}).covariance is not None


def test_extended_problem_round_trips_through_json_attributes():
    problem = Problem(momentum=0.5, nesterov=True, covariance=LEVELS, loss="square",
                      process="persistent", b=0.3, tau=1 / 0.3)
    attrs = json.loads(json.dumps(problem.to_attrs()))  # what a Zarr store keeps
    assert attrs["covariance"] == LEVELS and attrs["nesterov"] is True
    assert Problem.from_attrs(attrs) == problem
    assert Problem.from_attrs(Problem().to_attrs()) == Problem()
    assert Problem(**problem.to_dict()) == problem


def test_level_bounds_place_the_first_fraction_first():
    problem = Problem(covariance={"fractions": [0.25, 0.5, 0.25], "variances": [2.0, 0.5, 1.0]})
    assert problem.level_bounds(1000) == (0, 250, 750, 1000)
    assert problem.level_bounds(10) == (0, 2, 8, 10)  # round(2.5) = 2 (to even), round(7.5) = 8
    assert Problem().level_bounds(7) == (0, 7)


@pytest.mark.parametrize("model, L", [("two_cluster", None), ("three_cluster", 0.7)])
def test_square_loss_derivatives_match_finite_differences(model, L):
    rng = np.random.default_rng(2)
    y = pb.labels(model, pb.sample_clusters(model, 200, rng))
    h = rng.normal(0, 1.5, 200)
    step = 1e-6
    loss = dict(loss="square")
    numeric = (pb.sample_loss(model, y, h + step, L, **loss)
               - pb.sample_loss(model, y, h - step, L, **loss)) / (2 * step)
    np.testing.assert_allclose(pb.sample_loss_prime(model, y, h, L, **loss), numeric,
                               rtol=1e-6, atol=1e-7)
    numeric2 = (pb.sample_loss_prime(model, y, h + step, L, **loss)
                - pb.sample_loss_prime(model, y, h - step, L, **loss)) / (2 * step)
    np.testing.assert_allclose(pb.sample_loss_second(model, y, h, L, **loss), numeric2,
                               rtol=1e-5, atol=1e-6)


def test_square_loss_is_half_the_squared_residual_for_two_clusters():
    # dmft-extensions §5.3 convention: Lambda = (r - y)^2 / 2, so Lambda' = r - y, Lambda'' = 1
    y, h = np.array([1.0, -1.0, 1.0]), np.array([0.3, 0.2, -2.0])
    np.testing.assert_allclose(pb.sample_loss("two_cluster", y, h, loss="square"), (h - y) ** 2 / 2)
    np.testing.assert_allclose(pb.sample_loss_prime("two_cluster", y, h, loss="square"), h - y)
    np.testing.assert_allclose(pb.sample_loss_second("two_cluster", y, h, loss="square"), 1.0)
    # a per-configuration array of losses broadcasts, the logistic row unchanged
    both = pb.sample_loss("two_cluster", y, h, loss=np.array([["logistic"], ["square"]]))
    np.testing.assert_array_equal(both[0], pb.sample_loss("two_cluster", y, h))
    with pytest.raises(ValueError, match="loss = .* one of"):
        pb.margin_loss(h, "hinge")


def test_two_level_family_has_mean_variance_one():
    levels = pb.Covariance.two_levels(0.2, 3.0)
    assert levels.fractions == (0.2, 0.8)
    assert levels.variances == pytest.approx((3.0, 0.5), abs=1e-15)  # s_2 = (1 - 0.6) / 0.8
    assert math.fsum(f * v for f, v in zip(levels.fractions, levels.variances)) == \
        pytest.approx(1, abs=1e-15)
    assert pb.Covariance.two_levels(0.3, 1.0).variances == (1.0, 1.0)  # sweeps keep 2 levels
    for fraction, variance in [(0.5, 2.0), (0.0, 3.0), (1.0, 0.5), (0.2, -1.0)]:
        with pytest.raises(ValueError, match=r"Problem\.covariance = .* must be"):
            pb.Covariance.two_levels(fraction, variance)
