"""A study's held-out sweeps (validation section, `neurofit validate`) and the spike reports of spiking fits.

config/examples/adex_171116.yaml as it is (recording path made absolute): AdEx fitted to nine spiking sweeps of
the shared cell 171116sh_0018 (spike times, counts and subthreshold voltage together), sweeps 10 and 14 held out;
their spike counts, counted here directly on the ABF file read with pyabf, are matched within one spike.
"""
import json
from pathlib import Path

import numpy as np
import pyabf
import pytest
import yaml

from helpers import run_cli, write_yaml

ROOT = Path(__file__).resolve().parents[1]
ABF = ROOT / "data" / "recordings" / "abf" / "171116sh_0018.abf"


def example(**changes) -> dict:
    doc = yaml.safe_load((ROOT / "config" / "examples" / "adex_171116.yaml").read_text())
    study = doc["studies"]["adex_171116"]
    study["data"]["recording"]["path"] = str(ABF)
    for key, value in changes.items():
        study[key] = value
    return doc


def recorded_spikes(sweep: int, window: tuple) -> int:
    """Upward 0 mV crossings (at least 1 ms apart) of a sweep within ``window`` (s), read with pyabf."""
    abf = pyabf.ABF(str(ABF))
    abf.setSweep(sweep)
    t, v = abf.sweepX, abf.sweepY
    inside = (t >= window[0]) & (t < window[1])
    up = np.flatnonzero((v[1:] >= 0) & (v[:-1] < 0) & inside[1:]) + 1
    times = t[up]
    kept = [times[0]] if times.size else []
    for time in times[1:]:
        if time - kept[-1] >= 1e-3:
            kept.append(time)
    return len(kept)


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("validation")
    config = write_yaml(folder / "config.yaml", example())

    class Quiet:  # run_cli reads the output through capsys, a function-scoped fixture: not needed here
        def readouterr(self):
            return "", ""

    common = ["--config", config, "--study", "adex_171116"]
    assert run_cli(Quiet(), "prepare", *common, "--output-config", folder / "s.yaml", "--output-data",
                   folder / "data.npz")[0] == 0
    assert run_cli(Quiet(), "fit", *common, "--data", folder / "data.npz", "--optimizer", "DE", "--seed", 1,
                   "--output", folder / "fit.json", "--no-checkpoint")[0] == 0
    assert run_cli(Quiet(), "validate", *common, "--data", folder / "data.npz", "--fits", folder / "fit.json",
                   "--output", folder / "validation.json", "--figure", folder / "validation.png")[0] == 0
    return folder


@pytest.mark.slow
def test_held_out_spike_counts_are_matched_within_one(validated):
    doc = json.loads((validated / "validation.json").read_text())
    assert doc["format"] == "neurofit.validation" and doc["heldout"] == [10, 14]
    assert doc["sweeps"] == [6, 7, 8, 9, 11, 12, 13, 15, 16]
    rows = {row["sweep"]: row for row in doc["sweep_scores"]}
    abf = pyabf.ABF(str(ABF))
    abf.setSweep(14)
    edges = np.flatnonzero(np.diff(abf.sweepC) != 0) + 1  # the main step: the last 0.5 s epoch of the command
    step_start = abf.sweepX[edges[-2]]
    assert step_start == pytest.approx(1.6469, abs=1e-3)
    window = (step_start - 0.1, step_start + 0.5 + 0.3)  # the study's window: 100 ms before to 300 ms after
    for sweep in (10, 14):
        assert rows[sweep]["role"] == "heldout"
        assert rows[sweep]["n_data"] == recorded_spikes(sweep, window) >= 4
        assert abs(rows[sweep]["count_error"]) <= 1
    assert doc["heldout_count_error"] <= 1 and doc["heldout_rmse"] < 15e-3
    assert doc["parameters"]["C"] == pytest.approx(146.5e-12) and doc["aic"] is None  # no likelihood for spikes
    assert (validated / "validation.png").stat().st_size > 10000


@pytest.mark.slow
def test_a_spiking_fit_reports_spike_counts_not_a_residual(validated):
    fit = json.loads((validated / "fit.json").read_text())
    assert [row["sweep"] for row in fit["sweep_scores"]] == [6, 7, 8, 9, 11, 12, 13, 15, 16]
    assert fit["count_error"] == pytest.approx(np.mean([abs(r["count_error"]) for r in fit["sweep_scores"]]))
    assert all(abs(r["count_error"]) <= 2 for r in fit["sweep_scores"])


def test_held_out_sweeps_that_are_also_fitted_are_refused(tmp_path, capsys):
    config = write_yaml(tmp_path / "c.yaml", example(validation={"sweeps": [9, 10]}))
    status, _, err = run_cli(capsys, "prepare", "--config", config, "--study", "adex_171116", "--output-config",
                             tmp_path / "s.yaml", "--output-data", tmp_path / "d.npz")
    assert status == 2 and err.strip() == ("neurofit: error: studies.adex_171116.validation.sweeps: sweep 9 is also "
                                           "fitted (data.recording.sweeps selects 6, 7, 8, 9, 11, 12, 13, 15, 16); "
                                           "hold out others")


def test_validation_needs_a_fit_section(tmp_path, capsys):
    doc = example()
    del doc["studies"]["adex_171116"]["fit"]
    config = write_yaml(tmp_path / "c.yaml", doc)
    status, _, err = run_cli(capsys, "prepare", "--config", config, "--study", "adex_171116", "--output-config",
                             tmp_path / "s.yaml", "--output-data", tmp_path / "d.npz")
    assert status == 2 and "validation" in err and "fit" in err and len(err.strip().splitlines()) == 1
