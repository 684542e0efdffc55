"""brian2modelfitting's fitting utilities: the per-round reports of ``Fitter.fit`` and two table helpers.

A callback is called after every round of a fit as ``callback(params, errors, best_params, best_error, index,
additional_info)``: the round's candidates (a list of dicts parameter → SI float) and their errors
((n_samples,) floats), the best parameters (dict) and error (float) so far, the round's index (from 0) and a
dict of extra information (brian2modelfitting's fitters put ``output_var``, a list of the fitted outputs, and
with several outputs ``objective_errors`` / ``objective_errors_normalized``, one error per output). A fit
stops early when its callback returns True.

- ``callback_text`` prints the round's best parameters and error, ``callback_none`` nothing, a ``ProgressBar``
  advances a tqdm bar; ``callback_setup(callback, n_rounds)`` turns ``fit``'s ``callback=`` argument ("text",
  "progressbar", None or a function) into one of them.
- ``make_dic(names, values)`` pairs names with values; ``get_param_dic(params, param_names, n_traces,
  n_samples)`` spreads parameter sets over the traces they are simulated on (brian2modelfitting's layout of
  ``n_samples * n_traces`` neurons, sample by sample).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import NeurofitError

__all__ = ["callback_text", "callback_none", "ProgressBar", "callback_setup", "make_dic", "get_param_dic",
           "CallbackError", "ParameterValuesError"]


class CallbackError(NeurofitError, TypeError):
    """A ``callback`` that is neither "text", "progressbar", None nor a function: a NeurofitError that is also a
    TypeError, the class brian2modelfitting raises."""


class ParameterValuesError(NeurofitError):
    """Names and values that do not pair up (``make_dic``, ``get_param_dic``)."""


def callback_text(params, errors, best_params, best_error, index, additional_info=None) -> None:
    """Print the round's best parameters and error, as brian2modelfitting's ``callback_text`` (``fit``'s
    ``callback="text"``).

    params: the round's candidates (list of dicts, not used); errors: their errors ((n_samples,) floats, not
    used); best_params: the best parameters so far, dict name → SI float; best_error: the best error so far
    (float); index: the round's index (int, from 0); additional_info: dict or None - ``output_var`` (list of the
    fitted outputs) names the output after the error, and with several outputs ``objective_errors`` and
    ``objective_errors_normalized`` (one float per output) show the best error as their sum. Prints two lines,
    ``Round <index>: Best parameters a=..., b=...`` and ``Best error: ...`` (3 and 4 significant digits);
    returns None.
    """
    info = dict(additional_info or {})
    shown = ", ".join(f"{name}={value:.3g}" for name, value in sorted(best_params.items()))
    head = f"Round {index}: "
    outputs = info.get("output_var", [])
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    objective = list(info.get("objective_errors", []))
    if len(objective) > 1:
        normalized = list(info.get("objective_errors_normalized", objective))
        parts = []
        for raw, normed, name in zip(objective, normalized, outputs):
            raw_part = "" if raw == normed else f", unnormalized error: {raw:.3g}"
            parts.append(f"{normed:.3g} ({name}{raw_part})")
        tail = f" = {' + '.join(parts)}"
    else:
        tail = f" ({outputs[0]})" if outputs else ""
    print(f"{head}Best parameters {shown}\n{' ' * len(head)}Best error: {best_error:.4g}{tail}")


def callback_none(params, errors, best_params, best_error, index, additional_info=None) -> None:
    """The silent callback (``fit``'s ``callback=None``), as brian2modelfitting's ``callback_none``.

    params, errors, best_params, best_error, index, additional_info: a round's report (see ``callback_text``),
    ignored. Returns None.
    """


class ProgressBar:
    """A tqdm progress bar advancing one step per round (``fit``'s ``callback="progressbar"``), as
    brian2modelfitting's ``ProgressBar``; it shows the best error so far and closes after ``total`` rounds.

    total: the number of rounds (int), or None for a bar without an end (e.g. refine's evaluations); kwds: further
    keyword arguments of ``tqdm`` (e.g. ``desc="fit"``, ``disable=True``). The bar is the attribute ``t`` (a
    ``tqdm.tqdm``; a notebook widget under Jupyter).
    """

    def __init__(self, total: int | None = None, **kwds):
        from tqdm.auto import tqdm
        self.t = tqdm(total=total, **kwds)

    def __call__(self, params, errors, best_params, best_error, index, additional_info=None) -> None:
        """Advance the bar by one round and show ``best_error``.

        params, errors, best_params, index, additional_info: the round's report (see ``callback_text``; not used);
        best_error: the best error so far (float), shown after the bar. Returns None; the bar closes when it
        reaches its total.
        """
        self.t.update(1)
        self.t.set_postfix(best_error=f"{best_error:.4g}")
        if self.t.total is not None and self.t.n >= self.t.total:
            self.t.close()


def callback_setup(set_type, n_rounds: int | None):
    """The per-round report ``fit`` calls, from its ``callback=`` argument (brian2modelfitting's
    ``callback_setup``).

    set_type: "text" (→ ``callback_text``), "progressbar" (→ a ``ProgressBar`` of ``n_rounds`` steps), None (→
    ``callback_none``) or any callable with the six arguments of a report (returned as it is); n_rounds: the
    rounds of the fit (int), or None for a progress bar without an end. Returns the callable. Raises
    CallbackError (a NeurofitError and a TypeError) for anything else.
    """
    if set_type is None:
        return callback_none
    if isinstance(set_type, str):
        if set_type == "text":
            return callback_text
        if set_type == "progressbar":
            return ProgressBar(n_rounds)
    elif callable(set_type):
        return set_type
    raise CallbackError(f"callback = {set_type!r}: valid values are 'text', 'progressbar', None or a function "
                        f"f(params, errors, best_params, best_error, index, additional_info)")


def make_dic(names: Sequence[str], values: Sequence) -> dict:
    """A dict name → value, as brian2modelfitting's ``make_dic``.

    names: the keys (e.g. parameter names); values: one value per name (numbers, arrays, ...). Returns the dict
    ``{names[i]: values[i]}``. Raises ParameterValuesError when the two have different lengths.
    """
    names, values = list(names), list(values)
    if len(names) != len(values):
        raise ParameterValuesError(f"make_dic: {len(names)} names but {len(values)} values")
    return dict(zip(names, values))


def get_param_dic(params, param_names: Sequence[str], n_traces: int, n_samples: int) -> dict:
    """Parameter sets spread over the traces they are simulated on, as brian2modelfitting's ``get_param_dic``.

    params: the n_samples parameter sets, each a dict name → value or a sequence of values in ``param_names``
    order (SI floats); param_names: the parameters to take; n_traces: the input traces every set is simulated
    on; n_samples: the number of sets. Returns a dict name → float array of n_samples * n_traces values, set by
    set: ``[set 0 on trace 0, ..., set 0 on trace n_traces-1, set 1 on trace 0, ...]``. Raises
    ParameterValuesError when params has not n_samples sets or a set lacks a parameter (or has not one value
    per name).
    """
    names = list(param_names)
    sets = list(params)
    if len(sets) != n_samples:
        raise ParameterValuesError(f"get_param_dic: {len(sets)} parameter sets for n_samples = {n_samples}")
    rows = []
    for k, one in enumerate(sets):
        if isinstance(one, Mapping):
            missing = [name for name in names if name not in one]
            if missing:
                raise ParameterValuesError(f"get_param_dic: parameter set {k} has no {', '.join(missing)}")
            rows.append([one[name] for name in names])
        else:
            values = list(np.ravel(one))
            if len(values) != len(names):
                raise ParameterValuesError(f"get_param_dic: parameter set {k} has {len(values)} values for "
                                           f"{len(names)} names ({', '.join(names)})")
            rows.append(values)
    table = np.repeat(np.asarray(rows, dtype=np.float64).reshape(len(sets), len(names)), n_traces, axis=0)
    return {name: table[:, j] for j, name in enumerate(names)}
