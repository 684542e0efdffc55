"""Sample sheets (neurofit.workflow.sheet): rows -> cells, paths relative to the sheet, one-line errors."""
from pathlib import Path

import pytest

from neurofit.errors import ConfigError
from neurofit.workflow.sheet import read_sheet

ROOT = Path(__file__).resolve().parents[1]
REC = ROOT / "data" / "recordings"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_rows_become_cells_with_paths_relative_to_the_sheet(tmp_path):
    folder = tmp_path / "sheets"
    folder.mkdir()
    abf = REC / "abf" / "171116sh_0018.abf"
    sheet = write(folder / "cells.tsv", "cell\tfile\tcurrent_file\tsweeps\theldout\tgroup\tljp\texclude\tage\n"
                  f"c1\t{abf}\t\t0-5\t12,13\tRS\t-14.5\t\tP21\n"
                  f"b6\t{REC}/igor/B6_Ch3_IDRest_18?.ibw\t{REC}/igor/B6_Ch0_IDRest_18?.ibw\tsubthreshold\t\t\t\t\t\n"
                  f"c3\tlocal/missing.abf\t\t\t\t\t\tbroken seal\t\n")
    c1, b6, c3 = read_sheet(sheet)
    assert (c1.cell, c1.files, c1.sweeps, c1.heldout, c1.group, c1.exclude) == \
        ("c1", [str(abf)], [0, 1, 2, 3, 4, 5], [12, 13], "RS", "")
    assert c1.ljp == pytest.approx(-14.5e-3) and c1.metadata == {"age": "P21"} and c1.line == 2
    assert len(b6.files) == 5 and b6.files == sorted(b6.files) and len(b6.current_files) == 5
    assert b6.sweeps == "subthreshold" and b6.ljp is None and b6.heldout == []
    assert c3.files == [str((folder / "local" / "missing.abf").resolve())]  # not opened: fails as a cell later
    assert c3.exclude == "broken seal" and c3.sweeps is None
    assert c1.recording_settings() == {"path": str(abf), "current": None, "sweeps": [0, 1, 2, 3, 4, 5],
                                       "ljp": pytest.approx(-14.5e-3)}


def test_csv_sheets_and_comment_lines(tmp_path):
    sheet = write(tmp_path / "cells.csv", "# recorded 2026\ncell,file,group\nx1,a.abf;b.abf,FS\n")
    (cell,) = read_sheet(sheet)
    assert cell.files == [str(tmp_path / "a.abf"), str(tmp_path / "b.abf")] and cell.group == "FS"


@pytest.mark.parametrize("text, message", [
    ("cell\tpath\nc1\ta.abf\n", "no 'file' column (columns: cell, path"),
    ("cell\tfile\nc1\ta.abf\nc1\tb.abf\n", "line 3: cell 'c1' is also on line 2"),
    ("cell\tfile\nc 1\ta.abf\n", "line 2, column cell: 'c 1' is not valid"),
    ("cell\tfile\nc1\t\n", "line 2, column file: empty (required)"),
    ("cell\tfile\tljp\nc1\ta.abf\t14 mV\n", "line 2, column ljp: '14 mV' is not a number of mV"),
    ("cell\tfile\tsweeps\nc1\ta.abf\t2-\n", "line 2, column sweeps = '2-': expected sweep indices"),
    ("cell\tfile\theldout\nc1\ta.abf\tsubthreshold\n", "column heldout: 'subthreshold': held-out sweeps are"),
    ("cell\tfile\tsweeps\theldout\nc1\ta.abf\t1-3\t3\n", "line 2: sweep 3 is both fitted"),
    ("cell\tfile\nc1\ta.abf\textra\n", "line 2: 2 columns in the header"),
    ("cell\tfile\n", "no rows"),
])
def test_bad_sheets_are_one_line_naming_sheet_line_and_column(tmp_path, text, message):
    sheet = write(tmp_path / "cells.tsv", text)
    with pytest.raises(ConfigError) as err:
        read_sheet(sheet)
    assert "\n" not in str(err.value) and message in str(err.value) and str(sheet) in str(err.value)


def test_missing_sheet(tmp_path):
    with pytest.raises(ConfigError, match="sample sheet not found"):
        read_sheet(tmp_path / "none.tsv")


def test_line_numbers_count_comment_and_blank_lines(tmp_path):
    sheet = write(tmp_path / "cells.tsv", "# a comment\ncell\tfile\nc1\ta.abf\n\nc2\tb.abf\n# another\nc1\tc.abf\n")
    with pytest.raises(ConfigError, match=r"line 7: cell 'c1' is also on line 3"):
        read_sheet(sheet)
    sheet.write_text("# a comment\ncell\tfile\nc1\ta.abf\n\nc2\tb.abf\n")
    assert [c.line for c in read_sheet(sheet)] == [3, 5]
