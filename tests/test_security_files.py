"""Files neurofit reads back never run code: posteriors and fit checkpoints are data, not pickles.

Each malicious payload would `touch` a marker file if it were unpickled; the tests assert that the
marker never appears, that the refusal is one line, and that saved posteriors and fit checkpoints
still round-trip exactly (same samples for the same seed; a resumed fit equal, byte for byte, to an
uninterrupted one). torch runs on one thread; the small fits and inferences simulate with the numpy
backend; the command-line test runs a short fit of the HH tutorial study.
"""
import json
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from helpers import run_cli, write_yaml
from neurofit import Model, simulate
from neurofit.fitting.fitters import FitError, TraceFitter
from neurofit.fitting.metrics import MSEMetric
from neurofit.fitting.optimizers import NevergradOptimizer, SkoptOptimizer
from neurofit.inference.inferencer import InferenceError, Inferencer
from neurofit.workflow.fit_section import FitSection, read_fit
from neurofit.workflow.study import Study
from test_fit_workflow import hh_study, numbers

torch.set_num_threads(1)

EQS = """
dv/dt = (gl*(El - v) + I)/C : volt
gl : siemens (constant)
C : farad (constant)
"""
NS = {"El": "-65 mV"}
DT, N_STEPS = 1e-4, 300
TRUTH = {"gl": 10e-9, "C": 200e-12}
FIT_BOUNDS = {"gl": [1e-9, 50e-9], "C": [50e-12, 500e-12, "log"]}


class Payload:
    """Unpickling this runs `touch marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def data():
    """Two current steps and the truth's membrane potential (V), (2, N_STEPS) each."""
    current = np.zeros((2, N_STEPS))
    current[0, 50:250] = 0.1e-9
    current[1, 50:250] = 0.2e-9
    model = Model(EQS, namespace=NS)
    v = simulate(model, TRUTH, {"I": current}, DT, init={"v": -65e-3}, backend="numpy").traces["v"][0]
    return model, current, v


def inferencer(data, seed=0):
    """An Inferencer of (gl, C) from the data's mean and SD of v, with its prior set."""
    model, current, v = data
    inf = Inferencer(DT, model, {"I": current}, {"v": v}, features={"v": ["v_mean", "v_std"]},
                     param_init={"v": -65e-3}, backend="numpy", seed=seed)
    inf.init_prior(gl=[2e-9, 30e-9], C=[100e-12, 400e-12, "log"])
    return inf


def checkpoint_warnings(caught) -> list[str]:
    """The messages of the recorded warnings about a checkpoint."""
    return [str(w.message) for w in caught if "checkpoint" in str(w.message)]


def one_line(err) -> str:
    """The text of a raised error (pytest's ExceptionInfo) or of a warning, asserted to be one line."""
    text = str(err.value if hasattr(err, "value") else err)
    assert "\n" not in text
    return text


# --- posteriors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, estimator, extra", [
    ("NPE", "maf", {}),
    ("NPE", "mdn", {}),
    ("NPE", "mdn", {"n_rounds": 2}),
    ("NLE", "maf", {"posterior_kwargs": {"mcmc_parameters": {"num_chains": 1, "warmup_steps": 5, "thin": 1}}}),
], ids=["NPE-maf", "NPE-mdn", "NPE-mdn-2-rounds", "NLE-maf"])
def test_saved_posterior_gives_identical_samples(data, tmp_path, method, estimator, extra):
    original = inferencer(data)
    original.infer(n_samples=150, inference_method=method, density_estimator_model=estimator,
                   train_kwargs={"max_num_epochs": 3}, **extra)
    path = tmp_path / "posterior.pt"
    original.save_posterior(path)
    state = torch.load(path, weights_only=True)  # plain data: loads without unpickling any object
    assert json.loads(state["description"])["method"] == method
    loaded = inferencer(data, seed=9)
    loaded.load_posterior(path)
    np.testing.assert_array_equal(loaded.sample((5,), seed=3), original.sample((5,), seed=3))
    assert loaded.bounds == original.bounds and loaded.log_scale == {"C"}


def test_posterior_with_a_custom_embedding_needs_its_architecture(data, tmp_path):
    original = inferencer(data)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    original.infer(n_samples=100, density_estimator_model="mdn", inference_kwargs={"embedding_net": net},
                   train_kwargs={"max_num_epochs": 2})
    original.save_posterior(tmp_path / "posterior.pt")
    loaded = inferencer(data)
    with pytest.raises(InferenceError, match="custom embedding net") as err:
        loaded.load_posterior(tmp_path / "posterior.pt")
    one_line(err)
    loaded.load_posterior(tmp_path / "posterior.pt", embedding_net=torch.nn.Sequential(torch.nn.Linear(4, 3),
                                                                                       torch.nn.Tanh()))
    np.testing.assert_array_equal(loaded.sample((20,), seed=1), original.sample((20,), seed=1))


def malicious_posteriors(tmp_path, marker):
    """(file, expected message) of posterior files that would run code if unpickled."""
    evil = tmp_path / "evil.pt"
    torch.save({"posterior": Payload(marker)}, evil)
    old = tmp_path / "old.pt"  # neurofit's old format: pickled sbi objects
    torch.save({"format": "neurofit.posterior", "version": 1, "posterior": Payload(marker), "prior": None}, old)
    raw = tmp_path / "raw.pt"  # a bare pickle, not a torch archive
    raw.write_bytes(pickle.dumps(Payload(marker)))
    return [(evil, "not loaded for safety"), (old, "written by an older neurofit"), (raw, "not loaded for safety")]


def test_posterior_files_with_pickled_objects_are_refused_without_running_them(data, tmp_path):
    marker = tmp_path / "pwned"
    for path, message in malicious_posteriors(tmp_path, marker):
        with pytest.raises(InferenceError, match=message) as err:
            inferencer(data).load_posterior(path)
        assert one_line(err).startswith(str(path))
        assert not marker.exists()
    old = one_line(pytest.raises(InferenceError, inferencer(data).load_posterior, tmp_path / "old.pt"))
    assert "regenerate it with `neurofit infer`" in old


def test_damaged_posterior_files_are_one_line_errors(data, tmp_path):
    original = inferencer(data)
    original.infer(n_samples=100, density_estimator_model="mdn", train_kwargs={"max_num_epochs": 2})
    good = tmp_path / "posterior.pt"
    original.save_posterior(good)
    content = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(content[:len(content) // 2])
    with pytest.raises(InferenceError, match="damaged") as err:
        inferencer(data).load_posterior(truncated)
    one_line(err)
    state = torch.load(good, weights_only=True)
    for name, change in [("description.pt", {"description": "{not json"}),
                         ("weights.pt", {"weights": {"net.w": torch.zeros(3)}}),
                         ("version.pt", {"version": 7})]:
        torch.save({**state, **change}, tmp_path / name)
        with pytest.raises(InferenceError, match="damaged|rebuilt|version 7") as err:
            inferencer(data).load_posterior(tmp_path / name)
        one_line(err)


# --- fit checkpoints ----------------------------------------------------------------------------------------

def fit(data, checkpoint=None, stop_after=None, optimizer=None, n_rounds=4, bounds=FIT_BOUNDS):
    """(fitter, (best params, best error)) of a small fit; ``stop_after`` rounds: killed after that round's
    checkpoint."""
    model, current, v = data
    fitter = TraceFitter(model, input={"I": current}, output={"v": v}, dt=DT, n_samples=6,
                         param_init={"v": -65e-3}, backend="numpy")

    def killer(params, errors, best_params, best_error, index, info):
        if stop_after is not None and index + 1 == stop_after:
            raise KeyboardInterrupt
    result = fitter.fit(optimizer=optimizer or NevergradOptimizer("DE", seed=3), metric=MSEMetric(),
                        n_rounds=n_rounds, callback=killer, checkpoint=None if checkpoint is None else str(checkpoint),
                        **bounds)
    return fitter, result


def fit_bytes(fitter, result) -> bytes:
    """The fit's numbers as bytes: best parameters, best error and every evaluation."""
    return json.dumps([result, fitter.history]).encode()


@pytest.mark.parametrize("make", [lambda: NevergradOptimizer("DE", seed=3),
                                  lambda: SkoptOptimizer("GP", n_initial_points=4, random_state=3,
                                                         acq_optimizer="sampling")], ids=["DE", "GP"])
def test_resumed_fit_equals_the_uninterrupted_one_bytewise(data, tmp_path, make):
    reference = fit(data, tmp_path / "reference.json", optimizer=make())
    path = tmp_path / "checkpoint.json"  # the workflow's name
    with pytest.raises(KeyboardInterrupt):
        fit(data, path, stop_after=2, optimizer=make())
    state = json.loads(path.read_text())
    assert state["rounds"] == 2 and len(state["candidates"]) == 12
    resumed = fit(data, path, optimizer=make())
    assert fit_bytes(*resumed) == fit_bytes(*reference)
    assert path.read_bytes() == (tmp_path / "reference.json").read_bytes()


@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
def test_a_pickled_checkpoint_is_never_unpickled_and_the_fit_starts_over(data, tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.json"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.warns(UserWarning, match="starting the fit over") as caught:
        resumed = fit(data, path)
    assert not marker.exists()
    [message] = checkpoint_warnings(caught)
    assert ("older neurofit" if protocol else "is damaged") in one_line(message)
    assert fit_bytes(*resumed) == fit_bytes(*fit(data))


def test_a_truncated_checkpoint_is_discarded_with_one_warning(data, tmp_path):
    path = tmp_path / "checkpoint.json"
    with pytest.raises(KeyboardInterrupt):
        fit(data, path, stop_after=2)
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])
    with pytest.warns(UserWarning) as caught:
        resumed = fit(data, path)
    [message] = checkpoint_warnings(caught)
    assert one_line(message).startswith(f"checkpoint {path} is damaged (")
    assert fit_bytes(*resumed) == fit_bytes(*fit(data))
    assert json.loads(path.read_text())["rounds"] == 4  # rewritten by the new fit


def test_a_checkpoint_of_another_fit_is_refused_in_one_line(data, tmp_path):
    path = tmp_path / "checkpoint.json"
    with pytest.raises(KeyboardInterrupt):
        fit(data, path, stop_after=1)
    with pytest.raises(FitError, match="written for another fit") as err:
        fit(data, path, bounds={**FIT_BOUNDS, "gl": [1e-9, 60e-9]})
    one_line(err)
    with pytest.raises(FitError, match="round 0 does not replay") as err:  # another seed
        fit(data, path, optimizer=NevergradOptimizer("DE", seed=4))
    one_line(err)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good checkpoint resumes silently
        fit(data, path)


def test_neurofit_fit_discards_a_planted_pickle_in_one_line(tmp_path, capsys):
    config = write_yaml(tmp_path / "config.yaml", hh_study(n_samples=10, n_rounds=2))
    marker = tmp_path / "pwned"
    run = tmp_path / "DE_1"
    run.mkdir()
    checkpoint = run / "checkpoint.json"
    checkpoint.write_bytes(pickle.dumps(Payload(marker)))
    plan = FitSection(Study.load("hh", path=config))  # the fingerprint of this very fit: the Fitter opens the file
    fingerprint = plan.fingerprint(plan.study.dataset(), "DE", 1)
    (run / "checkpoint.fingerprint.json").write_text(json.dumps({"fingerprint": fingerprint}))
    fit_command = ["fit", "--config", config, "--study", "hh", "--optimizer", "DE", "--seed", 1, "--output"]
    status, _, err = run_cli(capsys, *fit_command, run / "fit.json")
    assert status == 0 and not marker.exists()
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "older neurofit (a pickle), not loaded for safety; starting the fit over" in warning[0]
    assert not checkpoint.exists()  # removed once the results are written
    status, _, _ = run_cli(capsys, *fit_command, tmp_path / "fresh" / "fit.json")
    assert status == 0
    assert numbers(read_fit(run / "fit.json")) == numbers(read_fit(tmp_path / "fresh" / "fit.json"))
