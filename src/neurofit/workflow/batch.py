"""Batch studies: every cell of a sample sheet through an ordered list of fit stages.

A study with ``sheet:`` (see ``schemas/config.schema.yaml``, keys ``sheet``, ``data`` and ``stages``) runs its
stages for every row of the sheet. Each (cell, stage) is an ordinary one-recording study under the hood: its
section is built here from the study's shared ``data`` settings, the cell's row (files, sweeps, held-out
sweeps, liquid junction potential) and the stage (model, sweep selector, window, fit), with the parameters an
earlier stage hands on (``from``: fixed at, or searched around, that stage's final values)::

    batch = BatchStudy(Study.load("cells", path="config/examples/cells/config.yaml"))
    cells = batch.cells()                                  # the sheet's rows (read_sheet)
    study = batch.cell_study(cells[0], "adex", fit_indices, previous={"passive": passive_result})

Sweep choice of a (cell, stage): the stage's selector (e.g. subthreshold) picks candidates among the sweeps
passing quality control; the sheet's ``sweeps`` column, when given, narrows them (indices or a kind); the
sheet's ``heldout`` sweeps among them are validation sweeps, the rest are fitted (``split_sweeps``).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path

from ..data.recordings.selection import select_sweeps
from ..errors import ConfigError
from ..units import UnitError, parse_quantity
from .section import si_quantity
from .sheet import Cell, read_sheet
from .study import Study, validate_config

#: Keys of data.recording a batch study takes from the sheet, not from its data section.
FROM_SHEET = ("path", "current", "sweeps", "ljp")
#: Sections that belong to the stages of a batch study, not to the study.
STAGE_SECTIONS = ("model", "fit", "simulate", "infer")


class BatchStudy:
    """A checked batch study: its sheet path, its stages, and the one-recording study of each (cell, stage).

    study: a ``Study`` whose section has ``sheet`` and ``stages``. Construction checks what needs no
    recording: no stage sections at the study level, no sheet keys in data.recording, unique stage names,
    ``from`` naming an earlier stage and parameters of both models, and each stage's model and fit section
    (built on a placeholder recording path). Every mistake is a ConfigError whose message starts with the key
    path.
    """

    def __init__(self, study: Study):
        self.study = study
        section = study.section
        if section.get("sheet") is None:
            raise ConfigError(f"{study.where('sheet')}: missing; a batch study needs a sample sheet")
        for key in STAGE_SECTIONS:
            if section.get(key) is not None:
                raise ConfigError(f"{study.where(key)}: a batch study (sheet) gives its {key} in each of its stages, "
                                  f"not at the study level")
        recording = (section["data"] or {}).get("recording")
        if recording is None:
            raise ConfigError(f"{study.where('data', 'recording')}: missing; a batch study reads each cell's "
                              f"current-clamp recording (give at least data.recording: {{}})")
        for key in FROM_SHEET:
            if recording.get(key) is not None:
                raise ConfigError(f"{study.where('data', 'recording', key)}: comes from the sample sheet in a batch "
                                  f"study (column {'file' if key == 'path' else key}); leave it out here")
        for key in ("inputs", "outputs", "synthetic"):
            if section["data"].get(key):
                raise ConfigError(f"{study.where('data', key)}: a batch study reads recordings (data.recording) "
                                  f"named by its sheet, not {key}")
        self.sheet = Path(section["sheet"])
        self.stages = list(section["stages"])
        self.names = [stage["name"] for stage in self.stages]
        seen = set()
        for index, name in enumerate(self.names):
            if name in seen:
                raise ConfigError(f"{study.where('stages', str(index), 'name')}: '{name}' names two stages")
            seen.add(name)
        for label, names in self.compare_groups().items():
            if len(names) < 2:
                raise ConfigError(f"{study.where('stages', str(self.names.index(names[0])), 'compare')}: '{label}' "
                                  f"names only this stage; give the alternatives the same label")
            if label in self.names:
                raise ConfigError(f"{study.where('stages', str(self.names.index(names[0])), 'compare')}: '{label}' "
                                  f"is also a stage's name; choose another label")
        self._models = {}
        for index, stage in enumerate(self.stages):
            self._check_stage(index, stage)

    # --- checks --------------------------------------------------------------------------------------------
    def _check_stage(self, index: int, stage: dict) -> None:
        from .fit_section import FitSection

        where = self.study.where("stages", str(index))
        probe = self._stage_study(stage, {"path": "cell.abf"}, self.names[index])
        model = probe.model()
        probe.check(model)
        self._models[stage["name"]] = model
        link = stage.get("from")
        if link is not None:
            earlier = self.names[:index]
            if link["stage"] not in earlier:
                raise ConfigError(f"{where}.from.stage: '{link['stage']}' is not an earlier stage "
                                  f"(earlier: {', '.join(earlier) or 'none - this is the first stage'})")
            source = self._models[link["stage"]]
            for key, names in (("fixed", link["fixed"]), ("centred", list(link["centred"]))):
                for name in names:
                    if name not in model.parameters:
                        raise ConfigError(f"{where}.from.{key}: {name} is not a parameter of this stage's model "
                                          f"(parameters: {', '.join(model.parameters)})")
                    if name not in source.parameters:
                        raise ConfigError(f"{where}.from.{key}: {name} is not a parameter of stage "
                                          f"'{link['stage']}' (parameters: {', '.join(source.parameters)})")
            both = set(link["fixed"]) & set(link["centred"])
            if both:
                raise ConfigError(f"{where}.from: {sorted(both)[0]} is both fixed and centred")
            for name, width in link["centred"].items():
                self._centre_width(width, model, name, f"{where}.from.centred.{name}")
        if stage.get("amortize", "cell") == "group":
            self._check_amortized(index, stage)
        # the fit (or infer) section with the parameters an earlier stage will give (placeholders at mid-bounds)
        checked = self._stage_study(stage, {"path": "cell.abf"}, self.names[index],
                                    previous=self._placeholder_values(stage))
        if stage.get("infer") is not None:
            from .infer_section import check_infer_section

            check_infer_section(checked, model)
        else:
            FitSection(checked, model)

    def _check_amortized(self, index: int, stage: dict) -> None:
        """amortize: group needs an infer section, one round (a posterior valid for every cell of the protocol)
        and no ``from`` (each cell's prior would be its own)."""
        where = self.study.where("stages", str(index))
        infer = stage.get("infer")
        if infer is None:
            raise ConfigError(f"{where}.amortize: 'group' trains one posterior per sheet group; it needs an infer "
                              f"section (a fit stage fits each cell on its own)")
        if stage.get("from") is not None:
            raise ConfigError(f"{where}.amortize: 'group' shares one prior and posterior among a group's cells; "
                              f"'from' would give each cell its own prior (use amortize: cell)")
        if infer.get("n_rounds", 1) != 1 or infer.get("truncate"):
            raise ConfigError(f"{where}.infer.n_rounds: a group's posterior must be amortized (n_rounds 1, no "
                              f"truncate): later rounds focus it on one cell's data")

    def amortized(self, name: str) -> bool:
        """Whether stage ``name`` trains one posterior per sheet group (``amortize: group``)."""
        return self.stage(name).get("amortize", "cell") == "group"

    def groups(self, cells: list[Cell]) -> dict:
        """Group folder name -> the cells of that sheet group that are not excluded, in sheet order (cells
        without a group: UNGROUPED). ConfigError naming the sheet line for a group label that cannot name a
        folder."""
        found: dict = {}
        for cell in cells:
            if not cell.exclude:
                found.setdefault(group_folder(cell, self.sheet), []).append(cell)
        return found

    def _placeholder_values(self, stage: dict) -> dict | None:
        """Values standing in for an earlier stage's result when checking a stage before any fit: each
        parameter at the middle of its bounds (geometric on a log scale), else 1."""
        link = stage.get("from")
        if link is None:
            return None
        source = self.stages[self.names.index(link["stage"])]
        values = {}
        for name in [*link["fixed"], *link["centred"]]:
            section = source.get("fit") or source["infer"]
            bound = section["bounds"].get(name)
            value = (section.get("fixed") or {}).get(name)
            if bound is not None and not isinstance(bound, list):  # an infer prior's fixed value
                bound, value = None, bound
            if bound is not None:
                low, high = (si_quantity(b, None, "bounds") for b in bound[:2])
                value = math.sqrt(low * high) if len(bound) > 2 and bound[2] == "log" and low > 0 else (low + high) / 2
            values[name] = si_quantity(value, None, "fixed") if value is not None else 1.0
        return {link["stage"]: {"status": "ok", "parameters": values}}

    @staticmethod
    def _centre_width(width, model, name: str, where: str) -> tuple[str, float]:
        """('factor', f > 1) for a plain number, ('width', w >= 0 in SI) for a quantity of the parameter's unit."""
        if isinstance(width, (int, float)) and not isinstance(width, bool):
            if not width > 1:
                raise ConfigError(f"{where} = {width}: a factor must be above 1 (the search is [value/f, value*f])")
            return "factor", float(width)
        try:
            number, dim = parse_quantity(str(width))
        except UnitError as err:
            raise ConfigError(f"{where} = '{width}': {' '.join(str(err).split())}") from None
        if dim.is_dimensionless:
            if not number > 1:
                raise ConfigError(f"{where} = '{width}': a factor must be above 1 (the search is [value/f, value*f])")
            return "factor", number
        expected = model.dimensions.get(name)
        if expected is not None and dim != expected:
            raise ConfigError(f"{where} = '{width}': has units of {dim}, expected {expected} (the unit of {name}) or "
                              f"a plain factor above 1")
        if not number > 0:
            raise ConfigError(f"{where} = '{width}': the half-width must be positive")
        return "width", number

    # --- cells ---------------------------------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """The sheet's cells, in row order (``read_sheet``: one-line ConfigError for a malformed sheet)."""
        return read_sheet(self.sheet)

    def stage(self, name: str) -> dict:
        """The validated settings of stage ``name``; ConfigError listing the stages otherwise."""
        if name not in self.names:
            raise ConfigError(f"{self.study.where('stages')}: no stage '{name}' (stages: {', '.join(self.names)})")
        return self.stages[self.names.index(name)]

    def required_stage(self, name: str) -> str | None:
        """The stage whose result stage ``name`` takes parameters from (``from``), None for a stage that takes
        none: a stage's job waits for that stage's, and carries its status when it did not end ok."""
        link = self.stage(name).get("from")
        return None if link is None else link["stage"]

    def compare_groups(self) -> dict:
        """Label -> names of the stages that are alternatives (``compare``), in order."""
        groups: dict = {}
        for stage in self.stages:
            if stage.get("compare"):
                groups.setdefault(stage["compare"], []).append(stage["name"])
        return groups

    def recording_settings(self, cell: Cell, stage: dict, sweeps=None) -> dict:
        """The data.recording settings of ``cell`` in ``stage``: the study's shared ones, the cell's files and
        liquid junction potential, the stage's window, and ``sweeps`` (a selector; default: the stage's)."""
        settings = copy.deepcopy(self.study.section["data"]["recording"])
        row = cell.recording_settings()
        settings.update(path=row["path"], current=row["current"], ljp=row["ljp"])
        for key in ("window", "stop_before_spike"):
            if stage.get(key) is not None:
                settings[key] = copy.deepcopy(stage[key])
        settings["sweeps"] = copy.deepcopy(stage.get("sweeps")) if sweeps is None else sweeps
        return settings

    def split_sweeps(self, cell: Cell, stage_name: str, recording) -> tuple[list[int], list[int]]:
        """(fitted, held-out) ``Sweep.index`` values of ``cell`` in a stage, given its ``Recording``.

        Candidates are the sweeps the stage's selector picks; the sheet's sweeps column narrows them (the
        indices it lists, or the sweeps of its kind); the sheet's held-out sweeps among the candidates are
        validation sweeps. Raises RecordingError (one line) when the selector picks nothing, ConfigError when
        nothing is left to fit."""
        stage = self.stage(stage_name)
        where = f"stage {stage_name} (sweeps)"
        candidates = select_sweeps(recording, stage.get("sweeps"), where)
        if isinstance(cell.sweeps, list):
            candidates = [i for i in candidates if i in set(cell.sweeps)]
        elif isinstance(cell.sweeps, str):
            kind = set(select_sweeps(recording, cell.sweeps, f"{self.sheet} line {cell.line}, column sweeps"))
            candidates = [i for i in candidates if i in kind]
        heldout = [i for i in candidates if i in set(cell.heldout)]
        fitted = [i for i in candidates if i not in set(cell.heldout)]
        if not fitted:
            raise ConfigError(f"stage {stage_name}: no sweep of cell {cell.cell} left to fit (the stage's selector "
                              f"{_selector_text(stage.get('sweeps'))}, the sheet's sweeps "
                              f"{_selector_text(cell.sweeps)} and heldout {cell.heldout or 'none'} leave none)")
        return fitted, heldout

    def cell_study(self, cell: Cell, stage_name: str, sweeps, previous: dict | None = None) -> Study:
        """The one-recording ``Study`` of ``cell`` in stage ``stage_name`` on the sweeps ``sweeps`` (a list of
        ``Sweep.index`` values or a selector), with the parameters of ``previous`` (stage name -> its result
        document, as ``run_cell_stage`` writes it) applied as the stage's ``from`` asks."""
        stage = self.stage(stage_name)
        settings = self.recording_settings(cell, stage, sweeps)
        return self._stage_study(stage, settings, stage_name, previous, cell.cell)

    def _stage_study(self, stage: dict, recording: dict, stage_name: str, previous: dict | None = None,
                     cell: str | None = None) -> Study:
        shared = self.study.section["data"]["recording"]
        data = {"dt": self.study.section["data"]["dt"], "recording": {**copy.deepcopy(shared), **recording}}
        kind = "infer" if stage.get("infer") is not None else "fit"
        work = copy.deepcopy(stage[kind])
        if stage.get("from") is not None and previous is not None:
            work = self._with_earlier_values(stage, work, previous)
        text = " ".join(part for part in (self.study.section.get("description", ""), stage.get("description", ""))
                        if part)
        section = {"description": text, "model": copy.deepcopy(stage["model"]), "data": data, kind: work}
        section = validate_config({"studies": {"stage": section}}, label=None)["studies"]["stage"]
        # named by its key path, so that its messages name the stage's keys: studies.<study>.stages.<index>...
        study = Study(f"{self.study.name}.stages.{self.names.index(stage_name)}", section, self.study.origin)
        study.check_model_choice()
        return study

    def _with_earlier_values(self, stage: dict, fit: dict, previous: dict) -> dict:
        """The stage's fit (or infer) section ``fit`` with the parameters of ``from`` taken from the earlier
        stage's result in ``previous``: fixed at its values, or bounds centred on them."""
        link = stage["from"]
        result = previous.get(link["stage"])
        if result is None or result.get("status") != "ok":
            raise ConfigError(f"stage {stage['name']}: stage {link['stage']} has no result to take parameters from")
        values = result["parameters"]
        model = self._models[stage["name"]]
        infer = "fixed" not in fit  # an infer section: a fixed value is a prior entry holding a quantity
        for name in link["fixed"]:
            fit["bounds"].pop(name, None)
            if infer:
                fit["bounds"][name] = float(values[name])
            else:
                fit["fixed"][name] = float(values[name])
        for name, width in link["centred"].items():
            kind, size = self._centre_width(width, model, name, f"stage {stage['name']} from.centred.{name}")
            value = float(values[name])
            if kind == "factor":
                if not value > 0:
                    raise ConfigError(f"stage {stage['name']}: {name} = {value:g} from stage {link['stage']} is not "
                                      f"positive; a factor cannot centre the search on it (give a half-width)")
                fit["bounds"][name] = [value / size, value * size, "log"]
            else:
                fit["bounds"][name] = [value - size, value + size]
            if not infer:
                fit["fixed"].pop(name, None)
        if not any(isinstance(b, list) for b in fit["bounds"].values()):
            raise ConfigError(f"stage {stage['name']}: every parameter is fixed; leave at least one free")
        return fit


#: The group of cells whose sheet row names none (amortize: group).
UNGROUPED = "ungrouped"
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def group_folder(cell: Cell, sheet) -> str:
    """The folder name of ``cell``'s sheet group (results/<study>/groups/<group>/): its label, or UNGROUPED for
    none. ConfigError naming the sheet line when the label is not letters, digits, '_', '.' and '-'."""
    if not cell.group:
        return UNGROUPED
    if not _FOLDER.match(cell.group):
        raise ConfigError(f"{sheet} line {cell.line}, column group: '{cell.group}' cannot name a results folder "
                          f"(use letters, digits, '_', '.' and '-', starting with a letter or digit)")
    return cell.group


def _selector_text(selector) -> str:
    if selector is None:
        return "(all passing QC)"
    return json.dumps(selector) if not isinstance(selector, str) else selector


def row_fingerprint(cell: Cell) -> str:
    """Hash of everything the sheet says about ``cell``: a cell's jobs run again only when it changes."""
    doc = {"cell": cell.cell, "files": cell.files, "current": cell.current_files, "sweeps": cell.sweeps,
           "heldout": cell.heldout, "group": cell.group, "ljp": cell.ljp, "exclude": cell.exclude,
           "metadata": cell.metadata}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
