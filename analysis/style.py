"""The look of every figure: sizes, markers, colours, as a style context (no global state).

    with style():
        fig = new_figure(figsize=(8, 5))

Importing the analysis changes nothing in matplotlib (no backend choice, no rcParams), so
the package draws into a notebook's inline figures as well as into files.
"""

from __future__ import annotations

import contextlib

import matplotlib
from matplotlib.figure import Figure

RC = {"font.size": 10, "axes.labelsize": 11, "legend.fontsize": 8.5, "figure.dpi": 110,
      "savefig.dpi": 150}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]  # matplotlib's tab10, fixed here
REFERENCE = dict(ls="--", color="0.45", lw=1.2)  # Bayes-optimal / oracle error line
FAILED = dict(marker="x", color="k", ms=8, mew=2.0, ls="none")  # a failed point's end


@contextlib.contextmanager
def style():
    """Context in which the analysis draws (matplotlib.rc_context with RC)."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(**kwargs) -> Figure:
    """A Figure that is not registered with pyplot (no GUI backend, closes by itself when
    dropped); constrained layout unless `layout` is given. Call inside `style()`."""
    kwargs.setdefault("layout", "constrained")
    return Figure(**kwargs)
