# Stage "simulate": the model at the parameters of the study's `simulate` section, on its recorded inputs.


TARGETS.append(
    lambda study: (
        [f"{RESULTS}/{study}/simulate/traces.npz"]
        if study_section(study).get("simulate") is not None
        else []
    )
)


rule simulate:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
    output:
        traces=f"{RESULTS}/{{study}}/simulate/traces.npz",
        manifest=manifest(f"{RESULTS}/{{study}}/simulate/traces.npz"),
    log:
        f"{RESULTS}/{{study}}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/simulate.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: lambda wildcards: study_section(wildcards.study)["simulate"]["threads"]
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "neurofit simulate --config {input.config} --study {wildcards.study} --data {input.data}"
        " --output {output.traces} --threads {threads} > {log} 2>&1"
