"""``neurofit reduce``: a study's model reduction → reduction.json/.npz and heldout.json/.npz."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "fit the reduced model of a study's 'reduction' section to its target; check it on held-out amplitudes"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reduce", help=HELP,
        description=HELP + ". Writes into --output-dir: reduction.json (best parameters, loss, settings, train "
                           "spike counts and gamma factors), reduction.npz (loss per evaluation, fitted and target "
                           "recordings), heldout.json (spike counts and gamma factor per held-out amplitude) and "
                           "heldout.npz (their recordings).")
    add_study_arguments(p)
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder of the four result files")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..workflow.provenance import write_manifest
    from ..workflow.reduction_section import FILES, ReductionSection, write_reduction

    out = Path(args.output_dir)
    with stopwatch() as elapsed:
        study = load_study(args)
        plan = ReductionSection(study)
        summary = write_reduction(plan, out, log=say)
    s = plan.settings
    held = summary["heldout"]
    extras = {"reduction.json": {"loss": summary["loss"], "n_evaluations": summary["n_evaluations"]},
              "heldout.json": {"mean_gamma": held["mean_gamma"] if held else None}}
    for name in FILES:
        write_manifest(out / name, study=study.name, config=study.section, seeds={"reduction": s["seed"]},
                       inputs=config_inputs(args) + plan.data_files, backend=s["backend"], dtype="float64",
                       wall_time=elapsed(), extra=extras.get(name))
    train = summary["train"]
    say(f"reduction '{study.name}': {summary['target']} -> {summary['model']}, loss {summary['loss']:.4g} after "
        f"{summary['n_evaluations']} evaluations; train spike counts {train['target_counts']} (target) vs "
        f"{train['fitted_counts']} (fitted)" + (f"; held-out {held['target_counts']} vs {held['fitted_counts']}, "
                                                f"gamma {[round(g, 3) for g in held['gamma']]}" if held else "")
        + f" ({elapsed():.2f} s) -> {out}")
    return 0
