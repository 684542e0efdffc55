"""Fit errors between model results and data: one error per parameter set.

Every metric has ``calc(model_results, data, dt) -> errors (n_sets,)``, computed in two user
hooks: ``get_features`` (one value per parameter set and input trace, shape
``(n_sets, n_traces)``) and ``get_errors`` (features → errors, default: mean over traces).

- Trace metrics (``TraceMetric``, ``MSEMetric``, ``FeatureMetric``) take model traces of shape
  ``(n_sets, n_traces, n_steps)`` and data traces ``(n_traces, n_steps)`` in SI units; sample
  ``i`` is at time ``i * dt``. A parameter set whose traces hold NaN/inf anywhere diverged: its
  error is ``inf`` and it is not passed to ``get_features``.
- Spike metrics (``SpikeMetric``, ``GammaFactor``) take model spikes as a list over parameter
  sets of lists over traces of spike-time arrays (s), and data spikes as a list over traces.
  Spike trains of recorded traces come from the package's one detector,
  ``neurofit.data.spikes.detect_spikes`` (upward crossings, 1 ms dead time).

Times (``dt``, ``t_start``, ``delta``, ``time``, ``stim_times``) may be SI floats or quantity
strings such as ``"2 ms"``.
"""
from __future__ import annotations

import abc
import difflib
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..units import TIME, to_si

__all__ = ["Metric", "TraceMetric", "SpikeMetric", "MSEMetric", "GammaFactor", "FeatureMetric"]

#: Added to |data feature| in FeatureMetric's default relative difference.
FEATURE_EPSILON = 1e-3
#: FeatureMetric error for a feature that eFEL finds in only one of model and data.
MISSING_FEATURE_PENALTY = 1e6


def _time(value, name: str) -> float:
    return to_si(value, TIME, name)


def _dt(value) -> float:
    dt = _time(value, "dt")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    return dt


def first_step(t_start: float, dt: float) -> int:
    """Index of the first sample with ``i * dt >= t_start`` (tolerating rounding)."""
    x = t_start / dt
    nearest = round(x)
    return int(nearest) if math.isclose(x, nearest, rel_tol=1e-9, abs_tol=1e-9) else math.ceil(x)


class Metric(abc.ABC):
    """Base of all metrics: ``calc`` = ``get_errors(get_features(model, data, dt))``."""

    def calc(self, model_results, data, dt) -> np.ndarray:
        """Errors of shape ``(n_sets,)``; NaN errors become ``inf``."""
        dt = _dt(dt)
        errors = np.asarray(self.get_errors(self.get_features(model_results, data, dt)), dtype=float)
        return np.where(np.isnan(errors), np.inf, errors)

    @abc.abstractmethod
    def get_features(self, model_results, data, dt: float) -> np.ndarray:
        """One feature/error per parameter set and trace: shape ``(n_sets, n_traces)``."""

    def get_errors(self, features) -> np.ndarray:
        """Features ``(n_sets, n_traces)`` → errors ``(n_sets,)``; default: mean over traces."""
        return np.mean(np.asarray(features, dtype=float), axis=1)


class TraceMetric(Metric):
    """Metric on traces. ``calc`` drops samples with ``t < t_start`` and divides traces by
    ``normalization`` (a number or quantity string such as ``"10 mV"``) before
    ``get_features(model_traces, data_traces, dt)``."""

    def __init__(self, t_start=0.0, normalization=1.0):
        self.t_start = _time(t_start, "t_start")
        if self.t_start < 0:
            raise ValueError(f"t_start must be >= 0, got {self.t_start}")
        self.normalization = to_si(normalization, name="normalization")
        if not (math.isfinite(self.normalization) and self.normalization != 0):
            raise ValueError(f"normalization must be a finite non-zero number, got {normalization!r}")

    def calc(self, model_traces, data_traces, dt) -> np.ndarray:
        dt = _dt(dt)
        model = np.asarray(model_traces, dtype=float)
        data = np.asarray(data_traces, dtype=float)
        if model.ndim != 3 or data.ndim != 2 or model.shape[1:] != data.shape:
            raise ValueError(f"model traces must have shape (n_sets, n_traces, n_steps) and data traces "
                             f"(n_traces, n_steps) with matching sizes, got {model.shape} and {data.shape}")
        if not np.isfinite(data).all():
            bad = sorted(set(np.nonzero(~np.isfinite(data))[0].tolist()))
            raise ValueError(f"data traces {bad} contain NaN or inf values")
        start = first_step(self.t_start, dt)
        if start >= data.shape[1]:
            raise ValueError(f"t_start = {self.t_start} s leaves no samples in traces of "
                             f"{data.shape[1]} steps of dt = {dt} s")
        ok = np.isfinite(model).all(axis=(1, 2))
        errors = np.full(model.shape[0], np.inf)
        if ok.any():
            errors[ok] = super().calc(model[ok, :, start:] / self.normalization,
                                      data[:, start:] / self.normalization, dt)
        return errors


class SpikeMetric(Metric):
    """Metric on spike trains; ``calc`` drops spikes before ``t_start`` and sorts the rest
    before ``get_features(model_spikes, data_spikes, dt)``."""

    def __init__(self, t_start=0.0):
        self.t_start = _time(t_start, "t_start")

    def calc(self, model_spikes, data_spikes, dt) -> np.ndarray:
        def clean(train):
            train = np.sort(np.asarray(train, dtype=float).ravel())
            return train[train >= self.t_start]

        data = [clean(train) for train in data_spikes]
        model = []
        for i, one_set in enumerate(model_spikes):
            if len(one_set) != len(data):
                raise ValueError(f"model spikes of parameter set {i} have {len(one_set)} trains, "
                                 f"data have {len(data)}")
            model.append([clean(train) for train in one_set])
        return super().calc(model, data, dt)


class MSEMetric(TraceMetric):
    """Mean over traces and time of ``((model - data) / normalization)**2``.

    Samples with ``t < t_start`` are excluded; ``t_weights`` (one non-negative weight per
    sample of the full traces) turns the time mean into a weighted mean. A parameter set with
    NaN/inf in its traces gets error ``inf``.
    """

    def __init__(self, t_start=0.0, t_weights=None, normalization=1.0):
        super().__init__(t_start=t_start, normalization=normalization)
        if t_weights is not None:
            t_weights = np.asarray(t_weights, dtype=float)
            if t_weights.ndim != 1 or not np.isfinite(t_weights).all() or (t_weights < 0).any():
                raise ValueError("t_weights must be a 1-d array of finite, non-negative weights (one per time step)")
            if not t_weights.any():
                raise ValueError("t_weights are all zero: at least one time step needs a positive weight")
        self.t_weights = t_weights

    def calc(self, model_traces, data_traces, dt) -> np.ndarray:
        n_steps = np.shape(data_traces)[-1]
        if self.t_weights is not None and self.t_weights.size != n_steps:
            raise ValueError(f"t_weights has {self.t_weights.size} entries but the traces have {n_steps} steps")
        return super().calc(model_traces, data_traces, dt)

    def get_features(self, model_traces, data_traces, dt) -> np.ndarray:
        squared = (np.asarray(model_traces) - np.asarray(data_traces)) ** 2
        if self.t_weights is None:
            return squared.mean(axis=2)
        # traces may start at t_start: the weights of the kept samples are the last ones
        weights = self.t_weights[self.t_weights.size - squared.shape[2]:]
        if not weights.any():
            raise ValueError("t_weights are zero for every sample at or after t_start")
        return (squared * weights).sum(axis=2) / weights.sum()


def _coincidences(model: np.ndarray, data: np.ndarray, delta: int) -> int:
    """Number of data spikes matched one-to-one to model spikes within ±delta (sorted ints)."""
    count = i = 0
    for spike in data:
        while i < len(model) and model[i] < spike - delta:
            i += 1
        if i < len(model) and model[i] <= spike + delta:
            count += 1
            i += 1
    return count


class GammaFactor(SpikeMetric):
    """Coincidence factor error, as brian2modelfitting's ``GammaFactor``.

    With spike times rounded to the ``dt`` grid, coincidences ``N_coinc`` are data spikes with
    a model spike within ±``delta`` (each spike of either train used at most once), and with
    rates ``r = N / (time - t_start)``::

        gamma = (N_coinc - 2 delta N_data r_data) / (0.5 (1 - 2 delta r_data) (N_model + N_data))
        error = 1 - gamma  [+ 2 |r_model - r_data| / r_data   if rate_correction]

    averaged over traces. Identical trains give 0; independent trains about 1 (+ rate term).
    A trace whose data has no spikes gives 0 if the model is silent too, else 1 (+ 2 N_model
    with rate_correction, i.e. r_data taken as one spike per duration).
    """

    def __init__(self, delta, time, rate_correction: bool = True, t_start=0.0):
        super().__init__(t_start=t_start)
        self.delta = _time(delta, "delta")
        self.time = _time(time, "time")
        self.rate_correction = bool(rate_correction)
        if not self.delta > 0:
            raise ValueError(f"delta must be positive, got {self.delta}")
        if not self.time > self.t_start:
            raise ValueError(f"time (total duration, {self.time} s) must exceed t_start ({self.t_start} s)")

    def get_features(self, model_spikes, data_spikes, dt) -> np.ndarray:
        duration = self.time - self.t_start
        delta_steps = int(np.rint(self.delta / dt))
        data = [np.rint(train / dt).astype(np.int64) for train in data_spikes]
        for i, train in enumerate(data):
            if 1 - 2 * self.delta * len(train) / duration <= 0:
                raise ValueError(f"delta = {self.delta} s is too long for data trace {i} "
                                 f"({len(train)} spikes in {duration} s): it must be below "
                                 f"half the mean inter-spike interval")
        features = np.empty((len(model_spikes), len(data)))
        for s, one_set in enumerate(model_spikes):
            for k, (train, target) in enumerate(zip(one_set, data)):
                model = np.rint(train / dt).astype(np.int64)
                features[s, k] = self._error(model, target, delta_steps, duration)
        return features

    def _error(self, model: np.ndarray, data: np.ndarray, delta_steps: int, duration: float) -> float:
        n_model, n_data = len(model), len(data)
        if n_data == 0:
            if n_model == 0:
                return 0.0
            return 1.0 + (2.0 * n_model if self.rate_correction else 0.0)
        r_data, r_model = n_data / duration, n_model / duration
        expected = 2 * self.delta * n_data * r_data
        norm = 0.5 * (1 - 2 * self.delta * r_data)
        gamma = (_coincidences(model, data, delta_steps) - expected) / (norm * (n_model + n_data))
        rate_term = 2 * abs(r_model - r_data) / r_data if self.rate_correction else 0.0
        return 1.0 + rate_term - gamma


def _relative_difference(model_value: float, data_value: float) -> float:
    return abs(model_value - data_value) / (abs(data_value) + FEATURE_EPSILON)


class FeatureMetric(TraceMetric):
    """Match of eFEL features (https://efel.readthedocs.io) between model and data traces.

    ``stim_times``: one ``(start, end)`` per trace, or a single pair for all traces (s or
    quantity strings). ``feat_list``: single-valued eFEL feature names (e.g. ``spike_count``,
    ``mean_frequency``, ``time_to_first_spike``, ``voltage_base``). Traces (V, s) are handed
    to eFEL in mV and ms, so features come in eFEL's units.

    Per trace, the feature error is ``sum_f weights[f] * combine(model_f, data_f)``;
    ``combine`` defaults to ``|model - data| / (|data| + FEATURE_EPSILON)``. A feature eFEL
    finds in only one of model and data costs ``MISSING_FEATURE_PENALTY`` (times its weight);
    missing in both costs 0. Errors are averaged over traces.
    """

    def __init__(self, stim_times: Sequence, feat_list: Sequence[str], weights: Mapping | None = None,
                 combine: Callable[[float, float], float] | None = None):
        super().__init__()
        import efel

        self.stim_times = [(_time(start, "stimulus start"), _time(end, "stimulus end"))
                           for start, end in stim_times]
        for start, end in self.stim_times:
            if not 0 <= start < end:
                raise ValueError(f"stim_times need 0 <= start < end, got ({start}, {end})")
        if not self.stim_times:
            raise ValueError("stim_times must give at least one (start, end) pair")
        self.feat_list = list(feat_list)
        known = set(efel.get_feature_names())
        for name in self.feat_list:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=3)
                raise ValueError(f"unknown eFEL feature '{name}'"
                                 + (f" (did you mean {', '.join(close)}?)" if close else
                                    " (see efel.get_feature_names())"))
        weights = dict(weights or {})
        for name in weights:
            if name not in self.feat_list:
                raise ValueError(f"weight given for '{name}', which is not in feat_list {self.feat_list}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.feat_list}
        self.combine = combine or _relative_difference

    def get_features(self, model_traces, data_traces, dt) -> np.ndarray:
        n_sets, n_traces, _ = np.shape(model_traces)
        if len(self.stim_times) not in (1, n_traces):
            raise ValueError(f"stim_times has {len(self.stim_times)} intervals for {n_traces} traces "
                             f"(give one per trace, or one for all)")
        stims = self.stim_times * n_traces if len(self.stim_times) == 1 else self.stim_times
        data_features = self._efel(data_traces, stims, dt)
        model_features = self._efel(np.reshape(model_traces, (n_sets * n_traces, -1)), stims * n_sets, dt)
        features = np.empty((n_sets, n_traces))
        for s in range(n_sets):
            for k in range(n_traces):
                features[s, k] = self._trace_error(model_features[s * n_traces + k], data_features[k])
        return features

    def _trace_error(self, model: Mapping, data: Mapping) -> float:
        total = 0.0
        for name, weight in self.weights.items():
            m, d = model[name], data[name]
            if m is None and d is None:
                continue
            error = MISSING_FEATURE_PENALTY if m is None or d is None else self.combine(m, d)
            total += weight * error
        return total

    def _efel(self, traces, stims, dt) -> list[dict]:
        import efel

        traces = np.asarray(traces)
        time_ms = np.arange(traces.shape[-1]) * dt * 1e3
        inputs = [{"T": time_ms, "V": trace * 1e3, "stim_start": [start * 1e3], "stim_end": [end * 1e3]}
                  for trace, (start, end) in zip(traces, stims)]
        results = efel.get_feature_values(inputs, self.feat_list, raise_warnings=False)
        return [{name: self._single(name, values) for name, values in result.items()} for result in results]

    @staticmethod
    def _single(name: str, values) -> float | None:
        if values is None or len(values) == 0:
            return None
        if len(values) > 1:
            raise ValueError(f"eFEL feature '{name}' returned {len(values)} values; FeatureMetric needs "
                             f"single-valued features such as spike_count, mean_frequency, "
                             f"time_to_first_spike, voltage_base")
        return float(values[0])
