"""What the analysis makes of an experiment: the `analysis:` section of its config.

Every experiment declares its kind (README "Figures and analysis"):

    analysis: {kind: curves, inset: train_acc}                      # the default kind
    analysis: {kind: map, x: b, y: tau}                             # early-stopping maps
    analysis: {kind: finite_size, measure: escape_time, threshold: auto}

Fields of every kind: `title` (figure title; default the experiment name), `observable`
(the learning curve drawn and compared, one of the model's observables: for the mixture
CURVE_OBSERVABLES, sims.datamodel.OBSERVABLES and norm2_sigma; default its first, gen_error),
`z_max` and `tolerance` (simulations and DMFT disagree where, at some time, |difference| >
z_max * combined error + tolerance; default 3 and 0; a tolerance such as 0.002 leaves the
O(1/d) offset of a finite-d plateau unjudged where hundreds of seeds resolve it),
`category` (the section of the Snakemake report that holds the figure and its table;
default the kind's: Learning curves, Early stopping, Finite-size scaling).

* curves: `inset` (an observable or null), `logx` (log time axis, default true),
  `ylim` ([low, high] or null), `facet` (a grid axis or null: one panel per value of that
  axis, e.g. the covariance fraction cov_fraction, the other dims as colours). Writes the
  figure, the early-stopping table and the agreement table.
* map: `x`, `y` (grid axes; default the first two grid axes of the experiment),
  `gain_tolerance` (a gain of early stopping below it is negligible: default 0.001;
  analysis.early_stopping). Writes the maps of minimum error, time of the minimum and gain
  of early stopping, each cell classified within the curve's error.
* finite_size: `measure` = `extrapolation` (each observable at fixed `times`, fitted as
  a + c/d; `observables`, `times` optional) or `escape_time` (first time the observable
  drops below `threshold`: a number in (0, 1) or `auto`, halfway between 1/2 and the
  plateau, analysis.finite_size.auto_threshold).

Two-layer networks (model two_layer, paper 001; analysis/two_layer.py), observable risk:

    analysis: {kind: risk_curves}        # Figs. 3, 7, 9: sims per d over the ODEs
    analysis: {kind: regions}            # Fig. 2: one limit-ODE curve per region
    analysis: {kind: learning_rates}     # Fig. 6: against steps / d
    analysis: {kind: floors, last: 2}    # Figs. 4a/b, 5a/b: finite-d floors against d
    analysis: {kind: phase_diagram, ode_experiment: phase_diagram_ode}

* risk_curves, regions, learning_rates: `t_min` (left end of the time axis, default the
  first recorded time); risk_curves: `limit` (draw the limit ODE, default true).
* floors: `last` (the floor is the mean of the last `last` records).
* phase_diagram: `ode_experiment` (the experiment whose dmft store holds the limit ODE
  at every point; default this experiment's), `width_ode_experiment` (optional: an
  experiment whose dmft store holds the finite-d ODE at the simulations' d and problem,
  so at their widths, for some of the points).

SGD against its surrogates (issue 22, docs/theory.md §9.5; analysis/smf.py), for
experiments whose cases are SGD and its surrogates on the same data (paired by seed):

    analysis: {kind: paired_curves, dmft_experiment: smf_two_cluster_dmft}
    analysis: {kind: surrogates, curve_experiments: [smf_two_cluster, smf_three_cluster]}

* paired_curves: one column per value of the grid axis `x` (default eta): top, the seed
  means of every case with the DMFT of `dmft_experiment` (an experiment whose dmft store
  solves some of the same cases; null: none); bottom, each case minus the `reference`
  case (default sgd), paired by seed. Table: the paired discrepancies.
* surrogates: the `surrogate` case's (default smf) paired error against `reference` over
  this experiment's (`x`, `y`) grid (default eta, b) as a map, and, per experiment of
  `curve_experiments`, every case's paired error against `x`; `escape_error` (default
  0.3): the level that dates a three-cluster escape from eps = 1/2.

`check_analysis` validates and fills in the defaults; every error names the experiment,
the field, the value and the allowed values.
"""

from __future__ import annotations

import math

from workflow.models import family_named

from .early_stopping import GAIN_TOLERANCE

MIXTURE = family_named("mixture")
# what a curve, an inset or a map can show: the observables with dims (..., time), among
# them C_Sigma (sims.datamodel.COVARIANCE_OBSERVABLES; |w|^2/d for the identity)
CURVE_OBSERVABLES = MIXTURE.observables

KINDS = MIXTURE.analysis_kinds  # of the default family; a family's own: model.analysis_kinds
MEASURES = ("extrapolation", "escape_time")
# observable: the model's first by default
COMMON = dict(title=None, observable=None, z_max=3.0, tolerance=0.0, category=None)
DEFAULTS = {
    "curves": dict(inset=None, logx=True, ylim=None, facet=None),
    "map": dict(x=None, y=None, gain_tolerance=GAIN_TOLERANCE),
    "finite_size": dict(measure="extrapolation", threshold="auto", times=None,
                        observables=None),
    # two-layer networks (paper 001, analysis/two_layer.py): the paper's figure kinds
    "risk_curves": dict(t_min=None, limit=True),
    "regions": dict(t_min=None),
    "learning_rates": dict(t_min=None),
    "floors": dict(last=2),
    "phase_diagram": dict(ode_experiment=None, width_ode_experiment=None),
    # SGD against its surrogates (paper 004, analysis/smf.py)
    "paired_curves": dict(reference="sgd", x="eta", dmft_experiment=None),
    "surrogates": dict(reference="sgd", surrogate="smf", x="eta", y="b",
                       curve_experiments=[], escape_error=0.3),
}

def _bad(experiment: str, field: str, value, allowed: str) -> ValueError:
    return ValueError(f"experiment '{experiment}', field 'analysis.{field}': {value!r} is not "
                      f"allowed: {allowed}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _observable(experiment, field, value, *, none_ok=False, observables=CURVE_OBSERVABLES):
    if value is None and none_ok:
        return None
    if value not in observables:
        raise _bad(experiment, field, value, f"one of {list(observables)}"
                   + (" or null" if none_ok else ""))
    return value


def check_analysis(section: dict | None, experiment: str,
                   grid_axes: list[str] | None = None, model=MIXTURE) -> dict:
    """The normalised `analysis:` section of `experiment` (all fields of its kind filled in).

    section: the config's mapping, or None for the default (the model's first kind:
    learning curves for the Gaussian mixture).
    grid_axes: the experiment's grid axes, if known: map axes must be among them.
    model: the experiment's model family (workflow/models.py): its kinds and observables.
    Raises ValueError naming the experiment, the field, the value and the allowed values.
    """
    kinds = model.analysis_kinds
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ValueError(f"experiment '{experiment}', field 'analysis': {section!r} is not "
                         f"allowed: a mapping such as {{kind: {kinds[0]}}} (kinds {list(kinds)})")
    kind = section.get("kind", kinds[0])
    if kind not in kinds:
        raise _bad(experiment, "kind", kind, f"one of {list(kinds)} (model family "
                   f"'{model.name}')")
    allowed = {"kind", *COMMON, *DEFAULTS[kind]}
    for field in section:
        if field not in allowed:
            raise _bad(experiment, field, section[field],
                       f"unknown field for kind '{kind}'; its fields are {sorted(allowed)}")
    out = {"kind": kind, **COMMON, **DEFAULTS[kind], **section}
    out["observable"] = out["observable"] or model.observables[0]
    for field in ("title", "category"):
        if out[field] is not None and not isinstance(out[field], str):
            raise _bad(experiment, field, out[field], "a string or null")
    _observable(experiment, "observable", out["observable"], observables=model.observables)
    if not _number(out["z_max"]) or out["z_max"] <= 0:
        raise _bad(experiment, "z_max", out["z_max"], "a number > 0")
    out["z_max"] = float(out["z_max"])
    if not _number(out["tolerance"]) or out["tolerance"] < 0:
        raise _bad(experiment, "tolerance", out["tolerance"], "a number >= 0")
    out["tolerance"] = float(out["tolerance"])
    _check_kind[kind](out, experiment, grid_axes)
    return out


def _check_curves(out, experiment, grid_axes):
    _observable(experiment, "inset", out["inset"], none_ok=True)
    if not isinstance(out["logx"], bool):
        raise _bad(experiment, "logx", out["logx"], "true or false")
    ylim = out["ylim"]
    if ylim is not None:
        if (not isinstance(ylim, (list, tuple)) or len(ylim) != 2
                or not all(_number(v) for v in ylim) or not ylim[0] < ylim[1]):
            raise _bad(experiment, "ylim", ylim, "null or [low, high] with low < high")
        out["ylim"] = [float(v) for v in ylim]
    _grid_axis(out, "facet", experiment, grid_axes)


def _grid_axis(out, field, experiment, grid_axes):
    """out[field] is null or a grid axis of the experiment (one of grid_axes, if known)."""
    value = out[field]
    if value is not None and (not isinstance(value, str)
                              or (grid_axes is not None and value not in grid_axes)):
        raise _bad(experiment, field, value, "a grid axis of the experiment"
                   + (f": one of {list(grid_axes)}" if grid_axes is not None else ""))


def _check_map(out, experiment, grid_axes):
    for field in ("x", "y"):
        _grid_axis(out, field, experiment, grid_axes)
    if out["x"] is not None and out["x"] == out["y"]:
        raise _bad(experiment, "y", out["y"], f"a grid axis other than x = {out['x']!r}")
    tolerance = out.get("gain_tolerance", 0.0)
    if not _number(tolerance) or tolerance < 0:
        raise _bad(experiment, "gain_tolerance", tolerance, "a number >= 0")


def _check_finite_size(out, experiment, grid_axes):
    if out["measure"] not in MEASURES:
        raise _bad(experiment, "measure", out["measure"], f"one of {list(MEASURES)}")
    threshold = out["threshold"]
    if threshold != "auto" and (not _number(threshold) or not 0 < threshold < 1):
        raise _bad(experiment, "threshold", threshold, "'auto' or a number in (0, 1)")
    times = out["times"]
    if times is not None:
        if (not isinstance(times, list) or not times
                or not all(_number(t) and t > 0 for t in times)):
            raise _bad(experiment, "times", times, "null or a non-empty list of numbers > 0")
        out["times"] = [float(t) for t in times]
    observables = out["observables"]
    if observables is not None:
        if not isinstance(observables, list) or not observables:
            raise _bad(experiment, "observables", observables,
                       f"null or a non-empty list from {list(CURVE_OBSERVABLES)}")
        for value in observables:
            _observable(experiment, "observables", value)


def _check_t_min(out, experiment, grid_axes):
    if out["t_min"] is not None and (not _number(out["t_min"]) or out["t_min"] <= 0):
        raise _bad(experiment, "t_min", out["t_min"], "null or a number > 0")


def _check_risk_curves(out, experiment, grid_axes):
    _check_t_min(out, experiment, grid_axes)
    if not isinstance(out["limit"], bool):
        raise _bad(experiment, "limit", out["limit"], "true or false")


def _check_floors(out, experiment, grid_axes):
    last = out["last"]
    if not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise _bad(experiment, "last", last, "an integer >= 1 (records averaged for the floor)")


def _check_phase_diagram(out, experiment, grid_axes):
    _experiment_name(out, "ode_experiment", experiment, none_ok=True)
    _experiment_name(out, "width_ode_experiment", experiment, none_ok=True)


def _check_paired_curves(out, experiment, grid_axes):
    _case_name(out, "reference", experiment)
    _grid_axis(out, "x", experiment, grid_axes)
    _experiment_name(out, "dmft_experiment", experiment, none_ok=True)


def _check_surrogates(out, experiment, grid_axes):
    for field in ("reference", "surrogate"):
        _case_name(out, field, experiment)
    _check_map(out, experiment, grid_axes)
    for field in ("x", "y"):
        if out[field] is None:
            raise _bad(experiment, field, None, "a grid axis of the experiment")
    names = out["curve_experiments"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _bad(experiment, "curve_experiments", names,
                   "a list of experiment names of the config (possibly empty)")
    level = out["escape_error"]
    if not _number(level) or not 0 < level < 0.5:
        raise _bad(experiment, "escape_error", level, "a number in (0, 0.5)")


def _case_name(out, field, experiment):
    if not isinstance(out[field], str) or not out[field]:
        raise _bad(experiment, field, out[field], "the name of one of the experiment's cases")


def _experiment_name(out, field, experiment, none_ok=False):
    name = out[field]
    if not (isinstance(name, str) and name) and not (none_ok and name is None):
        raise _bad(experiment, field, name, ("null or " if none_ok else "")
                   + "the name of an experiment of the config")


def uses(section: dict) -> list[str]:
    """The other experiments whose stores the analysis of `section` reads."""
    named = [section.get("ode_experiment"), section.get("width_ode_experiment"),
             section.get("dmft_experiment"),
             *section.get("curve_experiments", [])]
    return [name for name in named if name]


_check_kind = {"curves": _check_curves, "map": _check_map, "finite_size": _check_finite_size,
               "risk_curves": _check_risk_curves, "regions": _check_t_min,
               "learning_rates": _check_t_min, "floors": _check_floors,
               "phase_diagram": _check_phase_diagram, "paired_curves": _check_paired_curves,
               "surrogates": _check_surrogates}
