"""The escape-time distribution (docs/theory.md §5.8, §6.6): the seeds' escape times against
the law the DMFT predicts over m(0). The statistics against closed forms and scipy; then
real stores from the pipeline (many cheap seeds, a real DMFT solve): the right theory
passes the KS test, a DMFT with a wrong law of m(0) is rejected."""

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers_analysis import build_experiment
from scipy import stats
from scipy.special import erfinv

import dmft
from analysis import load_experiment, make
from analysis.finite_size import (KS_DRAWS, bootstrap_quantiles, escape_distribution_statement,
                                  escape_distribution_table, escape_law, ks_censored,
                                  ks_escape_law, seed_escape_times)
from dmft.magnetization import escape_nodes
from sims.problem import Problem


def test_ks_on_uncensored_samples_is_scipys_and_censoring_only_shortens_the_sup():
    rng = np.random.default_rng(1)
    t = rng.exponential(2.0, 300)
    cdf = stats.expon(scale=2.0).cdf
    D, p = ks_censored(t, cdf, t_max=np.inf)
    ref = stats.kstest(t, cdf)
    assert D == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue)
    wrong = stats.expon(scale=3.0).cdf  # 50 % slower escapes: rejected
    assert ks_censored(t, wrong, np.inf)[1] < 1e-6
    t_max = 3.0  # censor the seeds beyond t_max: the sup over [0, t_max] only
    D_cens, p_cens = ks_censored(np.where(t > t_max, np.inf, t), cdf, t_max)
    grid = np.linspace(0, t_max, 20001)
    ecdf = (t[None, :] <= grid[:, None]).mean(axis=1)
    assert D_cens == pytest.approx(np.abs(ecdf - cdf(grid)).max(), abs=2e-4)
    assert D_cens <= D and p_cens >= p


def test_ks_with_the_laws_error_is_calibrated_where_the_exact_law_test_is_not():
    """Seeds drawn from a law that differs from the DMFT's by its own Monte-Carlo error
    (node escape times moved by their replicas' spread, all of them by the level's): the
    p-value of ks_escape_law is uniform (about 10 % below 0.1), the test that takes the law
    as exact rejects far more often."""
    x = escape_nodes(8)
    tau = 5.0 - np.log(x) / 1.6
    rng = np.random.default_rng(4)
    node_sd, level_sd, slope = 0.08, 0.02, 0.5
    replicas = tau[:, None] + node_sd * np.array([[-1.0, 1.0]])  # s_j / sqrt(2) = node_sd
    law = xr.Dataset(attrs=dict(
        node_x=x.tolist(), node_escape_times=tau.tolist(), node_escape_slopes=[slope] * 8,
        node_escape_time_replicas=replicas.tolist(),
        escape_magnetization_replicas=[1 - level_sd, 1 + level_sd]))
    p, p_exact = [], []
    for _ in range(60):
        truth = tau + node_sd * rng.standard_normal(8) + level_sd / slope * rng.standard_normal()
        draw = xr.Dataset(attrs=dict(node_x=x.tolist(), node_escape_times=truth.tolist()))
        t = dmft.escape_time_quantiles(draw, rng.random(1000))
        _, a, b = ks_escape_law(np.where(t <= 20, t, np.inf), law, 20.0, n_draws=100,
                                seed=int(rng.integers(1 << 30)))
        p.append(a)
        p_exact.append(b)
    assert 0.03 <= np.mean(np.array(p) < 0.1) <= 0.2
    assert np.mean(np.array(p_exact) < 0.1) > 0.4


def test_bootstrap_error_of_a_quantile_is_the_asymptotic_one():
    """se of the q-quantile of n normal samples: sqrt(q (1 - q) / n) / phi(z_q) (the
    bootstrap estimate of it scatters by ~ n^(-1/4), 8 % here)."""
    rng = np.random.default_rng(2)
    n, q = 20000, np.array([0.1, 0.5, 0.9])
    t = rng.standard_normal(n) + 10
    value, se = bootstrap_quantiles(t, q, t_max=np.inf, n_boot=1000)
    z = math.sqrt(2) * erfinv(2 * q - 1)
    expected = np.sqrt(q * (1 - q) / n) / stats.norm.pdf(z)
    np.testing.assert_allclose(se, expected, rtol=0.25)
    assert np.all(np.abs(value - 10 - z) < 4 * expected)


def test_quantiles_among_the_censored_are_unknown():
    t = np.array([1.0, 2.0, 3.0, np.inf, np.inf])  # 2 of 5 seeds never reach the level
    value, _ = bootstrap_quantiles(t, [0.25, 0.5, 0.9], t_max=10.0)
    assert value[0] == pytest.approx(2.0) and value[1] == pytest.approx(3.0)
    assert np.isnan(value[2])


def test_a_seed_escapes_when_its_absolute_magnetization_first_reaches_the_level():
    time = np.arange(5.0)
    m = xr.DataArray([[0.0, 0.1, 0.3, 0.5, 0.6],      # crosses 0.4 at t = 2.5
                      [0.0, -0.2, -0.6, -0.9, -1.0],  # |m|: crosses at t = 1.5
                      [0.0, 0.1, 0.1, 0.1, 0.1],      # never: censored
                      [0.0, 0.1, np.nan, np.nan, np.nan]],  # failed run: unknown
                     dims=("seed", "time"), coords={"time": time})
    t = seed_escape_times(m, 0.4)
    np.testing.assert_allclose(t[:2], [2.5, 1.5])
    assert np.isinf(t[2]) and np.isnan(t[3])


# ------------------------------------------------------------------ real stores, slow
THREE = {"model": "three_cluster", "alpha": 2, "delta": 0.05, "L": 0.7, "lam": 0.0, "R": 1.0,
         "eta": 0.2, "process": "gd", "t_max": 8.0}
D = 150
DMFT_SETTINGS = {"n_samples": 2000, "response_samples": 400}
FSS = {"problem": THREE, "sims": {"d": [D], "seeds": 300, "seeds_per_task": 100},
       "dmft": DMFT_SETTINGS,
       "analysis": {"kind": "finite_size", "measure": "escape_time"}}


@pytest.fixture(scope="module")
def escape_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("escape")
    build_experiment(root, "fss", FSS)
    return root


@pytest.mark.slow
def test_the_pipeline_stores_the_node_escape_times_of_every_point_and_d(escape_results):
    stores = load_experiment(escape_results, "fss")
    law = escape_law(stores["dmft"].sel(d=D).load())
    x, tau = np.array(law.attrs["node_x"]), np.array(law.attrs["node_escape_times"])
    assert x.size == 8 and np.all(np.diff(x) > 0)
    assert np.all(np.diff(tau) < 0)  # a larger m(0) escapes earlier
    assert 0 < law.attrs["escape_magnetization"] < 1.5


@pytest.mark.slow
def test_seed_escape_times_follow_the_dmft_law_and_reject_a_wrong_law_of_m0(escape_results):
    paths = make("fss", str(escape_results), FSS["analysis"])
    row = pd.read_csv(paths[2]).iloc[0]
    assert row.n_seeds == 300 and row.n_escaped_level >= 290
    assert row.ks_pvalue > 0.01 and bool(row.agree)  # the right theory is not rejected
    for key in ("p10", "p25", "p50", "p75", "p90"):  # quantiles within 3.5 bootstrap s.e.
        assert abs(row[f"z_{key}"]) < 3.5, key
    verdict = open(paths[3]).read()
    assert verdict.startswith("Escape time (first t with |m| ≥ ")
    assert "follow the DMFT's law of m(0) at every d" in verdict
    assert "Secondary (threshold gen_error < " in verdict

    stores = load_experiment(escape_results, "fss")
    problem = Problem(**THREE)  # the law of m(0) of d = 16 D: m(0) four times too small
    wrong = dmft.solve(problem, d=16 * D, **DMFT_SETTINGS).expand_dims(d=[D])
    table = escape_distribution_table(stores["sims"].load(), wrong)
    assert table.ks_pvalue_exact_law.iloc[0] < 1e-6 and not table.agree.iloc[0]
    assert table.ks_pvalue.iloc[0] == 1 / (1 + KS_DRAWS)  # no law drawn within the errors
    assert "p < 0.001" in escape_distribution_statement(table)  # comes that far
    assert (table.dmft_p50 - table.sims_p50).iloc[0] > 5 * table.sims_p50_se.iloc[0]
