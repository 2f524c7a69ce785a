"""Two-layer networks (model two_layer, workflow/two_layer.py) through the same pipeline as
the Gaussian mixture: config checks, a real `snakemake` run of a tiny config (stores equal
to direct solver calls, seed-paired ODE starts, every analysis kind's files), the cost
plan, and verify / repair of a damaged two-layer store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dmft.two_layer
import sims.two_layer
from conftest import snakemake, write_config
from workflow.cli import main as cli_main
from workflow.config import ConfigError, load_config, read_yaml
from workflow.plan import plan_store
from workflow.store import Layout, open_store, read_attrs

TINY = {"model": "two_layer", "p": 2, "k": 2, "noise": 1.0e-3, "gamma0": 2.0, "t_max": 4.0}


def tiny_two_layer() -> dict:
    """Every two-layer analysis kind on small problems, in seconds."""
    phase_cases = {"k0_d0": {"width_exponent": 0.0, "lr_exponent": 0.0},
                   "k0_d0.5": {"width_exponent": 0.0, "lr_exponent": 0.5},
                   "k0_dm0.375": {"width_exponent": 0.0, "lr_exponent": -0.375}}
    return {
        "seed": 5,
        "dask": {"progress_interval": 1, "processes": False},
        "experiments": {
            "curves": {"problem": dict(TINY), "grid": {"lr_exponent": [0.0, 0.25]},
                       "sims": {"d": [20, 40], "seeds": 3, "seeds_per_task": 2, "n_times": 9},
                       "dmft": {"seeds": 3, "odes": ["finite_d", "limit"]},
                       "analysis": {"kind": "risk_curves"}},
            "regions": {"problem": {**TINY, "width_exponent": 0.25},
                        "grid": {"lr_exponent": [0.25, -0.25, -0.5]},
                        "dmft": {"d": [30], "seeds": 1, "odes": ["limit"], "n_times": 9},
                        "analysis": {"kind": "regions"}},
            "rates": {"problem": dict(TINY),
                      "cases": {"delta_0": {"lr_exponent": 0.0, "t_max": 4.0},
                                "delta_0.5": {"lr_exponent": 0.5, "t_max": 1.0}},
                      "sims": {"d": [16], "seeds": 2, "seeds_per_task": 2, "n_times": 7},
                      "dmft": {"seeds": 2}, "analysis": {"kind": "learning_rates"}},
            "floors": {"problem": dict(TINY), "grid": {"lr_exponent": [0.5, 0.25],
                                                       "noise": [1.0e-3, 1.0e-2]},
                       "sims": {"d": [20, 40], "seeds": 2, "seeds_per_task": 2, "n_times": 7,
                                "overlaps": False},  # the risk only
                       "dmft": {"seeds": 1, "odes": ["finite_d", "limit"]},
                       "analysis": {"kind": "floors"}},
            "map_ode": {"problem": dict(TINY), "cases": phase_cases,
                        "dmft": {"d": [30], "seeds": 1, "odes": ["limit"], "n_times": 9},
                        "analysis": {"kind": "phase_diagram"}},
            "map": {"problem": {**TINY, "t_max": 2.0, "width_scaling": "power"},
                    "cases": {**phase_cases,  # p = round(2 d^kappa): 4 at d = 4, 13 at 40
                              "k0.5_d0": {"width_exponent": 0.5, "lr_exponent": 0.0}},
                    "sims": {"d": [4, 30, 40], "seeds": 2, "seeds_per_task": 2, "n_times": 7,
                             "method": "auto"},
                    "analysis": {"kind": "phase_diagram", "ode_experiment": "map_ode",
                                 "width_ode_experiment": "map_width_ode"}},
            "map_width_ode": {"problem": {**TINY, "t_max": 2.0, "width_scaling": "power"},
                              "cases": {"k0.5_d0": {"width_exponent": 0.5,
                                                    "lr_exponent": 0.0}},
                              "dmft": {"d": [30, 40], "seeds": 2, "odes": ["finite_d"],
                                       "n_times": 7},
                              "analysis": {"kind": "phase_diagram"}},
        },
    }


@pytest.mark.parametrize("change, words", [
    (lambda e: e.update(cases={"wide": {"p": 3}}), "field 'p': a grid axis or case override"),
    (lambda e: e["grid"].update(k=[2, 3]), "field 'grid': 'k' is not one of"),
    (lambda e: e["problem"].update(alpha=2.0), "'alpha' = 2.0 is not allowed for model two_layer"),
    (lambda e: e["sims"].update(record_every=2), "field 'sims.record_every'"),
    (lambda e: e["dmft"].update(method="causal"), "unknown setting 'method' for model two_layer"),
    (lambda e: e["dmft"].update(odes=["limit", "exact"]), "field 'dmft.odes'"),
    (lambda e: e["sims"].update(d=[4, 40]), "d must be an integer > p + k = 4"),
    (lambda e: e["problem"].update(width_scaling="linear"),
     "field 'problem.width_scaling': 'linear' is not one of ['fixed', 'power']"),
    (lambda e: e["sims"].update(method="fast"), "field 'sims.method'"),
    (lambda e: e["grid"].update(model=["two_layer", "two_cluster"]), "one model family"),
    (lambda e: e["analysis"].update(kind="map"), "field 'analysis.kind': 'map' is not allowed"),
])
def test_two_layer_config_errors_name_the_field(change, words):
    config = tiny_two_layer()
    experiment = config["experiments"]["curves"]
    change(experiment)
    config["experiments"] = {"curves": experiment}
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert words in str(err.value) and "experiment 'curves'" in str(err.value)


def test_an_analysis_that_reads_a_missing_experiment_is_refused():
    config = tiny_two_layer()
    del config["experiments"]["map_ode"]
    with pytest.raises(ConfigError, match="reads the stores of experiment 'map_ode'"):
        load_config(config)


@pytest.mark.slow
def test_snakemake_runs_a_two_layer_config_plan_and_verify(tmp_path, capsys):
    config = tiny_two_layer()
    path = write_config(tmp_path / "two_layer.yaml", config)
    result = snakemake(tmp_path, "--configfile", path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    specs = load_config(read_yaml(path))
    results = tmp_path / "results"

    # stores equal to direct solver calls, the ODEs started from the simulations' seeds
    spec = specs["curves"]
    stored = open_store(results / "curves" / "sims.zarr").load()
    odes = open_store(results / "curves" / "dmft.zarr").load()
    assert stored.risk.dims == ("lr_exponent", "d", "seed", "time")
    assert odes.risk.dims == ("lr_exponent", "d", "ode", "seed", "time")
    assert stored.Q.dims[-2:] == ("student", "student2") and stored.attrs["model"] == "two_layer"
    assert list(stored.regime.values) == ["blue", "green"]
    np.testing.assert_array_equal(stored.time.values, odes.time.values)
    problem = sims.TwoLayerProblem(**{k: v for k, v in TINY.items() if k != "model"},
                                   lr_exponent=0.25)
    times = Layout(spec, "sims").point_times(problem)
    direct = sims.two_layer.simulate(problem, 40, [1, 2], times=times, entropy=spec.entropy)
    here = stored.sel(lr_exponent=0.25, d=40, seed=[1, 2], time=times)  # the point's times
    for name in ("risk", "Q", "M", "P"):  # seeds 1, 2 are split over two tasks: bit-identical
        np.testing.assert_array_equal(here[name].values, direct[name].values)
    start = sims.two_layer.initial_overlaps(problem, 40, [0, 1, 2], entropy=spec.entropy)
    limit = dmft.two_layer.solve(problem, initial=start, limit=True, times=times)
    np.testing.assert_array_equal(odes.risk.sel(lr_exponent=0.25, d=40, ode="limit",
                                                time=times).values, limit.risk.values)
    np.testing.assert_array_equal(odes.Q.sel(lr_exponent=0.25, d=40, ode="finite_d")
                                  .isel(time=0).values, stored.Q.sel(lr_exponent=0.25, d=40)
                                  .isel(time=0).values)  # seed s of the ODEs is seed s's start
    assert (stored.status == 0).all() and (odes.status == 0).all()

    # every analysis kind wrote its figure and tables
    for name in config["experiments"]:
        for file in (f"figures/{name}.png", f"figures/{name}.pdf", f"tables/{name}.csv",
                     f"tables/{name}_agreement.csv"):
            assert (results / file).stat().st_size > 0, file
    agreement = pd.read_csv(results / "tables" / "curves_agreement.csv")
    assert len(agreement) == 4 and (agreement.n_seeds == 3).all()  # 2 points x 2 d
    assert (agreement.max_abs_diff < 0.05).all()
    phase = pd.read_csv(results / "tables" / "map.csv")
    assert len(phase) == 4 and set(phase.ode) <= {"green", "blue", "orange", "red", "none"}
    assert set(phase.theory) == {"blue", "green", "orange"} and (phase.sims != "none").all()
    assert phase.set_index("kappa").widths.to_dict() == {0.0: "2 2 2", 0.5: "4 11 13"}
    by_width = phase.set_index("kappa")  # the finite-d ODE at the sims' widths 11, 13 at kappa 1/2
    assert set(by_width.width_ode.loc[0.0]) == {"none"}
    assert by_width.width_ode.loc[0.5] in {"green", "blue", "orange", "red"}
    assert 0.5 < by_width.width_ode_over_sims.loc[0.5] < 2.0
    assert open_store(results / "map_width_ode" / "dmft.zarr").width.values.tolist() == [[11, 13]]

    floors = open_store(results / "floors" / "sims.zarr")
    assert "risk" in floors and not {"Q", "M", "P"} & set(floors.data_vars)

    # width_scaling power: the width round(2 d^kappa) per d as a coordinate, the student
    # dims as wide as the widest run (NaN beyond a run's own width), the runs equal to
    # direct solver calls (method auto: full at d = 4 where p + k > d, gram at 30 and 40)
    wide = open_store(results / "map" / "sims.zarr").load().sel(case="k0.5_d0")
    assert wide.width.values.tolist() == [4, 11, 13] and wide.sizes["student"] == 13
    layout = Layout(specs["map"], "sims")
    problem = next(p for p in layout.problems.values() if p.width_exponent == 0.5)
    times = layout.point_times(problem)
    for d, width in ((4, 4), (40, 13)):
        direct = sims.two_layer.simulate(problem, d, [0, 1], method="auto", times=times,
                                         entropy=specs["map"].entropy)
        assert direct.sizes["student"] == width == direct.width.item()
        here = wide.sel(d=d).isel(time=layout.time_index(times))
        np.testing.assert_array_equal(here.risk.values, direct.risk.values)
        np.testing.assert_array_equal(here.Q.values[..., :width, :width], direct.Q.values)
        assert np.isnan(here.Q.values[..., width:, :]).all()

    # the cost plan covers every two-layer store
    assert cli_main(["plan", str(path), "--cores", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, experiment in specs.items():
        for solver in ("sims", "dmft"):
            if getattr(experiment, solver) is not None:
                row = next(line.split() for line in lines if line.split()[:2] == [name, solver])
                assert int(row[2]) == plan_store(experiment, solver, {}, 2)["tasks"]
    assert plan_store(specs["curves"], "sims", {}, 2)["tasks"] == 8  # 2 points x 2 d x 2 batches

    # the stores keep their own identity (a solver's attrs do not replace it): verify
    # reads the ODE store's spec back from it
    assert read_attrs(results / "curves" / "dmft.zarr")["solver"] == "dmft"
    assert cli_main(["verify", str(results / "curves" / "dmft.zarr")]) == 0
    assert "complete and sound" in capsys.readouterr().out

    # verify names a deleted chunk; --repair recomputes exactly it, bit-identical
    store = results / "curves" / "sims.zarr"
    assert cli_main(["verify", str(store)]) == 0
    chunk = sorted((store / "risk").glob("1.1.*"))[0]
    chunk.unlink()
    assert cli_main(["verify", str(store)]) == 1
    assert str(chunk) in capsys.readouterr().out
    assert cli_main(["verify", "--repair", str(store)]) == 0
    assert "1 of 8 units computed" in capsys.readouterr().out
    np.testing.assert_array_equal(open_store(store).risk.values, stored.risk.values)


def test_the_plan_of_an_ode_grows_like_the_square_root_of_its_horizon():
    """workflow/two_layer.py task_cost: an ODE's time ~ p^2 (p + k)^2 (t_max / 1e4)^(1/2)
    (measured: p = 8 to t = 1e4 / 1e5 in 1.1 / 5.6 s; p = 23 to 1e3 in 2.7-19 s) plus the
    task's overhead."""
    from workflow.plan import COST
    config = tiny_two_layer()
    config["experiments"] = {"map_width_ode": config["experiments"]["map_width_ode"]}

    def ode_seconds(t_max):
        config["experiments"]["map_width_ode"]["problem"]["t_max"] = t_max
        plan = plan_store(load_config(config)["map_width_ode"], "dmft", {}, 1)
        return plan["cpu_total_s"] - plan["tasks"] * COST["TL_OVERHEAD_S"]

    assert ode_seconds(1e4) / ode_seconds(1e2) == pytest.approx(10.0)
    # 2 seeds, one ODE, p = 11 and 13 (k = 2) at d = 30 and 40, to t = 1e4
    assert ode_seconds(1e4) == pytest.approx(2 * COST["TL_ODE_S_TERM"] * (
        11 ** 2 * 13 ** 2 + 13 ** 2 * 15 ** 2))
