"""A multi-objective fit in a study (fit.multiobjective): config/examples/pareto_passive.yaml through the commands.

The front written to fit.json is exactly the non-dominated set of the evaluated candidates (history.parquet,
one column per objective), the compromise is the documented rule's choice over that front, its parameters
are the fit's result, and the front figure is drawn. Mistakes are one line naming the key.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import run_cli, write_yaml
from neurofit.fitting.multiobjective import compromise_index, non_dominated

ROOT = Path(__file__).resolve().parents[1]


def example(**fit_changes) -> dict:
    doc = yaml.safe_load((ROOT / "config" / "examples" / "pareto_passive.yaml").read_text())
    study = doc["studies"]["pareto_171116"]
    study["data"]["recording"]["path"] = str(ROOT / study["data"]["recording"]["path"])
    study["fit"].update(n_samples=16)
    study["fit"]["multiobjective"]["n_generations"] = 6
    for key, value in fit_changes.items():
        study["fit"][key] = value
    return doc


def prepare(tmp_path, capsys, doc):
    config = write_yaml(tmp_path / "config.yaml", doc)
    return config, run_cli(capsys, "prepare", "--config", config, "--study", "pareto_171116", "--output-config",
                           tmp_path / "s.yaml", "--output-data", tmp_path / "data.npz")


def test_the_front_the_compromise_and_the_figure(tmp_path, capsys):
    config, (status, _, err) = prepare(tmp_path, capsys, example())
    assert status == 0, err
    common = ["--config", config, "--study", "pareto_171116"]
    fit = tmp_path / "fit" / "NSGA2_1" / "fit.json"
    status, _, err = run_cli(capsys, "fit", *common, "--data", tmp_path / "data.npz", "--optimizer", "NSGA2",
                             "--seed", 1, "--output", fit)
    assert status == 0, err
    doc = json.loads(fit.read_text())
    history = pd.read_parquet(fit.parent / "history.parquet")
    objectives = ["hyperpolarising", "depolarising"]
    assert doc["pareto"]["objectives"] == objectives and len(history) == 16 * 6 == doc["n_evaluations"]
    values = history[objectives].to_numpy()
    front = np.flatnonzero(non_dominated(values))
    assert sorted(row["index"] for row in doc["pareto"]["front"]) == sorted(front.tolist())
    assert list(history["on_front"].to_numpy().nonzero()[0]) == sorted(front.tolist())
    chosen = compromise_index(values, front=non_dominated(values))
    assert doc["pareto"]["compromise"]["index"] == chosen
    assert doc["best_params"] == pytest.approx(doc["pareto"]["compromise"]["params"], rel=1e-12)
    assert doc["optimizer"]["label"] == "NSGA2" and doc["best_error"] > 0
    figure = tmp_path / "front.png"
    status, _, err = run_cli(capsys, "plot-fit", *common, "--fits", fit, "--pareto", figure)
    assert status == 0, err
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    # the same seed gives the same front
    again = tmp_path / "again" / "fit.json"
    run_cli(capsys, "fit", *common, "--data", tmp_path / "data.npz", "--optimizer", "NSGA2", "--seed", 1,
            "--output", again)
    assert json.loads(again.read_text())["pareto"] == doc["pareto"]


@pytest.mark.parametrize("multiobjective, message", [
    ({"objectives": {"all": [0, 1, 2]}}, "fit.multiobjective.objectives: give at least two objectives"),
    ({"per_feature": True}, "fit.multiobjective.per_feature: needs metric feature (this fit uses mse)"),
    ({"objectives": {"a": [0], "b": [9]}}, "fit.multiobjective.objectives.b: sweep position 9 - the fit has 6 sweeps"),
])
def test_multiobjective_mistakes_are_one_line(tmp_path, capsys, multiobjective, message):
    _, (status, _, err) = prepare(tmp_path, capsys, example(multiobjective=multiobjective))
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
