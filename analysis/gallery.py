"""The gallery page: every figure of a run, small, with its parameters and agreement.

    python -m analysis.gallery results --out docs --config config/paper.yaml

writes <out>/gallery/<experiment>.png (at most 1000 px wide) and <out>/gallery.md: per
experiment its title, the figure, the Problem parameters, the grid, the simulations' d and
seeds, the DMFT settings (from the store's `config` attribute) and one line of measured
agreement (from results/tables/<experiment>_agreement.csv, analysis.agreement). A store
solved by another solver revision than the installed one (analysis.store.solver_note) is
shown, flagged in bold under its figure.
"""

from __future__ import annotations

import argparse
import json
import os

import pandas as pd
from PIL import Image

from workflow.config import read_yaml

from .agreement import LAW, criterion, judged_prediction
from .data import at_seeds_kind, experiment_config, experiment_model, load_experiment
from .spec import check_analysis

WIDTH = 1000


def agreement_line(table: pd.DataFrame, z_max: float = 3.0, at_seeds: str = "m(0)") -> str:
    """One line: the largest difference and |z| over the curves of the prediction judged (the
    DMFT's law of m(0), or the DMFT at d → ∞: analysis.agreement.judged_prediction), and
    which disagree; the same, labelled as conditioned on the simulations, for the DMFT at
    the seeds' own m(0) or effective m (`at_seeds`, data.at_seeds_kind) where it was solved
    (rows `*_at_seeds`, a diagnostic)."""
    if table.empty:
        return "Agreement: not measured (one solver only)."
    seed_rows = table.observable.astype(str).str.endswith("_at_seeds")
    judged = ("the DMFT's law of m(0)" if judged_prediction(table[~seed_rows]) == LAW
              else "the DMFT at d → ∞")
    line = f"Agreement ({judged}, the prediction) " + _summary(table[~seed_rows], z_max)
    if seed_rows.any():
        line += (f" Diagnostic, conditioned on the simulations (DMFT at the seeds' own "
                 f"{at_seeds}): " + _summary(table[seed_rows], z_max))
    return line


def _summary(table: pd.DataFrame, z_max: float) -> str:
    worst = table.loc[table.max_abs_z.idxmax()] if table.max_abs_z.notna().any() else None
    line = (f"over {len(table)} curves: max |ε_DMFT − ε_sims| = "
            f"{table.max_abs_diff.max():.3g}")
    if worst is not None:
        line += (f", max |z| = {worst.max_abs_z:.3g} (t = {worst.time_max_abs_z:.3g}, "
                 f"where DMFT − sims = {worst.diff_at_max_abs_z:+.2g})")
    # `disagree` (analysis.agreement, tolerance included); other kinds' tables: |z| > z_max
    judged = table.disagree.astype(bool) if "disagree" in table else table.max_abs_z > z_max
    bad, within = int(judged.sum()), criterion(table, z_max)
    return line + (f"; {bad} curve(s) beyond {within}." if bad else f"; all within {within}.")


def describe(config: dict) -> list[str]:
    """Parameter lines of an experiment from its stored config (ExperimentSpec.to_dict)."""
    lines = ["Problem: " + ", ".join(f"{k} = {v}" for k, v in config.get("problem", {}).items())]
    if config.get("grid"):
        lines.append("Grid: " + "; ".join(f"{k} ∈ {v}" for k, v in config["grid"].items()))
    if config.get("cases"):
        lines.append("Cases: " + "; ".join(
            f"{k} ({', '.join(f'{f} = {v}' for f, v in c.items())})"
            for k, c in config["cases"].items()))
    sims = config.get("sims")
    if sims:
        lines.append(f"Simulations: d = {sims.get('d')}, {sims.get('seeds')} seeds")
    dmft = config.get("dmft")
    if dmft:
        lines.append(f"DMFT: {json.dumps(dmft.get('settings', dmft))}"
                     + (f", initial magnetization at d = {dmft['d']}" if dmft.get("d") else "")
                     + (f"; also at the {at_seeds_kind(config)} of the "
                        f"{dmft['seed_magnetizations']} simulated seeds (dash-dot)"
                        if dmft.get("seed_magnetizations") else ""))
    return lines


def write_gallery(results: str, out: str, experiments: list[str] | None = None,
                  sections: dict | None = None, intro: str = "") -> str:
    """Write <out>/gallery.md and the small PNGs; returns the page's path.

    sections: {experiment: analysis section} (titles; default: none); intro: a paragraph
    under the page title (e.g. which config made the run)."""
    experiments = experiments or sorted(
        f[:-4] for f in os.listdir(os.path.join(results, "figures")) if f.endswith(".png"))
    os.makedirs(os.path.join(out, "gallery"), exist_ok=True)
    page = ["# Gallery", "", *([intro, ""] if intro else []),
            "Regenerate after a run: `python -m analysis.gallery results --out docs "
            "--config <the run's config>`.", ""]
    for name in experiments:
        stores = load_experiment(results, name, outdated="flag")
        config = {}  # each store's config has its own solver's section only
        for solver, ds in stores.items():
            config = {**experiment_config(ds), **config, solver: experiment_config(ds)[solver]}
        spec = check_analysis((sections or {}).get(name), name, None,
                              experiment_model(next(iter(stores.values()))))
        image = Image.open(os.path.join(results, "figures", f"{name}.png"))
        image.thumbnail((WIDTH, WIDTH * 4))
        image = image.convert("RGB").quantize(colors=128)  # a palette PNG: a few 100 kB less
        image.save(os.path.join(out, "gallery", f"{name}.png"), optimize=True)
        page += [f"## {name}" + (f": {spec['title']}" if spec["title"] else ""), "",
                 f"![{name}](gallery/{name}.png)", ""]
        page += [f"* **Solver ({solver} store): {ds.attrs['solver_note']}.**"
                 for solver, ds in stores.items() if "solver_note" in ds.attrs]
        page += [f"* {line}" for line in describe(config)]
        table = os.path.join(results, "tables", f"{name}_agreement.csv")
        if os.path.exists(table):
            line = agreement_line(pd.read_csv(table), spec["z_max"], at_seeds_kind(config))
            page.append(f"* {line}")
        text = os.path.join(results, "tables", f"{name}.txt")
        if os.path.exists(text):
            page.append(f"* {open(text).read().strip()}")
        page.append("")
    path = os.path.join(out, "gallery.md")
    with open(path, "w") as fh:
        fh.write("\n".join(page))
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis.gallery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results directory of a pipeline run")
    parser.add_argument("--out", default="docs", help="where gallery.md and gallery/ go")
    parser.add_argument("--config", default=None, help="the run's config (figure titles)")
    parser.add_argument("--intro", default="", help="a paragraph under the page title")
    parser.add_argument("experiments", nargs="*", help="default: every figure in results")
    args = parser.parse_args(argv)
    sections = None
    if args.config:
        sections = {name: raw.get("analysis")
                    for name, raw in read_yaml(args.config)["experiments"].items()}
    print(write_gallery(args.results, args.out, args.experiments or None, sections,
                        args.intro))


if __name__ == "__main__":
    main()
