# Analysis: paper panels, early-stopping maps, finite-size scaling (README "Analysis").
# Every figure is marked report(...): `snakemake --report results/report.html` collects them
# with their captions (workflow/report/*.rst) and the config files used.
# Settings (optional) under `analysis:` in the config: {escape_threshold: 0.4}.
import os

PAPER_PANELS = [f"fig{i}_{side}" for i in (1, 2, 3, 4) for side in ("left", "right")]
ES_MAPS = ["esmap_psgd_two", "esmap_sgd_two", "esmap_sgd_three"]
FSS = ["fss_two", "fss_three"]
REPORT_DIR = os.path.join(workflow.basedir, "workflow", "report")


def _analysis_settings(config):
    settings = config.get("analysis", True)
    return settings if isinstance(settings, dict) else {}


def analysis_targets(config):
    """Every file the analysis produces for the experiments of `config` (for `rule all`)."""
    names = list(config.get("experiments", {}))
    out = []
    for name in names:
        if name in PAPER_PANELS or name in ES_MAPS or name in FSS:
            out += [f"{RESULTS}/figures/{name}.png", f"{RESULTS}/figures/{name}.pdf"]
        if name in ES_MAPS or name in FSS:
            out.append(f"{RESULTS}/tables/{name}.csv")
    return out


def _caption(name):
    """Text of workflow/report/<name>.rst (rendered into the report by figure.rst)."""
    path = os.path.join(REPORT_DIR, f"{name}.rst")
    return open(path).read() if os.path.exists(path) else name


def _statement(wc):
    """fss_three: the simulations-vs-DMFT verdict written by the analysis (if made yet)."""
    path = f"{RESULTS}/tables/{wc.experiment}.txt"
    return open(path).read().strip() if os.path.exists(path) else ""


rule paper_figure:
    input:
        unpack(lambda wc: store_inputs(wc.experiment)),
    output:
        png=report(f"{RESULTS}/figures/{{experiment}}.png", caption="../report/figure.rst",
                   category="Figures 1-4 of the paper", labels={"panel": "{experiment}"}),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
    wildcard_constraints:
        experiment="|".join(PAPER_PANELS),
    params:
        caption=lambda wc: _caption(wc.experiment),
        statement="",
    log:
        "logs/{experiment}/analysis.log",
    shell:
        "python -m analysis {wildcards.experiment} --results {RESULTS} > {log:q} 2>&1"


rule early_stopping_map:
    input:
        unpack(lambda wc: store_inputs(wc.experiment)),
    output:
        png=report(f"{RESULTS}/figures/{{experiment}}.png", caption="../report/figure.rst",
                   category="Early stopping", labels={"map": "{experiment}"}),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
        csv=report(f"{RESULTS}/tables/{{experiment}}.csv", caption="../report/table.rst",
                   category="Early stopping", labels={"table": "{experiment}"}),
    wildcard_constraints:
        experiment="|".join(ES_MAPS),
    params:
        caption=lambda wc: _caption(wc.experiment),
        statement="",
    log:
        "logs/{experiment}/analysis.log",
    shell:
        "python -m analysis {wildcards.experiment} --results {RESULTS} > {log:q} 2>&1"


rule finite_size:
    input:
        unpack(lambda wc: store_inputs(wc.experiment)),
    output:
        png=report(f"{RESULTS}/figures/{{experiment}}.png", caption="../report/figure.rst",
                   category="Finite-size scaling", labels={"figure": "{experiment}"}),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
        csv=report(f"{RESULTS}/tables/{{experiment}}.csv", caption="../report/table.rst",
                   category="Finite-size scaling", labels={"table": "{experiment}"}),
    wildcard_constraints:
        experiment="|".join(FSS),
    params:
        caption=lambda wc: _caption(wc.experiment),
        statement=_statement,
        threshold=lambda wc: _analysis_settings(config).get("escape_threshold", 0.4),
    log:
        "logs/{experiment}/analysis.log",
    shell:
        "python -m analysis {wildcards.experiment} --results {RESULTS} "
        "--escape-threshold {params.threshold} > {log:q} 2>&1"
