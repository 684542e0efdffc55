"""``neurofit rate-chunk``: one chunk of a rate study's bifurcation map → chunk .npz."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "compute one chunk of the (w, I_ext) bifurcation map of a study's 'rate' section"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rate-chunk", help=HELP,
        description=HELP + " (fixed points and stable ones at the grid points whose flat index %% OF == CHUNK); "
                           "'neurofit rate-study --chunks ...' gathers the chunks.")
    add_study_arguments(p)
    p.add_argument("--chunk", required=True, type=int, metavar="I", help="index of this chunk, 0 .. OF-1")
    p.add_argument("--of", type=int, metavar="OF",
                   help="number of chunks (default: the section's bifurcation.n_chunks)")
    p.add_argument("--output", required=True, metavar="NPZ", help="the chunk: grid indices and fixed-point counts")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..workflow.provenance import write_manifest
    from ..workflow.rate_section import n_chunks, write_chunk

    with stopwatch() as elapsed:
        study = load_study(args)
        of = args.of if args.of is not None else n_chunks(study)
        write_chunk(study, args.chunk, of, args.output)
    write_manifest(args.output, study=study.name, config=study.section, inputs=config_inputs(args),
                   wall_time=elapsed(), extra={"chunk": args.chunk, "n_chunks": of})
    say(f"rate study '{study.name}': bifurcation chunk {args.chunk} of {of} ({elapsed():.2f} s) -> {args.output}")
    return 0
