"""``neurofit inspect``: a table (and optionally a figure) of the sweeps of a recording, to pick sweeps for a config.

The files are read as ``read_recording(FILES, current=..., channel=..., dt=...)`` reads them, so the sweep
numbers in the table are the ones a study's ``sweeps:`` refers to for the same file(s): a file's own sweep
numbers for one file, numbers from 0 across the files for several. Nothing is fitted and nothing else is
written than the --csv table and the --plot figure.
"""
from __future__ import annotations

import sys
import warnings

HELP = "list the sweeps of a recording (step, baseline, noise, spikes, quality control) to pick them for a study"

SPIKE_THRESHOLD = 0.0  # V: a spike is an upward crossing of 0 mV ...
SPIKE_DEAD_TIME = 1e-3  # s: ... at least this long after the previous one
PASS = "pass"
COLUMNS = ("sweep", "file", "protocol", "duration_s", "dt_ms", "step_start_s", "step_stop_s", "step_amplitude_pA",
           "holding_pA", "spike_count", "baseline_mV", "noise_rms_mV", "qc")
# how the printed table shows each column (the CSV keeps full precision)
FORMATS = {"duration_s": "{:.3f}", "dt_ms": "{:.4g}", "step_start_s": "{:.4f}", "step_stop_s": "{:.4f}",
           "step_amplitude_pA": "{:.1f}", "holding_pA": "{:.1f}", "baseline_mV": "{:.2f}", "noise_rms_mV": "{:.3f}"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect", help=HELP,
        description=HELP + ". Prints one row per sweep: protocol, duration, sampling step, the main current step "
                           "(start, stop, amplitude), holding current, number of spikes (upward crossings of 0 mV "
                           "at least 1 ms apart), pre-stimulus baseline and its noise (RMS about a straight line, "
                           "as the quality control measures it) and the quality-control verdict ('pass' or the "
                           "failed checks).")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="recording file(s): .abf, .nwb, .ibw (Igor: the voltage waves), .npz or a format neo reads; "
                        "several files (or a quoted glob pattern) are read as one recording, sweeps numbered "
                        "from 0 across them")
    p.add_argument("--current", nargs="+", metavar="FILE",
                   help="Igor waves only: the current waves, paired in order with the voltage waves")
    p.add_argument("--channel", metavar="C",
                   help="recorded channel holding the membrane potential: index or name (ABF, neo) or electrode "
                        "name (NWB); default the first channel in volts")
    p.add_argument("--dt", metavar="DT",
                   help="sampling step replacing the file's, seconds or a time such as '0.25 ms' (Igor waves "
                        "that store none)")
    p.add_argument("--plot", metavar="PNG", help="write a figure of every sweep's voltage and current (png, svg, pdf)")
    p.add_argument("--csv", metavar="CSV", help="write the table as CSV (units in the column names)")
    p.set_defaults(func=run)


def _channel(text):
    """--channel "1" → 1 (an index); any other text is a channel name."""
    if text is None:
        return None
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else text


def _seconds_or_text(text):
    """--dt "2.5e-4" → 2.5e-4 (seconds); "0.25 ms" stays text (read_recording parses quantities)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def count_spikes(sweep, threshold: float = SPIKE_THRESHOLD, dead_time: float = SPIKE_DEAD_TIME) -> int:
    """Number of action potentials of a sweep, by the package's spike detector (``neurofit.data.spikes``):
    upward crossings of ``threshold`` (V; default 0 mV) at least ``dead_time`` (s; default 1 ms) after
    the last one counted."""
    from ..data.spikes import detect_spikes
    return len(detect_spikes(sweep.voltage, sweep.dt, threshold, dead_time)[0])


def _detrended_rms(values) -> float:
    """RMS of ``values`` about their least-squares straight line (NaN for fewer than 2 samples)."""
    import numpy as np
    if values.size < 2:
        return float("nan")
    positions = np.arange(values.size) - (values.size - 1) / 2.0
    centred = values - values.mean()
    slope = np.dot(positions, centred) / np.dot(positions, positions)
    return float(np.sqrt(np.mean((centred - slope * positions) ** 2)))


def baseline(sweep, window: float) -> tuple[float, float]:
    """(mean, RMS about a straight line) of the pre-stimulus baseline of a sweep, V: the last ``window`` s
    before the current first leaves holding, the first ``window`` s without a stimulus (the quality
    control's baseline); NaN when the stimulus starts at the first sample or a sample is not finite."""
    import numpy as np
    voltage = np.asarray(sweep.voltage, dtype=float)
    samples = max(1, int(round(window / sweep.dt)))
    if sweep.stimulus_start is None:
        part = voltage[:samples]
    else:
        onset = int(round(sweep.stimulus_start / sweep.dt))
        part = voltage[max(0, onset - samples):onset]
    if part.size == 0 or not np.isfinite(part).all():
        return float("nan"), float("nan")
    return float(part.mean()), _detrended_rms(part)


def qc_verdict(sweep) -> str:
    """'pass', or the names of the failed quality-control checks joined by ', '."""
    failed = [name for name, passed in sweep.qc.items() if not passed]
    return ", ".join(failed) if failed else PASS


def _file_label(source: str) -> str:
    """A sweep's source (a path, or 'voltage + current' for Igor pairs) with the folders dropped."""
    from pathlib import Path
    return " + ".join(Path(part).name for part in str(source).split(" + "))


def sweep_table(recording, window: float | None = None):
    """One row per sweep of ``recording`` (a pandas DataFrame with the columns ``COLUMNS``).

    Times in s, dt in ms, currents in pA (step amplitude relative to holding), potentials in mV; step
    columns are NaN for a sweep without a main step. window: baseline length (s), default the quality
    control's ``QCSettings().baseline_window``.
    """
    import pandas as pd

    from ..data.recordings import QCSettings

    window = QCSettings().baseline_window if window is None else window
    nan = float("nan")
    rows = []
    for sweep in recording.sweeps:
        step = sweep.stimulus
        mean, noise = baseline(sweep, window)
        rows.append({
            "sweep": sweep.index,
            "file": _file_label(sweep.source),
            "protocol": sweep.protocol or "",
            "duration_s": sweep.duration,
            "dt_ms": sweep.dt * 1e3,
            "step_start_s": nan if step is None else step.start,
            "step_stop_s": nan if step is None else step.stop,
            "step_amplitude_pA": nan if step is None else step.amplitude * 1e12,
            "holding_pA": sweep.holding * 1e12,
            "spike_count": count_spikes(sweep),
            "baseline_mV": mean * 1e3,
            "noise_rms_mV": noise * 1e3,
            "qc": qc_verdict(sweep),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_table(table) -> str:
    """The table as aligned text (the file column only when the sweeps come from several files; '-' for NaN)."""
    shown = table if table["file"].nunique() > 1 else table.drop(columns="file")
    shown = shown.assign(protocol=shown["protocol"].replace("", "-"))
    formatters = {name: (lambda value, f=fmt: "-" if value != value else f.format(value))
                  for name, fmt in FORMATS.items()}
    return shown.to_string(index=False, formatters=formatters, na_rep="-")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"neurofit: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _print_table(text: str) -> None:
    """Print to stdout; a reader that stops early (``| head``) is no error: the files are still written."""
    import os
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # no second BrokenPipeError when Python flushes at exit
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run(args) -> int:
    from ..data.files import atomic_write_text
    from ..data.recordings import read_recording
    from ..plots import plot_sweeps, save_figure

    files = args.files[0] if len(args.files) == 1 else list(args.files)
    current = None if args.current is None else (args.current[0] if len(args.current) == 1 else list(args.current))
    with warnings.catch_warnings():  # e.g. "dt replaces the wave's sampling step": one line each
        warnings.simplefilter("always")
        warnings.showwarning = _one_line_warning
        recording = read_recording(files, current=current, channel=_channel(args.channel),
                                   dt=_seconds_or_text(args.dt))
    table = sweep_table(recording)
    label = recording.path if isinstance(recording.path, str) else f"{len(recording.path)} files"
    passed = int((table["qc"] == PASS).sum())
    _print_table(f"{label}: {recording.format}, {len(table)} sweep(s), {passed} pass quality control\n"
                 f"{format_table(table)}")
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        print(f"neurofit: table -> {args.csv}", file=sys.stderr)
    if args.plot:
        save_figure(plot_sweeps(recording), args.plot)
        print(f"neurofit: figure -> {args.plot}", file=sys.stderr)
    return 0
