"""The finite-d simulator against exact properties of the model."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sims import (Problem, bayes_optimal_error, initial_magnetizations, simulate, simulate_batch,
                  training_data)
from sims.problem import labels, sample_clusters

SEEDS = 8


def _mean_and_se(values):
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / math.sqrt(values.size)


def test_first_gd_step_from_zero_reaches_the_bayes_optimal_error():
    ds = simulate(Problem(R=0.0, eta=0.2, t_max=0.2), d=1000, seeds=SEEDS)
    mean, se = _mean_and_se(ds.gen_error.isel(time=1))
    assert abs(mean - bayes_optimal_error(2, 0.5)) < 3 * se
    assert se < 0.002  # the check is tight enough to mean something


def test_initial_values_from_zero_weights():
    ds = simulate(Problem(R=0.0, t_max=0.2), d=200, seeds=2)
    first = ds.isel(time=0)
    np.testing.assert_allclose(first.train_loss, math.log(2))
    np.testing.assert_allclose(first.train_acc, 0.5)
    np.testing.assert_allclose(first.norm2, 0.0)
    assert np.isnan(first.gen_error).all()  # 0/0 at C = 0


def test_first_step_magnetization_is_eta_alpha_b_over_two():
    # mu_0 = -alpha b / 2 exactly at d -> infinity; finite d adds O(1/sqrt(d)) noise
    ds = simulate(Problem(process="sgd", b=0.3, R=0.0, t_max=0.2), d=2000, seeds=SEEDS)
    mean, se = _mean_and_se(ds.magnetization.isel(time=1))
    assert abs(mean - 0.2 * 2 * 0.3 / 2) < 3 * se + 1e-3


def test_dataset_follows_the_data_model():
    problem = Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=2.0)
    ds = simulate(problem, d=100, seeds=[3, 7], record_every=3)
    assert set(ds.data_vars) >= {"gen_error", "train_loss", "train_acc", "norm2",
                                 "magnetization", "active_fraction", "diverged_at"}
    assert ds.gen_error.dims == ("seed", "time")
    np.testing.assert_allclose(ds.time, [0, 0.6, 1.2, 1.8, 2.0])
    assert list(ds.seed.values) == [3, 7]
    assert Problem.from_attrs(ds.attrs) == problem
    assert ds.attrs["d"] == 100 and ds.attrs["n"] == 200
    assert ds.gen_error.attrs["long_name"] == "generalization error"


def test_persistent_active_fraction_is_b_on_average():
    ds = simulate(Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=40), d=200, seeds=4)
    # 400 samples x 201 steps, correlated over b tau / eta = 2.5 steps
    assert float(ds.active_fraction.mean()) == pytest.approx(0.3, abs=0.01)


def test_batched_configurations_equal_single_runs_bit_for_bit():
    base = Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=3.0)
    problems = [base, base.replace(lam=0.1), base.replace(process="gd", b=1.0, tau=None),
                base.replace(process="sgd", tau=None, R=1.0, eta=0.1, t_max=2.0)]
    batched = simulate_batch(problems, d=150, seeds=[0, 5])
    for problem, together in zip(problems, batched):
        alone = simulate(problem, d=150, seeds=[0, 5])
        for name in ("gen_error", "train_loss", "norm2", "magnetization", "active_fraction"):
            np.testing.assert_array_equal(alone[name].values, together[name].values)
    # and one seed alone equals the same seed in a list
    single = simulate(problems[0], d=150, seeds=[5])
    np.testing.assert_array_equal(single.norm2.values[0], batched[0].norm2.sel(seed=5).values)


def test_same_seed_reproduces_and_other_seeds_differ():
    problem = Problem(process="sgd", b=0.5, t_max=1.0)
    first = simulate(problem, d=100, seeds=2)
    again = simulate(problem, d=100, seeds=2)
    np.testing.assert_array_equal(first.norm2.values, again.norm2.values)
    assert not np.array_equal(first.norm2.values[0], first.norm2.values[1])
    other = simulate(problem, d=100, seeds=2, entropy=1)
    assert not np.array_equal(first.norm2.values, other.norm2.values)


def test_three_cluster_batch_with_different_door_onsets():
    base = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, t_max=2.0)
    problems = [base, base.replace(L=0.5)]
    batched = simulate_batch(problems, d=120, seeds=1)
    alone = simulate(problems[1], d=120, seeds=1)
    np.testing.assert_array_equal(alone.train_loss.values, batched[1].train_loss.values)
    assert not np.array_equal(batched[0].train_loss.values, batched[1].train_loss.values)


def test_float32_curves_stay_close_to_float64():
    problem = Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=20)
    exact = simulate(problem, d=500, seeds=2)
    single = simulate(problem, d=500, seeds=2, dtype="float32")
    difference = np.abs(single.gen_error - exact.gen_error).max()
    spread = float(exact.gen_error.std("seed").mean())  # seed-to-seed scale
    assert difference < 1e-3
    assert difference < 0.1 * spread
    np.testing.assert_allclose(single.norm2, exact.norm2, rtol=1e-3)


def test_divergence_is_flagged_not_silent():
    # the door's gradient grows with h: a large step makes |w| explode
    problem = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, eta=20.0,
                      t_max=2000.0, R=1.0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        ds = simulate(problem, d=50, seeds=1)
    assert np.isfinite(ds.diverged_at).all()
    assert ds.attrs["diverged_runs"] == 1
    after = ds.time >= float(ds.diverged_at[0])
    assert np.isnan(ds.norm2.sel(seed=0).where(after, drop=True)).all()
    assert np.isfinite(ds.norm2.sel(seed=0).where(~after, drop=True)).all()


@pytest.mark.parametrize("kwargs, field", [
    (dict(d=0), "d"), (dict(d=2.5), "d"), (dict(seeds=0), "seeds"), (dict(seeds=[1, 1]), "seeds"),
    (dict(record_every=0), "record_every"), (dict(dtype="float16"), "dtype"),
])
def test_bad_simulation_arguments_are_named(kwargs, field):
    args = dict(d=10, seeds=1) | kwargs
    with pytest.raises(ValueError, match=rf"{field} = .*allowed"):
        simulate(Problem(t_max=0.4), **args)


def test_batch_must_share_the_data():
    with pytest.raises(ValueError, match="same \\(model, alpha, delta\\)"):
        simulate_batch([Problem(), Problem(alpha=3.0)], d=10, seeds=1)


def test_initial_magnetizations_are_the_m0_the_runs_start_from():
    """sims.initial_magnetizations draws w_0 as simulate does (same streams), without data."""
    p = Problem(model="three_cluster", alpha=0.5, delta=0.05, L=0.7, R=0.01, t_max=0.4)
    m0 = initial_magnetizations(p, 300, [3, 0, 5], entropy=7)
    run = simulate(p, 300, [3, 0, 5], entropy=7)
    np.testing.assert_allclose(m0, run.magnetization.isel(time=0).values, rtol=1e-12)


def test_issue_example_batched_divergence_equals_alone():
    """Issue 19 case 6: eta = 2 at t_max = 24 (12 steps) does not diverge in its own 12 steps;
    the batch with eta = 0.2 (120 steps) must not step it further and report [40, 38]."""
    problems = [Problem(loss="square", eta=eta, t_max=24) for eta in (0.2, 0.5, 2.0)]
    batched = simulate_batch(problems, d=100, seeds=2)
    alone = simulate(problems[2], d=100, seeds=2)
    assert np.isnan(alone.diverged_at).all()
    np.testing.assert_array_equal(batched[2].diverged_at, alone.diverged_at)


_SIMULATED = ("gen_error", "train_loss", "train_acc", "norm2", "magnetization",
              "active_fraction", "norm2_sigma", "magnetization_level", "norm2_level",
              "diverged_at")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.5, 1.0, 2.0, 3.0]), st.integers(1, 30),
                          st.sampled_from(["logistic", "square"]), st.sampled_from([0.0, 0.5])),
                min_size=2, max_size=5))
def test_batched_runs_equal_alone_for_any_mix_of_eta_and_horizon(configs):
    """Every value, diverged_at included, is the same in a batch as alone: each configuration
    stops at its own horizon (issue 19), whatever the other horizons and step sizes."""
    problems = [Problem(loss=loss, eta=eta, t_max=steps * eta, momentum=beta, R=1.0)
                for eta, steps, loss, beta in configs]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # numpy's overflow in the arithmetic of the runs that diverge; the simulator's own
        # divergence warning (which names the runs) is recorded and checked below
        warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered",
                                RuntimeWarning)
        batched = simulate_batch(problems, d=40, seeds=2)
        diverging = 0
        for problem, together in zip(problems, batched):
            alone = simulate(problem, d=40, seeds=2)
            diverging += alone.attrs["diverged_runs"]
            assert together.attrs["diverged_runs"] == alone.attrs["diverged_runs"]
            for name in _SIMULATED:
                np.testing.assert_array_equal(alone[name].values, together[name].values,
                                              err_msg=name)
            assert (together.diverged_at.fillna(0) <= problem.t_max).all()
    named = [str(w.message) for w in caught if "runs diverged" in str(w.message)]
    assert [str(w.message) for w in caught if "runs diverged" not in str(w.message)] == []
    assert bool(named) == bool(diverging)


@pytest.mark.parametrize("covariance", [None, {"fractions": [0.25, 0.75],
                                               "variances": [2.2, 0.6]}])
def test_data_matrix_is_the_model_drawn_from_the_seed_stream(covariance):
    """A = X / sqrt(d), X_mu = c_mu v*/sqrt(d) + sqrt(Delta) Sigma^1/2 z_mu (theory §1, §7),
    with c and then z drawn from the seed's data stream (`_Streams(entropy, d, seed).data`):
    rebuilt here in one draw of all z, it equals the engine's chunked, in-place fill
    exactly (float64), and float32 data are its rounding."""
    problem = Problem(model="three_cluster", alpha=1.5, delta=0.05, L=0.7,
                      covariance=covariance)
    d, seed = 1500, 4  # n = 2250: two full chunks of rows and a partial one
    rng = np.random.default_rng(np.random.SeedSequence([0, d, seed]).spawn(3)[0])
    c = sample_clusters(problem.model, round(problem.alpha * d), rng)
    z = rng.standard_normal((c.size, d))
    if covariance is not None:
        z *= np.repeat(np.sqrt(problem.level_variances), np.diff(problem.level_bounds(d)))
    expected = (c[:, None] / np.sqrt(d) + np.sqrt(problem.delta) * z) / np.sqrt(d)
    A, y, _ = training_data(problem, d, seed)
    np.testing.assert_array_equal(A, expected)
    np.testing.assert_array_equal(y, labels(problem.model, c))
    single, _, _ = training_data(problem, d, seed, dtype="float32")
    np.testing.assert_array_equal(single, expected.astype(np.float32))
