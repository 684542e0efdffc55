"""Sweeps (one membrane-potential trace and the current injected during it) and recordings (lists of them).

A ``Sweep`` holds SI arrays and what was learnt from them when it was made: the main current step, the
holding current and the quality-control verdict. A ``Recording`` is what ``read_recording`` returns;
``Recording.to_dataset`` turns the chosen sweeps into the ``Dataset`` the fitters take: a window given
in seconds or relative to the current step (``{"step": (before, after)}``), the liquid junction
potential, a common sampling step, and optionally each sweep cut short before its first spike
(``stop_before_spike``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import InitVar, dataclass, field

import numpy as np

from ...units import TIME, VOLTAGE, UnitError, to_si
from ..dataset import Dataset
from ..spikes import detect_spikes
from .errors import RecordingError, one_line
from .qc import QCSettings, run_qc
from .resample import is_piecewise_constant, rational_ratio, resample
from .selection import SPIKE_THRESHOLD
from .stimulus import Step, describe_current

FORMATS = ("abf", "nwb", "igor", "neo", "arrays")
_SAME_DT = 1e-9  # relative difference below which two sampling steps are the same
#: stop_before_spike refuses a sweep left with fewer samples than this before its first spike.
MIN_SAMPLES_BEFORE_SPIKE = 10


@dataclass(eq=False)
class Sweep:
    """One current-clamp sweep in SI units.

    index: the file's sweep number (or the position in a list of one-sweep files, from 0);
    dt: sampling step (s); voltage: membrane potential (V), 1-D float64, n samples;
    current: injected current (A), 1-D float64, n samples (the command waveform when the file has one,
    holding level included); protocol: the protocol's name in the file, if any; source: the file(s)
    the sweep was read from. qc_settings (constructor only): thresholds for the quality control
    (default ``QCSettings()``).

    Filled on construction: stimulus (the main ``Step`` of the current, or None), holding (A, the
    current's level before it first changes), stimulus_start / stimulus_stop (s, first departure from
    holding and last return to it, None without a stimulus), qc (check name → passed) and qc_reasons
    (check name → one-line reason, failed checks only). Raises RecordingError for arrays that are not
    1-D, differ in length, or a dt that is not a positive number.
    """

    index: int
    dt: float
    voltage: np.ndarray
    current: np.ndarray
    protocol: str | None = None
    source: str = ""
    qc_settings: InitVar[QCSettings | None] = None
    stimulus: Step | None = field(init=False)
    holding: float = field(init=False)
    stimulus_start: float | None = field(init=False)
    stimulus_stop: float | None = field(init=False)
    qc: dict = field(init=False)
    qc_reasons: dict = field(init=False)

    def __post_init__(self, qc_settings: QCSettings | None):
        where = f"{self.source or 'sweep'} (sweep {self.index})"
        try:
            self.dt = float(self.dt)
        except (TypeError, ValueError):
            raise RecordingError(f"{where}: dt = {self.dt!r} must be a number of seconds") from None
        if not math.isfinite(self.dt) or self.dt <= 0:
            raise RecordingError(f"{where}: dt = {self.dt!r} s must be a positive, finite sampling step")
        self.voltage = self._trace(self.voltage, "voltage", where)
        self.current = self._trace(self.current, "current", where)
        if self.voltage.size != self.current.size:
            raise RecordingError(f"{where}: voltage has {self.voltage.size} samples but current has "
                                 f"{self.current.size}; a sweep needs both sampled together")
        described = describe_current(self.current, self.dt)
        self.stimulus, self.holding = described.step, described.holding
        self.stimulus_start, self.stimulus_stop = described.stimulus_start, described.stimulus_stop
        self.check_quality(qc_settings)

    @staticmethod
    def _trace(values, name: str, where: str) -> np.ndarray:
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise RecordingError(f"{where}: {name} is not numeric") from None
        if array.ndim != 1:
            raise RecordingError(f"{where}: {name} has shape {array.shape}; a sweep's traces are 1-D")
        return array

    def check_quality(self, settings: QCSettings | None = None) -> None:
        """Run the quality control again with ``settings`` (default ``QCSettings()``); fills qc / qc_reasons."""
        self.qc, self.qc_reasons = run_qc(self, settings)

    @property
    def passed_qc(self) -> bool:
        """True when every quality-control check passed."""
        return all(self.qc.values())

    @property
    def duration(self) -> float:
        """n samples * dt (s)."""
        return self.voltage.size * self.dt


def _seconds(value, name: str) -> float:
    try:
        number = to_si(value, TIME, name=name)
    except UnitError as err:
        raise RecordingError(f"{name} = {value!r}: {one_line(err)} (give seconds or a time like '200 ms')") from None
    if not math.isfinite(number):
        raise RecordingError(f"{name} = {value!r} must be a finite time")
    return number


@dataclass(eq=False)
class Recording:
    """The sweeps read from one file (or one list of one-sweep files).

    sweeps: list of ``Sweep``; path: the file read (str), or the list of files; format: one of
    "abf", "nwb", "igor", "neo", "arrays"; files: path → sha256 of every file read.
    Raises RecordingError for another format.
    """

    sweeps: list
    path: object
    format: str
    files: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise RecordingError(f"{self.path}: format {self.format!r} is not one of {', '.join(FORMATS)}")

    def check_quality(self, settings: QCSettings | None = None) -> None:
        """Run the quality control of every sweep again with ``settings`` (default ``QCSettings()``)."""
        for sweep in self.sweeps:
            sweep.check_quality(settings)

    def _select(self, sweeps) -> list:
        by_index = {sweep.index: sweep for sweep in self.sweeps}
        if sweeps is None:
            chosen = [sweep for sweep in self.sweeps if sweep.passed_qc]
            if not chosen:
                reasons = "; ".join(f"sweep {s.index}: {next(iter(s.qc_reasons.values()))}" for s in self.sweeps[:3])
                raise RecordingError(f"{self.path}: no sweep passes quality control ({reasons}); choose sweeps= "
                                     f"explicitly or loosen QCSettings and call check_quality")
            return chosen
        if isinstance(sweeps, (int, np.integer)):
            sweeps = [sweeps]
        chosen, seen = [], set()
        for index in sweeps:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or int(index) not in by_index:
                raise RecordingError(f"{self.path}: no sweep {index!r} (sweeps: {_ranges(sorted(by_index))})")
            if int(index) in seen:
                raise RecordingError(f"{self.path}: sweep {index} is selected twice")
            seen.add(int(index))
            chosen.append(by_index[int(index)])
        if not chosen:
            raise RecordingError(f"{self.path}: sweeps= is empty; give at least one sweep number")
        return chosen

    def to_dataset(self, sweeps=None, window=None, ljp=None, dt=None, stop_before_spike=None) -> Dataset:
        """The chosen sweeps as a neurofit ``Dataset``: inputs {"I": (n, n_steps)} A, outputs {"v": ...} V.

        sweeps: list of ``Sweep.index`` values (default: every sweep that passes quality control);
        window: the part of each sweep to keep, default all - either (start, stop), seconds from the sweep's
        start or quantity strings ("200 ms"), or ``{"step": (before, after)}`` (seconds or quantity strings,
        each >= 0): from ``before`` ahead of the earliest ``stimulus.start`` of the chosen sweeps to ``after``
        past their latest ``stimulus.stop``, clipped to [0, the longest chosen sweep's duration]; chosen
        sweeps without a main step (``stimulus`` None) are ignored for these times, and at least one must
        have a step;
        ljp: liquid junction potential subtracted from the voltage, V = V_recorded - ljp (V or "14 mV");
        dt: new sampling step (s or "0.1 ms"), a simple fraction of the recorded one (see ``resample``);
        stop_before_spike: margin (s or "5 ms", >= 0), default None (off) - each sweep ends ``margin``
        before its first spike inside the window (the sample of the spike time minus margin / dt samples is
        the first one left out), so that a subthreshold model sees only the rising phase of a spiking
        sweep; a spike is an upward crossing of ``SPIKE_THRESHOLD`` (0 V) of the recorded voltage
        (before ljp and resampling), found by ``neurofit.data.spikes.detect_spikes`` as in the sweep
        selectors. Sweeps without a spike in the window keep their whole window.
        Sweeps of different lengths (recorded so, or cut before a spike) are padded to the longest (voltage
        NaN, current held at its last value) and ``Dataset.lengths`` holds each sweep's samples (None when
        all are equally long); a window is a window of the longest sweep, each sweep keeps its part of it.
        The dataset's source records the files with their sha256 ("files"), the original lengths in samples
        ("lengths") and the preprocessing ("preprocessing": sweeps, window as [start, stop] in s,
        window_rule ({"step": [before, after]} in s, or None), ljp, dt, padding, how the current was
        resampled, stop_before_spike (margin in s or None), spike_cut (per sweep, the samples cut from the
        end of its window part; 0 without a spike) and first_spike (per sweep, the time in s from the
        sweep's start of its first spike in the window, or None)).
        Returns the ``Dataset``: n chosen sweeps, n_steps samples each (the longest), at the new (or common)
        dt in s. Raises RecordingError (one line) for unknown sweeps, no sweep passing QC, a window outside
        the sweeps (or starting after a chosen sweep's end), a step window without any chosen sweep having a
        step or with a negative margin, different sampling steps without dt=, a dt that is not a simple
        fraction, a negative stop_before_spike, or a sweep that spikes fewer than
        ``MIN_SAMPLES_BEFORE_SPIKE`` samples (after the margin) into the window.
        """
        chosen = self._select(sweeps)
        ljp_volts = _ljp_volts(ljp)
        margin = None if stop_before_spike is None else _seconds(stop_before_spike, "stop_before_spike")
        if margin is not None and margin < 0:
            raise RecordingError(f"stop_before_spike = {stop_before_spike!r} must be >= 0 (the time kept out before "
                                 f"the first spike, e.g. '5 ms')")
        recorded_steps = sorted({sweep.dt for sweep in chosen})
        new_dt = self._common_step(recorded_steps, dt)
        voltages, currents, held = [], [], []
        for sweep in chosen:
            voltage = sweep.voltage if ljp_volts is None else sweep.voltage - ljp_volts
            current = sweep.current
            if not _same_step(sweep.dt, new_dt):
                held.append(is_piecewise_constant(current))
                voltage, current = resample(voltage, sweep.dt, new_dt), resample(current, sweep.dt, new_dt)
            voltages.append(voltage)
            currents.append(current)
        longest = max(v.size for v in voltages)
        start, stop, window_seconds, window_rule = (0, longest, None, None) if window is None else \
            self._window(window, new_dt, longest, chosen)
        kept = [min(stop, v.size) - start for v in voltages]  # samples of each sweep in the window
        empty = [sweep for sweep, n in zip(chosen, kept) if n <= 0]
        if empty:
            raise RecordingError(f"{self.path}: the window starts at {start * new_dt:g} s, after the end of sweep "
                                 f"{empty[0].index} ({empty[0].duration:g} s); choose a window every chosen sweep "
                                 f"reaches")
        cuts, first_spikes = [0] * len(chosen), [None] * len(chosen)
        if margin is not None:
            for position, sweep in enumerate(chosen):
                cut, first_spikes[position] = self._cut_before_spike(sweep, start, kept[position], new_dt, margin)
                kept[position] -= cut
                cuts[position] = cut
        padded = len(set(kept)) > 1
        n_steps = max(kept)
        preprocessing = {
            "sweeps": [sweep.index for sweep in chosen],
            "selection": "quality control" if sweeps is None else "sweeps=",
            "window": window_seconds,
            "window_rule": window_rule,
            "ljp": ljp_volts,
            "dt": None if all(_same_step(step, new_dt) for step in recorded_steps)
            else {"recorded": recorded_steps, "resampled_to": new_dt},
            "current_resampling": _current_resampling(held),
            "padded_to": n_steps if padded else None,
            "stop_before_spike": margin,
            "spike_cut": cuts if margin is not None else None,
            "first_spike": first_spikes if margin is not None else None,
        }
        label = ", ".join(map(str, self.path)) if isinstance(self.path, (list, tuple)) else str(self.path)
        source = {"inputs": {"I": label}, "outputs": {"v": label}, "format": self.format,
                  "files": dict(self.files), "lengths": [sweep.voltage.size for sweep in chosen],
                  "preprocessing": preprocessing}
        pads = [n_steps - n for n in kept]
        return Dataset(inputs={"I": np.stack([np.pad(c[start:start + n], (0, p), mode="edge")
                                              for c, n, p in zip(currents, kept, pads)])},
                       outputs={"v": np.stack([np.pad(v[start:start + n], (0, p), constant_values=np.nan)
                                               for v, n, p in zip(voltages, kept, pads)])},
                       dt=new_dt, units={"I": "amp", "v": "volt"}, source=source,
                       lengths=np.array(kept) if padded else None)

    def _common_step(self, recorded_steps: list, dt) -> float:
        """The dataset's sampling step (s): ``dt`` when given (checked against every recorded step), else
        the sweeps' one step; RecordingError when they differ and dt is None."""
        if dt is None:
            if not _same_step(recorded_steps[0], recorded_steps[-1]):
                listed = ", ".join(f"{step:g}" for step in recorded_steps)
                raise RecordingError(f"{self.path}: the chosen sweeps are sampled every {listed} s; give dt= to "
                                     f"resample them to one step")
            return recorded_steps[0]
        new_dt = _seconds(dt, "dt")
        for step in recorded_steps:
            rational_ratio(step, new_dt)  # refuse an impossible dt before any work
        return new_dt

    def _window(self, window, dt: float, samples: int, chosen: list) -> tuple[int, int, list, dict | None]:
        """(first sample, one past the last, [start, stop] in s, the rule or None) of a window given as
        (start, stop) or as {"step": (before, after)} around the main steps of the ``chosen`` sweeps.

        window: see ``to_dataset``; dt: the dataset's sampling step (s); samples: the longest chosen sweep's
        length in samples of dt; chosen: the chosen ``Sweep`` objects."""
        duration = samples * dt
        rule = None
        if isinstance(window, dict):
            begin, end, rule = self._step_window(window, chosen, duration)
        else:
            if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") or len(window) != 2:
                raise RecordingError(f"window = {window!r} must be (start, stop), e.g. (0.1, 0.9) or ('100 ms', "
                                     f"'900 ms'), or {{'step': (before, after)}}, e.g. {{'step': ('100 ms', '200 ms')}}")
            begin, end = (_seconds(value, f"window {name}") for value, name in zip(window, ("start", "stop")))
        if not 0 <= begin < end <= duration + dt / 2:
            raise RecordingError(f"window = ({begin:g}, {end:g}) s must satisfy 0 <= start < stop <= {duration:g} s "
                                 f"(the length of the sweeps of {self.path})")
        first, last = int(round(begin / dt)), min(samples, int(round(end / dt)))
        if last <= first:
            raise RecordingError(f"window = ({begin:g}, {end:g}) s holds no sample at dt = {dt:g} s")
        return first, last, [begin, end], rule

    def _step_window(self, window: dict, chosen: list, duration: float) -> tuple[float, float, dict]:
        """(start, stop) in s of a window {"step": (before, after)} and the rule {"step": [before, after]} in s:
        from before ahead of the earliest step start of the ``chosen`` sweeps to after past their latest step
        stop, clipped to [0, duration] (s, the longest chosen sweep's)."""
        margins = window.get("step")
        if set(window) != {"step"} or isinstance(margins, (str, bytes)) or not hasattr(margins, "__len__") \
                or len(margins) != 2:
            raise RecordingError(f"window = {window!r} must be {{'step': (before, after)}}, e.g. {{'step': "
                                 f"('100 ms', '200 ms')}}, or (start, stop)")
        before, after = (_seconds(value, f"window step {name}") for value, name in zip(margins, ("before", "after")))
        if before < 0 or after < 0:
            raise RecordingError(f"window = {{'step': ({before:g}, {after:g})}} s: before and after must be >= 0 "
                                 f"(the time kept ahead of the step's start and past its stop)")
        steps = [sweep.stimulus for sweep in chosen if sweep.stimulus is not None]
        if not steps:
            raise RecordingError(f"{self.path}: window {{'step': ...}} needs a current step, but none of the chosen "
                                 f"sweeps ({_ranges(sorted(s.index for s in chosen))}) has one; give the window as "
                                 f"[start, stop] in seconds")
        begin = max(0.0, min(step.start for step in steps) - before)
        end = min(duration, max(step.stop for step in steps) + after)
        return begin, end, {"step": [before, after]}

    def _cut_before_spike(self, sweep: Sweep, start: int, kept: int, dt: float, margin: float) -> tuple:
        """(samples to cut from the end of the sweep's window part, its first spike's time in s or None).

        sweep: the chosen ``Sweep``; start: the window's first sample and kept: the sweep's samples in it
        (both at dt); dt: the dataset's sampling step (s); margin: stop_before_spike (s). The first spike
        in the window is found on the recorded voltage (see ``to_dataset``); the samples from the one at
        ``spike - margin`` on are cut. RecordingError when fewer than MIN_SAMPLES_BEFORE_SPIKE are left."""
        begin, end = start * dt, (start + kept) * dt
        tolerance = 1e-9 * dt
        times = detect_spikes(sweep.voltage, sweep.dt, threshold=SPIKE_THRESHOLD)[0]
        inside = times[(times >= begin - tolerance) & (times < end - tolerance)]
        if inside.size == 0:
            return 0, None
        spike = float(inside[0])
        stop = math.ceil(spike / dt - 1e-9) - int(round(margin / dt))  # first sample left out
        left = stop - start
        if left < MIN_SAMPLES_BEFORE_SPIKE:
            raise RecordingError(f"{self.path}: sweep {sweep.index} spikes at {(spike - begin) * 1e3:.3g} ms into the "
                                 f"window; nothing left before it with stop_before_spike = {margin * 1e3:g} ms (fewer "
                                 f"than {MIN_SAMPLES_BEFORE_SPIKE} samples); start the window earlier, lower "
                                 f"stop_before_spike or leave the sweep out")
        return kept - left, spike


def paired_traces(voltage, current, voltage_step: float, current_step: float, where: str, names=("voltage", "current"),
                  stacklevel: int = 4) -> tuple:
    """A voltage trace and its current as one sweep: the same sampling step (RecordingError otherwise, naming
    ``where`` and the two ``names``), cropped to the shorter of the two with a warning when their lengths differ.

    voltage, current: 1-D arrays (V, A); voltage_step, current_step: their sampling steps (s).
    Returns (voltage, current) of one length.
    """
    if abs(voltage_step - current_step) > 1e-9 * voltage_step:
        raise RecordingError(f"{where}: the {names[0]} is sampled every {voltage_step:g} s but the {names[1]} "
                             f"every {current_step:g} s")
    if voltage.size != current.size:
        warnings.warn(f"{where}: the {names[0]} has {voltage.size} samples and the {names[1]} {current.size}; "
                      f"both are cropped to the shorter", stacklevel=stacklevel)
        keep = min(voltage.size, current.size)
        voltage, current = voltage[:keep], current[:keep]
    return voltage, current


def _same_step(first: float, second: float) -> bool:
    return abs(first - second) <= _SAME_DT * max(first, second)


def _ljp_volts(ljp) -> float | None:
    """The liquid junction potential in V (None stays None); RecordingError for anything but a voltage."""
    if ljp is None:
        return None
    try:
        volts = to_si(ljp, VOLTAGE, name="ljp")
    except UnitError as err:
        raise RecordingError(f"ljp = {ljp!r}: {one_line(err)} (give volts or a voltage like '14 mV')") from None
    if not math.isfinite(volts):
        raise RecordingError(f"ljp = {ljp!r} must be a finite voltage")
    return volts


def _current_resampling(held: list) -> str | None:
    """How the resampled currents were resampled (held: one bool per resampled sweep, True = zero-order hold)."""
    if not held:
        return None
    if all(held):
        return "zero-order hold"
    return "anti-aliasing filter" if not any(held) else "zero-order hold (commands) and anti-aliasing filter"


def _ranges(numbers: list) -> str:
    """[0, 1, 2, 5] → "0-2, 5"."""
    parts, start = [], None
    for position, number in enumerate(numbers):
        if start is None:
            start = number
        if position + 1 == len(numbers) or numbers[position + 1] != number + 1:
            parts.append(f"{start}" if start == number else f"{start}-{number}")
            start = None
    return ", ".join(parts) or "none"
