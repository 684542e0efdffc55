# Stage "data": check a study and freeze its config (results/<study>/study.yaml, the file every later job reads);
# load its recordings into data.npz. Two rules call `neurofit prepare` (rule names are the subcommand, with a
# suffix for a second rule of one subcommand): `prepare` for a study with a model and data, `prepare_config`
# for one without (rate, reduction), which has no data.npz.
#
# They read the study from the config files that define it, and run again only when the study's section
# without its description changes (params.study: its hash). study.yaml leaves the description out, so
# editing it re-runs nothing: `snakemake -n` then reports nothing to do.


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
    wildcard_constraints:
        study=DATA_STUDIES,
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=study_config,
        study=study_fingerprint,
    shell:
        "neurofit prepare --config {params.config:q} --study {wildcards.study}"
        " --output-config {output.config} --output-data {output.data} > {log} 2>&1"


rule prepare_config:
    input:
        study_files,
    output:
        config=f"{RESULTS}/{{study}}/study.yaml",
        manifest=manifest(f"{RESULTS}/{{study}}/study.yaml"),
    log:
        f"{RESULTS}/{{study}}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/prepare.tsv"
    wildcard_constraints:
        study=NO_DATA_STUDIES,
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=study_config,
        study=study_fingerprint,
    shell:
        "neurofit prepare --config {params.config:q} --study {wildcards.study}"
        " --output-config {output.config} > {log} 2>&1"
