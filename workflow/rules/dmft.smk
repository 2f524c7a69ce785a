# DMFT solutions: one Dask fan-out per experiment into results/<experiment>/dmft.zarr.


rule dmft:
    input:
        spec=f"{RESULTS}/{{experiment}}/.spec/dmft.json",
    output:
        done=f"{RESULTS}/{{experiment}}/dmft.done.json",
    log:
        "logs/{experiment}/dmft.log",
    params:
        store=lambda wc: f"{RESULTS}/{wc.experiment}/dmft.zarr",
        dask=DASK,
        scheduler=SCHEDULER,
    threads: lambda wildcards: workflow.cores
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        "python -m workflow.cli run {input.spec:q} --store {params.store:q} "
        "--summary {output.done:q} --threads {threads} --scheduler {params.scheduler:q} "
        "--dask-config {params.dask:q} 2>&1 | tee {log:q}"
