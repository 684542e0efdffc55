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


# Fits: a summary table of every (optimizer, seed) and three figures comparing them.
TARGETS.append(fit_summary_targets)


rule summarize:
    input:
        unpack(fit_results),
        config=f"{RESULTS}/{{study}}/study.yaml",
    output:
        table=report(
            f"{RESULTS}/{{study}}/summary/fits.csv",
            caption="../report/fit_summary.rst",
            category="Fits",
            subcategory="{study}",
            labels={
                "study": "{study}",
                "table": "fits: errors, evaluations, parameters",
            },
        ),
        manifest=manifest(f"{RESULTS}/{{study}}/summary/fits.csv"),
    log:
        f"{RESULTS}/{{study}}/logs/summarize.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/summarize.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "neurofit summarize --config {input.config} --study {wildcards.study}"
        " --fits {input.fits} --refined {input.refined} --output {output.table} > {log} 2>&1"


# One job draws the three figures (they read the same files; one Python start-up instead of three).
rule plot_fit:
    input:
        unpack(fit_results),
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
    output:
        convergence=fit_figure("convergence", "fits: best error vs evaluations"),
        parameters=fit_figure("parameters", "fits: parameters vs ground truth"),
        traces=fit_figure("traces", "fits: best model vs data"),
        manifests=[
            manifest(f"{RESULTS}/{{study}}/figures/fit_{kind}.png")
            for kind in FIT_FIGURES
        ],
    log:
        f"{RESULTS}/{{study}}/logs/plot_fit.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/plot_fit.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "neurofit plot-fit --config {input.config} --study {wildcards.study} --data {input.data}"
        " --fits {input.fits} --refined {input.refined} --convergence {output.convergence}"
        " --parameters {output.parameters} --traces {output.traces} > {log} 2>&1"


# A multi-objective fit (fit.multiobjective): its Pareto front, drawn by `neurofit plot-fit --pareto`.
TARGETS.append(
    lambda study: (
        [f"{RESULTS}/{study}/figures/fit_pareto.png"]
        if (study_section(study).get("fit") or {}).get("multiobjective") is not None
        and study_section(study)["figures"]["fits"]
        else []
    )
)


rule plot_fit_pareto:
    input:
        unpack(fit_results),
        config=f"{RESULTS}/{{study}}/study.yaml",
    output:
        pareto=fit_figure("pareto", "fits: Pareto front"),
        manifest=manifest(f"{RESULTS}/{{study}}/figures/fit_pareto.png"),
    log:
        f"{RESULTS}/{{study}}/logs/plot_fit_pareto.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/plot_fit_pareto.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "neurofit plot-fit --config {input.config} --study {wildcards.study}"
        " --fits {input.fits} --refined {input.refined} --pareto {output.pareto} > {log} 2>&1"
