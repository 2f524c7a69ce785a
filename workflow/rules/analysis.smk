# Analysis (README "Figures and analysis"): what is drawn for an experiment is declared in
# its config, `analysis: {kind: curves | map | finite_size, ...}` (analysis/spec.py; default
# curves) or, for model two_layer, `{kind: risk_curves | regions | learning_rates | floors |
# phase_diagram}` (default risk_curves; analysis/two_layer.py); SGD against its surrogates
# (paper 004): `{kind: paired_curves | surrogates}` (analysis/smf.py). Per experiment: results/figures/<e>.png/.pdf, results/tables/<e>.csv (the kind's
# table), results/tables/<e>_agreement.csv (simulations against DMFT) and, for finite_size,
# results/tables/<e>.txt (the verdict in words), all marked
# report(...): `snakemake --report results/report.html` collects them with their captions
# (workflow/report/<e>.rst, else workflow/report/kind_<kind>.rst) and the config files.
# `analysis: false` at the top of the config: stores only.
# (its helpers live in common.smk, section 'analysis')


rule learning_curves:
    input:
        unpack(lambda wc: analysis_inputs(wc.experiment)),
    output:
        **_outputs("Learning curves", "panel"),
    wildcard_constraints:
        experiment=_of_kind("curves"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=lambda wc, output: os.path.dirname(os.path.dirname(output.png)),
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL


rule early_stopping_map:
    input:
        unpack(lambda wc: analysis_inputs(wc.experiment)),
    output:
        **_outputs("Early stopping", "map"),
    wildcard_constraints:
        experiment=_of_kind("map"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=lambda wc, output: os.path.dirname(os.path.dirname(output.png)),
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL


rule finite_size:
    input:
        unpack(lambda wc: analysis_inputs(wc.experiment)),
    output:
        **_outputs("Finite-size scaling", "figure"),
        verdict=report(f"{RESULTS}/tables/{{experiment}}.txt", caption="../report/verdict.rst",
                       category="Finite-size scaling", labels={"verdict": "{experiment}"}),
    wildcard_constraints:
        experiment=_of_kind("finite_size"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=lambda wc, output: os.path.dirname(os.path.dirname(output.png)),
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL


rule two_layer_figure:
    input:
        unpack(lambda wc: analysis_inputs(wc.experiment)),
    output:
        **_outputs("Two-layer networks", "figure"),
    wildcard_constraints:
        experiment=_of_kind(*family_named("two_layer").analysis_kinds),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=lambda wc, output: os.path.dirname(os.path.dirname(output.png)),
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL


rule surrogate_figure:
    input:
        unpack(lambda wc: analysis_inputs(wc.experiment)),
    output:
        **_outputs("Stochastic modified flows", "figure"),
    wildcard_constraints:
        experiment=_of_kind("paired_curves", "surrogates"),
    params:
        section=lambda wc: _json.dumps(ANALYSIS[wc.experiment]),
        caption=lambda wc: _caption(wc.experiment),
        results=lambda wc, output: os.path.dirname(os.path.dirname(output.png)),
    log:
        "logs/{experiment}/analysis.log",
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        ANALYSIS_SHELL
