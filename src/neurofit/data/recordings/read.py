"""``read_recording``: one entry point for every recording format, chosen by extension, then by content.

.abf → pyabf, .nwb → pynwb, .ibw → igor2, .npz → plain arrays; a file with another extension is
recognised by its first bytes (ABF, HDF5 for NWB, zip for .npz) or, failing that, read with neo
when one of neo's readers claims the extension. Every problem is a ``RecordingError`` on one line
naming the file.
"""
from __future__ import annotations

import glob
import math
import os
from pathlib import Path

from ...units import TIME, UnitError, to_si
from ..files import sha256_file
from .abf import read_abf
from .arrays import read_arrays
from .errors import RecordingError, one_line
from .igor import read_igor
from .neo_reader import neo_handles, read_neo
from .nwb import read_nwb
from .qc import QCSettings
from .sweep import FORMATS, Recording

FORMAT_OF_SUFFIX = {".abf": "abf", ".nwb": "nwb", ".ibw": "igor", ".npz": "arrays"}
_SIGNATURES = ((b"ABF ", "abf"), (b"ABF2", "abf"), (b"\x89HDF\r\n\x1a\n", "nwb"), (b"PK\x03\x04", "arrays"))
_CHANNEL_READERS = {"abf": read_abf, "nwb": read_nwb, "neo": read_neo}  # readers that take channel=
_PLAIN_ARRAYS = (".csv", ".tsv", ".txt", ".npy")
_UNSAFE = (".pkl", ".pickle")


def _expand(spec, role: str) -> list:
    """A path, a glob pattern or a list of them → list of Paths (globs sorted by name)."""
    if isinstance(spec, (str, os.PathLike)):
        items = [spec]
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
    else:
        raise RecordingError(f"{role} = {spec!r} must be a file path, a glob pattern or a list of paths")
    paths = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise RecordingError(f"{role}: {item!r} is not a file path")
        text = os.fspath(item)
        if not os.path.exists(text) and glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise RecordingError(f"{text}: no file matches this pattern")
            paths += [Path(match) for match in matches]
        else:
            paths.append(Path(text))
    if not paths:
        raise RecordingError(f"{role}: the list of files is empty")
    for path in paths:
        if not path.exists():
            raise RecordingError(f"{path}: file not found")
        if not path.is_file():
            raise RecordingError(f"{path}: not a file; give a recording file (.abf, .nwb, .ibw, .npz or a neo format)")
    return paths


def _format_of(path: Path) -> str:
    """The reader for ``path``: by extension, by its first bytes, then by neo's extensions."""
    suffix = path.suffix.lower()
    if suffix in FORMAT_OF_SUFFIX:
        return FORMAT_OF_SUFFIX[suffix]
    if suffix in _PLAIN_ARRAYS:
        raise RecordingError(f"{path}: {suffix} files hold numbers without units or sampling step; read them with "
                             f"neurofit.data.dataset.load_dataset, or store voltage, current and dt in an .npz file")
    if suffix in _UNSAFE:
        raise RecordingError(f"{path}: pickle files are not read (unpickling runs code from the file); export the "
                             f"recording to NWB, ABF or .npz")
    with open(path, "rb") as f:
        head = f.read(8)
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if suffix and neo_handles(suffix):
        return "neo"
    shown = f"'{path.suffix}'" if path.suffix else "(no extension)"
    raise RecordingError(f"{path}: unknown recording format {shown} (valid: .abf, .nwb, .ibw, .npz, or a format "
                         f"neo reads such as .smr, .wcp, .axgd)")


def _sampling_step(dt) -> float | None:
    if dt is None:
        return None
    try:
        value = to_si(dt, TIME, name="dt")
    except UnitError as err:
        raise RecordingError(f"dt = {dt!r}: {one_line(err)} (give seconds or a time like '0.1 ms')") from None
    if not math.isfinite(value) or value <= 0:
        raise RecordingError(f"dt = {dt!r} must be a positive, finite sampling step")
    return value


def read_recording(path, current=None, *, channel=None, dt=None, qc: QCSettings | None = None,
                   format: str | None = None) -> Recording:
    """Read current-clamp sweeps from ABF, NWB 2, Igor (.ibw), .npz or any format neo reads.

    path: a file, a glob pattern ("cell_*.abf") or a list of files (the sweeps of all files, in order;
    numbered from 0 across them when there are several files, else the file's own sweep numbers);
    current: only for Igor waves (one channel per file): the current waves, paired in order with the
    voltage waves of ``path``; channel: which recorded channel is the membrane potential (ABF and neo:
    index or name; NWB: electrode name; default the first in volts); dt: sampling step (s or "0.1 ms")
    replacing the file's (needed for Igor waves that store none); qc: quality-control thresholds
    (default ``QCSettings()``); format: force a reader ("abf", "nwb", "igor", "neo", "arrays") instead of
    choosing by extension.
    Returns a ``Recording`` whose sweeps hold SI arrays, the main current step and the QC verdict.
    Raises RecordingError (one line naming the file) for a missing file, an unknown format, a file the
    library cannot read, units of the wrong kind, or a current that cannot be found.
    """
    step = _sampling_step(dt)
    if qc is not None and not isinstance(qc, QCSettings):
        raise RecordingError(f"qc = {qc!r} must be a QCSettings")
    paths = _expand(path, "path")
    current_paths = _expand(current, "current") if current is not None else []
    if format is not None and format not in FORMATS:
        raise RecordingError(f"format = {format!r} is not one of {', '.join(FORMATS)}")
    kinds = {p: format or _format_of(p) for p in paths}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{p.name} ({kind})" for p, kind in kinds.items())
        raise RecordingError(f"{paths[0]}: the files are of different formats ({listed}); read each format separately")
    kind = kinds[paths[0]]
    if kind == "igor":
        if channel is not None:
            raise RecordingError(f"{paths[0]}: channel= does not apply to Igor waves (one channel per file); "
                                 f"give the voltage waves as path and the current waves as current=")
        sweeps = read_igor(paths, current_paths, dt=step, qc=qc)
    else:
        if current_paths:
            raise RecordingError(f"{paths[0]}: current= is only for Igor waves (one channel per file); {kind} files "
                                 f"hold the current themselves")
        if kind == "arrays" and channel is not None:
            raise RecordingError(f"{paths[0]}: channel= does not apply to .npz arrays (voltage and current are named)")
        sweeps = []
        for file in paths:
            if kind == "arrays":
                sweeps += read_arrays(file, dt=step, qc=qc)
            else:
                sweeps += _CHANNEL_READERS[kind](file, channel=channel, dt=step, qc=qc)
        if len(paths) > 1:
            for position, sweep in enumerate(sweeps):
                sweep.index = position
    files = {str(p): sha256_file(p) for p in paths + current_paths}
    shown = str(paths[0]) if len(paths) == 1 and isinstance(path, (str, os.PathLike)) else [str(p) for p in paths]
    return Recording(sweeps=sweeps, path=shown, format=kind, files=files)
