"""Write current-clamp sweeps as an NWB file that ``read_recording`` reads back (e.g. synthetic cells for a
sample sheet): per sweep a CurrentClampSeries (the voltage) and its CurrentClampStimulusSeries (the injected
current), paired by sweep number and in the icephys tables."""
from __future__ import annotations

import datetime

import numpy as np


def write_nwb_cell(path, current, voltage, dt: float, name: str = "cell") -> None:
    """Write one cell's sweeps to the NWB file ``path``.

    current, voltage: (n_sweeps, n_steps) SI (A, V); dt: sampling interval (s); name: the file's identifier.
    The values are stored as given (float64, conversion 1), so reading the file gives them back exactly."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = NWBFile("synthetic cell", name, datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    electrode = nwb.create_icephys_electrode(name="e", description="pipette", device=nwb.create_device(name="amp"))
    for k, (i, v) in enumerate(zip(current, voltage)):
        response = CurrentClampSeries(name=f"ic_{k}", data=v, electrode=electrode, rate=1 / dt, gain=1.0,
                                      sweep_number=np.uint32(k))
        stimulus = CurrentClampStimulusSeries(name=f"ics_{k}", data=i, electrode=electrode, rate=1 / dt, gain=1.0,
                                              sweep_number=np.uint32(k))
        nwb.add_acquisition(response)
        nwb.add_stimulus(stimulus)
        nwb.add_intracellular_recording(electrode=electrode, stimulus=stimulus, response=response)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
