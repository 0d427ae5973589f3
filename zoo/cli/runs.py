"""``zoo runs [ROOT] [--sort KEY] [--reverse] [--format table|csv|json]``: the runs under a folder."""

from __future__ import annotations

import argparse

from zoo.cli.args import command_parser

EXAMPLES = """\
examples:
  zoo runs                              # every run under runs/, oldest first
  zoo runs runs/mlp_digits --sort test/acc
  zoo runs --sort val/loss --format csv > runs.csv
  zoo runs --format json

One line per run: its directory, start time, model, data, epochs, the best value of the metric
its checkpoints were chosen by, its headline test metric, wall time (fit and test) and status:
running, finished, interrupted (Ctrl-C, SIGTERM, or its process gone) or failed. --sort takes a
test metric, a validation metric (its best value), epochs or wall_s, best first (lowest first
for losses and errors); csv and json list every metric.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    from zoo.runs import FORMATS

    parser = command_parser("zoo runs", "List the runs under a folder, one line each.", EXAMPLES)
    parser.add_argument("root", nargs="?", default="runs", help="the folder the runs are in (default: runs)")
    parser.add_argument("--sort", metavar="KEY", help="test/acc, val/loss, epochs, wall_s or started")
    parser.add_argument("--reverse", action="store_true", help="reverse the order")
    parser.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or json")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    from zoo.runs import collect, format_runs, sort_runs

    runs = sort_runs(collect(args.root), args.sort, args.reverse)
    if not runs and args.format == "table":
        print(f"no runs under {args.root}")
        return
    print(format_runs(runs, args.format))
