"""Port of brian2modelfitting/tests/test_utils.py (callback helpers, make_dic).

neurofit builds the same callbacks inside Fitter.fit (callback="text", "progressbar", None or a function, six
arguments as b2mf's) but exports none of the helpers: every test here is item 9. They import from ``neurofit``,
where ``from brian2modelfitting import callback_text, ...`` would be swapped to.
"""
from b2mf_common import gap
from numpy.testing import assert_equal

ARGS = ([1, 2, 3], [1.2, 2.3, 0.1], {"a": 3}, 0.1, 2, {"output_var": "v"})


@gap(9, "no callback_text (b2mf: brian2modelfitting.callback_text)")
def test_callback_text(capsys):
    from neurofit import callback_text
    callback_text(*ARGS)
    out, _ = capsys.readouterr()
    assert "Round 2" in out  # b2mf's test only calls it (an earlier version checked the exact line)


@gap(9, "no callback_none (b2mf: brian2modelfitting.callback_none)")
def test_callback_none():
    from neurofit import callback_none
    c = callback_none(*ARGS)
    assert isinstance(c, type(None))


@gap(9, "no ProgressBar (b2mf: brian2modelfitting.utils.ProgressBar)")
def test_ProgressBar():
    import tqdm

    from neurofit import ProgressBar
    pb = ProgressBar(total=10)
    assert isinstance(pb.t, tqdm.tqdm)
    pb(*ARGS)


@gap(9, "no callback_setup (b2mf: brian2modelfitting.callback_setup); neurofit's is the private "
        "fitting.fitters._make_callback")
def test_callback_setup():
    from neurofit import ProgressBar, callback_setup, callback_text
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


@gap(9, "no make_dic (b2mf: brian2modelfitting.make_dic)")
def test_make_dic():
    from neurofit import make_dic
    names = ["a", "b"]
    values = [1, 2]
    result_dic = make_dic(names, values)
    assert isinstance(result_dic, dict)
    assert_equal(result_dic, {"a": 1, "b": 2})
