"""Port of brian2modelfitting/tests/test_inferencer.py (Inferencer on sbi).

Translation: files go to tmp_path. The model's ``E`` is read from this module, as in b2mf (Brian2's level
semantics).
b2mf's fixture passes ``input`` of shape (5, 10) (5 traces of 10 samples) but ``output`` of shape (10, 5) - it
transposes the output back - and b2mf does not check the shapes (x_o then has 10 features where the simulations
have 5 in test_infer_step); neurofit refuses outputs that do not match the input
(test_inferencer_output_shape_checked), so the ports pass the output as (5, 10): ``input_traces.T * 10*nS``.
"""
import numpy as np
import pytest
import torch
from numpy.testing import assert_almost_equal, assert_equal

from neurofit import Inferencer
from neurofit.inference.inferencer import calc_prior, get_param_dict
from neurofit.units import ms, mV, nS, siemens, volt

E = 40*mV
input_traces = np.zeros((10, 5))*volt
for i in range(5):
    input_traces[5:, i] = i*10*mV
input_traces = input_traces.T
output_traces = input_traces*10*nS  # b2mf: output_traces = output_traces.T, shape (10, 5)
model = """
    I = g * (v - E) : amp
    g : siemens (constant)
    """
model_full = """
    I = g * (v - 40*mV) : amp
    g : siemens (constant)
    """


@pytest.fixture
def setup():
    dt = 0.01*ms
    inferencer = Inferencer(dt=dt, model=model, input={"v": input_traces}, output={"I": output_traces})
    return dt, inferencer


@pytest.fixture
def setup_features():
    dt = 0.01*ms
    inferencer = Inferencer(dt=dt, model=model, input={"v": input_traces}, output={"I": output_traces},
                            features={"I": [lambda x: x.mean()]})
    return dt, inferencer


@pytest.fixture
def setup_full():
    dt = 0.01*ms
    inferencer = Inferencer(dt=dt, model=model_full, input={"v": input_traces}, output={"I": output_traces},
                            features={"I": [lambda x: x.mean()]})
    return dt, inferencer


def test_inferencer_output_shape_checked():
    """Deliberate difference: b2mf's fixture output (10, 5) for an input (5, 10) is refused."""
    with pytest.raises(ValueError, match="shape"):
        Inferencer(dt=0.01*ms, model=model, input={"v": input_traces}, output={"I": output_traces.T})


def test_get_param_dict():
    param_names = ["a", "b"]
    n_samples = 3
    n_traces = 3
    n_neurons = n_samples*n_traces
    theta = np.array([[1, 2], [3, 4], [5, 6]])
    _theta = np.array([[1, 2], [1, 2], [1, 2], [3, 4], [3, 4], [3, 4], [5, 6], [5, 6], [5, 6]])
    assert_equal(_theta, np.repeat(theta, repeats=n_traces, axis=0))
    d_param = {"a": np.array([1., 1., 1., 3., 3., 3., 5., 5., 5.]), "b": np.array([2., 2., 2., 4., 4., 4., 6., 6., 6.])}
    d_param_ret = get_param_dict(param_names=param_names, param_values=_theta, n_values=n_neurons)
    assert isinstance(d_param_ret, dict)
    assert_equal(d_param, d_param_ret)


def test_calc_prior():
    n_samples = 10
    param_names = ["a", "b"]
    a_lower_bound, a_upper_bound = 1, 10
    b_lower_bound, b_upper_bound = 0, 1
    prior_mean = np.array([(a_lower_bound + a_upper_bound)/2., (b_lower_bound + b_upper_bound)/2.], dtype=np.float32)
    prior_std = np.array([(a_upper_bound - a_lower_bound)/np.sqrt(12), (b_upper_bound - b_lower_bound)/np.sqrt(12)],
                         dtype=np.float32)
    prior_sbi = calc_prior(param_names=param_names, a=[a_lower_bound*volt, a_upper_bound*volt],
                           b=[b_lower_bound*volt, b_upper_bound*volt])
    assert_equal(prior_mean, prior_sbi.mean.numpy())
    assert_equal(prior_std, prior_sbi.stddev.numpy())
    prior_sbi_sampled = prior_sbi.sample((n_samples,)).numpy()
    assert isinstance(prior_sbi_sampled[0, 0], np.float32)
    assert_equal(prior_sbi_sampled.shape, (n_samples, len(param_names)))


B2MF_ATTRIBUTES = ["dt", "output_var", "output", "param_names", "n_traces", "sim_time", "output_dim", "model",
                   "param_init", "method", "threshold", "reset", "refractory", "x_o", "features", "params",
                   "n_samples", "samples", "posterior", "theta", "x", "sbi_device"]


# Not ported: input_traces (a TimedArray), model (an Equations object) with its I_target variable - Brian2 internals.
def test_inferencer_init(setup):
    dt, inferencer = setup
    for attr in B2MF_ATTRIBUTES:
        assert hasattr(inferencer, attr), attr
    assert inferencer.params is None
    assert inferencer.n_samples is None
    assert inferencer.features is None
    # b2mf's output_var / output_dim: the output names and their dimensions (Brian2: model[var].dim)
    assert inferencer.output_var == ["I"]
    assert str(inferencer.output_dim[0]) == "amp"
    assert inferencer.sim_time == pytest.approx(10*dt)
    assert inferencer.sbi_device == "cpu"


def test_inferencer_init_x_o(setup):
    """test_inferencer_init's checks that neurofit meets: nothing sampled or trained yet; x_o = the raw traces."""
    dt, inferencer = setup
    assert inferencer.samples is None
    assert inferencer.posterior is None
    assert inferencer.theta is None
    assert inferencer.x is None
    x_o = np.concatenate([np.array(o).ravel().astype(np.float32) for o in output_traces])
    assert_almost_equal(inferencer.x_o, x_o)


def test_inferencer_init_features(setup_features):
    dt, inferencer = setup_features
    for attr in B2MF_ATTRIBUTES:
        assert hasattr(inferencer, attr), attr
    assert callable(inferencer.features["I"][0])


def test_inferencer_init_features_x_o(setup_features):
    """test_inferencer_init_features's x_o: one feature (the mean) per trace."""
    dt, inferencer = setup_features
    assert inferencer.samples is None and inferencer.posterior is None
    assert inferencer.theta is None and inferencer.x is None
    x_o = np.array([np.array(o).mean() for o in output_traces], dtype=np.float32)
    assert_almost_equal(inferencer.x_o, x_o)


def test_init_prior(setup):
    dt, inferencer = setup
    lower_bound = 1e-9
    upper_bound = 100e-9
    g_mean = np.array((lower_bound + upper_bound)/2, dtype=np.float32)
    g_std = np.array((upper_bound - lower_bound)/np.sqrt(12), dtype=np.float32)
    prior = inferencer.init_prior(g=[lower_bound*siemens, upper_bound*siemens])
    assert_almost_equal(g_mean, prior.mean.numpy())
    assert_almost_equal(g_std, prior.stddev.numpy())


def test_generate_training_data(setup):
    dt, inferencer = setup
    prior = inferencer.init_prior(g=[1*nS, 100*nS])
    theta = inferencer.generate_training_data(100, prior)
    assert theta.shape == (100, 1)


def test_extract_summary_statistics(setup):
    dt, inferencer = setup
    n_traces = 5
    prior = inferencer.init_prior(g=[1*nS, 100*nS])
    theta = inferencer.generate_training_data(100, prior)
    x = inferencer.extract_summary_statistics(theta)
    assert x.shape == (100, n_traces*10)


def test_extract_summary_statistics_errors(setup):
    dt, inferencer = setup
    prior = inferencer.init_prior(g=[1*nS, 100*nS])
    theta = inferencer.generate_training_data(100, prior)
    with pytest.raises(Exception):  # noqa: B017 - b2mf asserts a bare Exception
        inferencer.extract_summary_statistics(theta, level=2)


def test_save_summary_statistics_errors(setup, tmp_path):
    dt, inferencer = setup
    with pytest.raises(AttributeError):
        inferencer.save_summary_statistics(tmp_path/"summary_stats")
    theta = np.array([[1, 2], [3, 4]])
    x = np.arange(2).reshape(2, 1)
    with pytest.raises(TypeError):
        inferencer.save_summary_statistics(1, theta=theta, x=x)


def test_save_summary_statistics_errors_neurofit(setup, tmp_path):
    """test_save_summary_statistics_errors with neurofit's exception classes: nothing to save is refused
    (InferenceError, a ValueError), a path that is not a path raises TypeError (as in b2mf)."""
    dt, inferencer = setup
    with pytest.raises(ValueError):
        inferencer.save_summary_statistics(tmp_path/"summary_stats")
    with pytest.raises(TypeError):
        inferencer.save_summary_statistics(1, theta=np.array([[1, 2], [3, 4]]), x=np.arange(2).reshape(2, 1))


def test_load_summary_statistics(setup, tmp_path):
    dt, inferencer = setup
    theta = np.array([[1, 2], [3, 4]])
    x = np.arange(2).reshape(2, 1)
    path = tmp_path/"summ_stats.npz"
    inferencer.save_summary_statistics(path, theta=theta, x=x)
    theta_load, x_load = inferencer.load_summary_statistics(path)
    assert_equal(theta_load, theta)
    assert_equal(x_load, x)


def test_init_inference_errors(setup):
    dt, inferencer = setup
    prior = inferencer.init_prior(g=[1*nS, 100*nS])
    with pytest.raises(NameError):
        inferencer.init_inference(inference_method="test", density_estimator_model="mdn", prior=prior,
                                  sbi_device="cpu")
    # sbi_device should be automatically set to 'cpu' (neurofit warns; b2mf falls back silently)
    with pytest.warns(UserWarning, match="not a device"):
        inferencer.init_inference(inference_method="SNPE", density_estimator_model="mdn", prior=prior,
                                  sbi_device="test")
    assert inferencer.sbi_device == "cpu"


def test_infer_step(setup_full):
    from sbi.inference.posteriors.direct_posterior import DirectPosterior
    dt, inferencer = setup_full
    prior = inferencer.init_prior(g=[1*nS, 100*nS])
    inference = inferencer.init_inference(inference_method="SNPE", density_estimator_model="mdn", prior=prior,
                                          sbi_device="cpu")
    posterior = inferencer.infer_step(proposal=prior, n_samples=10, inference=inference)
    assert isinstance(posterior, DirectPosterior)
    # b2mf: posterior._x_shape == [1, 5] (an sbi internal of its version); the same in neurofit's sbi:
    assert_equal(np.array(posterior.default_x.shape), np.array([1, 5]))


def test_infer_step_errors(setup_full):
    dt, inferencer = setup_full
    prior = inferencer.init_prior(g=[1*nS, 100*nS])
    inference = inferencer.init_inference(inference_method="SNPE", density_estimator_model="mdn", prior=prior,
                                          sbi_device="cpu")
    with pytest.raises(ValueError):
        inferencer.infer_step(proposal=prior, inference=inference)


def test_infer(setup):
    dt, inferencer = setup
    posterior = inferencer.infer(n_samples=10, g=[1*nS, 100*nS])
    assert posterior == inferencer.posterior
    posterior_multi_round = inferencer.infer(n_samples=10, n_rounds=2, restart=True, g=[1*nS, 100*nS])
    assert posterior_multi_round != posterior
    assert posterior_multi_round == inferencer.posterior


def test_load_posterior(setup, tmp_path):
    """b2mf asserts ``inferencer.posterior.__dict__ == posterior_load.__dict__``, which holds whatever was saved:
    load_posterior sets ``inferencer.posterior`` to the object it returns. The port asserts that, and (what the test
    means) that the loaded posterior is the saved one: the same log-probabilities. b2mf's files are pickles of the
    sbi object (torch.save); neurofit's are weights plus a JSON description (deliberate: loading runs no code)."""
    dt, inferencer = setup
    inferencer.infer(n_samples=10, g=[1*nS, 100*nS])
    saved = inferencer.posterior
    theta = torch.tensor([[5e-9], [20e-9], [80e-9]])
    log_prob = saved.log_prob(theta, norm_posterior=False).detach().numpy()  # without the sampled leakage factor
    inferencer.save_posterior(tmp_path/"posterior.pth")
    posterior_load = inferencer.load_posterior(tmp_path/"posterior.pth")
    assert inferencer.posterior.__dict__ == posterior_load.__dict__
    assert_almost_equal(posterior_load.log_prob(theta, norm_posterior=False).detach().numpy(), log_prob, decimal=4)
