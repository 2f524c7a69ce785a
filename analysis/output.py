"""Everything the analysis writes for one experiment, chosen by its `analysis:` kind.

    make("fig1_left", "results", section={"kind": "curves", "inset": "train_acc"})

writes <figures>/<experiment>.png and .pdf, <tables>/<experiment>.csv (the kind's table:
early stopping for curves and maps, the fits or escape times for finite_size) and
<tables>/<experiment>_agreement.csv (simulations against DMFT, analysis.agreement), and
for a finite-size analysis <tables>/<experiment>.txt (the verdict in words).
"""

from __future__ import annotations

import os

import pandas as pd

from .agreement import agreement_table, by_d_line, disagreement_note, verdict_marker
from .data import at_seeds_kind, experiment_model, load_experiment
from .early_stopping import early_stopping
from .finite_size import (agreement_statement, auto_threshold, escape_distribution_statement,
                          escape_distribution_table, escape_table, extrapolation_statement,
                          finite_size_table, linear_growth_statement, linear_growth_table)
from .fss_plots import plot_escape, plot_finite_size
from .maps import early_stopping_maps, map_table, plot_maps
from .panels import load, plot_panel
from .spec import check_analysis, uses
from .style import style
from .smf import DRAW as SURROGATE_DRAW
from .two_layer import DRAW as TWO_LAYER_DRAW


def save(fig, out_base: str) -> list[str]:
    """Write out_base.png and out_base.pdf (the Agg renderer, whatever the pyplot backend);
    returns the paths."""
    os.makedirs(os.path.dirname(out_base) or ".", exist_ok=True)
    paths = [f"{out_base}.png", f"{out_base}.pdf"]
    for path in paths:
        fig.savefig(path)
    return paths


def write_table(df: pd.DataFrame, path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    df.to_csv(path, index=False)
    return path


def write_text(text: str, path: str) -> str:
    with open(path, "w") as fh:
        fh.write(text + "\n")
    return path


def outputs(experiment: str, figures: str, tables: str) -> dict:
    """The files `make` writes for an experiment (the same for every kind, plus `text` for
    a finite-size analysis)."""
    return dict(figure=os.path.join(figures, experiment),
                table=os.path.join(tables, f"{experiment}.csv"),
                agreement=os.path.join(tables, f"{experiment}_agreement.csv"),
                text=os.path.join(tables, f"{experiment}.txt"))


def make(experiment: str, results: str = "results", section: dict | None = None, *,
         figures: str | None = None, tables: str | None = None) -> list[str]:
    """Draw and tabulate one experiment from results/<experiment>/; returns the paths.

    section: the experiment's `analysis:` config section (analysis.spec); None: the
    default, learning curves.
    """
    stores = load_experiment(results, experiment)
    if not stores:
        raise FileNotFoundError(f"no sims.zarr or dmft.zarr under {results}/{experiment}")
    base = stores.get("dmft", stores.get("sims"))
    model = experiment_model(base)
    grid_axes = [d for d in base.dims if d not in ("case", "d", "seed", "time", "time_prime")]
    spec = check_analysis(section, experiment, grid_axes, model)
    out = outputs(experiment, figures or os.path.join(results, "figures"),
                  tables or os.path.join(results, "tables"))
    sims, dmft = stores.get("sims"), stores.get("dmft")
    others = {name: load_experiment(results, name) for name in uses(spec)}
    os.makedirs(os.path.dirname(out["table"]) or ".", exist_ok=True)
    return MAKERS[spec["kind"]](experiment, sims, dmft, spec, out, others)


def _agreement(sims, dmft, spec) -> pd.DataFrame:
    var = spec["observable"]
    return agreement_table(load(sims, [var]), load(dmft, [var]), var, spec["z_max"],
                           spec["tolerance"])


def _with_agreement(maker):
    """A mixture kind's maker, followed by the agreement table of its observable."""
    def make_with_agreement(experiment, sims, dmft, spec, out, others):
        paths = maker(experiment, sims, dmft, spec, out)
        return paths + [write_table(_agreement(sims, dmft, spec), out["agreement"])]
    return make_with_agreement


def _drawn(draw):
    """A kind whose `draw(sims, dmft, spec, others)` returns (figure, table, agreement
    table) (analysis/two_layer.py, analysis/smf.py); its stores are small and read whole."""
    def make_drawn(experiment, sims, dmft, spec, out, others):
        sims, dmft = (ds.load() if ds is not None else None for ds in (sims, dmft))
        others = {name: {solver: ds.load() for solver, ds in stores.items()}
                  for name, stores in others.items()}
        with style():
            fig, table, agreement = draw(sims, dmft,
                                         {**spec, "title": spec["title"] or experiment}, others)
            return save(fig, out["figure"]) + [write_table(table, out["table"]),
                                           write_table(agreement, out["agreement"])]
    return make_drawn


def _curves(experiment, sims, dmft, spec, out) -> list[str]:
    fig = plot_panel(sims, dmft, experiment=experiment, section=spec)
    frames = []
    for key, ds in (("dmft", dmft), ("sims", sims)):
        if ds is not None and spec["observable"] in ds:
            df = early_stopping(load(ds, [spec["observable"]]), spec["observable"])
            df = df.to_dataframe().reset_index()
            df.insert(0, "source", key)
            frames.append(df)
    return save(fig, out["figure"]) + [write_table(pd.concat(frames, ignore_index=True),
                                                   out["table"])]


def _map(experiment, sims, dmft, spec, out) -> list[str]:
    maps = early_stopping_maps({"sims": sims, "dmft": dmft}, spec["observable"],
                               gain_tolerance=spec["gain_tolerance"])
    note = verdict_marker(_agreement(sims, dmft, spec), spec["z_max"]).replace(":\n", ": ")
    fig = plot_maps(maps, spec, title=spec["title"] or experiment, note=note)
    return save(fig, out["figure"]) + [write_table(map_table(maps), out["table"])]


def _finite_size(experiment, sims, dmft, spec, out) -> list[str]:
    title = spec["title"] or experiment
    var = spec["observable"]
    sims = sims.load() if sims is not None else None
    dmft = dmft.load() if dmft is not None else None
    if spec["measure"] == "extrapolation":
        if sims is None:
            raise FileNotFoundError(f"{experiment}: finite-size extrapolation needs sims.zarr")
        table = finite_size_table(sims, dmft, times=spec["times"],
                                  observables=spec["observables"])
        fig = plot_finite_size(sims, dmft, table, title=title)
        return save(fig, out["figure"]) + [write_table(table, out["table"]),
                                           write_text(extrapolation_statement(
                                               table, spec["z_max"]), out["text"])]
    threshold = spec["threshold"]
    if threshold == "auto":
        threshold = auto_threshold(sims, dmft, var)
    table = escape_table(sims, dmft, threshold, var, spec["z_max"])
    distribution = escape_distribution_table(sims, dmft, z_max=spec["z_max"])
    agreement = _agreement(sims, dmft, spec)
    linear = linear_growth_table(sims, dmft, spec["z_max"])
    mean_curve = agreement_statement(table, spec["z_max"], at_seeds_kind(dmft))
    statement = " ".join(filter(None, [
        escape_distribution_statement(distribution),
        f"Secondary (threshold {var} < {threshold:.3g}): {mean_curve}",
        linear_growth_statement(linear, spec["z_max"]), by_d_line(agreement),
        disagreement_note(agreement, sims, spec["z_max"], at_seeds_kind(dmft))
        .replace(":\n", ": ").replace("\n", "; ")]))
    write_text(statement, out["text"])
    fig = plot_escape(sims, dmft, table, threshold, title=title, var=var, linear=linear,
                      distribution=distribution)
    table.insert(0, "threshold", threshold)
    return save(fig, out["figure"]) + [write_table(_with_distribution(table, distribution),
                                                   out["table"]), out["text"]]


def _with_distribution(table: pd.DataFrame, distribution: pd.DataFrame) -> pd.DataFrame:
    """The escape table (mean curve, seeds' ε threshold) with the escape-time distribution
    columns (seeds' |m| level against the DMFT's law, the verdict) joined on grid and d."""
    if not len(distribution):
        return table
    extra = distribution.drop(columns="n_seeds").rename(columns={"n_escaped": "n_escaped_level"})
    keys = [c for c in extra.columns if c in table.columns]
    return table.merge(extra, on=keys, how="left")


MAKERS = {"curves": _with_agreement(_curves), "map": _with_agreement(_map),
          "finite_size": _with_agreement(_finite_size),
          **{kind: _drawn(draw) for kind, draw in {**SURROGATE_DRAW, **TWO_LAYER_DRAW}.items()}}
