# Stage "reduction": fit the reduced model of a study's `reduction` section to its target (one job), check it
# on the held-out amplitudes (results/<study>/reduction/), then draw three figures.


TARGETS.append(reduction_targets)


rule reduce:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=lambda wildcards: reduction_data_files(wildcards.study),
    output:
        summary=f"{RESULTS}/{{study}}/reduction/reduction.json",
        arrays=f"{RESULTS}/{{study}}/reduction/reduction.npz",
        heldout=f"{RESULTS}/{{study}}/reduction/heldout.json",
        heldout_arrays=f"{RESULTS}/{{study}}/reduction/heldout.npz",
        manifests=[
            manifest(f"{RESULTS}/{{study}}/reduction/{name}")
            for name in REDUCTION_FILES
        ],
    log:
        f"{RESULTS}/{{study}}/logs/reduce.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/reduce.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        out=lambda wildcards: f"{RESULTS}/{wildcards.study}/reduction",
    shell:
        "neurofit reduce --config {input.config} --study {wildcards.study}"
        " --output-dir {params.out} > {log} 2>&1"


rule plot_reduction:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        summary=f"{RESULTS}/{{study}}/reduction/reduction.json",
        arrays=f"{RESULTS}/{{study}}/reduction/reduction.npz",
        heldout=f"{RESULTS}/{{study}}/reduction/heldout.json",
        heldout_arrays=f"{RESULTS}/{{study}}/reduction/heldout.npz",
    output:
        loss=reduction_figure("loss", "reduction: loss per evaluation"),
        train=reduction_figure("train", "reduction: target vs fitted, train amplitudes"),
        heldout=reduction_figure(
            "heldout", "reduction: target vs fitted, held-out amplitudes"
        ),
        manifests=[
            manifest(f"{RESULTS}/{{study}}/figures/reduction_{kind}.png")
            for kind in REDUCTION_FIGURES
        ],
    log:
        f"{RESULTS}/{{study}}/logs/plot_reduction.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/plot_reduction.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.study}/reduction",
    shell:
        "neurofit plot-reduction --config {input.config} --study {wildcards.study}"
        " --results {params.results} --loss {output.loss} --train {output.train}"
        " --heldout {output.heldout} > {log} 2>&1"
