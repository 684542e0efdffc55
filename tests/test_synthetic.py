"""Synthetic recordings (neurofit.data.synthetic, a study's data.synthetic): stimuli, ground truth, noise, seeds, errors."""
import json

import numpy as np
import pytest

from neurofit import models, simulate
from neurofit.cli.main import main
from neurofit.data import stimuli
from neurofit.data.dataset import Dataset
from neurofit.data.synthetic import synthetic_dataset
from neurofit.equations.model import Model
from neurofit.workflow.study import ConfigError, Study, validate_config

LEAKY = "dv/dt = (-v + R*I)/tau : volt\nR : ohm\ntau : second\n"
TWO_INPUTS = "dv/dt = (-v + R*I + R*I_b)/tau : volt\nR : ohm\ntau : second\n"
LEAKY_TRUTH = {"R": 100e6, "tau": 10e-3}
DT = 1e-4
STEPS = {"kind": "steps", "amplitudes": ["0.2 nA", "0.5 nA"], "start": "100 ms", "stop": "900 ms"}


def leaky_spec(**fields) -> dict:
    """A validated data.synthetic mapping (schema defaults filled in) of 1 s on the leaky integrator."""
    synthetic = {"duration": "1 s", "inputs": {"I": STEPS}, **fields}
    doc = {"studies": {"leaky": {"model": {"equations": LEAKY}, "data": {"dt": "0.1 ms", "synthetic": synthetic}}}}
    return validate_config(doc)["studies"]["leaky"]["data"]["synthetic"]


def leaky_data(**fields) -> Dataset:
    return synthetic_dataset(Model(LEAKY), leaky_spec(**fields), DT, LEAKY_TRUTH, "studies.leaky.data.synthetic")


def hh_study(**synthetic) -> dict:
    """The brief's example study: hh_inferencer, 1 s at 0.1 ms, a 0.5 nA step, 0.2 mV noise on v."""
    fields = {"duration": "1 s", "record": ["v"], "noise": {"v": "0.2 mV"}, "seed": 1,
              "inputs": {"I": {"kind": "steps", "amplitudes": ["0.5 nA"], "start": "100 ms", "stop": "900 ms"}}}
    fields.update(synthetic)
    return {"ground_truth": {"g_Na": "32 uS", "g_K": "1.5 uS"}, "model": {"builtin": "hh_inferencer"},
            "data": {"dt": "0.1 ms", "synthetic": fields}}


def one_line_error(call, *fragments) -> str:
    """Run ``call``; it must raise ConfigError with a one-line message holding every fragment."""
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_steps_inputs_and_noiseless_outputs_are_exact():
    data = leaky_data()
    expected_input = stimuli.steps(10_000, DT, STEPS["amplitudes"], STEPS["start"], STEPS["stop"])
    np.testing.assert_array_equal(data.inputs["I"], expected_input)  # exact: same generator, same arguments
    direct = simulate(Model(LEAKY), LEAKY_TRUTH, {"I": expected_input}, DT, record=["v"], seed=0)
    np.testing.assert_array_equal(data.outputs["v"], direct.traces["v"][0])  # bitwise: the same simulation
    assert data.dt == DT and data.units == {"I": "amp", "v": "volt"}
    assert data.source == {"synthetic": "studies.leaky.data.synthetic"}
    # the step drives v towards R*I = 20 mV and 50 mV (8 time constants into the step: within 0.1%)
    np.testing.assert_allclose(data.outputs["v"][:, 8999], [0.02, 0.05], rtol=1e-3)


def test_observation_noise_has_the_given_sd_and_zero_mean():
    spec = {"inputs": {"I": dict(STEPS, amplitudes=["0.5 nA"])}}
    noisy, clean = leaky_data(noise={"v": "0.2 mV"}, **spec), leaky_data(**spec)
    residual = noisy.outputs["v"] - clean.outputs["v"]
    n = residual.size
    assert n == 10_000
    # sample SD of 10^4 normal draws: relative SE 0.7%, so 5% is > 7 SE
    assert residual.std() == pytest.approx(0.2e-3, rel=0.05)
    assert abs(residual.mean()) < 4 * 0.2e-3 / np.sqrt(n)  # 4 standard errors of the mean
    np.testing.assert_array_equal(noisy.inputs["I"], clean.inputs["I"])  # noise is on the outputs only


def test_same_seed_same_data_other_seed_other_data():
    first, again = leaky_data(noise={"v": "0.2 mV"}, seed=3), leaky_data(noise={"v": "0.2 mV"}, seed=3)
    other = leaky_data(noise={"v": "0.2 mV"}, seed=4)
    np.testing.assert_array_equal(first.outputs["v"], again.outputs["v"])
    assert not np.any(first.outputs["v"] == other.outputs["v"])  # every sample differs (continuous draws)


def test_ramp_and_ou_inputs_match_the_stimulus_generators():
    spec = leaky_spec(inputs={"I": {"kind": "ou", "mean": "0.1 nA", "sigma": "0.05 nA", "tau": "5 ms", "n_traces": 1},
                              "I_b": {"kind": "ramp", "start": "0.2 s", "stop": "0.8 s", "amp_start": "0 nA",
                                      "amp_stop": "0.3 nA"}}, seed=7)
    data = synthetic_dataset(Model(TWO_INPUTS), spec, DT, LEAKY_TRUTH, "studies.leaky.data.synthetic")
    # exact: the documented draws of the k-th input (sorted names) come from default_rng([seed, 1, k])
    ou = stimuli.ornstein_uhlenbeck(10_000, DT, "5 ms", "0.05 nA", mu="0.1 nA", seed=[7, 1, 0])
    np.testing.assert_array_equal(data.inputs["I"], ou[None, :])
    ramp = stimuli.ramp(10_000, DT, "0.2 s", "0.8 s", "0 nA", "0.3 nA")
    np.testing.assert_array_equal(data.inputs["I_b"], ramp[None, :])
    assert data.units == {"I": "amp", "I_b": "amp", "v": "volt"}  # from the quantities given (R*I hides it)


def test_hh_study_dataset_round_trips_through_npz(tmp_path):
    study = Study.from_config({"studies": {"hh_sbi": hh_study()}}, "hh_sbi")
    assert study.data_files == []
    data = study.dataset()
    assert data.inputs["I"].shape == data.outputs["v"].shape == (1, 10_000)
    clean = Study.from_config({"studies": {"hh_sbi": hh_study(noise={})}}, "hh_sbi").dataset()
    spec = models.SPECS["hh_inferencer"]
    direct = simulate(models.get("hh_inferencer"), {"g_Na": 32e-6, "g_K": 1.5e-6}, {"I": data.inputs["I"]}, DT,
                      init=spec.init, record=["v"], method=spec.method, seed=1)
    np.testing.assert_array_equal(clean.outputs["v"], direct.traces["v"][0])  # ground truth, init, method used
    assert clean.outputs["v"].max() > 0.0  # the 0.5 nA step makes it spike (peaks above 0 mV)
    assert (data.outputs["v"] - clean.outputs["v"]).std() == pytest.approx(0.2e-3, rel=0.05)  # 10^4 draws
    data.save_npz(tmp_path / "data.npz")
    loaded = Dataset.load_npz(tmp_path / "data.npz")
    for role in ("inputs", "outputs"):
        assert getattr(loaded, role).keys() == getattr(data, role).keys()
        for name, array in getattr(data, role).items():
            np.testing.assert_array_equal(getattr(loaded, role)[name], array)  # exact
    assert (loaded.dt, loaded.units, loaded.source) == (data.dt, data.units, data.source)


def test_prepare_writes_the_synthetic_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    section = {"ground_truth": {"R": "100 Mohm", "tau": "10 ms"}, "model": {"equations": LEAKY},
               "data": {"dt": "0.1 ms", "synthetic": {"duration": "1 s", "inputs": {"I": STEPS},
                                                     "noise": {"v": "0.2 mV"}}},
               "simulate": {"params": {"R": "100 Mohm", "tau": "10 ms"}}}
    config = {"studies": {"leaky": section}}
    status = main(["prepare", "--config-json", json.dumps(config), "--study", "leaky",
                   "--output-config", "study.yaml", "--output-data", "data.npz"])
    assert status == 0, capsys.readouterr().err
    written = Dataset.load_npz("data.npz")
    expected = Study.from_config(config, "leaky").dataset()
    np.testing.assert_array_equal(written.outputs["v"], expected.outputs["v"])  # exact
    np.testing.assert_array_equal(written.inputs["I"], expected.inputs["I"])


def synthetic_study(section: dict) -> Study:
    return Study.from_config({"studies": {"x": section}}, "x")


def leaky_section(**synthetic) -> dict:
    fields = {"duration": "1 s", "inputs": {"I": STEPS}, **synthetic}
    return {"ground_truth": {"R": "100 Mohm", "tau": "10 ms"}, "model": {"equations": LEAKY},
            "data": {"dt": "0.1 ms", "synthetic": fields}}


def with_recorded_files(section: dict) -> dict:
    section["data"]["inputs"] = {"I": {"path": "i.csv", "unit": "nA"}}
    return section


STUDY_ERRORS = {
    "inputs and synthetic": (lambda: with_recorded_files(leaky_section()),
                             ["studies.x.data: give inputs (recorded files) or synthetic (generated), not both"]),
    "unknown input": (lambda: leaky_section(inputs={"I": STEPS, "I_x": STEPS}),
                      ["studies.x.data.synthetic.inputs.I_x: not an input of the model", "inputs: I"]),
    "missing input": (lambda: dict(leaky_section(), model={"equations": TWO_INPUTS}),
                      ["studies.x.data.synthetic.inputs: the model needs input(s) I_b (given: I)"]),
    "wrong unit": (lambda: hh_study(inputs={"I": {"amplitudes": ["0.5 mV"]}}),
                   ["studies.x.data.synthetic.inputs.I.amplitudes", "'0.5 mV' has units of volt, expected amp"]),
    "mixed units": (lambda: leaky_section(inputs={"I": dict(STEPS, baseline="1 mV")}),
                    ["studies.x.data.synthetic.inputs.I.baseline", "has units of volt, expected amp"]),
    "amplitudes of a ramp": (lambda: leaky_section(inputs={"I": {"kind": "ramp", "amplitudes": [1]}}),
                             ["studies.x.data.synthetic.inputs.I.amplitudes: only for kind steps"]),
    "steps with null amplitudes": (lambda: leaky_section(inputs={"I": dict(STEPS, amplitudes=None)}),
                                   ["studies.x.data.synthetic.inputs.I.amplitudes: missing (required for kind steps"]),
    "noise not recorded": (lambda: hh_study(noise={"m": 0.01}),
                           ["studies.x.data.synthetic.noise.m: not a recorded output", "recorded: v"]),
    "unknown record": (lambda: leaky_section(record=["w"]),
                       ["studies.x.data.synthetic.record: w not a variable of the model", "recordable: v"]),
    "noise unit": (lambda: leaky_section(noise={"v": "1 nA"}),
                   ["studies.x.data.synthetic.noise.v", "has units of amp, expected volt"]),
    "missing ground truth": (lambda: dict(leaky_section(), ground_truth={"R": "100 Mohm"}),
                             ["studies.x.ground_truth: missing value for tau"]),
    "unknown ground truth": (lambda: dict(leaky_section(), ground_truth={"R": 1e8, "tau": 0.01, "C": 1}),
                             ["studies.x.ground_truth.C: not a parameter of the model", "parameters: R, tau"]),
    "too short": (lambda: leaky_section(duration="0.1 ms"),
                  ["studies.x.data.synthetic.duration", "1 sample(s)", "at least 2"]),
    "stop before start": (lambda: leaky_section(inputs={"I": dict(STEPS, start="0.5 s", stop="0.2 s")}),
                          ["studies.x.data.synthetic.inputs.I: stop", "before start"]),
    "unequal traces": (lambda: dict(leaky_section(inputs={"I": STEPS, "I_b": {"kind": "ramp"}}),
                                    model={"equations": TWO_INPUTS}),
                       ["studies.x.data.synthetic.inputs: every input needs the same number of traces",
                        "I 2, I_b 1"]),
    "diverges": (lambda: {"ground_truth": {"tau": "1 ms"}, "data": {"dt": "0.1 ms", "synthetic": {
        "duration": "10 ms", "inputs": {"I": STEPS}, "init": {"v": "1 V"}}},
        "model": {"equations": "dv/dt = v*v/(tau*mV) + I*ohm/tau : volt\ntau : second\n"}},
                 ["studies.x.data.synthetic: the simulation at the ground truth diverged"]),
}


@pytest.mark.parametrize("case", STUDY_ERRORS)
def test_study_errors_name_the_key(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_section, fragments = STUDY_ERRORS[case]
    one_line_error(lambda: synthetic_study(make_section()).dataset(), *fragments)


SCHEMA_ERRORS = {
    "missing duration": (lambda s: s["data"]["synthetic"].pop("duration"),
                         "studies.x.data.synthetic.duration: missing (required)"),
    "steps without amplitudes": (lambda s: s["data"]["synthetic"]["inputs"]["I"].pop("amplitudes"),
                                 "studies.x.data.synthetic.inputs.I.amplitudes: missing (required)"),
    "neither inputs nor synthetic": (lambda s: s["data"].pop("synthetic"),
                                     "studies.x.data: give at least one of inputs (recorded files), synthetic"),
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS)
def test_schema_checks_of_synthetic(case):
    change, fragment = SCHEMA_ERRORS[case]
    section = leaky_section()
    change(section)
    one_line_error(lambda: validate_config({"studies": {"x": section}}), fragment)
