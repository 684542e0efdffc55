# Stage "refine": least-squares refinement of every fit (unless the study's fit.refine.enabled is false).


TARGETS.append(refined_files)


rule refine:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
        fit=f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/fit.json",
        history=f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/history.parquet",
    output:
        refined=f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/refined.json",
        manifest=manifest(
            f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/refined.json"
        ),
    log:
        f"{RESULTS}/{{study}}/logs/refine/{{optimizer}}_{{seed}}.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/refine/{{optimizer}}_{{seed}}.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "neurofit refine --config {input.config} --study {wildcards.study} --data {input.data}"
        " --fit {input.fit} --history {input.history} --output {output.refined} > {log} 2>&1"
