import numpy as np
from pylab import *  # neurofit port: the numpy/matplotlib part of `from brian2 import *`
from neurofit.units import *  # neurofit port: was `from brian2 import *`
from neurofit import *  # neurofit port: was `from brian2modelfitting import *`

# Generate Spikes To Fit into
dt = 0.1 * ms
# neurofit port: `defaultclock.dt = dt` removed (Brian2's clock; the fitter takes dt=)
input_current = np.hstack([np.zeros(int(round(5*ms/dt))),
                           np.ones(int(round(25*ms/dt))),
                           np.zeros(int(round(30*ms/dt)))]) * 5*nA
# neurofit port: `I = TimedArray(input_current, dt=dt)` removed (the input is given to simulate below)

EL = -70*mV
VT = -50*mV
DeltaT = 2*mV
eqs = '''
    dv/dt = (gL*(EL-v)+gL*DeltaT*exp((v-VT)/DeltaT) + I(t))/C : volt
    gL: siemens (constant)
    C: farad (constant)
    '''  # neurofit port: Brian2's Equations(...) wrapper removed (the equations as a string)

# neurofit port: Brian2's NeuronGroup/StateMonitor/SpikeMonitor/run(60*ms) replaced by neurofit.simulate
group = Model(eqs.replace('I(t)', 'I'), namespace={'EL': EL, 'VT': VT, 'DeltaT': DeltaT},
              threshold='v > -50*mV',
              reset='v = -70*mV')
simulation = simulate(group, {'gL': 30*nS, 'C': 1*nF}, {'I': input_current}, dt,
                      init={'v': -70*mV}, record='v', spikes=True,
                      method='exponential_euler')

voltage = simulation.traces['v'][0, 0]/mV
out_spikes = simulation.spikes[0][0]
print(out_spikes)

# Model Fitting
# neurofit port: `start_scope()` removed (Brian2's object scope)
eqs_fit = '''
    dv/dt = (gL*(EL-v)+gL*DeltaT*exp((v-VT)/DeltaT) + I)/C : volt
    gL: siemens (constant)
    C: farad (constant)
    EL: volt (constant)
    '''  # neurofit port: Brian2's Equations(...) wrapper removed

n_opt = NevergradOptimizer()
metric = GammaFactor(delta=1*ms, time=60*ms)
inp_trace = np.array([input_current])

# pass parameters to the NeuronGroup
fitter = SpikeFitter(model=eqs_fit, input_var='I', dt=dt,
                     input=inp_trace * amp, output=[out_spikes],
                     n_samples=30,
                     threshold='v > -50*mV',
                     param_init={'v': -70*mV},
                     reset='v = -70*mV',)

result_dict, error = fitter.fit(n_rounds=3,
                                optimizer=n_opt,
                                metric=metric,
                                callback='text',
                                gL=[10*nS, 100*nS],
                                C=[0.1*nF, 10*nF],
                                EL=[-100*mV, -50*mV])



print('goal:', 1*nF, 30*nS, -70*mV)
print('results:', result_dict['C']*farad, result_dict['gL']*siemens, result_dict['EL']*volt)

# visualization of the results
EL = -70*mV
VT = -50*mV
DeltaT = 2*mV
spikes = fitter.generate_spikes(params=None)
print('spike times:', spikes)

EL = -70*mV
VT = -50*mV
DeltaT = 2*mV
fits = fitter.generate(params=None,
                       output_var='v')

# Vizualize the resutls
plot(np.arange(len(voltage))*dt/ms, voltage, label='original')
plot(np.arange(len(voltage))*dt/ms, fits[0]/mV, label='fitted')
legend()
plt.show()
