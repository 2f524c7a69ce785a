# Analysis (README "Figures and analysis"): what is drawn for an experiment is declared in
# its config, `analysis: {kind: curves | map | finite_size, ...}` (analysis/spec.py; default
# curves). Per experiment: results/figures/<e>.png/.pdf, results/tables/<e>.csv (the kind's
# table), results/tables/<e>_agreement.csv (simulations against DMFT) and, for finite_size,
# results/tables/<e>.txt (the verdict in words), all marked
# report(...): `snakemake --report results/report.html` collects them with their captions
# (workflow/report/<e>.rst, else workflow/report/kind_<kind>.rst) and the config files.
# `analysis: false` at the top of the config: stores only.
import json as _json

from analysis.spec import check_analysis

if isinstance(config.get("analysis"), dict) and config["analysis"]:
    raise WorkflowError(
        f"field 'analysis': {config['analysis']!r} is not allowed: true or false at the top "
        "level; the analysis settings (e.g. threshold) go in each experiment's "
        "'analysis:' section (analysis/spec.py)")
try:
    ANALYSIS = {name: check_analysis(raw.get("analysis"), name, list(EXPERIMENTS[name].grid))
                for name, raw in config["experiments"].items()}
except ValueError as err:
    raise WorkflowError(str(err)) from None


REPORT_DIR = os.path.join(workflow.basedir, "workflow", "report")


def _of_kind(kind):
    return "|".join(n for n, s in ANALYSIS.items() if s["kind"] == kind) or "NO_EXPERIMENT"


def analysis_targets(config):
    """Every file the analysis makes for the experiments of the config (for `rule all`)."""
    out = [f"{RESULTS}/{folder}/{name}{suffix}" for name in ANALYSIS
           for folder, suffix in (("figures", ".png"), ("figures", ".pdf"),
                                  ("tables", ".csv"), ("tables", "_agreement.csv"))]
    return out + [f"{RESULTS}/tables/{name}.txt" for name, spec in ANALYSIS.items()
                  if spec["kind"] == "finite_size"]


def _caption(name):
    """workflow/report/<name>.rst, else the caption of the experiment's kind."""
    for stem in (name, f"kind_{ANALYSIS[name]['kind']}"):
        path = os.path.join(REPORT_DIR, f"{stem}.rst")
        if os.path.exists(path):
            return open(path).read()
    return name


def _outputs(category, label):
    return dict(
        png=report(f"{RESULTS}/figures/{{experiment}}.png", caption="../report/figure.rst",
                   category=category, labels={label: "{experiment}"}),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
        csv=report(f"{RESULTS}/tables/{{experiment}}.csv", caption="../report/table.rst",
                   category=category, labels={"table": "{experiment}"}),
        agreement=report(f"{RESULTS}/tables/{{experiment}}_agreement.csv",
                         caption="../report/agreement.rst",
                         category="Simulations against DMFT",
                         labels={"agreement": "{experiment}"}),
    )


ANALYSIS_SHELL = ("python -m analysis {wildcards.experiment} --results {params.results:q} "
                  "--section {params.section:q} > {log:q} 2>&1")


rule learning_curves:
    input:
        unpack(lambda wc: store_inputs(wc.experiment)),
    output:
        **_outputs("Learning curves", "panel"),
    wildcard_constraints:
        experiment=_of_kind("curves"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=RESULTS,
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL


rule early_stopping_map:
    input:
        unpack(lambda wc: store_inputs(wc.experiment)),
    output:
        **_outputs("Early stopping", "map"),
    wildcard_constraints:
        experiment=_of_kind("map"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=RESULTS,
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL


rule finite_size:
    input:
        unpack(lambda wc: store_inputs(wc.experiment)),
    output:
        **_outputs("Finite-size scaling", "figure"),
        verdict=report(f"{RESULTS}/tables/{{experiment}}.txt", caption="../report/verdict.rst",
                       category="Finite-size scaling", labels={"verdict": "{experiment}"}),
    wildcard_constraints:
        experiment=_of_kind("finite_size"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=RESULTS,
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL
