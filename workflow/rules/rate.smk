# Stage "rate": the rate-model study of a study's `rate` section (results/<study>/rate/).
# Scatter: one job per chunk of the (w, I_ext) bifurcation map (rate.bifurcation.n_chunks);
# gather: `rate_study` reads every chunk and writes the figures and rate_study.json.


TARGETS.append(rate_targets)


rule rate_chunk:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
    output:
        chunk=f"{RESULTS}/{{study}}/rate/bifurcation/chunk_{{chunk}}.npz",
        manifest=manifest(f"{RESULTS}/{{study}}/rate/bifurcation/chunk_{{chunk}}.npz"),
    log:
        f"{RESULTS}/{{study}}/logs/rate/chunk_{{chunk}}.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/rate/chunk_{{chunk}}.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        n_chunks=lambda wildcards: rate_chunk_count(wildcards.study),
    shell:
        "neurofit rate-chunk --config {input.config} --study {wildcards.study}"
        " --chunk {wildcards.chunk} --of {params.n_chunks} --output {output.chunk} > {log} 2>&1"


rule rate_study:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        chunks=lambda wildcards: rate_chunk_files(wildcards.study),
    output:
        fi_curve=rate_figure("fi_curve", "F-I curve"),
        drdt=rate_figure("drdt", "dr/dt and fixed points"),
        trajectories=rate_figure("trajectories", "trajectories from several r_init"),
        ou_run=rate_figure("ou_run", "OU-driven run and transitions"),
        bifurcation_map=rate_figure("bifurcation_map", "bifurcation map"),
        fit_traces=rate_figure("fit_traces", "fit to noisy step responses"),
        summary=f"{RESULTS}/{{study}}/rate/rate_study.json",
        manifests=[
            manifest(f"{RESULTS}/{{study}}/rate/{name}") for name in RATE_OUTPUTS
        ],
    log:
        f"{RESULTS}/{{study}}/logs/rate/study.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/rate/study.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        out=lambda wildcards: f"{RESULTS}/{wildcards.study}/rate",
    shell:
        "neurofit rate-study --config {input.config} --study {wildcards.study}"
        " --chunks {input.chunks} --output-dir {params.out} > {log} 2>&1"
