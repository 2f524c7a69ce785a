"""Early-stopping reduction, finite-size fit and escape time against hand-built data."""

import numpy as np
import pytest
import xarray as xr

from analysis import early_stopping, escape_time, finite_size_table, fit_inverse_d
from analysis.finite_size import agreement_statement, escape_table, fit_log_d


def _curves():
    """Three curves on a (lam, b) grid with known minima: a parabola with its minimum at
    t = 3 (value 0.1), one decreasing to t_max (no early stopping), one with a NaN tail."""
    t = np.linspace(0, 10, 51)
    parabola = 0.1 + 0.01 * (t - 3) ** 2
    decreasing = 0.3 * np.exp(-t) + 0.05
    tail = parabola.copy()
    tail[40:] = np.nan  # e.g. diverged: the last finite time is t[39]
    data = np.stack([parabola, decreasing, tail]).reshape(3, 1, t.size)
    return xr.Dataset({"gen_error": (("lam", "b", "time"), data)},
                      coords={"lam": [0.0, 0.1, 0.2], "b": [0.5], "time": t})


def test_early_stopping_finds_the_known_minimum_time_and_gain():
    es = early_stopping(_curves())
    assert es.min_error.dims == ("lam", "b")
    np.testing.assert_allclose(es.min_error.sel(b=0.5).values, [0.1, 0.3 * np.exp(-10) + 0.05,
                                                                0.1])
    np.testing.assert_allclose(es.argmin_time.sel(b=0.5).values, [3.0, 10.0, 3.0])
    t = np.linspace(0, 10, 51)
    np.testing.assert_allclose(es.gain.sel(b=0.5).values,
                               [0.01 * 49, 0.0, 0.01 * (t[39] - 3) ** 2], atol=1e-12)
    assert es.no_early_stopping.sel(b=0.5).values.tolist() == [False, True, False]


def test_early_stopping_averages_seeds_before_the_minimum():
    t = np.arange(5.0)
    per_seed = np.array([[0.5, 0.2, 0.3, 0.4, 0.4], [0.5, 0.4, 0.1, 0.4, 0.4]])
    ds = xr.Dataset({"gen_error": (("seed", "time"), per_seed)}, coords={"time": t})
    es = early_stopping(ds)
    # mean curve 0.5, 0.3, 0.2, 0.4, 0.4: minimum 0.2 at t = 2 (not min of the seed minima)
    assert float(es.min_error) == pytest.approx(0.2)
    assert float(es.argmin_time) == 2.0
    assert float(es.gain) == pytest.approx(0.2)


def test_early_stopping_of_an_all_nan_curve_is_nan_and_not_flagged():
    ds = xr.Dataset({"gen_error": (("time",), np.full(4, np.nan))},
                    coords={"time": np.arange(4.0)})
    es = early_stopping(ds)
    assert np.isnan(float(es.min_error)) and not bool(es.no_early_stopping)


def test_weighted_fit_recovers_a_known_inverse_d_law_within_its_error():
    rng = np.random.default_rng(0)
    a, c = 0.21, 35.0
    d = np.array([100, 200, 500, 1000, 2000, 5000, 10000])
    sigma = 0.002 * np.sqrt(1000 / d)  # larger d, smaller error bars
    hits = []
    for _ in range(200):
        y = a + c / d + sigma * rng.standard_normal(d.size)
        fit = fit_inverse_d(d, y, sigma)
        hits.append((abs(fit["a"] - a) < fit["a_err"], abs(fit["c"] - c) < fit["c_err"]))
    coverage = np.mean(hits, axis=0)
    # one-sigma intervals cover the truth ~68 % of the time (not much less: errors honest)
    assert np.all(coverage > 0.55) and np.all(coverage < 0.85), coverage
    exact = fit_inverse_d(d, a + c / d, sigma)
    assert exact["a"] == pytest.approx(a, abs=1e-12) and exact["c"] == pytest.approx(c)


def test_fit_with_two_d_values_is_exact_and_with_one_is_nan():
    fit = fit_inverse_d([100, 400], [0.3, 0.15], [0.01, 0.01])
    assert fit["a"] == pytest.approx(0.1) and fit["c"] == pytest.approx(20.0)
    assert np.isnan(fit_inverse_d([100], [0.3], [0.01])["a"])


def test_finite_size_table_extrapolates_to_the_dmft_value():
    rng = np.random.default_rng(1)
    d = np.array([200, 500, 1000, 4000])
    t = np.linspace(0, 5, 11)
    truth = 0.1 + 0.2 * np.exp(-t)  # the "DMFT" curve
    noise = 0.002 * rng.standard_normal((d.size, 40, t.size))
    sims = xr.Dataset({"gen_error": (("d", "seed", "time"),
                                     truth + 30.0 / d[:, None, None] + noise)},
                      coords={"d": d, "time": t})
    dmft = xr.Dataset({"gen_error": (("time",), truth),
                       "gen_error_mc_error": (("time",), np.zeros_like(t))},
                      coords={"time": t})
    table = finite_size_table(sims, dmft, times=[1.0, 5.0])
    assert list(table.observable) == ["gen_error", "gen_error"]
    assert np.all(np.abs(table.z) < 4)
    np.testing.assert_allclose(table.c, 30.0, rtol=0.1)
    np.testing.assert_allclose(table.dmft, truth[[2, 10]])


def test_escape_time_interpolates_the_first_crossing_and_is_nan_without_one():
    t = np.arange(6.0)
    curves = np.array([[0.5, 0.5, 0.45, 0.35, 0.2, 0.1],   # crosses 0.4 at t = 2.5
                       [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])   # never escapes
    da = xr.DataArray(curves, dims=("seed", "time"), coords={"time": t})
    out = escape_time(da, 0.4)
    assert out.values[0] == pytest.approx(2.5) and np.isnan(out.values[1])


def test_escape_table_flags_disagreement_and_log_d_slope():
    d = np.array([100, 1000, 10000])
    t = np.linspace(0, 20, 201)
    t_esc = 2.0 * np.log(d)  # exact escape times ~ ln d
    sims_curves = np.stack([[0.5 - 0.4 * (t > te + 0.3 * (s - 2)) for s in range(5)]
                            for te in t_esc])
    dmft_esc = t_esc + np.array([0.0, 0.0, 3.0])  # DMFT late at the largest d
    dmft_curves = np.stack([0.5 - 0.4 * (t > te) for te in dmft_esc])
    sims = xr.Dataset({"gen_error": (("d", "seed", "time"), sims_curves)},
                      coords={"d": d, "time": t})
    dmft = xr.Dataset({"gen_error": (("d", "time"), dmft_curves)}, coords={"d": d, "time": t})
    table = escape_table(sims, dmft, threshold=0.4)
    assert table.agree.tolist() == [True, True, False]
    assert "DISAGREE" in agreement_statement(table) and "10000" in agreement_statement(table)
    fit = fit_log_d(table.d, table.sims_mean, table.sims_sem)
    assert fit["B"] == pytest.approx(2.0, abs=0.05)
