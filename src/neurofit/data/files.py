"""Files: atomic writes, checksums, checked reading of .npy / .npz files, and the NPZ format of simulation results.

Every result is written to a temporary file in the target directory and renamed into place
(``os.replace``), so a killed job leaves either the old file or the new one, never half a file; a full
disk is one ``DiskFullError`` naming the target, with no temporary file left behind.
NPZ archives are written deterministically (fixed zip timestamps, sorted keys): the same numbers
give the same bytes, so checksums can be compared across runs, hosts and clusters.

Reading: ``read_npy`` and ``open_npz`` / ``read_npz`` check each array's header before loading it -
no pickled objects, and a shape whose size exceeds the bytes in the file (truncated, damaged or forged)
or the memory available is a one-line ``DataError`` naming the file, never a MemoryError.
"""
from __future__ import annotations

import errno
import hashlib
import io as _io
import json
import math
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, NeurofitError

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip file can hold
SIMULATION_FORMAT = "neurofit.simulation"
SIMULATION_VERSION = 1
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: What reading a damaged .npy / .npz raises (zipfile also raises NotImplementedError for an unknown
#: version or compression, RuntimeError for encryption, struct.error for a short record).
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                struct.error)
#: ... and what numpy's parser of a damaged .npy header (a Python literal) raises besides.
_HEADER_ERRORS = (*_READ_ERRORS, SyntaxError, TypeError, RecursionError, tokenize.TokenError)


class DataError(NeurofitError):
    """A recording or data file that cannot be read or that is not a valid dataset (``neurofit.data.dataset``
    re-exports it)."""


# --- sizes and memory ------------------------------------------------------------------------------

def format_bytes(n: float) -> str:
    """``n`` bytes for people, in decimal units: 80 B, 1.5 kB, 8 TB."""
    if abs(n) < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if abs(n) < 999.5:  # else .3g would print 1e+03
            return f"{n:.3g} {unit}"
    return f"{n / 1000:,.0f} PB"


def available_memory() -> int | None:
    """Bytes of memory new allocations can use now: ``MemAvailable`` of /proc/meminfo (Linux), else the
    free physical pages (``os.sysconf``); None when neither is known (no check is made then)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


# --- atomic writes ---------------------------------------------------------------------------------

class DiskFullError(OSError):
    """Writing ``filename`` failed: no space left on its device (ENOSPC) or the disk quota is used up (EDQUOT)."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    On any failure the temporary file is removed and ``path`` keeps its old content; a full disk or quota
    raises ``DiskFullError`` (one line naming ``path``)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno in _NO_SPACE:
            reason = "no space left on the device" if err.errno == errno.ENOSPC else "disk quota exceeded"
            raise DiskFullError(err.errno, f"{reason} while writing {format_bytes(len(data))}; free space or "
                                           f"write the results elsewhere", str(path)) from None
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see ``atomic_write_bytes``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; numpy numbers and arrays and paths are converted."""
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


# --- checked reading of .npy / .npz ----------------------------------------------------------------

def _read_checked_array(f, size: int, where: str, container: str) -> np.ndarray:
    """The array of the .npy stream ``f`` (at its start; ``size`` bytes long), its header checked first.

    ``where`` starts every message (the file, and the array of an archive); ``container`` names what
    ``size`` measures ("the file"). Object (pickled) arrays are refused; a header claiming more data than
    the stream holds, or than the memory available, is a DataError before anything is allocated."""
    try:
        version = np.lib.format.read_magic(f)
    except ValueError as err:
        raise DataError(f"{where}: not an .npy array ({_one_line(err)})") from None
    try:
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = reader(f)
    except _HEADER_ERRORS as err:
        raise DataError(f"{where}: truncated or damaged (bad .npy header: {_one_line(err)})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects (dtype {dtype}), stored as a pickle; refused - "
                        f"neurofit reads arrays of numbers only")
    claimed, held = math.prod(shape) * dtype.itemsize, size - f.tell()
    if claimed > held:
        raise DataError(f"{where}: header claims {format_bytes(claimed)} (shape {shape}, {dtype}), {container} "
                        f"has {held} bytes of data; truncated or damaged")
    available = available_memory()
    if available is not None and claimed > available:
        raise DataError(f"{where}: the array needs {format_bytes(claimed)} of memory, more than the "
                        f"{format_bytes(available)} available")
    buffer = bytearray(claimed)
    if f.readinto(buffer) != claimed:
        raise DataError(f"{where}: truncated or damaged (the data end before the {format_bytes(claimed)} "
                        f"the header gives)")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _one_line(err) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")


def read_npy(path) -> np.ndarray:
    """The array of the .npy file ``path``, header checked before loading (see the module docstring);
    ``DataError`` (one line naming the file) for a missing, damaged, truncated or pickled file."""
    path = Path(path)
    _check_file(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            return _read_checked_array(f, size, str(path), "the file")
    except DataError:
        raise
    except _READ_ERRORS as err:
        raise DataError(f"{path}: truncated or damaged ({_one_line(err)})") from None


class NpzArchive:
    """An .npz file opened for checked reading: ``files`` (array names) and ``read(name)``.

    Use as a context manager (``with open_npz(path) as archive: ...``). Each array's header is checked
    before it is loaded, as in ``read_npy``; every problem is a one-line ``DataError`` naming the file.
    """

    def __init__(self, path):
        self.path = Path(path)
        _check_file(self.path)
        with open(self.path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        if not is_zip:
            raise DataError(f"{self.path}: cannot read as .npz (not a zip archive of arrays)")
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = self._zip.infolist()
        except _READ_ERRORS as err:
            raise DataError(f"{self.path}: truncated or damaged ({_one_line(err)})") from None
        self._members = {info.filename[:-4]: info for info in members if info.filename.endswith(".npy")}

    @property
    def files(self) -> list[str]:
        """Names of the arrays, in the archive's order."""
        return list(self._members)

    def read(self, name: str) -> np.ndarray:
        """The array ``name`` (header checked before loading)."""
        info = self._members.get(name)
        if info is None:
            raise DataError(f"{self.path}: no array named '{name}' (arrays: {', '.join(self.files) or 'none'})")
        where = f"{self.path}: array '{name}'"
        try:
            with self._zip.open(info) as f:
                # np.savez's data end with the member: reading them makes zipfile check the CRC
                return _read_checked_array(f, info.file_size, where, "its archive member")
        except DataError:
            raise
        except _READ_ERRORS as err:
            raise DataError(f"{where}: truncated or damaged ({_one_line(err)})") from None

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_npz(path) -> NpzArchive:
    """The .npz file ``path`` opened for checked reading (a context manager; see ``NpzArchive``)."""
    return NpzArchive(path)


def read_npz(path) -> dict:
    """Every array of the .npz file ``path`` (name -> array), each header checked before loading;
    ``DataError`` (one line naming the file) if it is missing, damaged, truncated or holds pickles."""
    with open_npz(path) as archive:
        return {name: archive.read(name) for name in archive.files}


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file ``path``, read ``chunk`` bytes at a time."""
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
        self.path = Path(path)
        files = read_npz(self.path)
        if "__meta__" not in files:
            raise DataError(f"{self.path}: not a neurofit simulation (no '__meta__' entry)")
        try:
            self.meta = json.loads(str(files.pop("__meta__")))
        except ValueError as err:
            raise DataError(f"{self.path}: truncated or damaged (metadata: {_one_line(err)})") from None
        if not isinstance(self.meta, dict) or self.meta.get("format") != SIMULATION_FORMAT:
            found = self.meta.get("format") if isinstance(self.meta, dict) else None
            raise DataError(f"{self.path}: format {found!r}; expected {SIMULATION_FORMAT!r}")
        missing = [k for k in ("t", "invalid") if k not in files] + (["dt"] if "dt" not in self.meta else [])
        if missing:
            raise DataError(f"{self.path}: not a complete neurofit simulation (no {', '.join(missing)})")
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
        """Number of parameter sets simulated."""
        return self.invalid.shape[0]

    @property
    def n_traces(self) -> int:
        """Number of input traces per parameter set."""
        return self.invalid.shape[1]


def load_simulation(path) -> SimulationFile:
    """The simulation written by ``save_simulation`` to ``path`` (DataError, one line, if it cannot be read)."""
    return SimulationFile(path)


def check_memory(key: str, n_bytes: float, what: str) -> None:
    """ConfigError naming the config ``key`` when ``n_bytes`` (the estimated size of ``what``, e.g.
    "1e+10 candidates x 5 traces x 1497 steps") exceed the memory available now."""
    available = available_memory()
    if available is not None and n_bytes > available:
        raise ConfigError(f"{key}: {what} need about {format_bytes(n_bytes)} of memory, more than the "
                          f"{format_bytes(available)} available; make it smaller")

