"""A small batch study (sample sheet + two fit stages) run through the Snakemake workflow: the subject of
tests/test_batch_workflow.py and of the batch test of tests/test_slurm.py.

The study is the example of config/examples/cells/config.yaml (passive membrane, then AdEx with C, gl, El fixed
at the passive values) made quick: every stage fits with one optimizer (DE, seed 1) on 10 candidates x 4 rounds.
Its sheet is written beside the config (outside the working directory, as make_workdir keeps the config), so
that paths in it are relative to the sheet's folder, as a user's sheet would be. The working directory's
config links to it (tiny_workflow.make_workdir).
"""
import csv
import re
from pathlib import Path

import yaml

from tiny_workflow import ROOT, make_workdir, run_snakemake

EXAMPLE_CONFIG = ROOT / "config" / "examples" / "cells" / "config.yaml"
EXAMPLE_STUDY = "cells_example"
ABF = ROOT / "data" / "recordings" / "abf"
IGOR = ROOT / "data" / "recordings" / "igor"
STUDY = "cells"
COLUMNS = ("cell", "file", "current_file", "sweeps", "heldout", "group", "ljp", "exclude", "species")


def batch_config(sheet: Path, n_samples: int = 10, n_rounds: int = 4) -> dict:
    """The example's batch study, named STUDY, reading ``sheet`` (absolute), each stage's fit cut to one seed
    and ``n_samples`` x ``n_rounds``."""
    section = yaml.safe_load(EXAMPLE_CONFIG.read_text())["studies"][EXAMPLE_STUDY]
    section["sheet"] = str(Path(sheet).resolve())
    for stage in section["stages"]:
        stage["fit"].update(n_samples=n_samples, n_rounds=n_rounds, seeds=[1])
    return {"studies": {STUDY: section}}


def row(cell: str, file, heldout: str = "", group: str = "", exclude: str = "", species: str = "",
        current_file: str = "", sweeps: str = "") -> dict:
    return {"cell": cell, "file": str(file), "current_file": str(current_file), "sweeps": sweeps,
            "heldout": heldout, "group": group, "ljp": "", "exclude": exclude, "species": species}


def write_sheet(path: Path, rows: list) -> Path:
    """Write ``rows`` (dicts of COLUMNS, see ``row``) as a TSV sample sheet."""
    lines = ["\t".join(COLUMNS)] + ["\t".join(r[c] for c in COLUMNS) for r in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def make_batch_workdir(path: Path, rows: list, sheet: Path | None = None) -> Path:
    """``path``/work running the quick batch study over the sheet ``sheet`` (default ``path``/cells.tsv,
    written from ``rows`` unless ``rows`` is None: an existing sheet shared by several working directories).
    Returns the working directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sheet = Path(sheet) if sheet is not None else path / "cells.tsv"
    if rows is not None:
        write_sheet(sheet, rows)
    return make_workdir(path, batch_config(sheet))


def study_results(work: Path) -> Path:
    return Path(work) / "results" / STUDY


def read_table(work: Path) -> list:
    """The rows of results/<study>/population/cells.csv as dicts (text values, '' for empty)."""
    with open(study_results(work) / "population" / "cells.csv", newline="") as f:
        return list(csv.DictReader(f))


def table_lines(work: Path) -> dict:
    """cell -> its line (bytes) of cells.csv (the header under 'cell')."""
    lines = (study_results(work) / "population" / "cells.csv").read_bytes().splitlines(keepends=True)
    return {line.split(b",", 1)[0].decode(): line for line in lines}


def result_jsons(work: Path) -> dict:
    """'<cell>/<stage>' -> bytes of every result.json of the study."""
    cells = study_results(work) / "cells"
    return {str(p.parent.relative_to(cells)): p.read_bytes() for p in sorted(cells.glob("*/*/result.json"))}


def result_stamps(work: Path) -> dict:
    """'<cell>/<stage>' -> (bytes, st_mtime_ns) of every result.json, and '<cell>' -> that of its cell.json."""
    cells = study_results(work) / "cells"
    found = {str(p.parent.relative_to(cells)): (p.read_bytes(), p.stat().st_mtime_ns)
             for p in cells.glob("*/*/result.json")}
    found.update({p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cells.glob("*/cell.json")})
    return found


_RULE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
_WILDCARDS = re.compile(r"^\s*wildcards: (.*)$")
_STATS = re.compile(r"^Job stats:\n(?:.*\n){2}((?:\S+ +\d+\n)+)", re.MULTILINE)


def planned_jobs(work: Path) -> list:
    """The jobs `snakemake -n` would run now: a list of (rule, wildcards dict), checked against the dry run's
    "Job stats" table (per-rule counts), so that a change of Snakemake's output format fails loudly here."""
    status, out = run_snakemake(work, "-n", "--cores", "1")
    assert status == 0, out
    jobs = []
    for line in out.splitlines():
        if m := _RULE.match(line):
            jobs.append((m.group(1), {}))
        elif (m := _WILDCARDS.match(line)) and jobs:
            jobs[-1][1].update(item.split("=", 1) for item in m.group(1).split(", "))
    counts = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    stats = _STATS.search(out)
    if stats is None:
        assert not jobs and "Nothing to be done" in out, out
        return []
    table = dict(line.split() for line in stats.group(1).splitlines())
    assert {rule: int(n) for rule, n in table.items() if rule != "total"} == counts, out
    return jobs


def jobs_by_rule(jobs: list) -> dict:
    """rule -> sorted list of the cells (or '<cell>/<stage>') its jobs are for ('' for a job without a cell)."""
    found = {}
    for rule, wildcards in jobs:
        name = "/".join(wildcards[k] for k in ("cell", "stage") if k in wildcards)
        found.setdefault(rule, []).append(name)
    return {rule: sorted(names) for rule, names in found.items()}
