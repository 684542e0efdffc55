"""Recordings: one ``Dataset`` type, readers for CSV / NPY / NPZ, strict validation.

A ``Dataset`` holds input traces (injected currents, ...), recorded output traces
(membrane potential, ...) and optionally spike trains, all in SI units, sampled every
``dt`` seconds. Every array is (n_traces, n_steps): one row per trace, one column per sample.

Every user mistake raises ``DataError`` with a one-line message that names the file
(and array / row / column where it applies) and says what would be valid. .npy / .npz files are read
through ``neurofit.data.files``'s checked readers (no pickles; truncated, damaged or oversized arrays refused).
"""
from __future__ import annotations

import io
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..units import (
    CAPACITANCE,
    CHARGE,
    CONCENTRATION,
    CONDUCTANCE,
    CURRENT,
    DIMENSIONLESS,
    FREQUENCY,
    RESISTANCE,
    TIME,
    VOLTAGE,
    Dimension,
    UnitError,
    parse_unit,
    to_si,
)
from .files import DataError, atomic_write_bytes, open_npz, read_npy, read_npz

FORMATS = (".csv", ".npy", ".npz")
_META_KEY = "__meta__"
_FORMAT_NAME = "neurofit.dataset"
_FORMAT_VERSION = 1  # files of datasets whose traces are all full length (no "lengths" in the metadata)
_FORMAT_VERSION_LENGTHS = 2  # files of datasets with per-trace lengths (padded traces)
_SPEC_KEYS = ("path", "unit", "key")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _check_samples(array: np.ndarray, where: str) -> None:
    """Raise DataError unless a 2-D float array holds at least one sample and only finite ones."""
    if array.size == 0:
        raise DataError(f"{where} holds no samples (shape {array.shape}); recordings need at least one trace "
                        f"and one sample")
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = array[row, col]
        what = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        raise DataError(f"{where}: row {row}, column {col} is {what}; recordings must be finite numbers")


def _as_2d(array: np.ndarray, where: str) -> np.ndarray:
    """Check a loaded array is real numbers with 1 or 2 dimensions; 1-D becomes one trace (1, n)."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {array.dtype}; recordings must be real numbers")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise DataError(f"{where} has shape {array.shape}; recordings must be 1-D (one trace) "
                        f"or 2-D (n_traces, n_steps)")
    array = array.astype(float)
    _check_samples(array, where)
    return array


def _csv_layout(path: Path) -> tuple[bool, bool]:
    """(has a header row, has an index column), judged from the first non-empty line.

    The first line is a header if its first cell is empty (``DataFrame.to_csv`` writes
    ",0,1,...") or any cell is text; the first column is a trace index only in the first case.
    """
    with open(path, encoding="utf-8-sig") as f:
        first = next((line for line in f if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: file is empty; expected rows of numbers (one row per trace)")
    cells = [cell.strip() for cell in first.split(",")]
    if cells[0] == "":
        return True, True
    for cell in cells:
        try:
            float(cell or 0)
        except ValueError:
            return True, False
    return False, False


def _read_csv(path: Path) -> np.ndarray:
    """Pandas-style CSV (header of sample indices, first column the trace index) or plain numbers.

    A header without an empty first cell (e.g. "a,b,c") means all columns are data.
    A plain CSV with a single column is one trace.
    """
    import pandas as pd  # only CSV needs it; reading .npz data stays light

    header, index = _csv_layout(path)
    options = dict(header=0 if header else None, index_col=0 if index else None, encoding="utf-8-sig")
    try:
        frame = pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as CSV ({_one_line(e)}); expected rows of numbers "
                        f"separated by commas, one row per trace") from None
    if all(dtype.kind in "iuf" for dtype in frame.dtypes):
        array = frame.to_numpy(dtype=float)
    else:
        array = _parse_text_cells(path, options)
    if not header and array.shape[1] == 1:
        array = array[:, 0]
    return array


def _parse_text_cells(path: Path, options: dict) -> np.ndarray:
    """Re-read a CSV as text and convert cell by cell, naming the first cell that is not a number."""
    import pandas as pd

    text = pd.read_csv(path, dtype=str, keep_default_na=False, **options).to_numpy()
    array = np.empty(text.shape)
    for (row, col), cell in np.ndenumerate(text):
        try:
            array[row, col] = float(cell)
        except ValueError:
            what = "empty" if cell.strip() == "" else f"'{cell}', not a number"
            raise DataError(f"{path}: row {row}, column {col} is {what}; "
                            f"recordings must be finite numbers") from None
    return array


def load_array(path, scale: float = 1.0, name: str | None = None) -> np.ndarray:
    """Read one (n_traces, n_steps) float array from .csv, .npy or .npz and multiply it by ``scale``.

    ``name`` selects the array of an .npz file (optional when it holds a single array).
    1-D arrays become one trace, shape (1, n). Raises ``DataError`` for any problem.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        shown = f"'{path.suffix}'" if path.suffix else "(no extension)"
        raise DataError(f"{path}: unknown format {shown} (valid: {', '.join(FORMATS)})")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file; give the path of a {', '.join(FORMATS)} file")
    if name is not None and suffix != ".npz":
        raise DataError(f"{path}: array name '{name}' given, but {suffix} files hold a single array; "
                        f"remove the name or use an .npz file")
    where = str(path)
    if suffix == ".npy":
        array = read_npy(path)
    elif suffix == ".npz":
        with open_npz(path) as archive:
            names = archive.files
            if name is None:
                if len(names) != 1:
                    raise DataError(f"{path}: holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                                    f"give the name of the one to use")
                name = names[0]
            array = archive.read(name)
        where = f"{path}: array '{name}'"
    else:
        try:
            array = _read_csv(path)
        except DataError:
            raise
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read as {suffix} ({_one_line(e)})") from None
    return _as_2d(np.asarray(array), where) * float(scale)


@dataclass
class Dataset:
    """Recorded traces and spike trains, all in SI units, sampled every ``dt`` seconds.

    inputs / outputs: name → (n_traces, n_steps) float array; spikes: output name → one array
    of spike times (s) per trace; units: SI unit name per variable (informational);
    source: where the data came from ({"inputs": {name: path}, "outputs": {...}}).
    lengths: (n_traces,) int array, the number of recorded samples of each trace (1 .. n_steps), for
    traces of different lengths kept whole in one array: samples from ``lengths[i]`` on are padding
    (outputs NaN, inputs held at their last recorded value); None (the default) means every trace is
    full length (``n_steps`` samples).
    The constructor converts arrays to float and calls ``validate``.
    """

    inputs: dict
    outputs: dict
    dt: float
    spikes: dict | None = None
    units: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    lengths: np.ndarray | None = None

    def __post_init__(self):
        self.inputs = {name: self._as_float("inputs", name, a) for name, a in dict(self.inputs).items()}
        self.lengths = None if self.lengths is None else _as_lengths(self.lengths)
        self.outputs = {name: self._as_float("outputs", name, a) for name, a in dict(self.outputs).items()}
        if self.spikes is not None:
            self.spikes = {name: self._as_trains(name, trains) for name, trains in dict(self.spikes).items()}
        self.validate()

    def _label(self, role: str, name: str) -> str:
        files = self.source.get(role)
        path = files.get(name) if isinstance(files, dict) else None
        return f"{role} '{name}'" + (f" ({path})" if path else "")

    def _as_float(self, role: str, name: str, array) -> np.ndarray:
        try:
            return np.asarray(array, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"{self._label(role, name)} is not numeric; recordings must be real numbers") from None

    def _as_trains(self, name: str, trains) -> list:
        if isinstance(trains, (str, bytes)) or not hasattr(trains, "__iter__"):
            raise DataError(f"{self._label('spikes', name)} must be a list with one array of spike times "
                            f"per trace, got {type(trains).__name__}")
        return [self._as_float("spikes", name, times) for times in trains]

    @property
    def n_traces(self) -> int:
        """Number of traces (rows)."""
        return next(iter(self.inputs.values())).shape[0]

    @property
    def n_steps(self) -> int:
        """Number of samples per trace (columns)."""
        return next(iter(self.inputs.values())).shape[1]

    @property
    def duration(self) -> float:
        """Length of each trace in seconds, n_steps * dt (of the longest trace when ``lengths`` is given)."""
        return self.n_steps * self.dt

    @property
    def full_length(self) -> bool:
        """True when every trace has all ``n_steps`` samples (``lengths`` None or all equal to n_steps)."""
        return self.lengths is None or bool(np.all(self.lengths == self.n_steps))

    def valid_mask(self) -> np.ndarray:
        """Returns a (n_traces, n_steps) bool array, True at the recorded (not padded) samples of each trace."""
        lengths = np.full(self.n_traces, self.n_steps) if self.lengths is None else self.lengths
        return np.arange(self.n_steps)[None, :] < lengths[:, None]

    @property
    def t(self) -> np.ndarray:
        """Sample times k * dt (s), k = 0 .. n_steps - 1."""
        return np.arange(self.n_steps) * self.dt

    def validate(self) -> None:
        """Raise ``DataError`` unless dt, every trace and every spike train are consistent and finite."""
        if isinstance(self.dt, bool) or not isinstance(self.dt, numbers.Real):
            raise DataError(f"dt = {self.dt!r} must be a number of seconds")
        self.dt = float(self.dt)
        _check_dt(self.dt, f"{self.dt:g} s")
        if not self.inputs:
            raise DataError("no inputs: a dataset needs at least one input recording (e.g. the injected current 'I')")
        reference = self._label("inputs", next(iter(self.inputs)))
        expected = None
        for role, arrays in (("inputs", self.inputs), ("outputs", self.outputs)):
            for name, array in arrays.items():
                label = self._label(role, name)
                if array.ndim != 2:
                    raise DataError(f"{label} has shape {array.shape}; recordings must be 2-D "
                                    f"(n_traces, n_steps), e.g. x[None, :] for one trace")
                if expected is None:
                    expected = array.shape
                elif array.shape != expected:
                    raise DataError(f"{label} has shape {array.shape} but {reference} has {expected}: "
                                    f"every recording needs one row per trace and the same number of samples")
                if role == "inputs" or self.lengths is None:
                    _check_samples(array, label)
        if self.lengths is not None:
            self._validate_lengths(*expected)
        for name, trains in (self.spikes or {}).items():
            self._validate_spikes(name, trains)

    def _validate_lengths(self, n_traces: int, n_steps: int) -> None:
        """Lengths: one per trace, each 1 .. n_steps; outputs finite up to each trace's length, NaN (or finite)
        after it."""
        if self.lengths.shape != (n_traces,):
            raise DataError(f"lengths has shape {self.lengths.shape}; give one length in samples per trace, "
                            f"shape ({n_traces},)")
        bad = np.flatnonzero((self.lengths < 1) | (self.lengths > n_steps))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"lengths[{i}] = {int(self.lengths[i])}; every trace's length must be between 1 and "
                            f"the number of samples, {n_steps}")
        valid = np.arange(n_steps)[None, :] < self.lengths[:, None]
        for name, array in self.outputs.items():
            label = self._label("outputs", name)
            _check_samples(array[:, :1], label)  # at least one sample (every length is >= 1)
            wrong = ~np.isfinite(array) & (valid | ~np.isnan(array))  # non-finite before the end, or +-inf after
            if wrong.any():
                row, col = (int(i) for i in np.argwhere(wrong)[0])
                value = array[row, col]
                what = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
                raise DataError(f"{label}: row {row}, column {col} is {what}; recordings must be finite numbers up "
                                f"to each trace's length (lengths[{row}] = {int(self.lengths[row])}) and NaN only "
                                f"after it")

    def _validate_spikes(self, name: str, trains: list) -> None:
        label = self._label("spikes", name)
        if len(trains) != self.n_traces:
            raise DataError(f"{label} has {len(trains)} spike trains but the dataset has {self.n_traces} "
                            f"traces: give one array of spike times per trace (empty if none)")
        for i, times in enumerate(trains):
            if times.ndim != 1:
                raise DataError(f"{label}: trace {i} has shape {times.shape}; spike times must be a 1-D array")
            if not np.isfinite(times).all():
                raise DataError(f"{label}: trace {i} has non-finite spike times; spike times must be finite")
            end = self.duration if self.lengths is None else float(self.lengths[i]) * self.dt
            if times.size and (times.min() < 0 or times.max() > end):
                raise DataError(f"{label}: trace {i} has spike times outside [0, {end:g}] s; "
                                f"spike times (s) must lie within the recording")
            decreasing = np.flatnonzero(np.diff(times) < 0)
            if decreasing.size:
                k = int(decreasing[0])
                raise DataError(f"{label}: trace {i} is not sorted ({times[k + 1]:g} s after {times[k]:g} s); "
                                f"spike times must be in increasing order")

    def save_npz(self, path) -> None:
        """Write the dataset to ``path`` (.npz) atomically; dt, units, spikes, source and lengths go in JSON
        metadata (a dataset without lengths is written exactly as before lengths existed, format version 1)."""
        meta = {"format": _FORMAT_NAME, "version": _FORMAT_VERSION, "dt": self.dt, "units": self.units,
                "source": self.source,
                "spikes": None if self.spikes is None else
                {name: [t.tolist() for t in trains] for name, trains in self.spikes.items()}}
        if self.lengths is not None:
            meta.update(version=_FORMAT_VERSION_LENGTHS, lengths=[int(n) for n in self.lengths])
        arrays = {f"inputs/{name}": a for name, a in self.inputs.items()}
        arrays.update({f"outputs/{name}": a for name, a in self.outputs.items()})
        arrays[_META_KEY] = np.array(json.dumps(meta, default=str))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # in the dataset's order: load_npz gives the variables back in it
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load_npz(cls, path) -> "Dataset":
        """Read a dataset written by ``save_npz`` (format version 1, or 2 with per-trace lengths)."""
        files = read_npz(path)
        if _META_KEY not in files:
            raise DataError(f"{path}: not a neurofit dataset (no '{_META_KEY}' entry); write it with "
                            f"Dataset.save_npz, or read single arrays with load_array")
        try:
            meta = json.loads(str(files[_META_KEY]))
        except ValueError as e:
            raise DataError(f"{path}: truncated or damaged (metadata: {_one_line(e)})") from None
        inputs = {k[len("inputs/"):]: a for k, a in files.items() if k.startswith("inputs/")}
        outputs = {k[len("outputs/"):]: a for k, a in files.items() if k.startswith("outputs/")}
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("format") != _FORMAT_NAME or meta.get("version") not in (_FORMAT_VERSION, _FORMAT_VERSION_LENGTHS):
            raise DataError(f"{path}: metadata format {meta.get('format')!r} version {meta.get('version')!r}; "
                            f"expected {_FORMAT_NAME!r} version {_FORMAT_VERSION} or {_FORMAT_VERSION_LENGTHS}")
        try:
            return cls(inputs=inputs, outputs=outputs, dt=meta.get("dt"), spikes=meta.get("spikes"),
                       units=meta.get("units") or {}, source=meta.get("source") or {}, lengths=meta.get("lengths"))
        except DataError as e:
            raise DataError(f"{path}: {e}") from None


def _as_lengths(lengths) -> np.ndarray:
    """Per-trace lengths as a 1-D int64 array; DataError for anything but whole numbers of samples."""
    try:
        array = np.asarray(lengths)
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.ndim != 1 or array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)) \
            or not np.all(array == np.round(array)):
        raise DataError(f"lengths = {lengths!r}: give one whole number of samples per trace, e.g. [2000, 1500]")
    return array.astype(np.int64)


def pre_stimulus_baseline(inputs, outputs, dt: float, window: float = 0.1, lengths=None,
                          tolerance: float | None = None) -> dict:
    """Each trace's pre-stimulus baseline of every output: the mean of the output over the samples before
    the input first changes, at most the last ``window`` seconds before the change; a trace whose input
    never changes takes the mean of its first ``window`` seconds.

    inputs: name → (n_traces, n_steps) array (A, ...; or a single such array); the first change of any of
    them counts: the first sample k with |input[k] - input[0]| > tolerance. outputs: name → (n_traces,
    n_steps) array (V, ...). dt: sampling step (s). window: s, > 0 (at least one sample is used).
    lengths: (n_traces,) recorded samples per trace (padded samples after them are ignored) or None (all
    full). tolerance: in the inputs' unit; None is 1e-9 × the trace's largest |input| (float rounding: a
    recorded command waveform changes exactly; give a tolerance above the noise for a measured current).
    Returns name → (n_traces,) float array, in the output's unit. Raises DataError for a bad window or dt.
    """
    inputs = {"input": inputs} if not isinstance(inputs, dict) else inputs
    currents = [np.atleast_2d(np.asarray(a, dtype=float)) for a in inputs.values()]
    if not currents:
        raise DataError("pre_stimulus_baseline: no inputs; give the input traces (e.g. {'I': currents})")
    if not (isinstance(dt, numbers.Real) and math.isfinite(dt) and dt > 0):
        raise DataError(f"dt = {dt!r} must be a positive number of seconds")
    if not (isinstance(window, numbers.Real) and math.isfinite(window) and window > 0):
        raise DataError(f"window = {window!r} must be a positive number of seconds (e.g. 0.1)")
    n_traces, n_steps = currents[0].shape
    lengths = np.full(n_traces, n_steps) if lengths is None else _as_lengths(lengths)
    span = max(1, int(round(window / dt)))
    first_change = np.empty(n_traces, dtype=np.int64)
    for i in range(n_traces):
        change = n_steps
        for current in currents:
            trace = current[i, :lengths[i]]
            limit = 1e-9 * float(np.max(np.abs(trace))) if tolerance is None else float(tolerance)
            moved = np.flatnonzero(np.abs(trace - trace[0]) > limit)
            if moved.size:
                change = min(change, int(moved[0]))
        first_change[i] = change
    baselines = {}
    for name, output in outputs.items():
        output = np.atleast_2d(np.asarray(output, dtype=float))
        values = np.empty(n_traces)
        for i in range(n_traces):
            if first_change[i] == n_steps:  # the input never changes: the first window
                values[i] = output[i, :min(span, lengths[i])].mean()
            else:
                values[i] = output[i, max(0, first_change[i] - span):first_change[i]].mean()
        baselines[name] = values
    return baselines


def _check_dt(value: float, text: str) -> None:
    if not math.isfinite(value):
        raise DataError(f"dt = {text} must be a finite time step")
    if value <= 0:
        raise DataError(f"dt = {text} must be positive")


_DIMENSION_NAMES = {VOLTAGE: "a voltage", CURRENT: "a current", TIME: "a time", CONDUCTANCE: "a conductance",
                    CAPACITANCE: "a capacitance", RESISTANCE: "a resistance", FREQUENCY: "a frequency",
                    CHARGE: "a charge", CONCENTRATION: "a concentration", DIMENSIONLESS: "dimensionless"}


def describe_dimension(dim: Dimension) -> str:
    """A dimension in words for messages: 'a voltage (volt)', 'a current (amp)', 'of dimension m^2 kg'."""
    name = _DIMENSION_NAMES.get(dim)
    return f"{name} ({dim})" if name else f"of dimension {dim}"


def unit_mismatch(role: str, name: str, unit: str, model) -> str | None:
    """Why recordings in ``unit`` cannot be the ``model``'s input ``name`` (``role`` "inputs") or its
    variable ``name`` (``role`` "outputs"), e.g. "unit 'mV' is a voltage (volt), but the model's input I
    is a current (amp)"; None when they fit or nothing can be said (unit '1', numbers already in SI; a
    variable the model does not have or whose dimension it leaves open). Raises ``UnitError`` for an
    unknown unit."""
    _, given = parse_unit(str(unit))
    if given == DIMENSIONLESS:
        return None
    if role == "inputs":
        expected, what = model.dimensions.get(name) or model.scope.input_dims.get(name), "input"
    else:
        expected, what = (model.dimensions.get(name) if name in model.recordable() else None), "variable"
    if expected is None or expected == given:
        return None
    return f"unit '{unit}' is {describe_dimension(given)}, but the model's {what} {name} is " \
           f"{describe_dimension(expected)}"


def _check_spec(role: str, name: str, spec, model=None) -> tuple[float, Dimension]:
    """One entry of load_dataset's inputs / outputs checked without reading its file → (scale to SI,
    dimension) of its unit; with ``model``, the unit must fit the model's dimension of ``name``."""
    if not isinstance(spec, dict):
        raise DataError(f"{role} '{name}': expected a mapping like {{'path': 'file.csv', 'unit': 'mV'}}, "
                        f"got {spec!r}")
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise DataError(f"{role} '{name}': unknown field(s) {', '.join(unknown)} (valid: {', '.join(_SPEC_KEYS)})")
    for required in ("path", "unit"):
        if required not in spec:
            raise DataError(f"{role} '{name}': missing '{required}' (e.g. {{'path': 'file.csv', 'unit': 'mV'}}; "
                            f"unit '1' for numbers already in SI)")
    try:
        scale, dim = parse_unit(str(spec["unit"]))
        mismatch = unit_mismatch(role, name, spec["unit"], model) if model is not None else None
    except UnitError as e:
        raise DataError(f"{role} '{name}' ({spec['path']}): {_one_line(e)}") from None
    if mismatch:
        raise DataError(f"{role} '{name}' ({spec['path']}): {mismatch}")
    return scale, dim


def load_dataset(inputs: dict, outputs: dict, dt, spikes: dict | None = None, model=None) -> Dataset:
    """Read recordings from files into a validated, SI ``Dataset``.

    ``inputs`` / ``outputs`` map a variable name to ``{"path": file, "unit": "mV", "key": npz-array}``
    ("key" only for .npz files holding several arrays); ``dt`` is a quantity ("0.01 ms") or seconds;
    ``spikes`` (optional) maps a name to one array of spike times (s) per trace. With ``model`` (a
    ``neurofit.Model``), every unit must fit the model's dimension of its variable (an input given in mV
    for a current is a DataError naming the file), checked before any file is read.
    """
    try:
        dt_si = to_si(dt, TIME, name="dt")
    except UnitError as e:
        message = _one_line(e)
        raise DataError(message if message.startswith("dt") else f"dt = {dt!r}: {message}") from None
    _check_dt(dt_si, dt if isinstance(dt, str) else f"{dt_si:g} s")
    specs = [(role, name, spec) for role, given in (("inputs", inputs), ("outputs", outputs))
             for name, spec in dict(given).items()]
    units = [_check_spec(role, name, spec, model) for role, name, spec in specs]
    arrays, source = {"inputs": {}, "outputs": {}}, {"inputs": {}, "outputs": {}}
    for (role, name, spec), (scale, _) in zip(specs, units):
        arrays[role][name] = load_array(spec["path"], scale=scale, name=spec.get("key"))
        source[role][name] = str(spec["path"])
    return Dataset(inputs=arrays["inputs"], outputs=arrays["outputs"], dt=dt_si, spikes=spikes,
                   units={name: str(dim) for (_, name, _), (_, dim) in zip(specs, units)}, source=source)
