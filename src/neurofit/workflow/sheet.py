"""Sample sheets: one row per cell, the unit of a batch study (as the Snakemake catalog's samples.tsv).

A sheet is a TSV (``.tsv``/``.txt``) or CSV (``.csv``) file with a header line. Its columns are described,
with their defaults, in ``schemas/sheet.schema.yaml`` (``cell``, ``file``, ``current_file``, ``sweeps``,
``heldout``, ``group``, ``ljp``, ``exclude``); any other column is metadata carried into the outputs. Paths
in a sheet are relative to the sheet. Every error is one line naming the sheet, the line and the column.
"""
from __future__ import annotations

import csv
import functools
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..data.recordings.selection import KINDS, parse_indices
from ..errors import ConfigError

SHEET_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "sheet.schema.yaml"
COLUMNS = ("cell", "file", "current_file", "sweeps", "heldout", "group", "ljp", "exclude")


@dataclass
class Cell:
    """One row of a sample sheet, resolved.

    cell: the id; files / current_files: absolute recording paths (globs expanded, sorted; a ';'-list kept
    in its order); sweeps / heldout: a sweep selector (None: every sweep passing QC; a list of
    ``Sweep.index`` values; or "subthreshold" / "suprathreshold") and the held-out sweeps (a list, empty for
    none); group: the group label ("" for none); ljp: liquid junction potential in V (None for none);
    exclude: the reason the cell is left out ("" to include it); metadata: the other columns, name -> text;
    line: the row's line number in the sheet (for messages).
    """

    cell: str
    files: list
    current_files: list
    sweeps: object
    heldout: list
    group: str
    ljp: float | None
    exclude: str
    metadata: dict = field(default_factory=dict)
    line: int = 0

    def as_dict(self, relative_to=None) -> dict:
        """The cell as a JSON-ready mapping (``Cell.from_dict`` reads it back); with ``relative_to`` (a folder),
        file paths inside it are written relative to it (results then name no machine-specific folder)."""
        def shown(path: str) -> str:
            if relative_to is None:
                return path
            relative = os.path.relpath(path, relative_to)
            return path if relative.startswith("..") else relative
        return {"cell": self.cell, "files": [shown(f) for f in self.files],
                "current_files": [shown(f) for f in self.current_files], "sweeps": self.sweeps,
                "heldout": list(self.heldout), "group": self.group, "ljp": self.ljp, "exclude": self.exclude,
                "metadata": dict(self.metadata), "line": self.line}

    @classmethod
    def from_dict(cls, doc: dict, where: str = "cell") -> "Cell":
        """The cell ``as_dict`` wrote; ConfigError naming ``where`` for a mapping that is not one."""
        try:
            return cls(**{key: doc[key] for key in CELL_FIELDS})
        except (KeyError, TypeError) as err:
            raise ConfigError(f"{where}: not a cell of a sample sheet (missing or wrong field: {err})") from None

    def recording_settings(self) -> dict:
        """The cell's ``data.recording`` settings (path, current, sweeps, ljp) for a study's config."""
        path = self.files[0] if len(self.files) == 1 else list(self.files)
        current = None if not self.current_files else \
            (self.current_files[0] if len(self.current_files) == 1 else list(self.current_files))
        return {"path": path, "current": current, "sweeps": self.sweeps, "ljp": self.ljp}


CELL_FIELDS = ("cell", "files", "current_files", "sweeps", "heldout", "group", "ljp", "exclude", "metadata", "line")


@functools.lru_cache(maxsize=1)
def _row_schema() -> dict:
    return yaml.safe_load(SHEET_SCHEMA_PATH.read_text(encoding="utf-8"))


def read_sheet(path) -> list[Cell]:
    """The cells of the sample sheet at ``path`` (TSV or CSV), in row order.

    path: the sheet file. Returns a list of ``Cell``. Raises ConfigError (one line naming the sheet, line and
    column) for a missing sheet, a missing ``cell`` or ``file`` column, a value that breaks the schema, a
    duplicate cell id or a selector that is not valid. Recordings are not opened here: a cell whose file is
    missing or unreadable fails on its own (a status in the population table), not the sheet.
    """
    import jsonschema

    sheet = Path(path)
    if not sheet.is_file():
        raise ConfigError(f"{sheet}: sample sheet not found")
    delimiter = "," if sheet.suffix.lower() == ".csv" else "\t"
    with open(sheet, newline="", encoding="utf-8") as f:
        # comment lines are read as empty lines (skipped), so that reader.line_num stays the file's line number
        reader = csv.reader((("\n" if line.lstrip().startswith("#") else line) for line in f), delimiter=delimiter)
        lines = [(reader.line_num, values) for values in reader if values]
    header = [name.strip() for name in lines[0][1]] if lines else []
    missing = [c for c in ("cell", "file") if c not in header]
    if missing:
        kind = "comma" if delimiter == "," else "tab"
        raise ConfigError(f"{sheet}: no '{missing[0]}' column (columns: {', '.join(header) or 'none'}; "
                          f"a {sheet.suffix or 'sheet'} file is {kind}-separated)")
    rows = [(number, values) for number, values in lines[1:] if any(v.strip() for v in values)]
    validator = jsonschema.Draft202012Validator(_row_schema())
    cells, seen = [], {}
    for number, row in rows:
        if len(row) != len(header):
            raise ConfigError(f"{sheet} line {number}: {len(header)} columns in the header, {len(row)} here")
        values = {k: v.strip() for k, v in zip(header, row)}
        values = {k: v for k, v in values.items() if v != "" or k in ("cell", "file")}
        errors = sorted(validator.iter_errors(values), key=lambda e: list(e.path))
        if errors:
            err = errors[0]
            column = err.path[0] if err.path else (err.validator_value[0] if err.validator == "required" else "")
            raise ConfigError(f"{sheet} line {number}, column {column}: {_describe(err)}")
        cell = _cell(sheet, number, values)
        if cell.cell in seen:
            raise ConfigError(f"{sheet} line {number}: cell '{cell.cell}' is also on line {seen[cell.cell]}")
        seen[cell.cell] = number
        cells.append(cell)
    if not cells:
        raise ConfigError(f"{sheet}: no rows (one row per cell under the header)")
    return cells


def _describe(err) -> str:
    if err.validator == "pattern" and list(err.path) == ["ljp"]:
        return f"{err.instance!r} is not a number of mV"
    if err.validator == "pattern":
        return f"{err.instance!r} is not valid (letters, digits, _ . - only)"
    if err.validator == "minLength":
        return "empty (required)"
    return " ".join(err.message.split())


def _cell(sheet: Path, line: int, values: dict) -> Cell:
    where = f"{sheet} line {line}"
    files = _files(sheet, values["file"], f"{where}, column file")
    current = _files(sheet, values["current_file"], f"{where}, column current_file") \
        if values.get("current_file") else []
    sweeps = _selector(values.get("sweeps", ""), f"{where}, column sweeps")
    heldout = _selector(values.get("heldout", ""), f"{where}, column heldout")
    if isinstance(heldout, str):
        raise ConfigError(f"{where}, column heldout: {heldout!r}: held-out sweeps are indices such as '12,24' "
                          f"or '2-9'")
    if isinstance(sweeps, list) and set(sweeps) & set(heldout or []):
        both = sorted(set(sweeps) & set(heldout))
        raise ConfigError(f"{where}: sweep {both[0]} is both fitted (sweeps) and held out (heldout)")
    ljp = values.get("ljp")
    metadata = {k: v for k, v in values.items() if k not in COLUMNS}
    return Cell(values["cell"], files, current, sweeps, heldout or [], values.get("group", ""),
                None if not ljp else float(ljp) * 1e-3, values.get("exclude", ""), metadata, line)


def _files(sheet: Path, text: str, where: str) -> list[str]:
    """';'-separated paths or globs relative to the sheet -> absolute paths (each glob sorted)."""
    found = []
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        path = item if os.path.isabs(item) else str((sheet.parent / item).resolve())
        if glob.has_magic(item):
            found.extend(sorted(glob.glob(path)) or [path])  # no match: the cell fails when it is read
        else:
            found.append(path)
    if not found:
        raise ConfigError(f"{where}: no file named")
    return found


def _selector(text: str, where: str):
    """'' -> None; 'subthreshold' -> itself; '2-9' / '0,3' -> list of indices."""
    if not text:
        return None
    if text in KINDS:
        return text
    try:
        return parse_indices(text, where)
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from None
