# Stage "validate": a study's best fit scored on its held-out sweeps (validation section) and on the fitted ones:
# results/<study>/validation/validation.json (per sweep spike counts, gamma, latency and ISI errors, voltage RMSE;
# the fit's objective on the held-out sweeps; AIC/BIC of a least-squares fit) and validation.png.


TARGETS.append(validation_targets)


rule validate:
    input:
        unpack(fit_results),
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
        recordings=study_files,
    output:
        validation=f"{RESULTS}/{{study}}/validation/validation.json",
        validation_manifest=manifest(f"{RESULTS}/{{study}}/validation/validation.json"),
        figure=report(
            f"{RESULTS}/{{study}}/validation/validation.png",
            caption="../report/validation.rst",
            category="Validation",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "fitted and held-out sweeps"},
        ),
        figure_manifest=manifest(f"{RESULTS}/{{study}}/validation/validation.png"),
    log:
        f"{RESULTS}/{{study}}/logs/validate.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/validate.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "neurofit validate --config {input.config} --study {wildcards.study} --data {input.data}"
        " --fits {input.fits} --refined {input.refined} --output {output.validation}"
        " --figure {output.figure} > {log} 2>&1"
