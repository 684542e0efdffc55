"""Feature objectives as the field builds them: eFEL settings, spike visibility, targets as mean ± SD.

- eFEL settings (``Threshold``, ``interp_step``, ``DerivativeThreshold``, ...; the fields of ``efel.Settings``, in
  eFEL's units: mV, ms) are checked by name (``check_efel_settings``) and applied to one extraction at a time
  (``applied_efel_settings``): every extraction runs with eFEL's defaults updated by the given settings, whatever
  eFEL's global settings are, and eFEL's global settings are restored afterwards, so one metric's settings never
  leak into another's.
- Spike visibility: eFEL sees a spike only where the trace crosses its ``Threshold`` (default -20 mV). A model whose
  threshold condition resets the potential (AdEx: ``v > VT + 5*DeltaT`` then ``v = Vr``) never records a potential
  above that condition's right-hand side; ``spike_ceiling`` gives it over the parameter bounds, and
  ``FeatureMetric.check_model`` turns "below eFEL's Threshold" into a one-line ``SpikeVisibilityError`` (or, with
  ``adjust_threshold``, a lower Threshold) instead of a fit that silently runs on the missing-feature penalty.
- Targets from recordings (``feature_targets``): per feature the mean ± SD over repeated sweeps (or cells), the SD
  floored (``SD_FLOOR`` × |mean|, and an absolute floor per feature); ``FeatureMetric(..., targets=...)`` then scores
  each feature as the z-score |model − mean| / SD.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import NeurofitError
from ..units import TIME, to_si

__all__ = ["FeatureTargets", "feature_targets", "repeat_groups", "spike_ceiling", "check_efel_settings",
           "applied_efel_settings", "extract_features", "SpikeVisibilityError", "MissingFeatureWarning"]

#: Relative SD floor: a target's SD is at least this fraction of |mean| (BluePyEfe/BluePyEM's
#: ``threshold_efeature_std``, commonly 0.05).
SD_FLOOR = 0.05
#: Absolute SD floors per feature, in the feature's eFEL unit: spike counts of identical repeats have SD 0,
#: so a one-spike difference is taken as one SD.
SD_FLOOR_ABSOLUTE = {"spike_count": 1.0}
#: Absolute SD floor of every other feature (eFEL units; BluePyEfe's ``default_std_value``).
SD_FLOOR_DEFAULT = 1e-3
#: z-score of a feature found in only one of model and target (BluePyOpt's default ``max_score``).
MISSING_ZSCORE = 250.0
#: adjust_threshold puts eFEL's Threshold this far (mV) below the model's lowest reachable potential.
THRESHOLD_MARGIN = 5.0


class SpikeVisibilityError(NeurofitError):
    """The model's spikes cannot reach eFEL's Threshold: every spike feature would be the missing-feature penalty."""


class MissingFeatureWarning(UserWarning):
    """Every candidate evaluated together lacked eFEL features the data (targets) have, on every trace."""


# --- eFEL settings ----------------------------------------------------------------------------------------

def efel_setting_names() -> list[str]:
    """Returns the names of eFEL's settings (the fields of ``efel.Settings``), in eFEL's order."""
    import efel

    return [f.name for f in dataclasses.fields(efel.Settings)]


def efel_defaults() -> dict:
    """Returns eFEL's default settings, name → value (a fresh ``efel.Settings()``)."""
    import efel

    return dataclasses.asdict(efel.Settings())


def efel_setting_problem(name, value) -> str | None:
    """Why eFEL cannot take ``value`` for setting ``name`` (one line), or None when it can.

    name: an eFEL setting name (e.g. "Threshold"); value: its value in eFEL's units (mV, ms). Returns the reason
    (an unknown name, naming close matches and every valid name; a value eFEL cannot convert) or None.
    """
    import efel

    names = efel_setting_names()
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return f"unknown eFEL setting '{name}' ({hint}valid: {', '.join(names)})"
    try:
        efel.Settings().set_setting(name, value)
    except (ValueError, TypeError, FileNotFoundError) as err:
        return f"{value!r} is not a value for eFEL setting '{name}': {' '.join(str(err).split())} (eFEL settings " \
               f"are plain numbers in eFEL's units: mV, ms)"
    return None


def check_efel_settings(settings: Mapping | None, where: str = "efel_settings") -> dict:
    """Checked eFEL settings: name → value converted to the setting's type (as ``efel.set_setting`` does).

    settings: setting name → value in eFEL's units (mV, ms), e.g. {"Threshold": -45, "interp_step": 0.025}, or
    None (no settings); where: the name used in error messages. Returns a new dict. Raises ValueError (one line)
    for a name that is not an eFEL setting (naming the close matches and every valid name) or a value eFEL cannot
    convert.
    """
    import efel

    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ValueError(f"{where} must be a mapping of eFEL setting names to values, got {type(settings).__name__}")
    scratch, checked = efel.Settings(), {}
    for name, value in settings.items():
        problem = efel_setting_problem(name, value)
        if problem:
            raise ValueError(f"{where}: {problem}")
        scratch.set_setting(name, value)
        checked[name] = getattr(scratch, name)
    return checked


@contextlib.contextmanager
def applied_efel_settings(settings: Mapping | None):
    """Context manager: eFEL extracts with its defaults updated by ``settings``; its settings are restored after.

    settings: checked settings (``check_efel_settings``), name → value, or None (eFEL's defaults). Every field of
    eFEL's current settings object is set on entry and put back on exit, so neither eFEL's global settings nor
    another metric's settings affect the extraction inside, and nothing set inside remains after it.
    """
    import efel

    current = efel.get_settings()
    wanted = {**efel_defaults(), **dict(settings or {})}
    saved = dict(vars(current))
    try:
        for name, value in wanted.items():
            setattr(current, name, value)
        yield current
    finally:
        for name in list(vars(current)):
            if name not in saved:
                delattr(current, name)
        for name, value in saved.items():
            setattr(current, name, value)


def single_value(name: str, values) -> float | None:
    """The one value of a single-valued eFEL feature; None when eFEL found none; ValueError for several."""
    if values is None or len(values) == 0:
        return None
    if len(values) > 1:
        raise ValueError(f"eFEL feature '{name}' returned {len(values)} values; FeatureMetric needs "
                         f"single-valued features such as spike_count, mean_frequency, "
                         f"time_to_first_spike, voltage_base")
    return float(values[0])


def extract_features(traces, dt: float, stims: Sequence, features: Sequence[str],
                     settings: Mapping | None = None) -> list[dict]:
    """Single-valued eFEL features of every trace, extracted with ``settings``.

    traces: (n_traces, n_steps) membrane potentials in V (sample i at t = i * dt); dt: sampling step in s; stims:
    one (start, end) per trace in s; features: eFEL feature names; settings: checked eFEL settings (None: eFEL's
    defaults). Traces are handed to eFEL in mV and ms. Returns a list over traces of dicts feature → float, or
    None where eFEL found no value. Raises ValueError when a feature returns several values.
    """
    import efel

    traces = np.asarray(traces, dtype=float)
    time_ms = np.arange(traces.shape[-1]) * dt * 1e3
    inputs = [{"T": time_ms, "V": trace * 1e3, "stim_start": [start * 1e3], "stim_end": [end * 1e3]}
              for trace, (start, end) in zip(traces, stims)]
    with applied_efel_settings(settings):
        results = efel.get_feature_values(inputs, list(features), raise_warnings=False)
    return [{name: single_value(name, values) for name, values in result.items()} for result in results]


def stimulus_intervals(stim_times: Sequence, n_traces: int) -> list[tuple[float, float]]:
    """One (start, end) in s per trace from one pair for all traces or one per trace (s or quantity strings).

    stim_times: the pairs; n_traces: the number of traces. Returns the list of n_traces pairs. Raises ValueError
    for no pair, a pair without 0 <= start < end, or a number of pairs that is neither 1 nor n_traces.
    """
    pairs = [(to_si(start, TIME, "stimulus start"), to_si(end, TIME, "stimulus end")) for start, end in stim_times]
    if not pairs:
        raise ValueError("stim_times must give at least one (start, end) pair")
    for start, end in pairs:
        if not 0 <= start < end:
            raise ValueError(f"stim_times need 0 <= start < end, got ({start}, {end})")
    if len(pairs) not in (1, n_traces):
        raise ValueError(f"stim_times has {len(pairs)} intervals for {n_traces} traces "
                         f"(give one per trace, or one for all)")
    return pairs * n_traces if len(pairs) == 1 else pairs


# --- targets from recordings ------------------------------------------------------------------------------

@dataclasses.dataclass
class FeatureTargets:
    """Per feature and group of repeated sweeps: mean ± SD (floored) of the recorded feature values.

    features: the feature names (columns); mean, sd, raw_sd: (n_groups, n_features) arrays in eFEL's units: the
    mean over the sweeps where eFEL found the feature, the SD used by z-scores (floored) and the sample SD before
    the floors (numpy's ``std``, ddof 0); NaN where no sweep of the group has the feature. count: (n_groups,
    n_features) int, sweeps that have the feature. groups: the group labels, in order of first appearance;
    trace_group: (n_traces,) int, the group (row) of every sweep, or None when one group serves every trace.
    values: (n_traces, n_features) the extracted values (NaN: not found), or None. efel_settings: the eFEL
    settings of the extraction (compared with a FeatureMetric's own). Rows of ``trace_group`` are matched to the
    fitted traces by index: sweep k of the recordings is trace k of the fit.
    """

    features: list
    mean: np.ndarray
    sd: np.ndarray
    raw_sd: np.ndarray
    count: np.ndarray
    groups: list = dataclasses.field(default_factory=lambda: [0])
    trace_group: np.ndarray | None = None
    values: np.ndarray | None = None
    efel_settings: dict | None = None

    @classmethod
    def of(cls, targets: Mapping) -> "FeatureTargets":
        """Targets given directly, the same for every trace: feature → (mean, sd) in eFEL's units.

        targets: feature name → (mean, sd) with sd > 0 (used as given, no floors). Returns the FeatureTargets
        (one group, no eFEL settings recorded). Raises ValueError for an SD that is not a positive finite number.
        """
        names = list(targets)
        mean = np.array([[float(targets[n][0]) for n in names]])
        sd = np.array([[float(targets[n][1]) for n in names]])
        bad = [n for n, s in zip(names, sd[0]) if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ValueError(f"targets['{bad[0]}']: the SD must be a positive number, got {targets[bad[0]][1]!r}")
        return cls(names, mean, sd, sd.copy(), np.ones_like(mean, dtype=int))

    def rows(self, traces: np.ndarray, n_total: int) -> np.ndarray:
        """Returns the group (row of mean / sd) of each trace index in ``traces`` out of ``n_total`` traces.

        traces: int array of trace indices; n_total: the number of traces the metric is given. Raises ValueError
        when the targets hold several groups but not one per trace.
        """
        if self.trace_group is None or len(self.groups) == 1:
            return np.zeros(len(traces), dtype=int)
        if len(self.trace_group) != n_total:
            raise ValueError(f"the feature targets give groups of {len(self.trace_group)} sweeps, but the fit has "
                             f"{n_total} traces (compute the targets from the fitted sweeps)")
        return np.asarray(self.trace_group)[np.asarray(traces, dtype=int)]

    def as_dict(self) -> dict:
        """Returns the targets as plain data: group label → feature → {"mean", "sd", "raw_sd", "n"} (None: NaN)."""
        def number(x):
            return float(x) if math.isfinite(x) else None
        return {str(label): {name: {"mean": number(self.mean[g, f]), "sd": number(self.sd[g, f]),
                                    "raw_sd": number(self.raw_sd[g, f]), "n": int(self.count[g, f])}
                             for f, name in enumerate(self.features)}
                for g, label in enumerate(self.groups)}


def floored_sd(feature: str, mean: float, sd: float, sd_floor: float = SD_FLOOR,
               abs_floor: Mapping | None = None) -> float:
    """The SD used for a z-score: max(sd, sd_floor × |mean|, the feature's absolute floor); NaN for a NaN mean.

    feature: the eFEL feature name; mean, sd: the target's mean and sample SD (eFEL units); sd_floor: relative
    floor; abs_floor: feature → absolute floor, over ``SD_FLOOR_ABSOLUTE`` (other features: ``SD_FLOOR_DEFAULT``).
    Returns the floored SD.
    """
    if not math.isfinite(mean):
        return math.nan
    floors = {**SD_FLOOR_ABSOLUTE, **dict(abs_floor or {})}
    return max(sd, sd_floor * abs(mean), floors.get(feature, SD_FLOOR_DEFAULT))


def feature_targets(traces, dt, stim_times: Sequence, features: Sequence[str], efel_settings: Mapping | None = None,
                    groups: Sequence | None = None, sd_floor: float = SD_FLOOR, abs_floor: Mapping | None = None,
                    lengths=None) -> FeatureTargets:
    """Targets from recordings: per feature the mean ± SD over repeated sweeps (or cells), with SD floors.

    traces: (n_traces, n_steps) recorded membrane potentials in V; dt: sampling step, s or a quantity string;
    stim_times: one (start, end) for every sweep or one per sweep (s or quantity strings); features: single-valued
    eFEL feature names; efel_settings: eFEL settings of the extraction (name → value in mV / ms; None: eFEL's
    defaults); groups: one label per sweep, sweeps with the same label are repeats of one stimulus (or cells under
    one protocol) and get one target, or None (all sweeps one group); sd_floor: relative SD floor (fraction of
    |mean|), >= 0; abs_floor: feature → absolute SD floor in its eFEL unit, over ``SD_FLOOR_ABSOLUTE`` (others:
    ``SD_FLOOR_DEFAULT``); lengths: (n_traces,) samples of each sweep (padded traces), or None.

    The rule: mean and SD (numpy, ddof 0) over the sweeps of a group where eFEL finds the feature; SD used =
    max(SD, sd_floor × |mean|, absolute floor). Returns a ``FeatureTargets``. Raises ValueError for bad shapes,
    stimulus times, settings, groups or floors, or a feature eFEL does not know.
    """
    import efel

    dt = to_si(dt, TIME, "dt")
    traces = np.asarray(traces, dtype=float)
    if traces.ndim == 1:
        traces = traces[None, :]
    if traces.ndim != 2 or not traces.size:
        raise ValueError(f"traces must be an (n_traces, n_steps) array, got shape {traces.shape}")
    n_traces = traces.shape[0]
    known = set(efel.get_feature_names())
    unknown = [f for f in features if f not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=3)
        raise ValueError(f"unknown eFEL feature '{unknown[0]}'" + (f" (did you mean {', '.join(close)}?)" if close
                                                                   else " (see efel.get_feature_names())"))
    if not (math.isfinite(sd_floor) and sd_floor >= 0):
        raise ValueError(f"sd_floor must be a number >= 0, got {sd_floor!r}")
    bad = [f for f, v in dict(abs_floor or {}).items() if not (math.isfinite(float(v)) and float(v) >= 0)]
    if bad:
        raise ValueError(f"abs_floor['{bad[0]}'] must be a number >= 0")
    settings = check_efel_settings(efel_settings)
    stims = stimulus_intervals(stim_times, n_traces)
    labels = [0] * n_traces if groups is None else list(groups)
    if len(labels) != n_traces:
        raise ValueError(f"groups has {len(labels)} labels for {n_traces} sweeps (give one per sweep)")
    order = list(dict.fromkeys(labels))
    trace_group = np.array([order.index(label) for label in labels], dtype=int)
    ends = [traces.shape[1]] * n_traces if lengths is None else [int(n) for n in lengths]
    extracted = [extract_features(trace[None, :n], dt, [stim], features, settings)[0]
                 for trace, n, stim in zip(traces, ends, stims)]
    values = np.array([[math.nan if e[f] is None else e[f] for f in features] for e in extracted], dtype=float)
    shape = (len(order), len(features))
    mean, raw_sd, sd, count = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(
        shape, dtype=int)
    for g in range(len(order)):
        for f, name in enumerate(features):
            found = values[trace_group == g, f]
            found = found[np.isfinite(found)]
            count[g, f] = found.size
            if found.size:
                mean[g, f], raw_sd[g, f] = np.mean(found), np.std(found)
                sd[g, f] = floored_sd(name, mean[g, f], raw_sd[g, f], sd_floor, abs_floor)
    return FeatureTargets(list(features), mean, sd, raw_sd, count, order, trace_group, values, settings)


def repeat_groups(inputs: Mapping, lengths=None, rtol: float = 1e-6) -> list[int]:
    """Group labels of the sweeps: sweeps with the same inputs (and length) are repeats and share a label.

    inputs: input name → (n_traces, n_steps) array (e.g. {"I": currents}); lengths: (n_traces,) samples of each
    sweep, or None; rtol: inputs equal within rtol × the largest |input| are the same. Returns a list of int
    labels (0, 1, ... in order of first appearance), one per sweep.
    """
    arrays = [np.asarray(a, dtype=float) for a in inputs.values()]
    n = arrays[0].shape[0] if arrays else 0
    ends = [None] * n if lengths is None else [int(k) for k in lengths]
    scales = [max(float(np.nanmax(np.abs(a))), 0.0) if a.size else 0.0 for a in arrays]
    labels, first = [], []
    for k in range(n):
        for label, j in enumerate(first):
            if ends[k] == ends[j] and all(np.allclose(a[k], a[j], rtol=0, atol=rtol * s) for a, s in zip(arrays, scales)):
                labels.append(label)
                break
        else:
            labels.append(len(first))
            first.append(k)
    return labels


# --- spike visibility -------------------------------------------------------------------------------------

def spike_ceiling(model, bounds: Mapping | None = None, output: str = "v") -> tuple[float, float, str] | None:
    """The highest potential a model with a reset can record: (lowest, highest) over the bounds, and the condition.

    A model whose threshold condition is ``output > expr`` (or ``>=``; expr of parameters and constants only) and
    whose reset sets ``output`` records no sample above ``expr``: the step that crosses it is reset before it is
    recorded (the AdEx's ``v > VT + 5*DeltaT``, ``v = Vr`` records at most VT + 5ΔT).

    model: a ``neurofit.Model`` (or equations text); bounds: parameter → (low, high) (extra items such as "log"
    ignored) or a single value, SI, for the parameters in expr (None: none); output: the recorded variable.
    Returns (lowest, highest, condition text) of expr over the corners of the bounds box, in the output's SI unit
    (exact for an expr monotone in each parameter, such as VT + 5*DeltaT), or None when the model has no such
    ceiling (no threshold, a reset that leaves ``output`` alone, a condition on something else, or a parameter of
    expr without bounds).
    """
    import sympy

    from ..equations.model import as_model

    model = as_model(model)
    condition = getattr(model, "threshold", None)
    if condition is None or not any(st.target == output for st in model.reset):
        return None
    var = model.symbol(output)
    if isinstance(condition, (sympy.StrictGreaterThan, sympy.GreaterThan)):
        lhs, rhs = condition.lhs, condition.rhs
    elif isinstance(condition, (sympy.StrictLessThan, sympy.LessThan)):
        lhs, rhs = condition.rhs, condition.lhs
    else:
        return None
    if lhs != var:
        return None
    rhs = model.expand(rhs)
    names = sorted(str(s) for s in rhs.free_symbols)
    bounds = dict(bounds or {})
    if any(name not in model.parameters or name not in bounds for name in names):
        return None
    ranges = []
    for name in names:
        b = bounds[name]
        pair = [float(to_si(x, name=name)) for x in (b[:2] if isinstance(b, (list, tuple)) else [b, b])]
        ranges.append(sorted(pair))
    function = sympy.lambdify([model.symbol(n) for n in names], rhs, "math")
    values = [float(function(*corner)) for corner in itertools.product(*ranges)] if names else [float(rhs)]
    text = getattr(model, "threshold_text", None) or str(condition)
    return min(values), max(values), text
