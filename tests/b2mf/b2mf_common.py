"""Shared pieces of the brian2modelfitting (b2mf) test ports in tests/b2mf.

Each test module ports one of b2mf's test modules (brian2modelfitting/tests/*.py): one neurofit test
per b2mf test, named as in b2mf (a suffix when a b2mf test is split because parts of it differ).
``from brian2 import mV, nS, ms`` becomes ``from neurofit.units import mV, nS, ms`` (SI floats).

Where neurofit does not (yet) behave as b2mf's test asserts, the test carries ``gap(item, what)``: a
strict xfail, so that the day the behaviour lands the test fails until the mark is removed. ``item``
is the number of the parity item (ITEMS; docs/differences_from_brian2modelfitting.md lists them).
"""
import numpy as np
import pytest

from neurofit.units import mV, nS, volt

#: The parity items the xfail reasons refer to (issue "A Brian2 user's scripts run with an import swap").
ITEMS = {
    1: "units as Brian2 writes them (neurofit.units constants; Quantity objects and their unit checks)",
    2: "Fitter constructors: legacy input_var/output_var, b2mf attributes and defaults, early validation",
    3: "model text as Brian2 reads it: no ODE needed, caller's namespace, subexpression outputs, recording parameters",
    4: "fit(): default optimizer/metric, TypeError for wrong optimizer/metric, changes without restart, n_rounds=0, "
       "popsize from initialize",
    5: "refine(): bounds as keywords, callback, per-output metrics, argument checks, subexpression outputs",
    6: "results and multi-objective bookkeeping: objective errors, dataframe columns, penalty units",
    7: "metric API: firing_rate, get_gamma_factor, calc_eFEL, FeatureMetric get_features/get_errors, t_weights checks",
    8: "optimizer API: initialize(**bounds), calc_bounds(**bounds), .optim, AssertionError for unknown methods",
    9: "callback utilities: callback_text, callback_none, callback_setup, ProgressBar, make_dic, get_param_dic",
    10: "Inferencer API: get_param_dict, calc_prior, b2mf attributes, argument errors, sbi_device fallback",
}


def gap(item: int, what: str):
    """Strict xfail: neurofit differs from b2mf here (parity item ``item``: what differs)."""
    assert item in ITEMS, item
    return pytest.mark.xfail(strict=True, reason=f"{item}: {what}")


# b2mf's TraceFitter/Inferencer test data: 10 samples of 5 traces, v stepping to i*10 mV at sample 5
E = 40*mV
input_traces = np.zeros((10, 5))*volt
for _i in range(5):
    input_traces[5:, _i] = _i*10*mV
output_traces = 10*nS*input_traces

#: b2mf's model ``I = g*(v-E)``: E is taken from the calling module (import E with it, as b2mf defines it there)
model = """
    I = g*(v-E) : amp
    g : siemens (constant)
    """

#: b2mf's constant_model (v = c + x)
constant_model = """
    v = c + x: volt
    v2 = 2*c + x : volt
    c : volt (constant)"""

#: b2mf's all_constant_model (the penalty test)
all_constant_model = """
    v = 10*mV + x: volt
    c : volt (constant)
    penalty_fixed = 10*mV**2: volt**2
    penalty_wrong_unit = 10*mV : volt"""

#: b2mf's multiobjective_model (two ODEs)
multiobjective_model = """
dvar1/dt = (target1 - var1 + x)/(5*ms) : 1
dvar2/dt = (target2 - var2)/(5*ms) : volt
target1 : 1 (constant)
target2 : volt (constant)"""
