"""Data: the ``Dataset`` fitters take, array files and atomic writes (``files``), stimuli, synthetic
recordings and the readers of real recordings (``recordings``: ABF, NWB, Igor, neo)."""
from ..exports import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "Dataset": "dataset", "load_dataset": "dataset", "load_array": "dataset", "DataError": "files",
    "read_recording": "recordings", "Recording": "recordings", "Sweep": "recordings", "RecordingError": "recordings",
})
__all__ = ["Dataset", "load_dataset", "load_array", "DataError", "read_recording", "Recording", "Sweep",
           "RecordingError"]
