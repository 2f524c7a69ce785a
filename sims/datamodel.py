"""Names, units and descriptions of every observable: the one data model of the project.

`sims.simulate`, `dmft.solve`, the pipeline's Zarr stores and the analysis all use these
names (README "Data model"). Time is in units of the learning rate: t = step * eta.
"""

from __future__ import annotations

from importlib import metadata

import xarray as xr

from .problem import Problem

OBSERVABLES = {
    "gen_error": dict(
        long_name="generalization error", units="1",
        description="closed form from m and |w|^2/d, docs/theory.md §1"),
    "train_loss": dict(
        long_name="training loss", units="1",
        description="(1/n) sum_mu log(1 + exp(-y_mu phi(h_mu))) over all samples"),
    "train_acc": dict(
        long_name="training accuracy", units="1",
        description="(1/n) sum_mu Theta(y_mu phi(h_mu)) over all samples"),
    "norm2": dict(
        long_name="squared weight norm |w|^2/d", units="1",
        description="C(t, t) = w(t).w(t)/d"),
    "magnetization": dict(
        long_name="magnetization m", units="1",
        description="m(t) = w(t).v*/d, overlap with the cluster direction"),
}
"""Observables that simulations and theory both provide, dims (..., time)."""

ACTIVE_FRACTION = dict(
    long_name="fraction of active samples", units="1",
    description="(1/n) sum_mu s_mu(t), the mask used in the update t -> t + eta")

TIME_ATTRS = dict(long_name="training time", units="eta * steps",
                  description="t = step * eta")


def package_version() -> str:
    try:
        return metadata.version("sgd-dmft")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def dataset_attrs(problem: Problem, **extra) -> dict:
    """Dataset attributes: every Problem field, the package version, and `extra`."""
    return {**problem.to_attrs(), "package_version": package_version(), **extra}


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Attach the CF-style attributes of the data model to the variables present in `ds`."""
    for name, attrs in {**OBSERVABLES, "active_fraction": ACTIVE_FRACTION}.items():
        if name in ds:
            ds[name].attrs.update(attrs)
    if "time" in ds.coords:
        ds["time"].attrs.update(TIME_ATTRS)
    return ds
