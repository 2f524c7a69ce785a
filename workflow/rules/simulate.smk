# Finite-d simulations: one Dask fan-out per experiment into results/<experiment>/sims.zarr.


rule simulate:
    input:
        spec=f"{RESULTS}/{{experiment}}/.spec/sims.json",
    output:
        done=f"{RESULTS}/{{experiment}}/sims.done.json",
    log:
        "logs/{experiment}/sims.log",
    params:
        store=lambda wc: f"{RESULTS}/{wc.experiment}/sims.zarr",
        dask=DASK,
        scheduler=SCHEDULER,
    threads: lambda wildcards: workflow.cores
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        "python -m workflow.cli run {input.spec:q} --store {params.store:q} "
        "--summary {output.done:q} --threads {threads} --scheduler {params.scheduler:q} "
        "--dask-config {params.dask:q} 2>&1 | tee {log:q}"
