# Stage "infer": simulation-based inference of a study's `infer` section (results/<study>/infer/).
# Scatter: one job per chunk of the training data (infer.n_chunks; together exactly one unchunked run);
# gather: `infer` trains and writes the posterior, samples and figures, checks whether the data's features
# lie among the simulations' (summary.json) and runs the posterior predictive check; `calibrate` (with
# infer.sbc_simulations > 0) checks the posterior by simulation-based calibration.


TARGETS.append(infer_targets)


# `neurofit simulate --chunk`: the second rule of the simulate subcommand, hence its suffix.
rule simulate_training:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
    output:
        chunk=f"{RESULTS}/{{study}}/infer/chunks/chunk_{{chunk}}.npz",
        manifest=manifest(f"{RESULTS}/{{study}}/infer/chunks/chunk_{{chunk}}.npz"),
    log:
        f"{RESULTS}/{{study}}/logs/infer/chunk_{{chunk}}.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/infer/chunk_{{chunk}}.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: lambda wildcards: infer_section(wildcards.study)["threads"]
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        n_chunks=lambda wildcards: infer_section(wildcards.study)["n_chunks"],
    shell:
        "neurofit simulate --config {input.config} --study {wildcards.study} --data {input.data}"
        " --chunk {wildcards.chunk} --of {params.n_chunks} --threads {threads}"
        " --output {output.chunk} > {log} 2>&1"


rule infer:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
        chunks=lambda wildcards: infer_chunk_files(wildcards.study),
    output:
        posterior=f"{RESULTS}/{{study}}/infer/posterior.pt",
        samples=f"{RESULTS}/{{study}}/infer/samples.parquet",
        table=report(
            f"{RESULTS}/{{study}}/infer/posterior.csv",
            caption="../report/infer_posterior.rst",
            category="Inference",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "posterior summary (table)"},
        ),
        summary=f"{RESULTS}/{{study}}/infer/summary.json",
        pairplot=infer_figure("pairplot", "posterior pairplot"),
        predictive=infer_figure("predictive", "posterior predictive traces"),
        predictive_check=infer_figure(
            "predictive_check", "posterior predictive check of the features"
        ),
        predictive_check_json=f"{RESULTS}/{{study}}/infer/predictive_check.json",
        manifests=[
            manifest(f"{RESULTS}/{{study}}/infer/{name}") for name in INFERENCE_FILES
        ],
    log:
        f"{RESULTS}/{{study}}/logs/infer/infer.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/infer/infer.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: lambda wildcards: infer_section(wildcards.study)["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        out=lambda wildcards: f"{RESULTS}/{wildcards.study}/infer",
    shell:
        "neurofit infer --config {input.config} --study {wildcards.study} --data {input.data}"
        " --chunks {input.chunks} --threads {threads} --output-dir {params.out} > {log} 2>&1"


rule calibrate:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
        posterior=f"{RESULTS}/{{study}}/infer/posterior.pt",
    output:
        ranks=infer_figure("sbc_ranks", "calibration: rank histograms"),
        coverage=infer_figure("coverage", "calibration: expected coverage"),
        summary=f"{RESULTS}/{{study}}/infer/calibration.json",
        manifests=[
            manifest(f"{RESULTS}/{{study}}/infer/{name}") for name in CALIBRATION_FILES
        ],
    log:
        f"{RESULTS}/{{study}}/logs/infer/calibrate.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/infer/calibrate.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: lambda wildcards: infer_section(wildcards.study)["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        out=lambda wildcards: f"{RESULTS}/{wildcards.study}/infer",
    shell:
        "neurofit calibrate --config {input.config} --study {wildcards.study} --data {input.data}"
        " --posterior {input.posterior} --threads {threads} --output-dir {params.out} > {log} 2>&1"
