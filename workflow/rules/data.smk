# Stage "data": check a study and freeze its config; load its recordings into data.npz.


rule prepare:
    input:
        study_files,
    output:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
        manifests=[
            manifest(f"{RESULTS}/{{study}}/study.yaml"),
            manifest(f"{RESULTS}/{{study}}/data.npz"),
        ],
    log:
        f"{RESULTS}/{{study}}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/prepare.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=study_json,
    shell:
        "neurofit prepare --config-json {params.config:q} --study {wildcards.study}"
        " --output-config {output.config} --output-data {output.data} > {log} 2>&1"
