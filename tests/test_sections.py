"""One ``Section`` shape for the config sections fit, infer, rate and reduction (neurofit.workflow.section):
one missing-section error, one unit error, one not-a-parameter error, and defaults only in the schema."""
import copy
import json

import numpy as np
import pytest

from helpers import run_cli, write_yaml
from neurofit.analysis import rate, rate_study
from neurofit.errors import ConfigError
from neurofit.units import TIME
from neurofit.workflow.fit_section import FitSection
from neurofit.workflow.infer_section import InferSection
from neurofit.workflow.rate_section import RateSection, run_rate_study, write_chunk
from neurofit.workflow.reduction_section import ReductionSection
from neurofit.workflow.section import Section, in_schema_order
from neurofit.workflow.study import SCHEMA, Study, load_schema, validate_config

SECTIONS = {"fit": FitSection, "infer": InferSection, "rate": RateSection, "reduction": ReductionSection}
DATA = {"dt": "0.1 ms", "synthetic": {"duration": "50 ms", "record": ["v"],
                                      "inputs": {"I": {"kind": "steps", "amplitudes": ["0.5 nA"],
                                                       "start": "10 ms", "stop": "40 ms"}}}}
LIF_BOUNDS = {"gl": ["1 nS", "100 nS"], "El": ["-80 mV", "-50 mV"], "C": ["50 pF", "500 pF"],
              "Vt": ["-60 mV", "-40 mV"], "Vr": ["-80 mV", "-60 mV"]}
REDUCTION = {
    "target": {"builtin": "hh_traub", "threshold": "v > -20*mV", "refractory": "v > -20*mV", "init": {"v": "-65 mV"}},
    "model": {"builtin": "adex", "init": {"v": "-65 mV", "w": 0}},
    "protocol": {"train_amplitudes": ["0.4 nA"], "heldout_amplitudes": [], "dt": "0.01 ms", "duration": "40 ms",
                 "start": "5 ms"},
    "variables_bounds": {"C": ["50 pF", "500 pF"], "gl": ["2 nS", "50 nS"]},
}


def studies() -> dict:
    """One study per section, each with only that section (and what it needs)."""
    return {"studies": {
        "fit": {"model": {"builtin": "lif"}, "data": copy.deepcopy(DATA), "ground_truth": {"gl": "10 nS"},
                "fit": {"bounds": copy.deepcopy(LIF_BOUNDS), "optimizers": [{"name": "DE"}]}},
        "infer": {"model": {"builtin": "hh_inferencer"}, "data": copy.deepcopy(DATA),
                  "infer": {"bounds": {"g_Na": ["1 uS", "100 uS"], "g_K": ["0.1 uS", "10 uS"]},
                            "features": {"v": ["v_max", "v_mean"]}, "n_samples": 100}},
        "rate": {"rate": {}},
        "reduction": {"reduction": copy.deepcopy(REDUCTION)}}}


def study(name: str, change=None, doc=None) -> Study:
    """Study ``name`` of ``studies()`` after ``change(study_section)``."""
    doc = doc or studies()
    if change is not None:
        change(doc["studies"][name])
    return Study.from_config(doc, name)


def build(name: str, change=None):
    """The Section of study ``name`` (checked as the Snakefile does: the infer section's check too)."""
    built = SECTIONS[name](study(name, change))
    if name == "infer":
        built.check()
    return built


def one_line(call) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- the sections are Sections ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SECTIONS))
def test_every_section_is_a_section_with_the_schemas_settings(name):
    built = build(name)
    assert isinstance(built, Section) and built.name == name == type(built).NAME
    validated = validate_config(studies())["studies"][name][name]
    assert built.settings == validated  # the schema's defaults, nothing added or dropped
    assert built.where("a", 0) == f"studies.{name}.{name}.a.0"


# --- one missing-section error -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SECTIONS))
def test_one_missing_section_error(name):
    other = "rate" if name != "rate" else "fit"  # a study of another section only
    message = one_line(lambda: SECTIONS[name](study(other)))
    assert message == f"studies.{other}.{name}: study '{other}' has no '{name}' section"
    assert one_line(lambda: SECTIONS[name].settings_of(study(other))) == message


@pytest.mark.parametrize("argv, message", [
    (["fit", "--optimizer", "DE", "--seed", "1", "--output", "f.json"], "studies.rate.fit: study 'rate' has no 'fit' section"),
    (["simulate", "--chunk", "0", "--output", "c.npz"], "studies.rate.infer: study 'rate' has no 'infer' section"),
    (["infer", "--chunks", "c.npz", "--output-dir", "out"], "studies.rate.infer: study 'rate' has no 'infer' section"),
    (["reduce", "--output-dir", "out"], "studies.rate.reduction: study 'rate' has no 'reduction' section"),
], ids=["fit", "simulate --chunk", "infer", "reduce"])
def test_commands_give_the_one_missing_section_error(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    path = write_yaml(tmp_path / "config.yaml", studies())
    status, _, err = run_cli(capsys, argv[0], "--config", path, "--study", "rate", *argv[1:])
    assert status == 2 and err == f"neurofit: error: {message}\n", err


def test_rate_commands_give_the_one_missing_section_error(tmp_path, capsys):
    path = write_yaml(tmp_path / "config.yaml", studies())
    status, _, err = run_cli(capsys, "rate-chunk", "--config", path, "--study", "reduction", "--chunk", "0",
                             "--output", tmp_path / "c.npz")
    assert status == 2 and err == "neurofit: error: studies.reduction.rate: study 'reduction' has no 'rate' section\n"


def test_a_missing_model_section_reads_the_same():
    assert one_line(lambda: study("rate").model()) == "studies.rate.model: study 'rate' has no 'model' section"


# --- one unit error ----------------------------------------------------------------------------------------

UNIT_ERRORS = {
    "fit metric": ("fit", lambda s: s["fit"].update(metric={"t_start": "5 mV"}),
                   "studies.fit.fit.metric.t_start = '5 mV': has units of volt, expected second"),
    "fit fixed": ("fit", lambda s: (s["fit"]["bounds"].pop("C"), s["fit"].update(fixed={"C": "200 pS"})),
                  "studies.fit.fit.fixed.C = '200 pS': has units of siemens, expected farad"),
    "fit bounds": ("fit", lambda s: s["fit"]["bounds"].update(gl=["1 nS", "10 mV"]),
                   "studies.fit.fit.bounds.gl = '10 mV': has units of volt, expected siemens"),
    "infer noise": ("infer", lambda s: s["infer"].update(noise={"v": "0.2 nA"}),
                    "studies.infer.infer.noise.v = '0.2 nA': has units of amp, expected volt"),
    "infer window": ("infer", lambda s: s["infer"].update(window=["10 ms", "40 mV"]),
                     "studies.infer.infer.window.1 = '40 mV': has units of volt, expected second"),
    "infer bounds": ("infer", lambda s: s["infer"]["bounds"].update(g_K=["0.1 uS", "10 mV"]),
                     "studies.infer.infer.bounds.g_K = '10 mV': has units of volt, expected siemens"),
    "reduction protocol": ("reduction", lambda s: s["reduction"]["protocol"].update(dt="0.01 mV"),
                           "studies.reduction.reduction.protocol.dt = '0.01 mV': has units of volt, expected second"),
    "reduction target": ("reduction", lambda s: s["reduction"]["target"].update(params={"gl": "10 pF"}),
                         "studies.reduction.reduction.target.params.gl = '10 pF': has units of farad, "
                         "expected siemens"),
    "reduction init": ("reduction", lambda s: s["reduction"]["model"]["init"].update(v="-65 nA"),
                       "studies.reduction.reduction.model.init.v = '-65 nA': has units of amp, expected volt"),
    "reduction loss": ("reduction", lambda s: s["reduction"].update(loss={"delta": "2 mV"}),
                       "studies.reduction.reduction.loss.delta = '2 mV': has units of volt, expected second"),
}


@pytest.mark.parametrize("case", list(UNIT_ERRORS))
def test_one_unit_error(case):
    name, change, expected = UNIT_ERRORS[case]
    assert one_line(lambda: build(name, change)) == expected


def test_the_study_level_quantities_read_the_same():
    doc = studies()
    doc["studies"]["fit"]["data"]["dt"] = "0.1 mV"
    assert one_line(lambda: study("fit", doc=doc).dataset()) == \
        "studies.fit.data.dt = '0.1 mV': has units of volt, expected second"
    wrong_truth = one_line(lambda: FitSection(study("fit", lambda s: s.update(ground_truth={"gl": "10 pF"}))))
    assert wrong_truth == "studies.fit.ground_truth.gl = '10 pF': has units of farad, expected siemens"


def test_a_unit_that_does_not_exist_names_the_key():
    message = one_line(lambda: build("reduction", lambda s: s["reduction"]["protocol"].update(dt="0.01 xs")))
    assert message.startswith("studies.reduction.reduction.protocol.dt = '0.01 xs': unknown unit 'xs'")


def test_the_rate_section_takes_numbers_in_tutorial_units():
    """The rate section has no quantities (ms and arbitrary units): a unit is refused by the schema."""
    message = one_line(lambda: study("rate", lambda s: s["rate"].update(fit={"T": "50 ms"})))
    assert message.startswith("studies.rate.rate.fit.T: '50 ms' is not of type 'number'")


def test_the_unit_error_through_a_command(tmp_path, capsys):
    doc = studies()
    doc["studies"]["reduction"]["reduction"]["protocol"]["duration"] = "40 mV"
    path = write_yaml(tmp_path / "config.yaml", doc)
    status, _, err = run_cli(capsys, "reduce", "--config", path, "--study", "reduction", "--output-dir", tmp_path)
    assert status == 2 and err == ("neurofit: error: studies.reduction.reduction.protocol.duration = '40 mV': has "
                                   "units of volt, expected second\n"), err


# --- one not-a-parameter error -------------------------------------------------------------------------------

LIF = "gl, El, C, Vt, Vr"
ADEX = "C, gl, El, VT, DeltaT, a, tau_w, b, Vr"
NOT_A_PARAMETER = {
    "fit bounds": ("fit", lambda s: s["fit"]["bounds"].update(g_x=[1, 2]), "studies.fit.fit.bounds.g_x", LIF),
    "fit fixed": ("fit", lambda s: s["fit"].update(fixed={"g_x": 1}), "studies.fit.fit.fixed.g_x", LIF),
    "ground truth": ("fit", lambda s: s.update(ground_truth={"g_x": 1}), "studies.fit.ground_truth.g_x", LIF),
    "infer bounds": ("infer", lambda s: s["infer"]["bounds"].update(g_x=[1, 2]), "studies.infer.infer.bounds.g_x",
                     "g_Na, g_K"),
    "reduction bounds": ("reduction", lambda s: s["reduction"]["variables_bounds"].update(g_x=[1, 2]),
                         "studies.reduction.reduction.variables_bounds.g_x", ADEX),
    "reduction target": ("reduction", lambda s: s["reduction"]["target"].update(params={"g_x": 1}),
                         "studies.reduction.reduction.target.params.g_x", "g_na, g_kd, gl"),
}


@pytest.mark.parametrize("case", list(NOT_A_PARAMETER))
def test_one_not_a_parameter_error(case):
    name, change, where, parameters = NOT_A_PARAMETER[case]
    assert one_line(lambda: build(name, change)) == \
        f"{where}: not a parameter of the model (parameters: {parameters})"


def test_the_simulate_section_says_it_the_same_way():
    doc = studies()
    doc["studies"]["fit"]["simulate"] = {"params": {"g_x": 1}}
    s = study("fit", doc=doc)
    model = s.model()
    assert one_line(lambda: s.simulation_settings(model, s.dataset(model))) == \
        f"studies.fit.simulate.params.g_x: not a parameter of the model (parameters: {LIF})"


def test_section_readers():
    section = build("reduction")
    assert section.parameter("gl", "variables_bounds") == "gl"
    section.check_parameters(["C", "gl"], "variables_bounds")
    assert section.get("protocol.dt") == section.get(("protocol", "dt")) == "0.01 ms"
    assert section.quantity("protocol.duration", TIME) == pytest.approx(0.04)
    assert section.quantity("protocol.train_amplitudes", None) == [pytest.approx(0.4e-9)]
    assert section.quantity("loss.v_scale", None, value=3) == 3.0  # numbers are SI
    with pytest.raises(ConfigError, match=r"^studies.reduction.reduction.x = \{'a': 1\}: not a number or a quantity"):
        section.quantity("x", None, value={"a": 1})


# --- defaults only in the schema -------------------------------------------------------------------------------

def test_no_python_copy_of_the_rate_defaults():
    assert not [name for name in ("DEFAULT_CONFIG", "DEFAULT_FIT_BOUNDS", "study_config") if hasattr(rate_study, name)]
    with pytest.raises(ValueError, match="no bounds for a, theta"):  # the library asks; the schema provides
        rate_study.fit_rate_model([0.0, 0.1], [[0.0, 0.0]], [[0.0, 0.0]], {"tau": [0.1, 10.0], "w": [0, 12]}, seed=0)


def test_every_rate_default_comes_from_the_schema(tmp_path):
    """Change the defaults in a copy of the schema: the rate section, its chunks and its study use the new ones."""
    schema = load_schema()
    props = schema["$defs"]["rate"]["properties"]
    changed = {("w",): 4.0, ("I_ext",): 0.8, ("model", "a"): 1.3, ("fi_curve", "n"): 7,
               ("trajectories", "r_inits"): [0.0, 0.9], ("trajectories", "T"): 2.0, ("ou", "T"): 5.0,
               ("ou", "seed"): 7, ("bifurcation", "n_w"): 3, ("bifurcation", "n_I"): 2, ("fit", "enabled"): False,
               ("fit", "bounds", "tau"): [0.2, 7.0]}
    for keys, value in changed.items():
        node = props
        for key in keys[:-1]:
            node = node[key]["properties"]
        node[keys[-1]]["default"] = value
    section = validate_config({"studies": {"r": {"rate": {}}}}, schema=schema)["studies"]["r"]
    built = RateSection(Study("r", section))
    for keys, value in changed.items():
        assert built.get(keys) == value, keys
    write_chunk(built.study, 0, 1, tmp_path / "chunk.npz")
    with np.load(tmp_path / "chunk.npz") as chunk:
        assert chunk["w"].tolist() == [0.0, 4.0, 8.0] and chunk["I_ext"].tolist() == [-1.0, 2.0]
    summary = run_rate_study(built.study, tmp_path / "out")
    assert summary["config"] == built.settings and "fit" not in summary
    assert summary["fixed_points"] == [{"r": fp.r, "eigenvalue": fp.eigenvalue, "stable": fp.stable,
                                        "residual": fp.residual} for fp in rate.fixed_points(4.0, 0.8, 1.3)]
    assert len(summary["fi_curve"]["x"]) == 7 and summary["trajectories"]["r_init"] == [0.0, 0.9]
    assert json.loads((tmp_path / "out" / "rate_study.json").read_text())["config"]["w"] == 4.0


def test_rate_settings_are_in_the_schemas_order():
    """rate_study.json records the settings whole: their order is the schema's, whatever the config's."""
    given = {"fit": {"seed": 2, "enabled": False}, "w": 4.0, "ou": {"seed": 3, "w": 1.0}}
    built = RateSection(Study.from_config({"studies": {"r": {"rate": given}}}, "r"))
    schema = SCHEMA["$defs"]["rate"]["properties"]
    assert list(built.settings) == list(schema)
    assert list(built.settings["ou"]) == list(schema["ou"]["properties"])
    assert list(built.settings["fit"]) == list(schema["fit"]["properties"])
    assert list(built.settings["fit"]["bounds"]) == ["tau", "a", "theta", "w"]
    assert in_schema_order({"b": 1, "x": 2, "a": {"d": 1, "c": 2}},
                           {"properties": {"a": {"properties": {"c": {}, "d": {}}}, "b": {}}}) == \
        {"a": {"c": 2, "d": 1}, "b": 1, "x": 2}
