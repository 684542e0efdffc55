# The code blocks of brian2modelfitting's docs_sphinx/introduction/tutorial_sbi.rst ("Tutorial: Inferencer"), in
# order, as one script. It reads input_traces_synthetic.npy / output_traces_synthetic.npy, written by
# generate_traces_synthetic.py, and imports tutorial_sbi_helpers.py from the working directory.
# neurofit port: the tutorial's training-set sizes (15_000, 20_000, 10_000 x 2 rounds) are reduced to keep the
# script's run time within a test's budget on two cores; each reduced number is marked below.
from pylab import *  # neurofit port: the numpy/matplotlib part of `from brian2 import *`
from neurofit.units import *  # neurofit port: was `from brian2 import *`
from neurofit import Inferencer  # neurofit port: was `from brian2modelfitting import Inferencer`
from scipy.stats import kurtosis as kurt
from tutorial_sbi_helpers import (spike_times,
                                  plot_traces,
                                  plot_cond_coeff_mat)

inp_traces = load('input_traces_synthetic.npy').reshape(1, -1)
out_traces = load('output_traces_synthetic.npy').reshape(1, -1)

# neurofit port: was `dt = 0.05*ms`, the step of Brian2's modelfitting_sbi.py example; the .npy files read above are
# written by generate_traces_synthetic.py at 0.1 ms (its defaultclock.dt)
dt = 0.1*ms
t = arange(0, inp_traces.size*dt/ms, dt/ms)
stim_start, stim_end = t[where(inp_traces[0, :] != 0)[0][[0, -1]]]

fig, ax = plot_traces(t, inp_traces, out_traces)

# Toy-example: infer two free parameters

# set parameters of the model
E_Na = 53*mV
E_K = -107*mV
E_l = -70*mV
VT = -60.0*mV
g_l = 10*nS
Cm = 200*pF

# set ground truth parameters, which are unknown from the model's perspective
ground_truth_params = {'g_Na': 32*uS,
                       'g_K': 1*uS}

# define initial conditions
init_conds = {'v': 'E_l',
              'm': '1 / (1 + beta_m / alpha_m)',
              'h': '1 / (1 + beta_h / alpha_h)',
              'n': '1 / (1 + beta_n / alpha_n)'}

# define the Hodgkin-Huxley neuron model
eqs = '''
    # non-linear set of ordinary differential equations
    dv/dt = - (g_Na * m ** 3 * h * (v - E_Na)
               + g_K * n ** 4 * (v - E_K)
               + g_l * (v - E_l) - I) / Cm : volt
    dm/dt = alpha_m * (1 - m) - beta_m * m : 1
    dn/dt = alpha_n * (1 - n) - beta_n * n : 1
    dh/dt = alpha_h * (1 - h) - beta_h * h : 1

    # time independent rate constants for a channel activation/inactivation
    alpha_m = ((-0.32 / mV) * (v - VT - 13.*mV))
               / (exp((-(v - VT - 13.*mV)) / (4.*mV)) - 1) / ms : Hz
    beta_m = ((0.28/mV) * (v - VT - 40.*mV))
              / (exp((v - VT - 40.*mV) / (5.*mV)) - 1) / ms : Hz
    alpha_h = 0.128 * exp(-(v - VT - 17.*mV) / (18.*mV)) / ms : Hz
    beta_h = 4 / (1 + exp((-(v - VT - 40.*mV)) / (5.*mV))) / ms : Hz
    alpha_n = ((-0.032/mV) * (v - VT - 15.*mV))
               / (exp((-(v - VT - 15.*mV)) / (5.*mV)) - 1) / ms : Hz
    beta_n = 0.5 * exp(-(v - VT - 10.*mV) / (40.*mV)) / ms : Hz

    # free parameters
    g_Na : siemens (constant)
    g_K : siemens (constant)
    '''

v_features = [
    # max action potential
    lambda x: np.max(x[(t > stim_start) & (t < stim_end)]),
    # mean action potential
    lambda x: np.mean(x[(t > stim_start) & (t < stim_end)]),
    # std of action potential
    lambda x: np.std(x[(t > stim_start) & (t < stim_end)]),
    # membrane resting potential
    lambda x: np.mean(x[(t > 0.1 * stim_start) & (t < 0.9 * stim_start)])
]

inferencer = Inferencer(dt=dt, model=eqs,
                        input={'I': inp_traces*amp},
                        output={'v': out_traces*mV},
                        features={'v': v_features},
                        method='exponential_euler',
                        threshold='m > 0.5',
                        refractory='m > 0.5',
                        param_init=init_conds)

posterior = inferencer.infer(n_samples=1_000,  # neurofit port: the tutorial's 15_000, reduced
                             n_rounds=1,
                             inference_method='SNPE',
                             density_estimator_model='maf',
                             g_Na=[1*uS, 100*uS],
                             g_K=[0.1*uS, 10*uS])

samples = inferencer.sample((10_000, ))

limits = {'g_Na': [1*uS, 100*uS],
          'g_K': [0.1*uS, 10*uS]}
labels = {'g_Na': r'$\overline{g}_{Na}$',
          'g_K': r'$\overline{g}_{K}$'}
fig, ax = inferencer.pairplot(limits=limits,
                              labels=labels,
                              ticks=limits,
                              points=ground_truth_params,
                              points_offdiag={'markersize': 5},
                              points_colors=['C3'],
                              figsize=(6, 6))

inf_traces = inferencer.generate_traces()

fig, ax = plot_traces(t, inp_traces, out_traces, inf_traces=array(inf_traces/mV))

# Additional free parameters

del Cm, g_l

# set parameters, initial condition and the model
E_Na = 53*mV
E_K = -107*mV
E_l = -70*mV
VT = -60.0*mV

ground_truth_params = {'g_Na': 32*uS,
                       'g_K': 1*uS,
                       'g_l': 10*nS,
                       'Cm': 200*pF}

init_conds = {'v': 'E_l',
              'm': '1 / (1 + beta_m / alpha_m)',
              'h': '1 / (1 + beta_h / alpha_h)',
              'n': '1 / (1 + beta_n / alpha_n)'}

eqs = '''
    # non-linear set of ordinary differential equations
    dv/dt = - (g_Na * m ** 3 * h * (v - E_Na)
               + g_K * n ** 4 * (v - E_K)
               + g_l * (v - E_l) - I) / Cm : volt
    dm/dt = alpha_m * (1 - m) - beta_m * m : 1
    dn/dt = alpha_n * (1 - n) - beta_n * n : 1
    dh/dt = alpha_h * (1 - h) - beta_h * h : 1

    # time independent rate constants for activation and inactivation
    alpha_m = ((-0.32 / mV) * (v - VT - 13.*mV))
               / (exp((-(v - VT - 13.*mV)) / (4.*mV)) - 1) / ms : Hz
    beta_m = ((0.28/mV) * (v - VT - 40.*mV))
              / (exp((v - VT - 40.*mV) / (5.*mV)) - 1) / ms : Hz
    alpha_h = 0.128 * exp(-(v - VT - 17.*mV) / (18.*mV)) / ms : Hz
    beta_h = 4 / (1 + exp((-(v - VT - 40.*mV)) / (5.*mV))) / ms : Hz
    alpha_n = ((-0.032/mV) * (v - VT - 15.*mV))
               / (exp((-(v - VT - 15.*mV)) / (5.*mV)) - 1) / ms : Hz
    beta_n = 0.5 * exp(-(v - VT - 10.*mV) / (40.*mV)) / ms : Hz

    # free parameters
    g_Na : siemens (constant)
    g_K : siemens (constant)
    g_l : siemens (constant)
    Cm : farad (constant)
    '''

# infer the posterior using the same configuration as before
inferencer = Inferencer(dt=dt, model=eqs,
                        input={'I': inp_traces*amp},
                        output={'v': out_traces*mV},
                        features={'v': v_features},
                        method='exponential_euler',
                        threshold='m > 0.5',
                        refractory='m > 0.5',
                        param_init=init_conds)

posterior = inferencer.infer(n_samples=1_000,  # neurofit port: the tutorial's 20_000, reduced
                             n_rounds=1,
                             inference_method='SNPE',
                             density_estimator_model='maf',
                             g_Na=[1*uS, 100*uS],
                             g_K=[0.1*uS, 10*uS],
                             g_l=[1*nS, 100*nS],
                             Cm=[20*pF, 2*nF])

# finally, sample and visualize the posterior distribution
samples = inferencer.sample((10_000, ))

limits = {'g_Na': [1*uS, 100*uS],
          'g_K': [0.1*uS, 10*uS],
          'g_l': [1*nS, 100*nS],
          'Cm': [20*pF, 2*nF]}
labels = {'g_Na': r'$\overline{g}_{Na}$',
          'g_K': r'$\overline{g}_{K}$',
          'g_l': r'$\overline{g}_{l}$',
          'Cm': r'$C_{m}$'}
fig, ax = inferencer.pairplot(limits=limits,
                              labels=labels,
                              ticks=limits,
                              points=ground_truth_params,
                              points_offdiag={'markersize': 5},
                              points_colors=['C3'],
                              figsize=(6, 6))

# note that the only difference is the number of rounds of inference
posterior = inferencer.infer(n_samples=500,  # neurofit port: the tutorial's 10_000, reduced
                             n_rounds=2,
                             inference_method='SNPE',
                             density_estimator_model='maf',
                             restart=True,
                             g_Na=[1*uS, 100*uS],
                             g_K=[0.1*uS, 10*uS],
                             g_l=[1*nS, 100*nS],
                             Cm=[20*pF, 2*nF])

samples = inferencer.sample((10_000, ))

fig, ax = inferencer.pairplot(limits=limits,
                              labels=labels,
                              ticks=limits,
                              points=ground_truth_params,
                              points_offdiag={'markersize': 5},
                              points_colors=['C3'],
                              figsize=(6, 6))

# Multi-objective optimization

spike_times_list = [spike_times(t, out_trace) for out_trace in out_traces]

fig, ax = plot_traces(t, inp_traces, out_traces, spike_times_list[0])


def voltage_deflection(x):
    voltage_base = np.mean(x[t < stim_start])
    stim_end_idx = np.where(t >= stim_end)[0][0]
    steady_state_voltage_stimend = np.mean(x[stim_end_idx-10:stim_end_idx-5])
    return steady_state_voltage_stimend - voltage_base


v_features = [
    # max action potential
    lambda x: np.max(x[(t > stim_start) & (t < stim_end)]),
    # mean action potential
    lambda x: np.mean(x[(t > stim_start) & (t < stim_end)]),
    # std of action potential
    lambda x: np.std(x[(t > stim_start) & (t < stim_end)]),
    # kurtosis of action potential
    lambda x: kurt(x[(t > stim_start) & (t < stim_end)], fisher=False),
    # membrane resting potential
    lambda x: np.mean(x[(t > 0.1 * stim_start) & (t < 0.9 * stim_start)]),
    # the voltage deflection between base and steady-state voltage
    voltage_deflection,
]

s_features = [
    # number of spikes in a train
    lambda x: x.size,
    # mean inter-spike interval
    lambda x: 0. if np.diff(x).size == 0 else np.mean(diff(x)),
    # time to first spike
    lambda x: 0. if x.size == 0 else x[0]
]

inferencer = Inferencer(dt=dt, model=eqs,
                        input={'I': inp_traces*amp},
                        output={'v': out_traces*mV, 'spikes': spike_times_list},
                        features={'v': v_features, 'spikes': s_features},
                        method='exponential_euler',
                        threshold='m > 0.5',
                        refractory='m > 0.5',
                        param_init=init_conds)

posterior = inferencer.infer(n_samples=1_000,  # neurofit port: the tutorial's 20_000, reduced
                             n_rounds=1,
                             inference_method='SNPE',
                             density_estimator_model='maf',
                             g_Na=[1*uS, 100*uS],
                             g_K=[0.1*uS, 10*uS],
                             g_l=[1*nS, 100*nS],
                             Cm=[20*pF, 2*nF])

samples = inferencer.sample((10_000, ))

fig, ax = inferencer.pairplot(limits=limits,
                              labels=labels,
                              ticks=limits,
                              points=ground_truth_params,
                              points_offdiag={'markersize': 5},
                              points_colors=['C3'],
                              figsize=(6, 6))

inf_traces = inferencer.generate_traces(n_samples=1_000, output_var='v')  # neurofit port: the tutorial's 10_000

fig, ax = plot_traces(t, inp_traces, out_traces, inf_traces=array(inf_traces/mV))

# Automatic feature extraction: default settings

inferencer = Inferencer(dt=dt, model=eqs,
                        input={'I': inp_traces*amp},
                        output={'v': out_traces*mV},
                        method='exponential_euler',
                        threshold='m > 0.5',
                        refractory='m > 0.5',
                        param_init=init_conds)

posterior = inferencer.infer(n_samples=1_000,  # neurofit port: the tutorial's 20_000, reduced
                             n_rounds=1,
                             inference_method='SNPE',
                             density_estimator_model='maf',
                             g_Na=[1*uS, 100*uS],
                             g_K=[0.1*uS, 10*uS],
                             g_l=[1*nS, 100*nS],
                             Cm=[20*pF, 2*nF])

samples = inferencer.sample((10_000, ))

fig, ax = inferencer.pairplot(limits=limits,
                              labels=labels,
                              ticks=limits,
                              points=ground_truth_params,
                              points_offdiag={'markersize': 5},
                              points_colors=['C3'],
                              figsize=(6, 6))

# Automatic feature extraction: custom embedding network

import torch
from torch import nn


class YuleNet(nn.Module):
    """The summary feature extractor proposed in Rodrigues 2020.

    Parameters
    ----------
    in_features : int
        Number of input features should correspond to the size of a
        single output voltage trace.
    out_features : int
        Number of the features that are used for the inference process.

    Returns
    -------
    None

    References
    ----------
    * Rodrigues, P. L. C. and Gramfort, A. "Learning summary features
      of time series for likelihood free inference" 3rd Workshop on
      Machine Learning and the Physical Sciences (NeurIPS 2020). 2020.
    """
    def __init__(self, in_features, out_features):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels=1, out_channels=8, kernel_size=64,
                               stride=1, padding=32, bias=True)
        self.relu1 = nn.ReLU()
        pooling1 = 16
        self.pool1 = nn.AvgPool1d(kernel_size=pooling1)

        self.conv2 = nn.Conv1d(in_channels=8, out_channels=8, kernel_size=64,
                               stride=1, padding=32, bias=True)
        self.relu2 = nn.ReLU()
        pooling2 = int((in_features // pooling1) // 16)
        self.pool2 = nn.AvgPool1d(kernel_size=pooling2)

        self.dropout = nn.Dropout(p=0.50)
        # neurofit port: was `8 * in_features // (pooling1 * pooling2) - 1`, one less than the length of the
        # flattened pooling output for these 10,000-sample traces (128): a RuntimeError in PyTorch under Brian2 too
        linear_in = 8 * (((in_features + 1) // pooling1 + 1) // pooling2)
        self.linear = nn.Linear(in_features=linear_in,
                                out_features=out_features)
        self.relu3 = nn.ReLU()

    def forward(self, x):
        if x.ndim == 1:
            x = x.view(1, 1, -1)
        else:
            x = x.view(len(x), 1, -1)
        x_conv1 = self.conv1(x)
        x_relu1 = self.relu1(x_conv1)
        x_pool1 = self.pool1(x_relu1)

        x_conv2 = self.conv2(x_pool1)
        x_relu2 = self.relu2(x_conv2)
        x_pool2 = self.pool2(x_relu2)

        x_flatten = x_pool2.view(len(x), 1, -1)
        x_dropout = self.dropout(x_flatten)

        x = self.relu3(self.linear(x_dropout))
        return x.view(len(x), -1)


in_features = out_traces.shape[1]
out_features = 10

inferencer = Inferencer(dt=dt, model=eqs,
                        input={'I': inp_traces*amp},
                        output={'v': out_traces*mV},
                        method='exponential_euler',
                        threshold='m > 0.5',
                        refractory='m > 0.5',
                        param_init=init_conds)

posterior = inferencer.infer(n_samples=500,  # neurofit port: the tutorial's 20_000, reduced
                             n_rounds=1,
                             inference_method='SNPE',
                             density_estimator_model='maf',
                             inference_kwargs={'embedding_net': YuleNet(in_features, out_features)},
                             train_kwargs={'num_atoms': 10,
                                           'training_batch_size': 100,
                                           'use_combined_loss': True,
                                           'discard_prior_samples': True,
                                           'max_num_epochs': 20},  # neurofit port: added (run time)
                             sbi_device='gpu',
                             g_Na=[1*uS, 100*uS],
                             g_K=[0.1*uS, 10*uS],
                             g_l=[1*nS, 100*nS],
                             Cm=[20*pF, 2*nF])

samples = inferencer.sample((10_000, ))

fig, ax = inferencer.pairplot(limits=limits,
                              labels=labels,
                              ticks=limits,
                              points=ground_truth_params,
                              points_offdiag={'markersize': 5},
                              points_colors=['C3'],
                              figsize=(6, 6))
