"""Sweeps stored as plain arrays in an .npz file: "voltage" (V) and "current" (A), (n_sweeps, n_steps), and "dt" (s)."""
from __future__ import annotations

import numpy as np

from .errors import RecordingError, library_failure
from .qc import QCSettings
from .sweep import Sweep

REQUIRED = ("voltage", "current")


def read_arrays(path, *, dt=None, qc: QCSettings | None = None) -> list:
    """One ``Sweep`` per row of the arrays "voltage" (V) and "current" (A) of an .npz file (index = row).

    path: the .npz file; its arrays: voltage and current of equal shape (n_sweeps, n_steps) or
    (n_steps,) for one sweep, and dt (s, a single number) unless given as ``dt=`` (which wins).
    qc: quality-control thresholds. Raises RecordingError (one line) for an unreadable file, missing
    or misshapen arrays, or no dt.
    """
    try:
        with np.load(str(path), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as err:  # zipfile.BadZipFile, ValueError (object arrays), OSError ...
        raise library_failure(path, "an .npz archive", err) from None
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise RecordingError(f"{path}: no array {' or '.join(repr(m) for m in missing)} (arrays: "
                             f"{', '.join(sorted(arrays)) or 'none'}); expected 'voltage' (V) and 'current' (A) "
                             f"shaped (n_sweeps, n_steps), and 'dt' (s)")
    voltage, current = (np.atleast_2d(arrays[name]) for name in REQUIRED)
    if voltage.ndim != 2 or voltage.shape != current.shape or voltage.dtype.kind not in "biuf" \
            or current.dtype.kind not in "biuf":
        raise RecordingError(f"{path}: 'voltage' {arrays['voltage'].shape} and 'current' {arrays['current'].shape} "
                             f"must be real numbers of the same shape (n_sweeps, n_steps)")
    if dt is None:
        if "dt" not in arrays or arrays["dt"].size != 1 or arrays["dt"].dtype.kind not in "iuf":
            raise RecordingError(f"{path}: no single number 'dt' (the sampling step in s); store one or give dt=")
        dt = float(arrays["dt"].ravel()[0])
    return [Sweep(row, dt, voltage[row], current[row], source=str(path), qc_settings=qc)
            for row in range(voltage.shape[0])]
