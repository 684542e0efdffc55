"""`snakemake --report`: every figure and table of the workflow carries a caption."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_workflow import ROOT, run_snakemake

#: Outputs that a reader looks at: figures and tables.
SHOWN = (".png", ".svg", ".pdf", ".jpg", ".html", ".csv", ".tsv")

# Loads the workflow with Snakemake's API (in a subprocess: the API sets up Snakemake's global logging) and
# prints, for every output of every rule, its path and its report caption (None when not in the report).
LIST_OUTPUTS = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings
root = Path(sys.argv[1])
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile", workdir=root)
    rules = workflow._workflow.rules
    found = []
    for rule in rules:
        for f in rule.output:
            report = f.flags.get("report")
            caption = None
            if report is not None and report.caption is not None:
                caption = str(report.caption.get_path_or_uri(secret_free=True))
            found.append([rule.name, str(f), report is not None, caption])
print("OUTPUTS " + json.dumps(found))
"""


def rule_outputs():
    proc = subprocess.run([sys.executable, "-c", LIST_OUTPUTS, str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("OUTPUTS ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("OUTPUTS "):])


def test_every_figure_and_table_has_a_caption_file():
    outputs = rule_outputs()
    assert any(in_report for _, _, in_report, _ in outputs)
    missing, no_caption = [], []
    for rule, path, in_report, caption in outputs:
        if path.endswith(SHOWN) and not in_report:
            missing.append(f"{rule}: {path}")
        if in_report and (caption is None or not Path(caption).is_file() or not Path(caption).read_text().strip()):
            no_caption.append(f"{rule}: {path} (caption {caption})")
    assert missing == [], "figures/tables not wrapped in report(..., caption=...): " + "; ".join(missing)
    assert no_caption == [], "report outputs without a caption file in workflow/report/: " + "; ".join(no_caption)
    for _, _, _, caption in outputs:
        if caption:
            assert Path(caption).resolve().parent == ROOT / "workflow" / "report", caption


@pytest.mark.slow
def test_report_of_a_run_holds_the_results_and_their_captions(tiny_reference, tmp_path):
    report = tmp_path / "report.html"
    status, out = run_snakemake(tiny_reference, "--report", report)
    assert status == 0, out
    html = report.read_text(errors="replace")
    caption = (ROOT / "workflow" / "report" / "fit_summary.rst").read_text().split()
    assert " ".join(caption[4:12]) in html  # the table's caption (words after the study's name)
    assert "neurofit audit" in html  # the workflow's description (workflow/report/workflow.rst)
    assert "fits.csv" in html
    assert "posterior.csv" in html and "posterior pairplot" in html  # the inference stage of the tiny study
