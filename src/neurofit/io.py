"""Files: atomic writes, checksums, and the NPZ format of simulation results.

Every result is written to a temporary file in the target directory and renamed into place
(``os.replace``), so a killed job leaves either the old file or the new one, never half a file.
NPZ archives are written deterministically (fixed zip timestamps, sorted keys): the same numbers
give the same bytes, so checksums can be compared across runs, hosts and clusters.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip file can hold
SIMULATION_FORMAT = "neurofit.simulation"
SIMULATION_VERSION = 1


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def npz_bytes(arrays: dict, compress: bool = False) -> bytes:
    """The bytes of an .npz archive of ``arrays`` (readable by ``np.load``), identical for identical
    arrays: keys sorted, every member dated 1980-01-01."""
    import io as _io
    buffer = _io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method, allowZip64=True) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            member = _io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arrays[key]), allow_pickle=False)
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def atomic_save_npz(path, arrays: dict, compress: bool = False) -> Path:
    """``np.savez`` made atomic and byte-for-byte reproducible."""
    return atomic_write_bytes(path, npz_bytes(arrays, compress=compress))


def read_npz(path) -> dict:
    """Every array of the .npz file ``path``; ``DataError`` (one line) if it is missing or unreadable."""
    from .data import DataError
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot read as .npz ({' '.join(str(err).split())})") from None


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# --- simulation results --------------------------------------------------------------------------

def save_simulation(path, result, params: dict, meta: dict | None = None) -> Path:
    """Write a ``SimulationResult`` to ``path`` (.npz, atomic, deterministic).

    Keys: ``t`` (n_steps,) s; ``traces/<var>`` (n_sets, n_traces, n_steps) SI; ``invalid``
    (n_sets, n_traces) bool; ``params/<name>`` (n_sets,) SI; when spikes were recorded
    ``spikes/counts`` (n_sets, n_traces) and ``spikes/times`` (all spike times in s, set by set,
    trace by trace: split with ``np.cumsum(counts)``); ``__meta__`` JSON (dt, method, backend, ...).
    """
    arrays = {"t": result.t, "invalid": np.asarray(result.invalid, dtype=bool)}
    for name, trace in result.traces.items():
        arrays[f"traces/{name}"] = np.asarray(trace)
    for name, values in params.items():
        arrays[f"params/{name}"] = np.asarray(values, dtype=np.float64).reshape(-1)
    if result.spikes is not None:
        arrays["spikes/counts"] = result.spike_counts
        flat = [times for row in result.spikes for times in row]
        arrays["spikes/times"] = np.concatenate(flat) if flat else np.zeros(0)
    info = {"format": SIMULATION_FORMAT, "version": SIMULATION_VERSION, "dt": result.dt,
            "n_steps": result.n_steps, "method": result.method, "backend": result.backend,
            "dtype": result.dtype, "record": list(result.traces), "param_names": list(params)}
    info.update(meta or {})
    arrays["__meta__"] = np.array(json.dumps(info, sort_keys=True, default=_json_default))
    return atomic_save_npz(path, arrays)


class SimulationFile:
    """A simulation written by ``save_simulation``, read back (all arrays in memory)."""

    def __init__(self, path):
        from .data import DataError
        self.path = Path(path)
        files = read_npz(self.path)
        if "__meta__" not in files:
            raise DataError(f"{self.path}: not a neurofit simulation (no '__meta__' entry)")
        self.meta = json.loads(str(files.pop("__meta__")))
        if self.meta.get("format") != SIMULATION_FORMAT:
            raise DataError(f"{self.path}: format {self.meta.get('format')!r}; expected {SIMULATION_FORMAT!r}")
        self.t = files["t"]
        self.dt = float(self.meta["dt"])
        self.invalid = files["invalid"]
        self.traces = {k[len("traces/"):]: v for k, v in files.items() if k.startswith("traces/")}
        params = {k[len("params/"):]: v for k, v in files.items() if k.startswith("params/")}
        order = [p for p in self.meta.get("param_names", []) if p in params]
        self.params = {p: params[p] for p in order + sorted(set(params) - set(order))}
        self.spikes = None
        if "spikes/counts" in files:
            counts, times = files["spikes/counts"], files["spikes/times"]
            pieces = np.split(times, np.cumsum(counts.reshape(-1))[:-1]) if counts.size else []
            it = iter(pieces)
            self.spikes = [[next(it) for _ in range(counts.shape[1])] for _ in range(counts.shape[0])]

    @property
    def n_sets(self) -> int:
        return self.invalid.shape[0]

    @property
    def n_traces(self) -> int:
        return self.invalid.shape[1]


def load_simulation(path) -> SimulationFile:
    return SimulationFile(path)
