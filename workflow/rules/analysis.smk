# Analysis: paper panels, early-stopping maps, finite-size scaling (README "Analysis").
# Every figure is marked report(...): `snakemake --report results/report.html` collects them
# with their captions (workflow/report/*.rst) and the config files used.
# Settings (optional) under `analysis:` in the config: {escape_threshold: 0.4}.
# Helpers (targets, captions) are in common.smk.


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
        results=results_dir,
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        "python -m analysis {wildcards.experiment} --results {params.results:q} > {log:q} 2>&1"


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
        results=results_dir,
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        "python -m analysis {wildcards.experiment} --results {params.results:q} > {log:q} 2>&1"


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
        results=results_dir,
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        "python -m analysis {wildcards.experiment} --results {params.results:q} "
        "--escape-threshold {params.threshold} > {log:q} 2>&1"
