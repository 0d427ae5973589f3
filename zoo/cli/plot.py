"""``zoo plot RUN [RUN...] [-o curves.png|.pdf|.svg] [--x step|epoch]``: learning curves of finished or
running runs, several overlaid (see :mod:`zoo.curves`)."""

from __future__ import annotations

import argparse

from zoo.cli.args import command_parser

EXAMPLES = """\
examples:
  zoo plot runs/mlp_digits/version_0                 # -> curves.png
  zoo plot runs/mlp_digits -o digits.png             # every run under the folder, overlaid
  zoo plot runs/mlp_digits/version_0 runs/mlp_digits/version_3 --x epoch

Draws the loss, each task metric (training solid, validation dashed) and the learning rate of each
parameter group from the runs' metrics.csv; each run's test metrics appear in its title or legend
entry. `zoo train` draws its own run into RUN/curves.png when it ends.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = command_parser(
        "zoo plot", "Draw the learning curves of one or more runs into a PNG file.", EXAMPLES
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="a run directory, or a folder searched for run directories"
    )
    parser.add_argument(
        "--output",
        "-o",
        default="curves.png",
        help="the image file: .png (default: curves.png), .pdf, .svg, ...",
    )
    parser.add_argument("--x", choices=["step", "epoch"], default="step", help="the horizontal axis")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    from zoo.curves import check_image_path, find_runs, plot_runs
    from zoo.files import check_writable

    check_image_path(args.output, "--output")
    # before reading any run: the default, curves.png, goes into the working folder, which may be
    # read-only; a missing folder is made (by plot_runs) when it can be
    check_writable(args.output, f"--output {args.output}", "curves.png", make_folder=True)
    runs = find_runs(args.runs)
    plot_runs(runs, args.output, x=args.x)
    print(f"wrote {args.output}: the curves of {len(runs)} run{'s' if len(runs) > 1 else ''}")
