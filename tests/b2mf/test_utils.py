"""Port of brian2modelfitting/tests/test_utils.py (callback helpers, make_dic).

The helpers are ``neurofit.fitting.callbacks``'s, imported from ``neurofit`` where
``from brian2modelfitting import callback_text, ...`` would be swapped to (b2mf's test takes ``ProgressBar`` from
``brian2modelfitting.utils``; neurofit exports it at top level too).
"""
import tqdm
from numpy.testing import assert_equal

from neurofit import ProgressBar, callback_none, callback_setup, callback_text, make_dic

ARGS = ([1, 2, 3], [1.2, 2.3, 0.1], {"a": 3}, 0.1, 2, {"output_var": "v"})


def test_callback_text(capsys):
    callback_text(*ARGS)
    out, _ = capsys.readouterr()
    # b2mf's test only calls it; its callback_text prints these two lines (an earlier version checked one line)
    assert out == "Round 2: Best parameters a=3\n         Best error: 0.1 (v)\n"


def test_callback_none():
    c = callback_none(*ARGS)
    assert isinstance(c, type(None))


def test_ProgressBar():
    pb = ProgressBar(total=10)
    assert isinstance(pb.t, tqdm.tqdm)
    pb(*ARGS)
    assert pb.t.n == 1


def test_callback_setup():
    c = callback_setup("text", 10)
    assert c == callback_text
    c = callback_setup("progressbar", 10)
    assert isinstance(c, ProgressBar)
    c = callback_setup(None, 10)
    assert callable(c)
    x = c(*ARGS)
    assert x is None

    def callback(params, errors, best_params, best_error, index, additional_index):
        return params
    c = callback_setup(callback, 10)
    assert callable(c)
    x = c(*ARGS)
    assert_equal(x, [1, 2, 3])


def test_make_dic():
    names = ["a", "b"]
    values = [1, 2]
    result_dic = make_dic(names, values)
    assert isinstance(result_dic, dict)
    assert_equal(result_dic, {"a": 1, "b": 2})
