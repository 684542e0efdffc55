# Stage "figures": figures of every result, with captions for `snakemake --report report.html`.


TARGETS.append(
    lambda study: (
        [f"{RESULTS}/{study}/figures/traces.png"]
        if study_section(study).get("simulate") is not None
        and study_section(study)["figures"]["traces"]
        else []
    )
)


rule plot_traces:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
        simulation=f"{RESULTS}/{{study}}/simulate/traces.npz",
    output:
        figure=report(
            f"{RESULTS}/{{study}}/figures/traces.png",
            caption="../report/traces.rst",
            category="Traces",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "simulated vs recorded traces"},
        ),
        manifest=manifest(f"{RESULTS}/{{study}}/figures/traces.png"),
    log:
        f"{RESULTS}/{{study}}/logs/plot_traces.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/plot_traces.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "neurofit plot-traces --config {input.config} --study {wildcards.study} --data {input.data}"
        " --simulation {input.simulation} --output {output.figure} > {log} 2>&1"
