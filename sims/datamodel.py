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
        description="closed form from m and C_Sigma = w^T Sigma w/d (|w|^2/d for the "
                    "identity covariance), docs/theory.md §1, §7"),
    "train_loss": dict(
        long_name="training loss", units="1",
        description="(1/n) sum_mu ell(y_mu phi(h_mu)) over all samples, ell the problem's "
                    "loss (logistic log(1 + e^-v) or square (1 - v)^2/2)"),
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

COVARIANCE_OBSERVABLES = {
    "norm2_sigma": dict(
        long_name="input-covariance norm w^T Sigma w/d", units="1",
        description="C_Sigma(t) = sum_a f_a s_a C_a(t), the variance that sets the test error "
                    "(equals norm2 for the identity covariance), docs/theory.md §7"),
    "magnetization_level": dict(
        long_name="magnetization per covariance level m_a", units="1",
        description="m_a(t) = w_a(t).v*_a/(f_a d), overlap with the cluster direction over the "
                    "coordinates of level a; m = sum_a f_a m_a, docs/theory.md §7"),
    "norm2_level": dict(
        long_name="squared weight norm per covariance level C_a", units="1",
        description="C_a(t) = |w_a(t)|^2/(f_a d) over the coordinates of level a; "
                    "norm2 = sum_a f_a C_a, docs/theory.md §7"),
}
"""Covariance observables: norm2_sigma dims (..., time); the *_level ones (..., level, time).
Level a (0-based) has fraction covariance.fractions[a] and variance covariance.variances[a]
(the Problem's `level_fractions`, `level_variances`); at finite d its size is set by
`Problem.level_bounds(d)` and f_a d above means that size."""

LEVEL_ATTRS = dict(long_name="input covariance level", units="1",
                   description="index a of Problem.level_fractions / level_variances "
                               "(0-based; one level for the identity)")

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
    for name, attrs in {**OBSERVABLES, **COVARIANCE_OBSERVABLES,
                        "active_fraction": ACTIVE_FRACTION}.items():
        if name in ds:
            ds[name].attrs.update(attrs)
    if "time" in ds.coords:
        ds["time"].attrs.update(TIME_ATTRS)
    if "level" in ds.coords:
        ds["level"].attrs.update(LEVEL_ATTRS)
    return ds
