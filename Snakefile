# Sweep pipeline of sgd-dmft (README "Running"): config -> per-experiment Zarr stores -> figures.
#   snakemake --cores 2                                  # config/quick.yaml (the default)
#   snakemake --cores 2 --configfile config/paper.yaml   # replaces the default, no merge
#   snakemake --cores 2 --config dask_scheduler=tcp://host:8786
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
# No `configfile:` directive: the config is read (strictly) in workflow/rules/common.smk.


include: "workflow/rules/common.smk"
include: "workflow/rules/stores.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        store_targets(),
        analysis_targets_or_none(),
