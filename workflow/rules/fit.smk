# Stage "fit": one job per (optimizer, seed) of a study's `fit` section (results/<study>/fit/<label>_<seed>/).
#
# Checkpoints (the optimizer's, not Snakemake's checkpoint rules): `neurofit fit` saves the optimizer state
# and history after every round to checkpoint.json in the run's folder. That file is deliberately NOT an
# output of the rule: Snakemake deletes the outputs of a job that fails and, with --rerun-incomplete (set
# in both profiles), those of a job that was running when Snakemake itself was killed, before running it
# again. Left undeclared, the checkpoint survives both, and the re-run resumes from the last finished
# round and ends with the numbers of an uninterrupted fit. (Declared as protected() it would still be
# deleted with the other outputs; inside a directory() output the whole folder would be removed before
# the job starts.) The command keeps a fingerprint of the fit's settings, model and data beside it
# (checkpoint.fingerprint.json) and starts over when they changed, and removes both once fit.json and
# history.parquet are written, so that a forced re-run recomputes the fit.


TARGETS.append(lambda study: fit_files(study, "fit.json"))


rule fit:
    input:
        config=f"{RESULTS}/{{study}}/study.yaml",
        data=f"{RESULTS}/{{study}}/data.npz",
    output:
        fit=f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/fit.json",
        history=f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/history.parquet",
        manifests=[
            manifest(f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/fit.json"),
            manifest(
                f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/history.parquet"
            ),
        ],
    log:
        f"{RESULTS}/{{study}}/logs/fit/{{optimizer}}_{{seed}}.log",
    benchmark:
        f"{RESULTS}/{{study}}/benchmarks/fit/{{optimizer}}_{{seed}}.tsv"
    conda:
        "../envs/neurofit.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        checkpoint=f"{RESULTS}/{{study}}/fit/{{optimizer}}_{{seed}}/checkpoint.json",
    shell:
        "neurofit fit --config {input.config} --study {wildcards.study} --data {input.data}"
        " --optimizer {wildcards.optimizer} --seed {wildcards.seed}"
        " --output {output.fit} --history {output.history} --checkpoint {params.checkpoint}"
        " > {log} 2>&1"
