# Stage "batch": a study with a sample sheet runs its stages on every cell (results/<study>/cells/<cell>/<stage>/)
# and gathers them into one table (results/<study>/population/cells.csv).
#
# prepare_cell freezes the cell's row (cell.json); it runs again only when that row changes (params.row: its
# hash), so adding a row runs only the new cell's jobs and removing one only re-gathers the table. fit_cell fits
# one stage of one cell and always succeeds for the cell's own problems (unreadable file, every sweep failing
# quality control, nothing to fit): they are its result's status, and the other cells go on. The cell's
# recordings are inputs only when they exist, so a missing file fails its cell, not the whole workflow. On a
# cluster, fit_cell jobs share the group "cells": `--group-components cells=N` (profiles/slurm) sends N cells'
# stages as one sbatch job, so that a hundred short cell jobs do not flood the scheduler. An infer stage with
# amortize: group trains once per sheet group (train_group: results/<study>/groups/<group>/<stage>/), and each
# cell's fit_cell job of that stage conditions on the group's posterior.


TARGETS.append(batch_targets)


rule prepare_cell:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
    output:
        cell=f"{RESULTS}/{{study}}/cells/{{cell}}/cell.json",
        manifest=manifest(f"{RESULTS}/{{study}}/cells/{{cell}}/cell.json"),
    log:
        f"{RESULTS}/{{study}}/logs/cells/{{cell}}/prepare_cell.log",
    wildcard_constraints:
        cell="[A-Za-z0-9][A-Za-z0-9_.-]*",
    localrule: True
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        row=cell_fingerprint,
    shell:
        "neurofit prepare-cell --config {input.config} --study {wildcards.study} --cell {wildcards.cell}"
        " --output {output.cell} > {log} 2>&1"


rule fit_cell:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        cell=f"{RESULTS}/{{study}}/cells/{{cell}}/cell.json",
        previous=previous_stage_result,
        group=cell_group,
        recordings=cell_recordings,
    output:
        result=f"{RESULTS}/{{study}}/cells/{{cell}}/{{stage}}/result.json",
        result_manifest=manifest(
            f"{RESULTS}/{{study}}/cells/{{cell}}/{{stage}}/result.json"
        ),
        figure=report(
            f"{RESULTS}/{{study}}/cells/{{cell}}/{{stage}}/traces.png",
            caption="../report/cell_traces.rst",
            category="Cells",
            subcategory="{cell}",
            labels={"study": "{study}", "cell": "{cell}", "stage": "{stage}"},
        ),
        figure_manifest=manifest(
            f"{RESULTS}/{{study}}/cells/{{cell}}/{{stage}}/traces.png"
        ),
    log:
        f"{RESULTS}/{{study}}/logs/cells/{{cell}}/{{stage}}.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/cells/{{cell}}/{{stage}}.tsv"
    wildcard_constraints:
        cell="[A-Za-z0-9][A-Za-z0-9_.-]*",
        stage="[A-Za-z0-9][A-Za-z0-9_-]*",
    group:
        "cells"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    shell:
        "neurofit fit-cell --config {input.config} --study {wildcards.study} --cell-file {input.cell}"
        " --stage {wildcards.stage} --previous {input.previous} --group-posterior {input.group}"
        " --output {output.result}"
        " --figure {output.figure} > {log} 2>&1"


rule train_group:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        cells=group_cell_files,
        recordings=group_recordings,
    output:
        group=f"{RESULTS}/{{study}}/groups/{{group}}/{{stage}}/group.json",
        manifest=manifest(f"{RESULTS}/{{study}}/groups/{{group}}/{{stage}}/group.json"),
    log:
        f"{RESULTS}/{{study}}/logs/groups/{{group}}/{{stage}}.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/groups/{{group}}/{{stage}}.tsv"
    wildcard_constraints:
        group="[A-Za-z0-9][A-Za-z0-9_.-]*",
        stage="[A-Za-z0-9][A-Za-z0-9_-]*",
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    shell:
        "neurofit train-group --config {input.config} --study {wildcards.study} --stage {wildcards.stage}"
        " --group {wildcards.group} --cell-files {input.cells} --output {output.group} > {log} 2>&1"


rule population:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        results=batch_results,
    output:
        table=report(
            f"{RESULTS}/{{study}}/population/cells.csv",
            caption="../report/population_table.rst",
            category="Population",
            subcategory="{study}",
            labels={"study": "{study}", "table": "one row per cell"},
        ),
        table_manifest=manifest(f"{RESULTS}/{{study}}/population/cells.csv"),
        figure=report(
            f"{RESULTS}/{{study}}/population/parameters.png",
            caption="../report/population_parameters.rst",
            category="Population",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "parameters by group"},
        ),
        figure_manifest=manifest(f"{RESULTS}/{{study}}/population/parameters.png"),
    log:
        f"{RESULTS}/{{study}}/logs/population.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/population.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "neurofit population --config {input.config} --study {wildcards.study} --results {input.results}"
        " --output {output.table} --figure {output.figure} > {log} 2>&1"
