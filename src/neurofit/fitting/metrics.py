"""Fit errors between model results and data: one error per parameter set.

Every metric has ``calc(model_results, data, dt) -> errors (n_sets,)``, computed in two user
hooks: ``get_features`` (one value per parameter set and input trace, shape
``(n_sets, n_traces)``) and ``get_errors`` (features → errors, default: mean over traces).

- Trace metrics (``TraceMetric``, ``MSEMetric``, ``FeatureMetric``) take model traces of shape
  ``(n_sets, n_traces, n_steps)`` and data traces ``(n_traces, n_steps)`` in SI units; sample
  ``i`` is at time ``i * dt``. A parameter set whose traces hold NaN/inf anywhere diverged: its
  error is ``inf`` and it is not passed to ``get_features``. Traces of different lengths come padded
  to one array with ``lengths=`` (samples per trace): only each trace's own samples count (see
  ``TraceMetric.calc``); without ``lengths`` (or with every trace full) nothing changes.
- Spike metrics (``SpikeMetric``, ``GammaFactor``) take model spikes as a list over parameter
  sets of lists over traces of spike-time arrays (s), and data spikes as a list over traces.
  Spike trains of recorded traces come from the package's one detector,
  ``neurofit.data.spikes.detect_spikes`` (upward crossings, 1 ms dead time).

Times (``dt``, ``t_start``, ``delta``, ``time``, ``stim_times``) may be SI floats or quantity
strings such as ``"2 ms"``.

brian2modelfitting's helpers: ``firing_rate`` (rate of one spike train), ``get_gamma_factor`` (GammaFactor's
error of one pair of trains) and ``calc_eFEL`` (eFEL's results for traces; its stimulus times are in ms, as
brian2modelfitting's).
"""
from __future__ import annotations

import abc
import difflib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..units import TIME, to_si
from .feature_targets import (
    MISSING_ZSCORE,
    THRESHOLD_MARGIN,
    FeatureTargets,
    MissingFeatureWarning,
    SpikeVisibilityError,
    check_efel_settings,
    efel_defaults,
    extract_features,
    single_value,
    spike_ceiling,
)

__all__ = ["Metric", "TraceMetric", "SpikeMetric", "MSEMetric", "GammaFactor", "FeatureMetric", "SpikeTraceMetric",
           "spike_trace_parts", "firing_rate", "get_gamma_factor", "calc_eFEL"]

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


def trace_lengths(lengths, shape: tuple) -> np.ndarray | None:
    """Checked per-trace lengths: None when ``lengths`` is None or every trace is full, else an int64 array.

    lengths: (n_traces,) numbers of valid samples, counted from sample 0 (1 .. n_steps), or None;
    shape: (n_traces, n_steps) of the data. Raises ValueError (one line) for anything else.
    """
    if lengths is None:
        return None
    n_traces, n_steps = shape
    array = np.asarray(lengths)
    if array.shape != (n_traces,) or array.dtype.kind not in "iu" or (array < 1).any() or (array > n_steps).any():
        raise ValueError(f"lengths must be {n_traces} whole numbers of samples between 1 and {n_steps} "
                         f"(one per trace), got {lengths!r}")
    array = array.astype(np.int64)
    return None if bool(np.all(array == n_steps)) else array


def valid_samples(lengths: np.ndarray, n_steps: int, start: int = 0) -> np.ndarray:
    """(n_traces, n_steps - start) bool array, True where sample ``start + k`` lies within its trace.

    lengths: (n_traces,) int samples per trace; n_steps: samples of the padded traces; start: first
    sample kept (``first_step(t_start, dt)``).
    """
    return (np.arange(start, n_steps)[None, :] < np.asarray(lengths)[:, None])


class Metric(abc.ABC):
    """Base of all metrics: ``calc`` = ``get_errors(get_features(model, data, dt))``.

    A custom metric subclasses ``TraceMetric`` or ``SpikeMetric`` and implements ``get_features`` (and,
    to combine traces otherwise than by their mean, ``get_errors``).
    """

    def calc(self, model_results, data, dt) -> np.ndarray:
        """Errors of shape ``(n_sets,)``; NaN errors become ``inf``.

        model_results: the model's results for n_sets parameter sets (trace metrics: an (n_sets, n_traces,
        n_steps) array; spike metrics: a list over sets of lists over traces of spike-time arrays, s); data:
        the recorded data in the same layout without the set axis ((n_traces, n_steps), or a list over traces
        of spike-time arrays, s); dt: time step of the traces / simulation, s or a quantity string ("0.1 ms").
        Returns ``get_errors(get_features(model_results, data, dt))`` as a float array of shape (n_sets,).
        Raises ValueError when dt is not positive, UnitError (a ValueError) when it is not a time.
        """
        dt = _dt(dt)
        errors = np.asarray(self.get_errors(self.get_features(model_results, data, dt)), dtype=float)
        return np.where(np.isnan(errors), np.inf, errors)

    @abc.abstractmethod
    def get_features(self, model_results, data, dt: float) -> np.ndarray:
        """One feature/error per parameter set and trace: shape ``(n_sets, n_traces)``.

        The hook a metric implements. model_results, data: as for ``calc``, after its preparation (trace
        metrics: the samples from t_start on, divided by normalization; spike metrics: sorted spike trains
        without the spikes before t_start); dt: the time step in s (a float). Returns an (n_sets, n_traces)
        array: the feature or error of every parameter set on every trace.
        """

    def get_errors(self, features) -> np.ndarray:
        """Features ``(n_sets, n_traces)`` → errors ``(n_sets,)``; default: mean over traces.

        features: the (n_sets, n_traces) array ``get_features`` returned. Returns an (n_sets,) float array,
        one error per parameter set; override it to combine the traces otherwise (e.g. weighted).
        """
        return np.mean(np.asarray(features, dtype=float), axis=1)


class TraceMetric(Metric):
    """Metric on traces. ``calc`` drops samples with ``t < t_start`` and divides traces by
    ``normalization`` (a number or quantity string such as ``"10 mV"``) before
    ``get_features(model_traces, data_traces, dt)``.

    With ``lengths`` (traces of different lengths padded to one array), ``get_features`` is called once
    per group of traces of one length, on those traces cropped to their length, and ``get_errors``
    combines the features of all traces as usual (``MSEMetric`` instead pools the valid samples).

    t_start: start of the compared window, s or a quantity string ("50 ms"), >= 0; normalization: divisor
    of model and data traces, a number in the traces' SI units (e.g. 0.01 for 10 mV) or a quantity string
    ("10 mV"), finite and non-zero. Raises ValueError for a negative t_start or a zero or non-finite
    normalization, UnitError (a ValueError) for a value that cannot be read.
    """

    #: Whether ``calc`` divides the traces by ``normalization`` (True; ``FeatureMetric`` divides its errors
    #: instead). ``TraceFitter.refine`` takes a fit metric's normalization as the residuals' divisor only then.
    normalizes_traces = True

    def __init__(self, t_start=0.0, normalization=1.0):
        self.t_start = _time(t_start, "t_start")
        if self.t_start < 0:
            raise ValueError(f"t_start must be >= 0, got {self.t_start}")
        self.normalization = to_si(normalization, name="normalization")
        if not (math.isfinite(self.normalization) and self.normalization != 0):
            raise ValueError(f"normalization must be a finite non-zero number, got {normalization!r}")

    def calc(self, model_traces, data_traces, dt, lengths=None) -> np.ndarray:
        """Errors (n_sets,) of model traces (n_sets, n_traces, n_steps) against data traces (n_traces,
        n_steps), SI units, sampled every ``dt`` s.

        model_traces: (n_sets, n_traces, n_steps) array, the simulated output of every parameter set on
        every input trace, in SI units (e.g. V); data_traces: (n_traces, n_steps) recorded traces in the same
        units, finite (within each trace's length); dt: sampling step, s or a quantity string ("0.1 ms");
        sample i is at t = i * dt. lengths: (n_traces,) int, the valid samples of each
        trace from sample 0 (data NaN after them; the model's samples there are ignored), or None (all
        full: the result is then exactly that of the call without lengths).

        Samples before t_start are dropped and both traces divided by normalization (when the metric's
        ``normalizes_traces``) before ``get_features``. Returns a float array (n_sets,): ``get_errors`` of
        the features, inf for a parameter set whose traces hold NaN/inf (within the lengths) or whose error
        is NaN. Raises
        ValueError for shapes that do not match, NaN/inf in the data, a t_start that leaves no sample (in
        some trace), lengths that are not n_traces whole numbers in 1 .. n_steps, or dt not positive;
        UnitError (a ValueError) for a dt that is not a time.
        """
        dt = _dt(dt)
        model = np.asarray(model_traces, dtype=float)
        data = np.asarray(data_traces, dtype=float)
        if model.ndim != 3 or data.ndim != 2 or model.shape[1:] != data.shape:
            raise ValueError(f"model traces must have shape (n_sets, n_traces, n_steps) and data traces "
                             f"(n_traces, n_steps) with matching sizes, got {model.shape} and {data.shape}")
        lengths = trace_lengths(lengths, data.shape)
        finite = np.isfinite(data) if lengths is None else np.isfinite(data) | ~valid_samples(lengths, data.shape[1])
        if not finite.all():
            bad = sorted(set(np.nonzero(~finite)[0].tolist()))
            raise ValueError(f"data traces {bad} contain NaN or inf values" +
                             ("" if lengths is None else " within their lengths"))
        start = first_step(self.t_start, dt)
        if start >= data.shape[1]:
            raise ValueError(f"t_start = {self.t_start} s leaves no samples in traces of "
                             f"{data.shape[1]} steps of dt = {dt} s")
        if lengths is not None:
            return self._calc_padded(model, data, dt, start, lengths)
        ok = np.isfinite(model).all(axis=(1, 2))
        errors = np.full(model.shape[0], np.inf)
        if ok.any():
            scale = self._trace_scale()
            errors[ok] = super().calc(model[ok, :, start:] / scale, data[:, start:] / scale, dt)
        return errors

    def _trace_scale(self) -> float:
        """The divisor of the traces before ``get_features``: ``normalization`` when ``normalizes_traces``."""
        return self.normalization if self.normalizes_traces else 1.0

    def _calc_padded(self, model: np.ndarray, data: np.ndarray, dt: float, start: int,
                     lengths: np.ndarray) -> np.ndarray:
        """Errors over each trace's valid samples from ``start`` on: model (n_sets, n_traces, n_steps),
        data (n_traces, n_steps), lengths (n_traces,) int; a set with NaN/inf among its valid samples: inf."""
        short = np.flatnonzero(lengths <= start)
        if short.size:
            i = int(short[0])
            raise ValueError(f"t_start = {self.t_start} s leaves no samples in trace {i} of {int(lengths[i])} "
                             f"steps of dt = {dt} s")
        valid = valid_samples(lengths, data.shape[1], start)
        model, data = model[:, :, start:], data[:, start:]
        ok = (np.isfinite(model) | ~valid).all(axis=(1, 2))
        errors = np.full(model.shape[0], np.inf)
        if ok.any():
            scale = self._trace_scale()
            errors[ok] = self._padded_errors(model[ok] / scale, data / scale, dt,
                                             lengths - start, valid)
        return np.where(np.isnan(errors), np.inf, errors)

    def _padded_errors(self, model: np.ndarray, data: np.ndarray, dt: float, lengths: np.ndarray,
                       valid: np.ndarray) -> np.ndarray:
        """``get_errors`` of the features ``get_features`` gives per group of traces of one length, the
        traces cropped to it (model (n_sets, n_traces, n), data (n_traces, n), lengths (n_traces,) from the
        first kept sample, valid (n_traces, n) bool)."""
        features = np.empty(model.shape[:2])
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            features[:, rows] = self._group_features(model[:, rows, :length], data[rows, :length], dt, rows)
        return np.asarray(self.get_errors(features), dtype=float)

    def _group_features(self, model: np.ndarray, data: np.ndarray, dt: float, rows: np.ndarray) -> np.ndarray:
        """``get_features`` of the traces ``rows`` (indices into all traces) of one length."""
        return self.get_features(model, data, dt)


class SpikeMetric(Metric):
    """Metric on spike trains; ``calc`` drops spikes before ``t_start`` and sorts the rest
    before ``get_features(model_spikes, data_spikes, dt)``.

    t_start: start of the compared window, s or a quantity string ("50 ms"); spikes before it are left out.
    Raises UnitError (a ValueError) when t_start is not a time.
    """

    def __init__(self, t_start=0.0):
        self.t_start = _time(t_start, "t_start")

    def calc(self, model_spikes, data_spikes, dt) -> np.ndarray:
        """Errors (n_sets,) of model spike trains against the recorded ones.

        model_spikes: a list over the n_sets parameter sets of lists over the n_traces input traces of 1-D
        arrays of spike times (s); data_spikes: the recorded spike trains, a list over the n_traces traces
        of arrays of spike times (s); dt: the simulation time step, s or a quantity string ("0.1 ms") (e.g.
        ``GammaFactor`` rounds spike times to this grid). Spike trains are sorted and the spikes before
        t_start dropped before ``get_features``. Returns a float array (n_sets,), inf where the error is
        NaN. Raises ValueError when a parameter set has not one spike train per data trace or dt is not
        positive, UnitError (a ValueError) for a dt that is not a time.
        """
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
    sample) turns the time mean into a weighted mean - weights of 0 exclude samples, so t_start and
    t_weights are not given together (as brian2modelfitting's). A parameter set with
    NaN/inf in its traces gets error ``inf``. With ``lengths`` (traces of different lengths), the
    mean is over the valid samples of all traces together (weighted by ``t_weights`` of their times).
    The error is in SI units squared with normalization 1 (V² for voltage traces), else a pure number
    (e.g. the mean squared difference in mV² for normalization "1 mV").

    t_start: start of the compared window, s or a quantity string, >= 0; t_weights: (n_steps,) array,
    one finite non-negative weight per sample, not all zero, or None (equal weights); normalization:
    divisor of the differences, a number in the traces' SI units or a quantity string ("1 mV"). Raises
    ValueError for a t_weights that is not such an array or that comes with a t_start other than 0, and
    as ``TraceMetric`` for t_start and normalization.
    """

    def __init__(self, t_start=0.0, t_weights=None, normalization=1.0):
        super().__init__(t_start=t_start, normalization=normalization)
        if t_weights is not None and self.t_start != 0:
            raise ValueError(f"t_start = {self.t_start:g} s and t_weights exclude each other: give the samples "
                             f"before t_start a weight of 0 instead")
        if t_weights is not None:
            t_weights = np.asarray(t_weights, dtype=float)
            if t_weights.ndim != 1 or not np.isfinite(t_weights).all() or (t_weights < 0).any():
                raise ValueError("t_weights must be a 1-d array of finite, non-negative weights (one per time step)")
            if not t_weights.any():
                raise ValueError("t_weights are all zero: at least one time step needs a positive weight")
        self.t_weights = t_weights

    def calc(self, model_traces, data_traces, dt, lengths=None) -> np.ndarray:
        """``TraceMetric.calc`` after checking ``t_weights`` has one weight per sample.

        model_traces: (n_sets, n_traces, n_steps) simulated traces, SI units (e.g. V); data_traces:
        (n_traces, n_steps) recorded traces in the same units; dt: sampling step, s or a quantity string;
        lengths: (n_traces,) int valid samples per trace, or None (all full). Returns a float array
        (n_sets,): the (weighted) mean over traces and samples from t_start of ((model - data) /
        normalization)**2, inf for a parameter set whose traces hold NaN/inf. Raises ValueError when
        t_weights has not n_steps entries or is zero for every compared sample, and as ``TraceMetric.calc``.
        """
        n_steps = np.shape(data_traces)[-1]
        if self.t_weights is not None and self.t_weights.size != n_steps:
            raise ValueError(f"t_weights has {self.t_weights.size} entries but the traces have {n_steps} steps")
        return super().calc(model_traces, data_traces, dt, lengths=lengths)

    def _padded_errors(self, model, data, dt, lengths, valid) -> np.ndarray:
        """Mean of the squared differences over the valid samples of every trace (weighted by t_weights)."""
        weights = valid * (1.0 if self.t_weights is None else self.t_weights[None, :])
        if not weights.any():
            raise ValueError("t_weights are zero for every valid sample")
        squared = np.where(valid, (model - data) ** 2, 0.0)
        return (squared * weights).sum(axis=(1, 2)) / weights.sum()

    def get_features(self, model_traces, data_traces, dt) -> np.ndarray:
        """Mean squared difference of every parameter set on every trace.

        model_traces: (n_sets, n_traces, n) traces divided by normalization, from t_start on (as ``calc``
        passes them); data_traces: (n_traces, n) data traces prepared the same way; dt: time step in s
        (not used). Returns an (n_sets, n_traces) array: the mean over time of (model - data)**2, weighted by
        t_weights when given (then n = n_steps: t_start is 0).
        """
        squared = (np.asarray(model_traces) - np.asarray(data_traces)) ** 2
        if self.t_weights is None:
            return squared.mean(axis=2)
        return (squared * self.t_weights).sum(axis=2) / self.t_weights.sum()


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


def firing_rate(spikes) -> float:
    """Mean firing rate of one spike train, as brian2modelfitting's ``firing_rate``: (N - 1) / (last - first).

    spikes: 1-D sequence of the N spike times of one train, s (another time unit gives the rate in its
    inverse). Returns the rate in Hz (a float): the number of inter-spike intervals over the time they span;
    NaN for fewer than two spikes, inf when all spikes are at one time.
    """
    times = np.sort(np.asarray(spikes, dtype=float).ravel())
    if times.size < 2:
        return math.nan
    with np.errstate(divide="ignore"):
        return float((times.size - 1) / (times[-1] - times[0]))


def _gamma_error(model: np.ndarray, data: np.ndarray, delta_steps: int, delta: float, duration: float,
                 rate_correction: bool) -> float:
    """GammaFactor's error of one model train against one data train, both sorted spike times in steps of dt (int
    arrays); delta: coincidence window (s) and delta_steps the same in steps; duration: the time the rates are
    counted over (s)."""
    n_model, n_data = len(model), len(data)
    if n_data == 0:
        if n_model == 0:
            return 0.0
        return 1.0 + (2.0 * n_model if rate_correction else 0.0)
    r_data, r_model = n_data / duration, n_model / duration
    expected = 2 * delta * n_data * r_data
    norm = 0.5 * (1 - 2 * delta * r_data)
    gamma = (_coincidences(model, data, delta_steps) - expected) / (norm * (n_model + n_data))
    rate_term = 2 * abs(r_model - r_data) / r_data if rate_correction else 0.0
    return 1.0 + rate_term - gamma


def get_gamma_factor(model, data, delta, time, dt, rate_correction: bool = True) -> float:
    """The gamma-factor error of one model spike train against one data spike train (``GammaFactor``'s error per
    trace), as brian2modelfitting's ``get_gamma_factor``.

    Spike times are rounded to the ``dt`` grid; coincidences are data spikes with a model spike within ±delta
    (each spike of either train used at most once); with rates r = N / time, the coincidence factor is
    ``gamma = (N_coinc - 2 delta N_data r_data) / (0.5 (1 - 2 delta r_data) (N_model + N_data))`` and the error
    ``1 - gamma``, plus ``2 |r_model - r_data| / r_data`` with rate_correction (Clopath et al. 2007).

    model, data: 1-D sequences of spike times, s (model: the simulated train, data: the recorded one); delta:
    half-width of the coincidence window, s or a quantity string ("2 ms"), > 0; time: the duration the rates are
    counted over, s or a quantity string, > 0; dt: the time step, s or a quantity string, > 0; rate_correction:
    add the firing-rate term. Returns the error (a float): 0 for identical trains, about 1 (+ the rate term) for
    independent ones. A data train without spikes gives 0 if the model is silent too, else 1 (+ 2 N_model with
    rate_correction). Raises ValueError for delta, time or dt not positive, or a delta not below half the data's
    mean inter-spike interval (2 delta N_data / time >= 1: the normalisation is not positive); UnitError (a
    ValueError) for a value that is not a time.
    """
    dt, delta, time = _dt(dt), _time(delta, "delta"), _time(time, "time")
    if not (delta > 0 and time > 0):
        raise ValueError(f"delta ({delta} s) and time ({time} s) must be positive")
    model_steps, data_steps = (np.rint(np.sort(np.asarray(train, dtype=float).ravel()) / dt).astype(np.int64)
                               for train in (model, data))
    if 2 * delta * len(data_steps) / time >= 1:
        raise ValueError(f"delta = {delta} s is too long for {len(data_steps)} data spikes in {time} s: it must be "
                         f"below half the mean inter-spike interval")
    return _gamma_error(model_steps, data_steps, int(np.rint(delta / dt)), delta, time, bool(rate_correction))


class GammaFactor(SpikeMetric):
    """Coincidence factor error, as brian2modelfitting's ``GammaFactor``: per trace ``get_gamma_factor`` with rates
    counted over ``time - t_start``, divided by ``normalization``, averaged over traces::

        gamma = (N_coinc - 2 delta N_data r_data) / (0.5 (1 - 2 delta r_data) (N_model + N_data))
        error = 1 - gamma  [+ 2 |r_model - r_data| / r_data   if rate_correction]

    Identical trains give 0; independent trains about 1 (+ rate term). A trace whose data has no spikes gives 0 if
    the model is silent too, else 1 (+ 2 N_model with rate_correction, i.e. r_data taken as one spike per
    duration).

    delta: half-width of the coincidence window, s or a quantity string ("2 ms"), > 0; time: the end of
    the recordings (their total duration), s or a quantity string ("1 s"), > t_start; t_start: spikes before it
    are left out and the rates are counted over time - t_start, s or a quantity string; normalization: the
    errors are divided by it, a positive number (brian2modelfitting's scale for the optimizer; 1: none);
    rate_correction: add the firing-rate term (Clopath et al. 2007). The order of the arguments is
    brian2modelfitting's. Raises ValueError for delta not positive, time not after t_start or a normalization
    that is not a positive number, UnitError (a ValueError) for a value that is not a time.
    """

    def __init__(self, delta, time, t_start=0.0, normalization=1.0, rate_correction: bool = True):
        super().__init__(t_start=t_start)
        self.delta = _time(delta, "delta")
        self.time = _time(time, "time")
        self.normalization = float(normalization)
        self.rate_correction = bool(rate_correction)
        if not self.delta > 0:
            raise ValueError(f"delta must be positive, got {self.delta}")
        if not self.time > self.t_start:
            raise ValueError(f"time (total duration, {self.time} s) must exceed t_start ({self.t_start} s)")
        if not (math.isfinite(self.normalization) and self.normalization > 0):
            raise ValueError(f"normalization must be a positive number, got {normalization!r}")

    def get_features(self, model_spikes, data_spikes, dt) -> np.ndarray:
        """The gamma-factor error of every parameter set on every trace.

        model_spikes: a list over the n_sets parameter sets of lists over traces of sorted spike-time arrays
        (s), the spikes before t_start removed (as ``calc`` passes them); data_spikes: a list over the
        n_traces traces of such arrays (s); dt: the time step in s, the grid spike times are rounded to (and
        delta to a whole number of steps). Returns an (n_sets, n_traces) array of ``1 - gamma`` (+ the rate
        term with rate_correction) divided by normalization; 0 for identical trains. Raises ValueError when
        delta is not below half the mean inter-spike interval of a data trace (2 delta N_data / (time -
        t_start) >= 1).
        """
        duration = self.time - self.t_start
        delta_steps = int(np.rint(self.delta / dt))
        data = [np.rint(np.asarray(train, dtype=float) / dt).astype(np.int64) for train in data_spikes]
        for i, train in enumerate(data):
            if 1 - 2 * self.delta * len(train) / duration <= 0:
                raise ValueError(f"delta = {self.delta} s is too long for data trace {i} "
                                 f"({len(train)} spikes in {duration} s): it must be below "
                                 f"half the mean inter-spike interval")
        features = np.empty((len(model_spikes), len(data)))
        for s, one_set in enumerate(model_spikes):
            for k, (train, target) in enumerate(zip(one_set, data)):
                model = np.rint(np.asarray(train, dtype=float) / dt).astype(np.int64)
                features[s, k] = _gamma_error(model, target, delta_steps, self.delta, duration, self.rate_correction)
        return features / self.normalization


def _known_features(names: Sequence[str]) -> list[str]:
    """``names`` as a list; ValueError (one line, with close matches) for a name eFEL does not know."""
    import efel

    names, known = list(names), set(efel.get_feature_names())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            raise ValueError(f"unknown eFEL feature '{name}'"
                             + (f" (did you mean {', '.join(close)}?)" if close else " (see efel.get_feature_names())"))
    return names


def calc_eFEL(traces, inp_times, feat_list, dt) -> list[dict]:
    """eFEL features of membrane-potential traces, as brian2modelfitting's ``calc_eFEL``: eFEL's own results.

    The traces are handed to eFEL in mV and ms (sample i at t = i * dt) with eFEL's current settings
    (``efel.set_setting``), as brian2modelfitting does; ``FeatureMetric`` instead extracts with its own
    ``efel_settings``.

    traces: (n_traces, n_steps) membrane potentials, V; inp_times: one [stim_start, stim_end] per trace, in ms
    as eFEL and brian2modelfitting take them (numbers), or quantity strings ("100 ms"); feat_list: eFEL feature
    names; dt: the sampling step, s or a quantity string ("0.1 ms"). Returns a list over traces of dicts feature
    → eFEL's value: a 1-D numpy array in eFEL's units (mV, ms, Hz, counts; e.g. ``voltage_base`` in mV), or None
    where eFEL found none. Raises ValueError for a feature name eFEL does not know or not one [start, end] per
    trace, UnitError (a ValueError) for a dt or stimulus time that is not a time, ImportError when efel is not
    installed.
    """
    import efel

    names = _known_features(feat_list)
    traces = np.atleast_2d(np.asarray(traces, dtype=float))
    if len(inp_times) != traces.shape[0] or any(len(pair) != 2 for pair in inp_times):
        raise ValueError(f"inp_times must give one [stim_start, stim_end] (ms) per trace: {traces.shape[0]} pairs, "
                         f"got {inp_times!r}")

    def ms(value, name):
        return _time(value, name) * 1e3 if isinstance(value, str) else float(value)

    time_ms = np.arange(traces.shape[1]) * _dt(dt) * 1e3
    inputs = [{"T": time_ms, "V": trace * 1e3, "stim_start": [ms(start, "stim_start")],
               "stim_end": [ms(end, "stim_end")]} for trace, (start, end) in zip(traces, inp_times)]
    return efel.get_feature_values(inputs, names, raise_warnings=False)


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
    missing in both costs 0. Errors are averaged over traces and divided by ``normalization``.

    eFEL settings: ``efel_settings`` (e.g. ``{"Threshold": -45, "interp_step": 0.025}``, in eFEL's units mV and ms)
    apply to every extraction of this metric: eFEL's defaults updated by them, whatever eFEL's global settings are,
    and those are restored after each extraction (``feature_targets.applied_efel_settings``), so the settings of one
    metric never reach another's extraction. The attribute ``efel_settings`` records them, with a Threshold that
    adjust_threshold set (``threshold_note`` says why).

    Spike visibility: eFEL sees a spike only where the trace crosses its Threshold (default -20 mV); a model whose
    threshold condition resets the potential below it (AdEx: ``v > VT + 5*DeltaT``, ``v = Vr``) has no spike eFEL
    can see. ``check_model(model, bounds)`` raises ``SpikeVisibilityError`` (one line: the Threshold, the model's
    highest reachable potential, the fix) when that holds for every parameter set within the bounds, and warns when
    it holds for part of them; ``check_spikes_visible(traces, spikes)`` checks simulated traces. With
    ``adjust_threshold=True`` both lower the Threshold instead, to ``THRESHOLD_MARGIN`` (5 mV) below the lowest
    potential the model reaches (``check_model``: over the bounds; ``check_spikes_visible``: the lowest peak of the
    traces with threshold events). At fit time, when every candidate of a ``calc`` (one round of a fitter) lacks,
    on every trace, a feature the data have, a ``MissingFeatureWarning`` is issued (once per metric).

    Z-scores: with ``targets`` (``feature_targets(...)`` of recordings: mean ± SD over repeated sweeps, SD floored;
    or ``FeatureTargets.of({name: (mean, sd)})``) the data traces are not used for features: on a trace of target
    group g, feature f scores ``z = |model_f - mean_gf| / sd_gf``; a feature found in only one of model and target
    scores ``MISSING_ZSCORE`` (250), in neither 0; a trace's error is the weighted mean over features
    ``sum_f w_f z_f / sum_f w_f`` (``zscore_combine="mean"``) or the largest ``w_f z_f`` (``"max"``), and errors are
    averaged over traces. Without targets (the default) errors are the relative differences above.

    stim_times: the (start, end) pairs, 0 <= start < end; feat_list: the feature names; weights: feature
    name → weight (a float; features not given weigh 1), or None (all 1); combine: a function
    ``combine(model_value, data_value) -> float`` giving a feature's error (None: the relative difference
    above; not with targets). t_start: samples before it are left out, s or a quantity string, >= 0 (0: none);
    as brian2modelfitting's, eFEL then sees the traces from t_start on with their time counted from there, so
    stim_times are times after t_start. normalization: the errors are divided by it (brian2modelfitting's scale
    for the optimizer), a positive number (1: none); the traces are not scaled. efel_settings: eFEL setting name →
    value (None: eFEL's defaults); adjust_threshold: lower eFEL's Threshold where the visibility checks find it
    above the model's spikes instead of raising;
    targets: a ``FeatureTargets`` holding every feature of feat_list, extracted with the same eFEL settings, or a
    mapping feature → (mean, sd), or None (compare with the data traces); zscore_combine: "mean" or "max". The
    first six arguments are in brian2modelfitting's order. Raises ValueError for no or bad stimulus intervals, a
    negative t_start, a normalization that is not a positive number, a feature name eFEL does not know (with close
    matches) or a weight for a feature not in feat_list, an unknown eFEL setting (naming the valid ones) or a value
    it cannot take, targets without a feature or extracted with other settings, or a bad zscore_combine; UnitError
    (a ValueError) for a stimulus time that is not a time, ImportError when efel is not installed.
    """

    normalizes_traces = False  # eFEL reads the potentials as they are; normalization divides the errors

    def __init__(self, stim_times: Sequence, feat_list: Sequence[str], weights: Mapping | None = None,
                 combine: Callable[[float, float], float] | None = None, t_start=0.0, normalization=1.0,
                 efel_settings: Mapping | None = None, adjust_threshold: bool = False, targets=None,
                 zscore_combine: str = "mean"):
        super().__init__(t_start=t_start)
        self.normalization = float(normalization)
        if not (math.isfinite(self.normalization) and self.normalization > 0):
            raise ValueError(f"normalization must be a positive number (the errors' divisor), got {normalization!r}")
        self.stim_times = [(_time(start, "stimulus start"), _time(end, "stimulus end"))
                           for start, end in stim_times]
        for start, end in self.stim_times:
            if not 0 <= start < end:
                raise ValueError(f"stim_times need 0 <= start < end, got ({start}, {end})")
        if not self.stim_times:
            raise ValueError("stim_times must give at least one (start, end) pair")
        self.feat_list = _known_features(feat_list)
        weights = dict(weights or {})
        for name in weights:
            if name not in self.feat_list:
                raise ValueError(f"weight given for '{name}', which is not in feat_list {self.feat_list}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.feat_list}
        self.combine = combine or _relative_difference
        self.efel_settings = check_efel_settings(efel_settings)
        self.adjust_threshold = bool(adjust_threshold)
        self.threshold_note: str | None = None
        if zscore_combine not in ("mean", "max"):
            raise ValueError(f"zscore_combine must be 'mean' or 'max', got {zscore_combine!r}")
        self.zscore_combine = zscore_combine
        if targets is not None and combine is not None:
            raise ValueError("combine is the error of the relative-difference mode; with targets each feature "
                             "scores its z-score")
        self._targets = None
        self.targets = targets
        self._round: dict | None = None
        self._warned = False

    # --- settings, targets, visibility ------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """eFEL's Threshold (mV) this metric extracts with: efel_settings' or eFEL's default."""
        return float(self.efel_settings.get("Threshold", efel_defaults()["Threshold"]))

    @property
    def targets(self):
        """The z-score targets (a ``FeatureTargets``), or None (relative differences to the data traces)."""
        return self._targets

    @targets.setter
    def targets(self, targets) -> None:
        if targets is None:
            self._targets = None
            return
        if isinstance(targets, Mapping):
            targets = FeatureTargets.of(targets)
        if not isinstance(targets, FeatureTargets):
            raise ValueError(f"targets must be FeatureTargets (feature_targets(...)) or a mapping feature -> "
                             f"(mean, sd), got {type(targets).__name__}")
        missing = [name for name in self.feat_list if name not in targets.features]
        if missing:
            raise ValueError(f"the targets have no '{missing[0]}' (targets: {', '.join(targets.features)})")
        self._check_target_settings(targets, self.efel_settings)
        self._targets = targets

    @staticmethod
    def _check_target_settings(targets, settings: Mapping) -> None:
        """ValueError when ``targets`` were extracted with eFEL settings that differ from ``settings``."""
        if targets is None or targets.efel_settings is None:
            return
        ours, theirs = {**efel_defaults(), **settings}, {**efel_defaults(), **targets.efel_settings}
        differ = [k for k in ours if ours[k] != theirs.get(k)]
        if differ:
            k = differ[0]
            raise ValueError(f"the targets were extracted with eFEL setting {k} = {theirs.get(k)!r} but this metric "
                             f"uses {ours[k]!r}; extract them with the metric's efel_settings")

    def _lower_threshold(self, value: float, why: str) -> float:
        """Set eFEL's Threshold to ``value`` (mV), noting why; returns it."""
        self._check_target_settings(self._targets, {**self.efel_settings, "Threshold": value})
        old = self.threshold
        self.efel_settings = {**self.efel_settings, "Threshold": value}
        self.threshold_note = f"eFEL Threshold lowered from {old:g} to {value:g} mV: {why}"
        return value

    def check_model(self, model, bounds: Mapping | None = None, output: str = "v") -> float:
        """Check that eFEL can see the spikes of ``model`` (a reset below eFEL's Threshold cannot be seen).

        model: a ``neurofit.Model`` (or equations text); bounds: parameter → (low, high) (or a value), SI, for the
        parameters of its threshold condition (e.g. VT, DeltaT); output: the fitted variable (traces in V). Uses
        ``spike_ceiling``: a threshold ``output > expr`` with a reset of ``output`` records nothing above expr.
        Returns the eFEL Threshold (mV) in use afterwards. Raises SpikeVisibilityError (one line: the Threshold, the
        model's highest reachable potential, the fix) when the Threshold is not below expr for any parameter set in
        the bounds, unless adjust_threshold (then the Threshold becomes THRESHOLD_MARGIN below the lowest expr over
        the bounds); warns (MissingFeatureWarning) when only part of the bounds is below it. A model without such a
        ceiling (no reset of ``output``, e.g. Hodgkin-Huxley) passes.
        """
        ceiling = spike_ceiling(model, bounds, output)
        threshold = self.threshold
        if ceiling is None:
            return threshold
        low, high, condition = ceiling[0] * 1e3, ceiling[1] * 1e3, ceiling[2]
        if threshold < low:
            return threshold
        span = f"{high:.1f} mV" if math.isclose(low, high, abs_tol=1e-9) else \
            f"{low:.1f} to {high:.1f} mV over the bounds"
        suggested = round(low - THRESHOLD_MARGIN, 1)
        if self.adjust_threshold:
            return self._lower_threshold(suggested, f"{THRESHOLD_MARGIN:g} mV below the lowest potential the "
                                                    f"model's {output} reaches ('{condition}' resets it: {span})")
        if threshold >= high:
            raise SpikeVisibilityError(
                f"eFEL's Threshold ({threshold:g} mV) is above every potential the model's {output} records "
                f"('{condition}' resets {output}, so it peaks at {span}): eFEL sees none of its spikes and every "
                f"spike feature would be the missing-feature penalty; set efel_settings Threshold below it (e.g. "
                f"{{'Threshold': {suggested:g}}}), set adjust_threshold, or give the model a spike shape")
        warnings.warn(f"FeatureMetric: the model's {output} peaks at {span} ('{condition}' resets it), partly below "
                      f"eFEL's Threshold ({threshold:g} mV): candidates there get the missing-feature penalty; "
                      f"set efel_settings Threshold below {low:.1f} mV or set adjust_threshold",
                      MissingFeatureWarning, stacklevel=2)
        return threshold

    def check_spikes_visible(self, model_traces, model_spikes=None, data_traces=None, dt=None) -> float:
        """Check simulated traces: eFEL must see the model's spikes (or, given data, some spike where the data spike).

        model_traces: (n_traces, n_steps) or (n_sets, n_traces, n_steps) simulated potentials in V; model_spikes:
        the model's threshold events, a list over traces (or over sets of lists over traces) of spike-time arrays
        (s), or None; data_traces: (n_traces, n_steps) recorded potentials in V, used without model_spikes; dt: the
        sampling step (s, or a quantity string), needed with data_traces. With model_spikes, a trace with threshold
        events whose highest sample is at or below eFEL's Threshold has spikes eFEL cannot see; without, the check
        fails when the data show spikes to eFEL and no model trace rises above the Threshold. Returns the eFEL
        Threshold (mV) in use afterwards. Raises SpikeVisibilityError (one line) when the check fails, unless
        adjust_threshold and model_spikes are given (then the Threshold becomes THRESHOLD_MARGIN below the lowest
        peak of the traces with events); ValueError when the spike trains do not match the traces or dt is missing.
        """
        traces = np.asarray(model_traces, dtype=float)
        nested = traces.ndim == 3
        traces = traces.reshape(-1, traces.shape[-1])
        peaks = np.nanmax(traces, axis=1) * 1e3
        threshold = self.threshold
        fix = "set efel_settings Threshold below it{}, set adjust_threshold, or give the model a spike shape"
        if model_spikes is not None:
            trains = [train for one_set in model_spikes for train in one_set] if nested else list(model_spikes)
            if len(trains) != traces.shape[0]:
                raise ValueError(f"model_spikes has {len(trains)} spike trains for {traces.shape[0]} traces")
            spiking = np.array([len(np.atleast_1d(train)) > 0 for train in trains])
            hidden = spiking & (peaks <= threshold)
            if not hidden.any():
                return threshold
            lowest = float(peaks[spiking].min())
            suggested = round(lowest - THRESHOLD_MARGIN, 1)
            if self.adjust_threshold:
                return self._lower_threshold(suggested, f"{THRESHOLD_MARGIN:g} mV below the lowest peak of the model "
                                                        f"traces with threshold events ({lowest:.1f} mV)")
            raise SpikeVisibilityError(
                f"{int(hidden.sum())} of {int(spiking.sum())} model traces with threshold events peak at or below "
                f"eFEL's Threshold ({threshold:g} mV; their highest sample: {float(peaks[hidden].max()):.1f} mV), so "
                f"eFEL sees none of their spikes and spike features would be the missing-feature penalty; "
                + fix.format(f" (e.g. {{'Threshold': {suggested:g}}})"))
        if data_traces is None:
            return threshold
        if dt is None:
            raise ValueError("check_spikes_visible: dt (the sampling step) is needed with data_traces")
        counts = [f["spike_count"] for f in self.feature_values(data_traces, _dt(dt), features=["spike_count"])]
        n_data = int(sum(c for c in counts if c is not None))
        if n_data and not (peaks > threshold).any():
            raise SpikeVisibilityError(
                f"the data show {n_data} spikes to eFEL but the model's traces peak at {float(peaks.max()):.1f} mV, "
                f"below eFEL's Threshold ({threshold:g} mV), so eFEL sees no model spike and spike features would be "
                f"the missing-feature penalty; " + fix.format(" if the model spikes"))
        return threshold

    def feature_values(self, traces, dt, features: Sequence[str] | None = None) -> list[dict]:
        """The eFEL features of ``traces`` as this metric extracts them (its stimulus times and eFEL settings).

        traces: (n_traces, n_steps) membrane potentials in V (sample i at t = i * dt); dt: sampling step, s or a
        quantity string; features: feature names (None: feat_list). Returns a list over traces of dicts feature →
        value in eFEL's units, or None where eFEL found none. Raises ValueError when stim_times has neither one
        interval nor one per trace, or a feature returns several values.
        """
        traces = np.asarray(traces, dtype=float)
        if traces.ndim == 1:
            traces = traces[None, :]
        n_traces = traces.shape[0]
        if len(self.stim_times) not in (1, n_traces):
            raise ValueError(f"stim_times has {len(self.stim_times)} intervals for {n_traces} traces "
                             f"(give one per trace, or one for all)")
        stims = self.stim_times * n_traces if len(self.stim_times) == 1 else self.stim_times
        return extract_features(traces, _dt(dt), stims, self.feat_list if features is None else features,
                                self.efel_settings)

    # --- errors -----------------------------------------------------------------------------------------
    def calc(self, model_traces, data_traces, dt, lengths=None) -> np.ndarray:
        """``TraceMetric.calc``, noting whether every candidate lacked features the data (targets) have.

        model_traces: (n_sets, n_traces, n_steps) simulated potentials in V; data_traces: (n_traces, n_steps)
        recorded potentials in V (not used for features with targets); dt: sampling step, s or a quantity string;
        lengths: (n_traces,) valid samples per trace, or None. Returns the errors (n_sets,) as
        ``TraceMetric.calc``; when every parameter set evaluated lacks, on every trace, a feature the data have,
        warns once per metric (MissingFeatureWarning: its errors are the missing-feature penalty). Raises as
        ``TraceMetric.calc``.
        """
        self._round = {"pairs": 0, "missed": 0, "names": set(), "n_total": np.shape(model_traces)[1]}
        try:
            errors = super().calc(model_traces, data_traces, dt, lengths=lengths)
            seen = self._round
        finally:
            self._round = None
        if seen["pairs"] and seen["missed"] == seen["pairs"] and not self._warned:
            self._warned = True
            reference = "targets" if self._targets is not None else "data"
            warnings.warn(f"FeatureMetric: every candidate evaluated together lacks, on every trace, eFEL features the "
                          f"{reference} have ({', '.join(sorted(seen['names']))}), so their errors are the "
                          f"missing-feature penalty; do the model's spikes reach eFEL's Threshold "
                          f"({self.threshold:g} mV)? Set efel_settings Threshold or adjust_threshold, or see "
                          f"FeatureMetric.check_model", MissingFeatureWarning, stacklevel=2)
        return errors

    def get_features(self, model_traces, data_traces, dt) -> np.ndarray:
        """Per (parameter set, trace) the weighted feature error.

        model_traces: (n_sets, n_traces, n_steps) simulated membrane potential in V, from t_start on (as ``calc``
        passes them); data_traces: (n_traces, n_steps) recorded membrane potential in V, likewise; dt: sampling
        step in s (sample i at t = i * dt, the time eFEL sees and stim_times refer to). Returns
        an (n_sets, n_traces) array: per trace, the sum over feat_list of weight × combine(model feature,
        data feature) (features in eFEL's units), or with targets the weighted mean (or max) of the features'
        z-scores. Raises ValueError when stim_times has neither one interval nor one per trace, or eFEL returns
        several values for a feature.
        """
        n_traces = np.shape(model_traces)[1]
        if len(self.stim_times) not in (1, n_traces):
            raise ValueError(f"stim_times has {len(self.stim_times)} intervals for {n_traces} traces "
                             f"(give one per trace, or one for all)")
        stims = self.stim_times * n_traces if len(self.stim_times) == 1 else self.stim_times
        return self._features(model_traces, data_traces, dt, stims, np.arange(n_traces))

    def get_errors(self, features) -> np.ndarray:
        """Features ``(n_sets, n_traces)`` → errors ``(n_sets,)``: the mean over traces divided by normalization.

        features: the (n_sets, n_traces) array of ``get_features``. Returns an (n_sets,) float array.
        """
        return super().get_errors(features) / self.normalization

    def _group_features(self, model, data, dt, rows) -> np.ndarray:
        """The features of the traces ``rows`` of one length, each with its own stimulus times."""
        if len(self.stim_times) == 1:
            if self._targets is None:
                return self.get_features(model, data, dt)
            return self._features(model, data, dt, self.stim_times * len(rows), rows)
        if len(self.stim_times) <= int(rows.max()):
            raise ValueError(f"stim_times has {len(self.stim_times)} intervals for more traces "
                             f"(give one per trace, or one for all)")
        return self._features(model, data, dt, [self.stim_times[i] for i in rows], rows)

    def _features(self, model_traces, data_traces, dt, stims: list, rows: np.ndarray) -> np.ndarray:
        """Feature errors (n_sets, n_traces) of traces with one (start, end) (s) per trace in ``stims``; ``rows``:
        the indices of these traces among all traces (for the targets' groups)."""
        n_sets, n_traces, _ = np.shape(model_traces)
        model_features = self._efel(np.reshape(model_traces, (n_sets * n_traces, -1)), stims * n_sets, dt)
        if self._targets is None:
            data_features = self._efel(data_traces, stims, dt)
            present = [{name for name in self.weights if d[name] is not None} for d in data_features]
        else:
            total = self._round["n_total"] if self._round else n_traces
            groups = self._targets.rows(rows, max(total, int(np.max(rows)) + 1))
            columns = {name: self._targets.features.index(name) for name in self.weights}
            present = [{name for name, col in columns.items() if math.isfinite(self._targets.mean[g, col])}
                       for g in groups]
        features = np.empty((n_sets, n_traces))
        for s in range(n_sets):
            for k in range(n_traces):
                model = model_features[s * n_traces + k]
                if self._targets is None:
                    features[s, k] = self._trace_error(model, data_features[k])
                else:
                    features[s, k] = self._zscore_error(model, groups[k], columns)
                self._note(model, present[k])
        return features

    def _note(self, model: Mapping, present: set) -> None:
        """Count one (set, trace) of the current calc, and whether the model lacks a feature the data have."""
        if self._round is None:
            return
        missed = {name for name in present if model[name] is None}
        self._round["pairs"] += 1
        self._round["missed"] += bool(missed)
        self._round["names"] |= missed

    def _trace_error(self, model: Mapping, data: Mapping) -> float:
        total = 0.0
        for name, weight in self.weights.items():
            m, d = model[name], data[name]
            if m is None and d is None:
                continue
            error = MISSING_FEATURE_PENALTY if m is None or d is None else self.combine(m, d)
            total += weight * error
        return total

    def _zscore_error(self, model: Mapping, group: int, columns: Mapping) -> float:
        """Weighted mean (or max) over features of |model - mean| / sd of the targets' row ``group``."""
        scores, total_weight = [], 0.0
        for name, weight in self.weights.items():
            mean, sd = self._targets.mean[group, columns[name]], self._targets.sd[group, columns[name]]
            m, found = model[name], math.isfinite(mean)
            if m is None and not found:
                z = 0.0
            elif m is None or not found:
                z = MISSING_ZSCORE
            else:
                z = abs(m - mean) / sd
            scores.append(weight * z)
            total_weight += weight
        if self.zscore_combine == "max":
            return max(scores, default=0.0)
        return sum(scores) / total_weight if total_weight > 0 else 0.0

    def _efel(self, traces, stims, dt) -> list[dict]:
        return extract_features(traces, dt, stims, self.feat_list, self.efel_settings)

    _single = staticmethod(single_value)


def spike_trace_parts(model_v, model_spikes, data_v, data_spikes, dt, delta, v_clip, v_scale, count_weight,
                      subthreshold_weight, rate_correction: bool = True, lengths=None) -> list:
    """The three parts of the spikes-plus-subthreshold loss of one parameter set on one group of traces.

    model_v, data_v: (n_traces, n_steps) membrane potentials (V); model_spikes, data_spikes: lists over the
    n_traces traces of spike-time arrays (s; the model's threshold events, the recording's detected spikes);
    dt: the sampling step (s); delta: coincidence window (s); v_clip: both potentials are clipped at this
    value (V) so that spike shapes do not count, only the subthreshold voltage; v_scale: the voltage unit of
    that part (V); count_weight, subthreshold_weight: weights of the count and subthreshold parts;
    rate_correction: add GammaFactor's rate term; lengths: (n_traces,) samples of each trace (None: all).
    Returns [1 - gamma (GammaFactor over the traces, each trace's own duration), count_weight x mean squared
    spike-count difference, subthreshold_weight x mean squared clipped-voltage difference / v_scale^2].
    Used by ``SpikeTraceMetric`` (fits to recorded data) and by model reduction's ``SpikeTrainLoss``.
    """
    model_v, data_v = np.asarray(model_v, dtype=float), np.asarray(data_v, dtype=float)
    n_steps = data_v.shape[1]
    if lengths is None:
        gamma = GammaFactor(delta=delta, time=n_steps * dt, rate_correction=rate_correction).calc(
            [model_spikes], data_spikes, dt)[0]
        diff = np.minimum(model_v, v_clip) - np.minimum(data_v, v_clip)
        sub = np.mean(diff ** 2) / v_scale ** 2
    else:
        lengths = np.asarray(lengths)
        gammas = [GammaFactor(delta=delta, time=n * dt, rate_correction=rate_correction).calc(
            [[m]], [d], dt)[0] for m, d, n in zip(model_spikes, data_spikes, lengths)]
        gamma = float(np.mean(gammas))
        valid = np.arange(n_steps)[None, :] < lengths[:, None]
        diff = np.minimum(model_v, v_clip) - np.minimum(data_v, v_clip)
        sub = np.mean(diff[valid] ** 2) / v_scale ** 2
    counts = np.mean([(len(a) - len(b)) ** 2 for a, b in zip(model_spikes, data_spikes)])
    return [float(gamma), count_weight * float(counts), subthreshold_weight * float(sub)]


class SpikeTraceMetric:
    """Spikes and subthreshold voltage in one error, for fitting spiking models to recorded membrane potentials.

    Error of a parameter set = (1 - gamma) of the spike times (GammaFactor, window ``delta``, with its rate term)
    + ``count_weight`` x mean squared spike-count difference per trace + ``subthreshold_weight`` x mean squared
    difference of the potentials clipped at ``v_clip``, in units of ``v_scale`` (``spike_trace_parts``; model
    reduction's ``SpikeTrainLoss`` adds the same parts). The model's spikes are its threshold events; the
    recording's are the upward crossings of ``spike_threshold`` (``neurofit.data.spikes.detect_spikes``). A
    TraceFitter given this metric simulates spikes as well as traces.

    delta: coincidence window (s or "4 ms"); v_clip, v_scale, spike_threshold: V or quantity strings;
    count_weight, subthreshold_weight: plain numbers >= 0. Raises ValueError for delta or v_scale not positive
    or a negative weight, UnitError (a ValueError) for a value of the wrong dimension.
    """

    needs_spikes = True

    def __init__(self, delta="4 ms", v_clip="-55 mV", v_scale="5 mV", count_weight=0.1, subthreshold_weight=0.05,
                 spike_threshold="0 mV"):
        self.delta = _time(delta, "delta")
        self.v_clip = to_si(v_clip, name="v_clip")
        self.v_scale = to_si(v_scale, name="v_scale")
        self.spike_threshold = to_si(spike_threshold, name="spike_threshold")
        self.count_weight, self.subthreshold_weight = float(count_weight), float(subthreshold_weight)
        if not self.delta > 0 or not self.v_scale > 0:
            raise ValueError(f"delta ({self.delta} s) and v_scale ({self.v_scale} V) must be positive")
        if self.count_weight < 0 or self.subthreshold_weight < 0:
            raise ValueError("count_weight and subthreshold_weight must be >= 0")

    def data_spikes(self, data_v, dt, lengths=None) -> list:
        """The recorded spike trains: data_v (n_traces, n_steps) recorded potentials (V); dt: sampling step (s);
        lengths: (n_traces,) samples of each trace (None: all). Returns a list over traces of spike-time arrays
        (s), the upward crossings of ``spike_threshold`` within each trace's length."""
        from ..data.spikes import detect_spikes

        data_v = np.asarray(data_v, dtype=float)
        ends = [data_v.shape[1]] * data_v.shape[0] if lengths is None else list(lengths)
        return [detect_spikes(trace[:n], dt, self.spike_threshold)[0] for trace, n in zip(data_v, ends)]

    def parts(self, model_v, model_spikes, data_v, data_spikes, dt, lengths=None) -> np.ndarray:
        """The three parts of every parameter set's error.

        model_v: (n_sets, n_traces, n_steps) simulated potentials (V); model_spikes: a list over the n_sets sets of
        lists over traces of spike-time arrays (s); data_v: (n_traces, n_steps) recorded potentials (V);
        data_spikes: a list over traces of recorded spike times (s, ``data_spikes``); dt: the sampling step (s or
        a quantity string); lengths: (n_traces,) samples of each trace (None: all). Returns an (n_sets, 3) array
        of the gamma, count and subthreshold parts (``spike_trace_parts``); inf for a set whose traces diverged."""
        dt = _dt(dt)
        rows = []
        for v, spikes in zip(np.asarray(model_v, dtype=float), model_spikes):
            if not np.all(np.isfinite(v if lengths is None else v[np.arange(v.shape[1])[None, :] <
                                                                  np.asarray(lengths)[:, None]])):
                rows.append([np.inf] * 3)
                continue
            rows.append(spike_trace_parts(v, spikes, data_v, data_spikes, dt, self.delta, self.v_clip, self.v_scale,
                                          self.count_weight, self.subthreshold_weight, lengths=lengths))
        return np.asarray(rows, dtype=float).reshape(-1, 3)

    def calc(self, model_v, model_spikes, data_v, data_spikes, dt, lengths=None) -> np.ndarray:
        """Errors of every parameter set: model_v, model_spikes, data_v, data_spikes, dt, lengths as for
        ``parts``. Returns an (n_sets,) float array, the sum of the three parts; inf for a diverged set or a NaN
        error."""
        errors = self.parts(model_v, model_spikes, data_v, data_spikes, dt, lengths).sum(axis=1)
        return np.where(np.isnan(errors), np.inf, errors)
