"""The figure of a study's ``simulate`` section: the simulated traces (``neurofit simulate``) over the
recorded ones, one panel per trace. ``neurofit plot-traces`` parses its arguments, calls
``write_traces_figure`` and writes the figure's provenance. Without a study, the simulation is drawn alone
(or over a dataset file) with the defaults of the schema's ``figures`` section.
"""
from __future__ import annotations

import time

from .section import Output
from .study import SCHEMA, Study

#: The schema's defaults of a study's ``figures`` section (what a figure without a study uses).
FIGURE_DEFAULTS = {key: prop.get("default") for key, prop in
                   SCHEMA["$defs"]["study"]["properties"]["figures"]["properties"].items()}


def write_traces_figure(study: Study | None, simulation, output, data=None, dpi: int | None = None,
                        max_traces: int | None = None, title: str | None = None) -> Output:
    """The simulation (.npz of ``neurofit simulate``) over the recordings → ``output`` (.png, .svg or .pdf).
    ``data``: a dataset of ``neurofit prepare`` (default: the study's recordings; no study: none);
    ``dpi``, ``max_traces``: default the study's figures section; ``title``: default study and model."""
    from ..data.dataset import Dataset
    from ..data.files import load_simulation
    from ..plots import plot_traces, save_figure

    start = time.perf_counter()
    figures = study.section["figures"] if study is not None else FIGURE_DEFAULTS
    sim = load_simulation(simulation)
    if data:
        dataset = Dataset.load_npz(data)
    elif study is not None:
        dataset = study.dataset()
    else:
        dataset = None
    units = dict(sim.meta.get("units") or {})
    recorded, inputs = {}, {}
    if dataset is not None:
        units.update(dataset.units)
        recorded = {v: dataset.outputs[v] for v in sim.traces if v in dataset.outputs}
        inputs = dataset.inputs
    fig = plot_traces(sim.t, sim.traces, data=recorded, inputs=inputs, units=units,
                      max_traces=max_traces or figures["max_traces"],
                      title=title or _title(study, sim, units, bool(recorded)))
    save_figure(fig, output, dpi=dpi or figures["dpi"])
    read = [str(simulation)] + ([str(data)] if data else (study.data_files if study is not None else []))
    return Output(str(output), read, time.perf_counter() - start)


def _title(study: Study | None, sim, units: dict, with_data: bool) -> str:
    from ..plots import format_quantity
    head = (f"{study.name}: " if study else "") + str(sim.meta.get("model", "model")) + \
        (" vs recorded data" if with_data else "")
    if sim.n_sets == 1 and sim.params:
        values = ", ".join(f"{p} = {format_quantity(v[0], units.get(p))}" for p, v in sim.params.items())
        return f"{head}\n{values}"
    return f"{head} ({sim.n_sets} parameter sets)" if sim.n_sets > 1 else head
