# Sweep pipeline of sgd-dmft (README "Running"): config -> per-experiment Zarr stores -> figures.
#   snakemake --cores 2                                  # config/quick.yaml
#   snakemake --cores 2 --configfile config/paper.yaml
#   snakemake --cores 2 --config dask_scheduler=tcp://host:8786

configfile: "config/quick.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/dmft.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        store_targets(),
        analysis_targets_or_none(),
