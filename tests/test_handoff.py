"""The one hand-off from a config to the jobs: `neurofit prepare` reads a study from the config files that
define it and writes results/<study>/study.yaml (without the study's description); every other job reads that
file. Editing only a description then re-runs nothing; a study changed on Snakemake's command line is refused."""
import pytest
import yaml

from tiny_workflow import STUDY, make_workdir, run_snakemake, tiny_config

# A quick subset of the tiny study - prepare then simulate (its fit and infer sections dropped: their checks
# import nevergrad and torch) - and a tiny rate study (no model, no data: prepare_config) up to one map chunk.
RATE = {"bifurcation": {"n_w": 3, "n_I": 2, "n_chunks": 2}, "fit": {"n_samples": 4, "n_rounds": 1}}
TARGETS = (f"results/{STUDY}/simulate/traces.npz", "results/rate/rate/bifurcation/chunk_0.npz")


def quick_config() -> dict:
    config = tiny_config()
    for section in ("fit", "infer"):
        del config["studies"][STUDY][section]
    config["studies"]["rate"] = {"description": "a tiny rate study", "rate": RATE}
    return config


def edit(work, change):
    """Apply ``change`` to the studies of the working directory's config file (where its link points)."""
    path = (work / "config" / "config.yaml").resolve()
    config = yaml.safe_load(path.read_text())
    change(config["studies"])
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.slow
def test_editing_only_a_description_reruns_nothing(tmp_path):
    work = make_workdir(tmp_path, quick_config())
    status, out = run_snakemake(work, "--cores", "2", *TARGETS)
    assert status == 0, out
    for study in (STUDY, "rate"):
        frozen = yaml.safe_load((work / "results" / study / "study.yaml").read_text())
        assert list(frozen["studies"]) == [study] and "description" not in frozen["studies"][study]
    assert not (work / "results" / "rate" / "data.npz").exists()  # a study without a model has no data

    def describe(studies):
        for name, section in studies.items():
            section["description"] = f"{name}: another description, with 'quotes' and {{braces}}"
    edit(work, describe)
    status, out = run_snakemake(work, "--cores", "2", "--dry-run", *TARGETS)
    assert status == 0 and "Nothing to be done" in out, out

    # ... while a change of anything else prepares that study again, and re-runs what reads it
    edit(work, lambda studies: studies[STUDY]["simulate"].update(seed=3))
    status, out = run_snakemake(work, "--cores", "2", "--dry-run", *TARGETS)
    assert status == 0, out
    assert "rule prepare:" in out and "rule simulate:" in out and "Params have changed" in out, out
    assert "rule prepare_config:" not in out and "rule rate_chunk:" not in out, out


def test_jobs_read_the_files_that_define_their_study_and_nothing_from_the_command_line(tmp_path):
    work = make_workdir(tmp_path, quick_config())
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"studies": {"rate": {"rate": {"w": 4.0}}, "more": {"rate": RATE}}}))
    status, out = run_snakemake(work, "--dry-run", "--printshellcmds", "--forceall", "--configfile", extra)
    assert status == 0, out
    config = str(tmp_path / "config.yaml")  # the config's link resolved: it lies outside the working directory
    for study, files in ((STUDY, config), ("rate", f"{config} {extra}"), ("more", str(extra))):
        assert f"neurofit prepare --config {files} --study {study} " in out, out
    assert "--config-json" not in out and '{"studies"' not in out

    # a study changed with `snakemake --config` is in no file, so no job could read it: refused before any job
    status, out = run_snakemake(work, "--dry-run", "--config", "studies={'rate': {'rate': {'fit': {'method': 'CMA'}}}}")
    assert status != 0, out
    assert "config: studies.rate: not what the config files give" in out and "--configfile" in out, out
    assert not (work / "results").exists()
