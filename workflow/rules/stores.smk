# The stores: one Dask fan-out per experiment and solver (sims or dmft) into
# results/<experiment>/<solver>.zarr. The input is the spec file named by its content hash
# (spec_file in common.smk), so a changed experiment reruns and nothing else does.


rule store:
    input:
        spec=lambda wc: spec_file(wc.experiment, wc.solver),
    output:
        done=f"{RESULTS}/{{experiment}}/{{solver}}.done.json",
    log:
        "logs/{experiment}/{solver}.log",
    params:
        store=lambda wc: f"{RESULTS}/{wc.experiment}/{wc.solver}.zarr",
        dask=DASK,
        scheduler=SCHEDULER,
        retry=lambda wc: retry_flag(wc.experiment, wc.solver),
    threads: lambda wildcards: threads_of(wildcards.experiment, wildcards.solver)
    resources:
        mem_mb=lambda wc, threads: plan_of(wc.experiment, wc.solver, threads)["mem_mb"],
        runtime=lambda wc, threads: plan_of(wc.experiment, wc.solver, threads)["runtime"],
    conda:
        "../envs/sgd-dmft.yaml"
    shell:
        "set -o pipefail; python -m workflow.cli run {input.spec:q} --store {params.store:q} "
        "--summary {output.done:q} --threads {threads} --scheduler {params.scheduler:q} "
        "--dask-config {params.dask:q} {params.retry} 2>&1 | tee {log:q}"


rule spec:
    output:
        f"{RESULTS}/{{experiment}}/.spec/{{solver}}-{{hash}}.json",
    log:
        "logs/{experiment}/{solver}-spec-{hash}.log",
    localrule: True
    params:
        text=lambda wc: SPECS[(wc.experiment, wc.solver)][1],
    conda:
        "../envs/sgd-dmft.yaml"
    script:
        "../scripts/write_spec.py"
