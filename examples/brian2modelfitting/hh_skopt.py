from pylab import *  # neurofit port: the numpy/matplotlib part of `from brian2 import *`
from neurofit.units import *  # neurofit port: was `from brian2 import *`
from neurofit import *  # neurofit port: was `from brian2modelfitting import *`


# neurofit port: `prefs.codegen.target = 'cython'` removed (Brian2's code-generation preference)

# Parameters
area = 20000*umetre**2
Cm = 1*ufarad*cm**-2 * area
El = -65*mV
EK = -90*mV
ENa = 50*mV
VT = -63*mV

# Generate a step-current input and an "experimental" voltage trace
dt = 0.01*ms
input_current = np.hstack([np.zeros(int(5*ms/dt)), np.ones(int(5*ms/dt)), np.zeros(int(5*ms/dt))])*nA

N, n1 = np.array([input_current]).shape
params_correct = {'gl': float(5e-5*siemens*cm**-2 * area),
          'g_na': float(100*msiemens*cm**-2 * area),
          'g_kd': float(30*msiemens*cm**-2 * area)}

# neurofit port: `defaultclock.dt = dt` and `I = TimedArray(input_current, dt=dt)` removed

# The model
eqsHH = '''
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I(t))/Cm : volt
dm/dt = 0.32*(mV**-1)*(13.*mV-v+VT)/
    (exp((13.*mV-v+VT)/(4.*mV))-1.)/ms*(1-m)-0.28*(mV**-1)*(v-VT-40.*mV)/
    (exp((v-VT-40.*mV)/(5.*mV))-1.)/ms*m : 1
dn/dt = 0.032*(mV**-1)*(15.*mV-v+VT)/
    (exp((15.*mV-v+VT)/(5.*mV))-1.)/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
g_na : siemens (constant)
g_kd : siemens (constant)
gl   : siemens (constant)
'''  # neurofit port: Brian2's Equations(...) wrapper removed (the equations as a string)

# neurofit port: Brian2's NeuronGroup/StateMonitor/run(20*ms) replaced by neurofit.simulate of the
# 15 ms input (the script keeps only the first 15 ms: `voltage[:n1]` below)
G = Model(eqsHH.replace('I(t)', 'I'), namespace={'Cm': Cm, 'El': El, 'EK': EK, 'ENa': ENa, 'VT': VT})
mon = simulate(G, params_correct, {'I': input_current}, dt, init={'v': El}, record='v',
               method='exponential_euler')

voltage = mon.traces['v'][0, 0]/mV
voltage += np.random.randn(len(voltage))

inp_trace = np.array([input_current])

n0, n1 = inp_trace.shape
out_trace = np.array([voltage[:n1]])

# Model for modelfitting
eqs = '''
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*(13.*mV-v+VT)/
    (exp((13.*mV-v+VT)/(4.*mV))-1.)/ms*(1-m)-0.28*(mV**-1)*(v-VT-40.*mV)/
    (exp((v-VT-40.*mV)/(5.*mV))-1.)/ms*m : 1
dn/dt = 0.032*(mV**-1)*(15.*mV-v+VT)/
    (exp((15.*mV-v+VT)/(5.*mV))-1.)/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
g_na : siemens (constant)
g_kd : siemens (constant)
gl   : siemens (constant)
'''  # neurofit port: was `Equations('''...''', Cm=1*ufarad*cm**-2 * area, El=-65*mV, EK=-90*mV, ENa=50*mV,
#      VT=-63*mV)`: the wrapper removed; the same constants are defined above under the same names

s_opt = SkoptOptimizer(method='gp', random_state=1)
metric = MSEMetric()
# pass parameters to the NeuronGroup
fitter = TraceFitter(model=eqs, input_var='I', output_var='v',
                     input=inp_trace * amp, output=out_trace*mV, dt=dt,
                     n_samples=5,
                     param_init={'v': -65*mV},
                     method='exponential_euler',)

res, error = fitter.fit(n_rounds=2,
                        optimizer=s_opt, metric=metric,
                        callback=None,
                        gl=[1e-8*siemens*cm**-2 * area, 1e-3*siemens*cm**-2 * area],
                        g_na=[1*msiemens*cm**-2 * area, 2000*msiemens*cm**-2 * area],
                        g_kd=[1*msiemens*cm**-2 * area, 1000*msiemens*cm**-2 * area],
                        )

print('correct:', params_correct, '\n output:', res)
print('error', error)

# visualization of the results
fits = fitter.generate_traces(params=None, param_init={'v': -65*mV})

print(fits)

fig, ax = plt.subplots(nrows=1)
ax.plot(out_trace)
ax.plot(fits[0]/mV)
plt.show()
