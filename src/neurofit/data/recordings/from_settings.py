"""A study's ``data.recording`` settings -> the ``Dataset`` the fitters take, with its provenance.

The settings (validated against the config schema, defaults filled in) name the file(s), the sweeps,
the window (``[start, stop]``, or ``{step: [before, after]}`` around the chosen sweeps' main current
step), the liquid junction potential, ``stop_before_spike`` (end each sweep this long before its first
spike in the window; null - off) and the quality-control thresholds; the sampling step is the study's
``data.dt`` (sweeps recorded at another step are resampled to it). See ``Recording.to_dataset`` for the
exact rules. Every error is one line that starts with the config key and names the file.
"""
from __future__ import annotations

import glob
import os

from ...errors import ConfigError
from .errors import RecordingError
from .qc import QCSettings
from .read import read_recording
from .selection import select_sweeps


def recording_files(settings: dict) -> list[str]:
    """Every file ``settings`` (``path`` and ``current``: a file, a glob or a list) names, sorted per glob."""
    files = []
    for key in ("path", "current"):
        value = settings.get(key)
        for item in ([] if value is None else [value] if isinstance(value, str) else list(value)):
            matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
            files.extend(matches or [item])
    return files


def read_study_recording(settings: dict, where: str):
    """The ``Recording`` of ``settings`` with its quality control run at the configured thresholds.

    settings: the ``data.recording`` mapping (path, current, channel, qc, ...); where: its key path for
    messages. Raises ConfigError (one line, key path first) for a file that cannot be read or bad
    thresholds.
    """
    for item in recording_files(settings):
        if not glob.has_magic(item) and not os.path.exists(item):
            raise ConfigError(f"{where}.path: {item}: file not found (relative paths start from the working "
                              f"directory, {os.getcwd()})")
    try:
        qc = QCSettings(**(settings.get("qc") or {}))
        return read_recording(settings["path"], settings.get("current"), channel=settings.get("channel"), qc=qc)
    except (RecordingError, TypeError) as err:
        raise ConfigError(f"{where}: {' '.join(str(err).split())}") from None


def recording_dataset(settings: dict, dt: float, where: str):
    """The sweeps ``settings["sweeps"]`` selects, as a Dataset sampled every ``dt`` seconds.

    settings: the ``data.recording`` mapping (path, current, channel, sweeps, window, ljp,
    stop_before_spike, qc, input, output); dt: the study's sampling and simulation step (s);
    where: the key path of ``settings`` for messages. The dataset's input is ``settings["input"]``
    (default I, A) and its output ``settings["output"]`` (default v, V), one row per selected sweep;
    ``dataset.source`` records the files with their sha256, the sweeps and every preprocessing step.
    Raises ConfigError (one line) for an unreadable file, a selector that selects nothing, a window
    outside the sweeps, a step window without a current step, or a sweep that spikes right at the start
    of the window with stop_before_spike.
    """
    recording = read_study_recording(settings, where)
    try:
        sweeps = select_sweeps(recording, settings.get("sweeps"), f"{where}.sweeps")
        dataset = recording.to_dataset(sweeps=sweeps, window=settings.get("window"), ljp=settings.get("ljp"), dt=dt,
                                       stop_before_spike=settings.get("stop_before_spike"))
    except RecordingError as err:
        message = " ".join(str(err).split())
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None
    names = {"I": settings.get("input") or "I", "v": settings.get("output") or "v"}
    if names != {"I": "I", "v": "v"}:
        dataset.inputs = {names["I"]: dataset.inputs["I"]}
        dataset.outputs = {names["v"]: dataset.outputs["v"]}
        dataset.units = {names.get(k, k): u for k, u in dataset.units.items()}
    dataset.source["selector"] = settings.get("sweeps")
    return dataset
