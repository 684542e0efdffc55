"""Real recordings in: read ABF, NWB 2, Igor and neo files into sweeps, check them, make a Dataset.

``read_recording(path)`` returns a ``Recording``: a list of ``Sweep`` (membrane potential in V and
injected current in A, the main current ``Step``, the quality-control verdict). ``Recording.to_dataset``
turns the chosen sweeps into the ``Dataset`` the fitters take (window, liquid junction potential,
resampling). Every problem with a file is a ``RecordingError`` (a ValueError) on one line naming it.
"""
from .errors import RecordingError
from .qc import QCSettings, run_qc
from .read import read_recording
from .stimulus import Step, find_step
from .sweep import Recording, Sweep

__all__ = ["read_recording", "Recording", "Sweep", "Step", "QCSettings", "RecordingError", "find_step", "run_qc"]
