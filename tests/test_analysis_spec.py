"""The `analysis:` section of an experiment: defaults, normalisation, clear errors."""

import pytest

from conftest import ROOT

from analysis.spec import KINDS, check_analysis
from workflow.config import read_yaml


def test_no_section_means_learning_curves_with_every_default():
    assert check_analysis(None, "mine") == {
        "kind": "curves", "title": None, "observable": "gen_error", "z_max": 3.0,
        "tolerance": 0.0, "inset": None, "logx": True, "ylim": None, "facet": None,
        "category": None}


def test_each_kind_fills_in_its_own_fields_only():
    assert set(check_analysis({"kind": "map"}, "e")) == {
        "kind", "title", "observable", "z_max", "tolerance", "category", "x", "y",
        "gain_tolerance"}
    fss = check_analysis({"kind": "finite_size", "measure": "escape_time", "threshold": 0.3,
                          "times": [1, 2]}, "e")
    assert fss["threshold"] == 0.3 and fss["times"] == [1.0, 2.0]
    assert check_analysis({"kind": "curves", "ylim": [0, 0.5]}, "e")["ylim"] == [0.0, 0.5]


@pytest.mark.parametrize("section, field, value", [
    ({"kind": "histogram"}, "kind", "histogram"),
    ({"kind": "curves", "inset": "loss"}, "inset", "loss"),
    ({"kind": "curves", "threshold": 0.3}, "threshold", "0.3"),   # a field of another kind
    ({"kind": "curves", "logx": "yes"}, "logx", "yes"),
    ({"kind": "curves", "ylim": [0.5, 0.1]}, "ylim", "[0.5, 0.1]"),
    ({"kind": "map", "x": "b", "y": "b"}, "y", "b"),
    ({"kind": "map", "x": "lam"}, "x", "lam"),                     # not a grid axis
    ({"kind": "map", "gain_tolerance": -1e-3}, "gain_tolerance", "-0.001"),
    ({"kind": "finite_size", "measure": "fit"}, "measure", "fit"),
    ({"kind": "finite_size", "threshold": 1.5}, "threshold", "1.5"),
    ({"kind": "finite_size", "times": [-1]}, "times", "[-1]"),
    ({"observable": "gen_err"}, "observable", "gen_err"),
    ({"z_max": 0}, "z_max", "0"),
    ({"tolerance": -0.002}, "tolerance", "-0.002"),
])
def test_a_bad_section_names_experiment_field_value_and_the_allowed_values(section, field,
                                                                           value):
    with pytest.raises(ValueError) as err:
        check_analysis(section, "my_exp", grid_axes=["b", "tau"])
    message = str(err.value)
    assert "experiment 'my_exp'" in message and f"field 'analysis.{field}'" in message
    assert value in message and "allowed" in message


def test_a_section_that_is_not_a_mapping_lists_the_kinds():
    with pytest.raises(ValueError, match="field 'analysis'.*curves.*map.*finite_size"):
        check_analysis("map", "e")


def test_every_experiment_of_the_shipped_configs_declares_a_valid_kind():
    for name in ("quick", "paper"):
        experiments = read_yaml(ROOT / "config" / f"{name}.yaml")["experiments"]
        kinds = {check_analysis(raw["analysis"], experiment, list(raw.get("grid", {})))["kind"]
                 for experiment, raw in experiments.items()}
        assert kinds == {"curves", "map", "finite_size"}, name  # Figs. 1-4, maps, sizes
    experiments = read_yaml(ROOT / "config" / "smf.yaml")["experiments"]
    kinds = {check_analysis(raw.get("analysis"), experiment, list(raw.get("grid", {})))["kind"]
             for experiment, raw in experiments.items()}
    assert kinds == {"curves", "paired_curves", "surrogates"}  # surrogates of SGD (issue 22)
