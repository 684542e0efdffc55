"""Summary features of simulated or recorded traces and spike trains, for simulation-based inference.

A feature specification maps each output to a list of features (``{"v": ["v_max", "v_mean"],
"spikes": ["spike_count"]}``); an entry is a name from the library below, an eFEL feature name
(``"AP_amplitude"``, or ``"efel:spike_count"`` to choose eFEL's feature over the library's), or a
callable of one 1-D trace (SI floats) or one spike train (times in s) returning a number.

Library (``window`` = the stimulus window of each trace, samples start <= k*dt < end):

- trace features: ``v_max``, ``v_mean``, ``v_std``, ``v_kurtosis`` (Pearson, 3 for a Gaussian) of
  the trace in the window; ``resting_potential``: mean over the 10–90 % part of the time before the
  stimulus; ``voltage_deflection``: mean over the last 10 % of the window minus the resting potential.
- spike features (spikes inside the window): ``spike_count``; ``mean_isi``; ``first_spike_latency``
  (from the window start). With too few spikes the interval features are the window length. Spike
  trains of recorded traces come from ``detect_spikes`` (the package's one detector,
  ``neurofit.data.spikes``); those of simulations are the model's threshold events.

Features of a batch are computed at once: traces (n_sets, n_traces, n_steps), spike trains
``spikes[set][trace]``; the result is (n_sets, n_features) ordered output by output, trace by trace,
feature by feature. Features may be NaN (the simulation is then left out of training). eFEL works
in mV and ms: traces are converted, and its features keep eFEL's units.
"""
from __future__ import annotations

import math

import numpy as np

from ..data.spikes import DEFAULT_DEAD_TIME
from ..data.spikes import detect_spikes as _detect_spikes
from ..errors import NeurofitError
from ..units import TIME, to_si


class FeatureError(NeurofitError):
    """A feature name, window or spike threshold that cannot be used (the message names it)."""

TRACE_FEATURES = ("v_max", "v_mean", "v_std", "v_kurtosis", "resting_potential", "voltage_deflection")
SPIKE_FEATURES = ("spike_count", "mean_isi", "first_spike_latency")
SPIKES = "spikes"  # the output name of spike trains


def stimulus_windows(inputs: dict, dt: float, window=None) -> list[tuple[int, int]]:
    """Per trace, the sample range [i0, i1) of the stimulus: ``window`` = (start, end) (s or quantity
    strings) for every trace, or by default the first to last nonzero sample of any input."""
    arrays = [np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in inputs.values()]
    n_traces, n_steps = arrays[0].shape
    if window is not None:
        if len(window) != 2:
            raise FeatureError(f"window = {window!r}: expected [start, end], e.g. ['10 ms', '50 ms']")
        start, end = (to_si(w, TIME, name="window") for w in window)
        i0, i1 = round(start / dt), round(end / dt)
        if not 0 <= i0 < i1 <= n_steps:
            raise FeatureError(f"window = {window!r}: need 0 <= start < end <= {n_steps * dt:g} s (the trace length)")
        return [(i0, i1)] * n_traces
    on = np.zeros((n_traces, n_steps), dtype=bool)
    for a in arrays:
        on |= a != 0
    windows = []
    for j in range(n_traces):
        k = np.flatnonzero(on[j])
        windows.append((int(k[0]), int(k[-1]) + 1) if k.size else (0, n_steps))
    return windows


def detect_spikes(traces: np.ndarray, dt: float, threshold: float, dead_time: float = DEFAULT_DEAD_TIME) -> list:
    """Spike times (s) of the recorded traces (n_traces, n_steps), one array per trace, by the package's one
    detector (``neurofit.data.spikes.detect_spikes``: upward crossings ``v[k-1] < threshold <= v[k]`` at
    t = k*dt, crossings within ``dead_time`` (default 1 ms) of the previous spike ignored)."""
    return _detect_spikes(traces, dt, threshold, dead_time)


def _resting_range(i0: int) -> tuple[int, int]:
    return round(0.1 * i0), round(0.9 * i0)


def _trace_feature(name: str, x: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Library feature ``name`` of x (n_sets, n_steps) → (n_sets,)."""
    i0, i1 = window
    w = x[:, i0:i1]
    if name == "v_max":
        return w.max(axis=1)
    if name == "v_mean":
        return w.mean(axis=1)
    if name == "v_std":
        return w.std(axis=1)
    if name == "v_kurtosis":
        d = w - w.mean(axis=1, keepdims=True)
        with np.errstate(all="ignore"):
            return (d ** 4).mean(axis=1) / (d ** 2).mean(axis=1) ** 2
    r0, r1 = _resting_range(i0)
    rest = x[:, r0:r1].mean(axis=1)
    if name == "resting_potential":
        return rest
    tail = max(1, round(0.1 * (i1 - i0)))
    return x[:, i1 - tail:i1].mean(axis=1) - rest  # voltage_deflection


def _spike_feature(name: str, times: np.ndarray, t0: float, t1: float) -> float:
    s = times[(times >= t0) & (times < t1)]
    if name == "spike_count":
        return float(s.size)
    if name == "mean_isi":
        return float(np.diff(s).mean()) if s.size > 1 else t1 - t0
    return float(s[0] - t0) if s.size else t1 - t0  # first_spike_latency


def _efel_names() -> set:
    import efel
    return set(efel.get_feature_names())


class FeatureSet(dict):
    """Hand-picked features per output (see the module docstring), evaluated on batches. The set is the dict it
    was given (output → list of feature names and callables, as brian2modelfitting's Inferencer keeps it)."""

    def __init__(self, features: dict, windows: list, dt: float, n_steps: int):
        if not isinstance(features, dict) or not features:
            raise FeatureError("features must be a dict {output: [feature, ...]}, e.g. {'v': ['v_max', 'v_mean']}")
        super().__init__(features)
        self.windows, self.dt, self.n_steps = list(windows), float(dt), int(n_steps)
        self.spec = {}
        efel_names = None
        for var, items in features.items():
            if isinstance(items, (str, bytes)) or callable(items) or not hasattr(items, "__iter__"):
                raise FeatureError(f"features['{var}'] must be a list of feature names or callables, e.g. ['v_max']")
            parsed = []
            for k, item in enumerate(items):
                if callable(item):
                    name = getattr(item, "__name__", "")
                    parsed.append(("callable", item, f"f{k}" if name in ("", "<lambda>") else name))
                    continue
                if not isinstance(item, str):
                    raise FeatureError(f"features['{var}'][{k}] = {item!r}: expected a feature name or a callable")
                library = SPIKE_FEATURES if var == SPIKES else TRACE_FEATURES
                if item in library:
                    parsed.append(("library", item, item))
                    continue
                efel_name = item[len("efel:"):] if item.startswith("efel:") else item
                efel_names = efel_names if efel_names is not None else _efel_names()
                if var == SPIKES or efel_name not in efel_names:
                    raise FeatureError(f"features['{var}']: unknown feature '{item}' (library: {', '.join(library)}"
                                       + ("" if var == SPIKES else "; or an eFEL feature name") + ")")
                parsed.append(("efel", efel_name, item))
            self.spec[var] = parsed
        self._check_windows()

    def _check_windows(self):
        for var, items in self.spec.items():
            needs_rest = any(kind == "library" and name in ("resting_potential", "voltage_deflection")
                             for kind, name, _ in items)
            for j, (i0, _) in enumerate(self.windows):
                r0, r1 = _resting_range(i0)
                if needs_rest and r1 <= r0:
                    raise FeatureError(f"features['{var}']: resting_potential / voltage_deflection need time before "
                                       f"the stimulus, but the stimulus of trace {j} starts at sample {i0}; give "
                                       f"window=[start, end] or drop these features")

    @property
    def trace_vars(self) -> list[str]:
        return [v for v in self.spec if v != SPIKES]

    @property
    def needs_spikes(self) -> bool:
        return SPIKES in self.spec

    @property
    def names(self) -> list[str]:
        return [f"{var}[{j}].{label}" for var, items in self.spec.items() for j in range(len(self.windows))
                for _, _, label in items]

    def __call__(self, traces: dict, spikes=None) -> np.ndarray:
        """Features of traces {var: (n_sets, n_traces, n_steps)} and spikes[set][trace] → (n_sets, n_features)."""
        n_sets = traces[self.trace_vars[0]].shape[0] if self.trace_vars else len(spikes)
        columns = []
        for var, items in self.spec.items():
            for j, window in enumerate(self.windows):
                if var == SPIKES:
                    t0, t1 = window[0] * self.dt, window[1] * self.dt
                    for kind, f, _ in items:
                        columns.append(np.array([_spike_feature(f, spikes[i][j], t0, t1) if kind == "library"
                                                 else _call(f, spikes[i][j]) for i in range(n_sets)]))
                    continue
                x = np.asarray(traces[var][:, j, :], dtype=np.float64)
                efel_items = [f for kind, f, _ in items if kind == "efel"]
                efel_values = self._efel(x, window, efel_items) if efel_items else {}
                for kind, f, _ in items:
                    if kind == "library":
                        columns.append(_trace_feature(f, x, window))
                    elif kind == "efel":
                        columns.append(efel_values[f])
                    else:
                        columns.append(np.array([_call(f, row) for row in x]))
        return np.stack(columns, axis=1) if columns else np.zeros((n_sets, 0))

    def _efel(self, x: np.ndarray, window, names: list) -> dict:
        import efel
        t_ms = np.arange(x.shape[1]) * self.dt * 1e3
        stim = {"stim_start": [window[0] * self.dt * 1e3], "stim_end": [window[1] * self.dt * 1e3]}
        traces = [{"T": t_ms, "V": row * 1e3, **stim} for row in x]
        results = efel.get_feature_values(traces, names, raise_warnings=False)
        return {name: np.array([_efel_value(r[name]) for r in results]) for name in names}


def _call(f, values) -> float:
    try:
        return float(f(values))
    except (ValueError, ZeroDivisionError, IndexError, FloatingPointError):
        return math.nan


def _efel_value(value) -> float:
    """eFEL returns None or an array per feature: no value → NaN, several (one per spike) → their mean."""
    if value is None or np.size(value) == 0:
        return math.nan
    return float(np.mean(value))


class RawTraces:
    """Automatic features: every trace output, block-averaged to at most ``max_samples`` samples per trace
    (None: at full length) and concatenated (the input of an embedding network)."""

    needs_spikes = False

    def __init__(self, trace_vars: list, n_traces: int, n_steps: int, max_samples: int | None = 256):
        if not trace_vars:
            raise FeatureError("automatic features (features=None) need a trace output such as {'v': traces}")
        if max_samples is not None and max_samples < 1:
            raise FeatureError(f"max_samples = {max_samples}: must be a positive number of samples per trace")
        self.trace_vars, self.n_traces, self.max_samples = list(trace_vars), int(n_traces), max_samples
        self.factor = 1 if max_samples is None else math.ceil(n_steps / max_samples)
        self.n_blocks = n_steps // self.factor

    @property
    def names(self) -> list[str]:
        return [f"{var}[{j}][{b}]" for var in self.trace_vars for j in range(self.n_traces)
                for b in range(self.n_blocks)]

    def __call__(self, traces: dict, spikes=None) -> np.ndarray:
        parts = []
        for var in self.trace_vars:
            x = np.asarray(traces[var], dtype=np.float64)
            x = x[..., :self.n_blocks * self.factor].reshape(*x.shape[:2], self.n_blocks, self.factor).mean(-1)
            parts.append(x.reshape(x.shape[0], -1))
        return np.concatenate(parts, axis=1)
