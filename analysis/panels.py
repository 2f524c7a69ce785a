"""Learning-curve panels (analysis kind `curves`, Figs. 1-4 of the paper).

One panel: the observable against training time (analysis.curves conventions), the
reference error, a legend outside the axes, the fixed parameters in the title, an optional
inset placed where it hides the fewest data points, and, where simulations and DMFT differ
beyond z_max standard errors (analysis.agreement), a note on the panel. With `facet: axis`
one such panel per value of the grid axis, side by side on a shared y axis (the same colour
is the same value of the other dims in every panel; the legend is the last panel's).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .agreement import agreement_table, verdict_marker
from .curves import (at_seeds_handle, d_handles, draw_curves, draw_reference, failed_handle,
                     fixed_parameters, short_name)
from .data import PRETTY, at_seeds_kind, curve_dims, format_value
from .spec import check_analysis
from .status import NOT_COMPUTED, status
from .style import new_figure, style

INSET_CANDIDATES = [(0.57, 0.58, 0.4, 0.36), (0.57, 0.06, 0.4, 0.36), (0.08, 0.06, 0.4, 0.36),
                    (0.08, 0.58, 0.4, 0.36), (0.3, 0.32, 0.4, 0.36), (0.57, 0.32, 0.4, 0.36),
                    (0.08, 0.32, 0.4, 0.36), (0.3, 0.06, 0.4, 0.36), (0.3, 0.58, 0.4, 0.36)]


def _data_points_axes(ax) -> np.ndarray:
    """Every drawn data point (lines, markers, reference lines) in axes coordinates."""
    pts = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if not xy.size:
            continue
        if line.get_transform() != ax.transData:  # axhline: dense points along x
            x = np.linspace(0, 1, 60)
            y = ax.transAxes.inverted().transform(line.get_transform().transform(xy[:1]))[0, 1]
            pts.append(np.stack([x, np.full_like(x, y)], 1))
            continue
        xd = ax.transData.transform(xy)
        if len(xy) > 1:  # densify segments so a line crossing a box counts
            xd = np.concatenate([np.linspace(a, b, 8) for a, b in zip(xd[:-1], xd[1:])])
        pts.append(ax.transAxes.inverted().transform(xd))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def choose_inset_bounds(ax, candidates=INSET_CANDIDATES) -> tuple:
    """The candidate inset box (axes coordinates) that hides the fewest data points; in a
    crowded panel, the same boxes at 3/4 size if they hide fewer."""
    pts = _data_points_axes(ax)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    pad = 0.03

    def best(boxes):
        counts = [int(((pts[:, 0] > x0 - pad) & (pts[:, 0] < x0 + w + pad)
                       & (pts[:, 1] > y0 - pad) & (pts[:, 1] < y0 + h + pad)).sum())
                  for x0, y0, w, h in boxes]
        i = int(np.argmin(counts))
        return boxes[i], counts[i]

    box, hidden = best(candidates)
    if hidden:
        small = [(x0 + w / 8 if x0 > 0.2 else x0, y0 + h / 8 if y0 > 0.2 else y0,
                  0.75 * w, 0.75 * h) for x0, y0, w, h in candidates]
        small_box, small_hidden = best(small)
        if small_hidden < hidden:
            return small_box
    return box


def load(ds: xr.Dataset | None, names) -> xr.Dataset | None:
    """The variables `names` of a (lazy) store in memory, with their Monte-Carlo errors, their
    DMFT at the seeds' m(0) or effective m (`<name>_at_seeds`) and the status variables."""
    if ds is None:
        return None
    extra = ("status", "failure_time", "diverged_at", "done", "effective_active_fraction")
    names = [n for n in names if n]
    names += [f"{n}_at_seeds" for n in names]
    keep = [n for n in names + [f"{n}_mc_error" for n in names] + list(extra)
            if n in ds.data_vars]
    return ds[list(dict.fromkeys(keep))].load() if keep else None


def missing_note(*stores) -> str:
    """'incomplete: k of n runs not computed yet' over the stores (empty if complete)."""
    counts = [(int((status(ds) == NOT_COMPUTED).sum()), int(status(ds).size))
              for ds in stores if ds is not None]
    missing, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return f"incomplete: {missing} of {total} runs not computed yet" if missing else ""


def _legend_title(sims, dmft, var, drawn) -> str:
    parts = [note for note in [missing_note(sims, dmft)] if note]
    if dmft is not None and var in dmft:
        parts.append("lines: DMFT" + (" (lighter: smaller d)" if len(drawn.d_values) > 1
                                      and "d" in dmft.dims else ""))
    if sims is not None and var in sims:
        dtxt = f", d = {int(drawn.d_values[0])}" if len(drawn.d_values) == 1 else ""
        parts.append(f"markers: sims ({drawn.n_seeds} seeds{dtxt}, ± s.e.)")
    return "\n".join(parts)


def plot_panel(sims: xr.Dataset | None = None, dmft: xr.Dataset | None = None, *,
               experiment: str = "", section: dict | None = None, ax=None):
    """One learning-curve panel from an experiment's stores; returns the figure.

    section: the experiment's `analysis:` section (kind curves; analysis.spec), default
    {kind: curves}. ax: draw into this Axes (e.g. a pyplot figure in a notebook) instead of
    a new Figure. The main axes is fig.axes[0]; the inset is its child axes.
    """
    spec = check_analysis(section, experiment or "panel")
    var, inset = spec["observable"], spec["inset"]
    sims, dmft = (load(ds, [var, inset]) for ds in (sims, dmft))
    with style():
        if spec["facet"] is not None:
            return _plot_facets(sims, dmft, spec, experiment, ax)
        if ax is None:
            ax = new_figure(figsize=(9.2, 4.8)).add_subplot()
        drawn = draw_curves(ax, sims, dmft, var, logx=spec["logx"])
        if not drawn.handles:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
            return ax.figure
        _decorate(ax, spec, experiment, drawn, sims, dmft)
        _note(ax, sims, dmft, spec)
        if inset and any(ds is not None and inset in ds for ds in (sims, dmft)):
            _inset(ax, spec, sims, dmft)
    return ax.figure


def _note(ax, sims, dmft, spec) -> None:
    """Under the legend, a short marker of the verdict (analysis.agreement.verdict_marker);
    the curves that differ are named in the agreement table and the caption."""
    table = agreement_table(sims, dmft, spec["observable"], spec["z_max"], spec["tolerance"])
    marker = verdict_marker(table, spec["z_max"])
    if marker:
        bad = table.disagree[~table.observable.str.endswith("_at_seeds")].any()
        ax.text(1.02, 0.0, marker, transform=ax.transAxes, ha="left", va="bottom",
                fontsize=7.5, color="darkred" if bad else "darkgreen")


def _plot_facets(sims, dmft, spec, experiment, ax):
    """One panel per value of the grid axis spec['facet'] (a row of shared-y axes)."""
    axis = spec["facet"]
    values = next(ds for ds in (dmft, sims) if ds is not None)[axis].values.tolist()
    if ax is not None:
        raise ValueError(f"experiment '{experiment}': a faceted figure (facet: {axis}) has "
                         f"{len(values)} panels and cannot be drawn into one given Axes")
    fig = new_figure(figsize=(3.4 * len(values) + 3.2, 4.6))
    axes = fig.subplots(1, len(values), sharey=True, squeeze=False)[0]
    parts = [[None if ds is None else ds.sel({axis: value}) for ds in (sims, dmft)]
             for value in values]
    for i, (ax, value, part) in enumerate(zip(axes, values, parts)):
        drawn = draw_curves(ax, *part, spec["observable"], logx=spec["logx"])
        if not drawn.handles:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
            continue
        _decorate(ax, spec, experiment, drawn, *part, legend=i == len(values) - 1,
                  title=False)
        ax.set_title(f"{PRETTY.get(axis, axis)} = {format_value(axis, value)}", fontsize=10)
        if i:
            ax.set_ylabel("")
    for ax, part in zip(axes, parts):  # after every panel: the shared y range is final
        if spec["inset"] and any(ds is not None and spec["inset"] in ds for ds in part):
            _inset(ax, spec, *part)
    _note(axes[-1], sims, dmft, spec)
    base = dmft if dmft is not None else sims
    fixed = fixed_parameters(base, curve_dims(base, spec["observable"]))
    title = spec["title"] or experiment
    fig.suptitle(f"{title}\n{fixed}" if fixed else title, fontsize=10)
    return fig


def _decorate(ax, spec, experiment, drawn, sims, dmft, legend: bool = True,
              title: bool = True) -> None:
    """Legend (right of the axes), labels, limits and, with `title`, the panel's title."""
    var = spec["observable"]
    ref = draw_reference(ax, drawn.base, drawn.points)
    handles, labels = list(drawn.handles), list(drawn.labels)
    more_h, more_l = d_handles(drawn)
    handles += more_h + ref
    labels += more_l + [h.get_label() for h in ref]
    entries = ([at_seeds_handle(drawn.at_seeds)] if drawn.at_seeds else []) + (
        [failed_handle()] if drawn.failed else [])
    for h, lab in entries:
        handles.append(h)
        labels.append(lab)
    keep = [i for i, lab in enumerate(labels) if lab]
    handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
    if legend:
        ax.legend(handles, labels, title=_legend_title(sims, dmft, var, drawn),
                  title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0, frameon=False)
    ax.set_xlabel("training time t")
    ax.set_ylabel(short_name(var))
    if spec["ylim"] is not None:
        ax.set_ylim(*spec["ylim"])
    if not title:
        return
    text = spec["title"] or experiment
    fixed = fixed_parameters(drawn.base, curve_dims(drawn.base, var))
    # left-aligned: a title wider than the axes runs over the legend's column, not off the
    # figure's left edge
    ax.set_title(f"{text}\n{fixed}" if fixed else text, fontsize=10, loc="left")


def _inset(ax, spec, sims, dmft) -> None:
    if spec["ylim"] is None:
        ax.autoscale_view()
    ax.figure.draw_without_rendering()  # fixes the layout: data -> axes coordinates final
    inset = ax.inset_axes(choose_inset_bounds(ax))
    draw_curves(inset, sims, dmft, spec["inset"], logx=spec["logx"], n_markers=12,
                errorbars=False, small=True)
    inset.set_title(short_name(spec["inset"]), fontsize=8, pad=2)
    inset.tick_params(labelsize=7, which="both")
