"""Numerical method of dmft.solve: cheap M_R vs direct, resume, iteration, limits, errors."""

import numpy as np
import pytest

import dmft
from dmft.noise import NestedCholesky
from dmft import response
from dmft.response import SourceSchedule
from sims.problem import Problem

PSGD = Problem(process="persistent", b=0.3, tau=1 / 0.6, t_max=10)
CURVES = ("gen_error", "train_loss", "train_acc", "norm2", "magnetization")


def test_numba_float32_response_matches_direct_numpy_float64():
    """§3.2 recursion: the fast backend (numba, float32 T) reproduces the direct one."""
    direct = dmft.solve(PSGD, n_samples=2000, response_samples=None, backend="numpy",
                        response_dtype="float64")
    fast = dmft.solve(PSGD, n_samples=2000, response_samples=None, backend="numba",
                      response_dtype="float32")
    M_direct, M_fast = direct.memory_kernel.values, fast.memory_kernel.values
    assert np.abs(M_fast - M_direct).max() < 1e-5 * np.abs(M_direct).max()
    for name in CURVES:
        np.testing.assert_allclose(fast[name], direct[name], rtol=1e-5, atol=1e-7)


def test_followed_sources_are_dense_where_the_memory_kernel_varies():
    """§5.5 schedule: at every step the first and the last source are followed, the gap
    between followed sources is at most max(2, 4 min(lag, age) / window), and the stored
    paths grow like K log K, not K^2."""
    for window in (4, 16):
        schedule = SourceSchedule(window, 1200)
        for k in range(2, 1201):
            followed = schedule.followed(k)
            assert followed[0] == 0 and followed[-1] == k - 1
            lag, age = k - followed[1:], followed[:-1]
            bound = np.maximum(2, 4 * np.minimum(lag, age) / window)
            assert (np.diff(followed) <= bound).all(), (window, k)
        sizes = [SourceSchedule(window, K).size for K in (600, 1200)]
        assert sizes[1] / sizes[0] < 2.4
    assert SourceSchedule(None, 100).size == 100 * 101 // 2


def test_multiresolution_memory_kernel_matches_following_every_source():
    """§5.5: interpolating M_R between followed sources changes nothing measurable. On the
    same samples, with a window coarser than the default (8 < 16): the total memory
    sum_j M_R(k, j) agrees within 6% at every k, and every curve within 0.1 x its MC error
    (entry by entry M_R differs by the sampling noise the interpolation smooths out;
    a sample whose accuracy flips moves train_acc by 1 / n_samples)."""
    problem = PSGD.replace(t_max=20)
    settings = dict(n_samples=4000, response_samples=1000, seed=4)
    every = dmft.solve(problem, response_window=None, **settings)
    sparse = dmft.solve(problem, response_window=8, **settings)
    total_every = every.memory_kernel.sum("time_prime")
    total_sparse = sparse.memory_kernel.sum("time_prime")
    assert np.abs(total_sparse - total_every).max() < 0.06 * np.abs(total_every).max()
    for name in CURVES:  # train_acc moves in steps of 1 / n_samples
        delta = np.abs(sparse[name] - every[name])[1:]
        assert (delta <= 0.1 * every[f"{name}_mc_error"][1:] + 2 / 4000).all(), name


def test_memory_quadrature_is_exact_for_paths_linear_in_time():
    """§5.5: beyond the exactly summed lags, T_{i,j} is interpolated linearly in i, so a
    path linear in i gives the exact memory sum; the points thin out with the lag."""
    rng = np.random.default_rng(0)
    k, j, exact_lags = 700, 3, 32
    coef = rng.standard_normal(k)
    points, weights = np.empty(k + 1, dtype=np.int64), np.empty(k + 1)
    count = response._memory_points(coef, j, k, exact_lags, points, weights)
    i = np.arange(j + 1, k)
    for path in (np.ones(k), 0.3 + 0.01 * np.arange(k)):
        exact = coef[j + 1:k] @ path[j + 1:k]
        assert weights[:count] @ path[points[:count]] == pytest.approx(exact, rel=1e-10)
    assert sorted(points[:count]) == sorted(set(points[:count]))  # each step once
    assert set(range(k - exact_lags, k)) <= set(points[:count]) and j + 1 in points[:count]
    assert count < exact_lags * (1 + np.log(k / exact_lags)) < len(i) / 5
    assert response._memory_points(coef, j, k, -1, points, weights) == len(i)


def test_memory_quadrature_changes_no_curve_measurably(monkeypatch):
    """§5.5: on the same samples, the memory sums with the quadrature beyond lag 2 window
    agree with exact sums within 0.05 x the Monte-Carlo error (GD, up to K = 250)."""
    problem = Problem(alpha=2, delta=0.5, R=0.01, eta=0.2, t_max=50)
    settings = dict(n_samples=8000, n_replicas=2, seed=3, response_window=8)
    coarse = dmft.solve(problem, **settings)
    monkeypatch.setattr(response, "EXACT_LAGS_PER_WINDOW", 10**6)
    exact = dmft.solve(problem, **settings)
    assert not np.array_equal(coarse.gen_error, exact.gen_error)
    for name in CURVES:
        delta = np.abs(coarse[name] - exact[name])[1:]
        assert (delta <= 0.05 * exact[f"{name}_mc_error"][1:] + 2 / 8000).all(), name


def test_noise_keeps_the_normals_of_nondegenerate_pivots_only():
    """history.py: z_k is kept iff pivot k is not degenerate, in the order of the steps;
    GD's noise kernel is of low rank, so few are kept."""
    problem = Problem(alpha=2, delta=0.5, R=0.01, eta=0.2, t_max=40)
    solver = dmft.Solver(problem, n_samples=2000, n_replicas=2).advance(problem.t_max)
    nondegenerate = ~solver.cholesky.degenerate[:, :solver.k]
    kept = solver.histories.kept
    assert (kept == nondegenerate.sum(axis=1)).all() and (kept < solver.k / 4).all()
    for g in range(solver.groups):
        assert (solver.histories.kept_steps[g, :kept[g]] == np.flatnonzero(nondegenerate[g])).all()


def test_noise_factor_rows_never_inject_more_variance_than_the_kernel():
    """noise.py guards: a numerically rank-deficient M_C, indefinite at rounding level (as
    an empirical Gram matrix of smooth gradients is), gives rows with
    sum_j L_kj^2 <= M_C(k, k) and L L^T = M_C to 1% (the previous 1e-10 pivot threshold
    let rounding through tiny pivots reach errors of 8% here and rows 100x too long in a
    three-cluster solve)."""
    rng = np.random.default_rng(0)
    size = 120
    t = np.linspace(0, 1, size)[:, None]
    vectors = np.hstack([np.cos(np.pi * j * t) for j in range(4)])
    vectors += 1e-4 * rng.standard_normal(vectors.shape)
    rounding = rng.standard_normal((size, size))
    kernel = vectors @ vectors.T
    kernel += 1e-11 * np.abs(kernel).max() * (rounding + rounding.T) / 2
    factor = NestedCholesky(1, size)
    for k in range(size):
        factor.add_row(k, kernel[None, k, :k + 1])
    L = factor.L[0]
    assert ((L ** 2).sum(axis=1) <= np.diag(kernel) * (1 + 1e-7)).all()
    assert np.abs(L @ L.T - kernel).max() < 1e-2 * np.abs(kernel).max()


def test_memory_kernel_from_a_subset_agrees_with_all_samples():
    """M_R from 1/4 of the samples (the cheap default) vs all samples: within MC errors."""
    full = dmft.solve(PSGD, n_samples=8000, response_samples=None, seed=1)
    cheap = dmft.solve(PSGD, n_samples=8000, response_samples=2000, seed=2)
    for name in CURVES:
        err = np.sqrt(full[f"{name}_mc_error"] ** 2 + cheap[f"{name}_mc_error"] ** 2)
        z = (np.abs(full[name] - cheap[name]) / err)[1:]
        # errors from 8 replicas are t-distributed (7 dof): bound the typical and the worst
        # deviation; a bias of M_R would shift whole stretches of the curves
        rms = float(np.sqrt((z**2).mean()))
        assert rms < 2 and float(z.max()) < 5, f"{name}: rms z = {rms:.2f}, max {float(z.max()):.2f}"


def test_extending_a_solve_gives_the_same_numbers():
    short = dmft.solve_state(PSGD.replace(t_max=4), n_samples=1000)
    extended = dmft.solve(PSGD.replace(t_max=8), n_samples=1000, resume_from=short)
    single = dmft.solve(PSGD.replace(t_max=8), n_samples=1000)
    for name in CURVES + ("correlation", "memory_kernel", "noise_kernel", "response"):
        np.testing.assert_array_equal(extended[name].values, single[name].values)
    assert short.k == 20  # the resumed solve worked on a copy


def test_iterative_scheme_agrees_with_causal_pass():
    """§5.2 fixed point = §5.3 causal pass: same samples -> same curves; other seed -> MC."""
    problem = PSGD.replace(t_max=6)
    settings = dict(n_samples=4000, response_samples=None)
    iterative = dmft.solve(problem, method="iterative", seed=0, **settings)
    causal = dmft.solve(problem, seed=0, **settings)
    other = dmft.solve(problem, seed=5, **settings)
    assert iterative.attrs["kernel_change"] < 1e-4 and iterative.attrs["iterations"] > 2
    for name in CURVES:
        np.testing.assert_allclose(iterative[name][1:], causal[name][1:], rtol=1e-3)
        err = np.sqrt(iterative[f"{name}_mc_error"] ** 2 + other[f"{name}_mc_error"] ** 2)
        assert (np.abs(iterative[name] - other[name])[1:] < 3.5 * err[1:]).all(), name


def test_persistent_sgd_converges_to_stochastic_gradient_flow():
    """§4: halving the step from 0.2 changes gen_error by < 0.003 (t <= 3); the changes
    of gen_error and m shrink at least like 0.75 per halving (O(eta) convergence)."""
    times = np.arange(0.4, 3.0, 0.4)
    curves = {dt: dmft.solve(PSGD.replace(t_max=3), time_step=dt, n_samples=64000,
                             response_samples=4000, seed=3).sel(time=times, method="nearest")
              for dt in (0.4, 0.2, 0.1)}
    for name in ("gen_error", "magnetization"):
        coarse = np.abs(curves[0.4][name] - curves[0.2][name]).mean()
        fine = np.abs(curves[0.2][name] - curves[0.1][name]).mean()
        assert fine < 0.75 * coarse, name
    assert np.abs(curves[0.2].gen_error - curves[0.1].gen_error).max() < 0.003


def test_classical_sgd_has_no_continuous_limit():
    with pytest.raises(ValueError, match="classical SGD"):
        dmft.solve(Problem(process="sgd", b=0.3, t_max=1), time_step=0.05)


def test_too_large_eta_returns_what_was_computed_and_says_when_it_diverged():
    """§5.6: like solve_ivp, a diverging pass returns its finite part, NaN after, and why."""
    problem = Problem(lam=3.0, eta=1.0, t_max=100)
    ds = dmft.solve(problem, n_samples=400)
    assert ds.attrs["status"] == "diverged"
    failure = ds.attrs["failure_time"]
    assert 0 < failure < 100 and f"diverged at t = {failure:.4g}" in ds.attrs["message"]
    before, after = ds.time < failure, ds.time >= failure
    assert np.isfinite(ds.gen_error.where(before, drop=True)).all()
    assert np.isnan(ds.gen_error.where(after, drop=True)).all()
    assert np.isnan(ds.correlation.sel(time=failure)).all()
    assert ds.sizes["time"] == problem.n_steps + 1
    # |1 - eta (lam + lam_hat)| >= 2: |h| doubles at least every step from O(1) to 1e8
    assert failure <= 30


def test_a_solve_that_stays_finite_says_so():
    ds = dmft.solve(PSGD.replace(t_max=2), n_samples=400)
    assert ds.attrs["status"] == "success" and np.isnan(ds.attrs["failure_time"])
    it = dmft.solve(PSGD.replace(t_max=2), n_samples=400, method="iterative",
                    max_iterations=2)
    assert it.attrs["converged"] is False and it.attrs["iterations"] == 2


def test_memory_limit_is_checked_before_allocating():
    with pytest.raises(dmft.MemoryLimitError, match="memory_limit"):
        dmft.solve(Problem(t_max=200), memory_limit="100MB")


def test_three_cluster_needs_d_and_two_cluster_refuses_it():
    with pytest.raises(ValueError, match="needs d"):
        dmft.solve(Problem(model="three_cluster", L=0.7, t_max=1))
    with pytest.raises(ValueError, match="three-cluster model only"):
        dmft.solve(Problem(t_max=1), d=1000)


def test_same_seed_same_numbers_and_attributes():
    a = dmft.solve(PSGD.replace(t_max=2), n_samples=800, seed=7)
    b = dmft.solve(PSGD.replace(t_max=2), n_samples=800, seed=7)
    np.testing.assert_array_equal(a.gen_error, b.gen_error)
    assert a.attrs["method"] == "causal" and a.attrs["n_samples"] == 800
    assert a.gen_error.attrs["long_name"] == "generalization error"
    np.testing.assert_allclose(a.time[1] - a.time[0], 0.2)


@pytest.mark.parametrize("process", ["sgd", "gd"])
def test_the_numbers_do_not_depend_on_the_number_of_threads(process):
    """Every numba kernel (history sums, response paths, Cholesky rows) splits its work
    into tasks fixed by the data, not by the threads: 1 and 2 threads give the same bits
    (three-cluster SGD: full-rank noise, inactive samples; GD: low-rank noise)."""
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here: nothing to compare")
    problem = Problem(model="three_cluster", alpha=3, delta=0.05, L=0.7, lam=0.1, R=0.01,
                      eta=0.2, process=process, b=0.3 if process == "sgd" else 1, t_max=30)
    settings = dict(d=1000, magnetization_nodes=2, n_samples=1030, response_samples=300,
                    seed=3)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(dmft.solve(problem, **settings))
    finally:
        numba.set_num_threads(before)
    for name in ("gen_error", "gen_error_mc_error", "correlation", "response"):
        np.testing.assert_array_equal(runs[0][name], runs[1][name])


THREE = Problem(model="three_cluster", alpha=2, delta=0.05, L=0.7, lam=0, R=1, eta=0.2,
                process="gd", t_max=6)
NODES = dict(d=1000, magnetization_nodes=4, n_samples=400, response_samples=200)


@pytest.mark.parametrize("problem", [
    THREE,
    THREE.replace(process="persistent", b=0.3, tau=5, momentum=0.5, nesterov=True),
    THREE.replace(lam=3.0, eta=1.0, t_max=40),  # diverges (§5.6)
], ids=["gd", "nesterov-persistent", "diverging"])
@pytest.mark.parametrize("nodes_per_batch", [1, 3])
def test_nodes_solved_in_batches_give_the_numbers_of_one_solve(problem, nodes_per_batch):
    """§5.7: every initial-magnetization node has its own random stream, so a memory_limit
    that holds only some nodes at once (batches 1+1+1+1 or 3+1) changes no number, and a
    diverging pass fails at the same step."""
    whole = dmft.solve(problem, **NODES)
    one_node = dmft.Solver(problem, **NODES).memory_estimate(problem.n_steps) / 4
    batched = dmft.solve(problem, **NODES, memory_limit=(nodes_per_batch + 0.5) * one_node)
    assert whole.attrs["node_batches"] == 1
    assert batched.attrs["node_batches"] == -(-4 // nodes_per_batch)
    assert batched.attrs["groups"] == whole.attrs["groups"] == 8
    assert batched.attrs["status"] == whole.attrs["status"]
    # the message's max |h| is over the groups that blew up in the same batch
    assert batched.attrs["message"].split(":")[0] == whole.attrs["message"].split(":")[0]
    np.testing.assert_equal(batched.attrs["failure_time"], whole.attrs["failure_time"])
    for name, values in whole.data_vars.items():
        np.testing.assert_allclose(batched[name], values, rtol=1e-12, atol=1e-15,
                                   err_msg=name)
    if problem.lam == 3.0:
        assert whole.attrs["status"] == "diverged" and np.isnan(whole.gen_error[-1])


def test_large_nodes_are_solved_in_batches_of_the_working_set():
    """§5.7: whatever memory_limit allows, a batch holds at most NODE_BATCH_BYTES of nodes
    (Fig. 2 right at K = 1000: 0.36 GB per node, so two at a time; with groups of 4096,
    0.5-1 GB, one at a time), and small nodes stay in one batch."""
    from dmft.solver import NODE_BATCH_BYTES
    fig2_right = THREE.replace(alpha=3, delta=0.05, lam=0.1, R=0.01, eta=0.2, t_max=200)
    solver = dmft.Solver(fig2_right.replace(t_max=0.2), d=1000)
    per_node = solver.memory_estimate(1000) / len(solver.m0)
    assert NODE_BATCH_BYTES / 3 < per_node <= NODE_BATCH_BYTES / 2
    assert solver.nodes_per_batch(1000) == 2
    large = dmft.Solver(fig2_right.replace(t_max=0.2), d=1000, n_samples=8192,
                        response_samples=1024)
    assert 0.5 * NODE_BATCH_BYTES < large.memory_estimate(1000) / 8 <= NODE_BATCH_BYTES
    assert large.nodes_per_batch(1000) == 1
    assert solver.nodes_per_batch(100) == len(solver.m0) == 8


def test_node_subsets_draw_what_the_whole_rule_draws():
    """The random streams of §5.7: node i's samples are the same in any subset."""
    whole = dmft.Solver(THREE, **NODES).advance(0.0)  # samples are drawn at the first advance
    part = dmft.Solver(THREE, **NODES, node_subset=[2, 0]).advance(0.0)
    replicas = whole.settings["n_replicas"]
    for name in ("u", "h", "z_next"):
        rows = getattr(whole, name).reshape(4, replicas, -1)
        np.testing.assert_array_equal(getattr(part, name).reshape(2, replicas, -1),
                                      rows[[2, 0]])
    with pytest.raises(ValueError, match="node_subset"):
        dmft.Solver(THREE, **NODES, node_subset=[4])
