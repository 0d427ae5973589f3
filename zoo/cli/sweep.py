"""``zoo sweep -c RECIPE --space SPACE.yaml --trials N [...]``: hyperparameter search with Optuna."""

from __future__ import annotations

import argparse
import sys

from zoo.cli.args import command_parser, require_recipe

EXAMPLES = """\
examples:
  zoo sweep -c mlp_digits --space mlp_digits --trials 20      # a shipped space (recipes/sweeps/)
  zoo sweep -c mlp_digits --space space.yaml --trials 20 --storage sqlite:///sweep.db   # resumable
  zoo sweep -c mlp_digits -c trainer/debug --space space.yaml --trials 3 --metric val/acc

The space file maps config keys (as `zoo train -c RECIPE --print_config` shows them) to
distributions: {uniform: [lo, hi]}, {loguniform: [lo, hi]}, {int: [lo, hi], step: s},
{uniform: [lo, hi], step: s}, {choice: [a, b, ...]}. Before any trial (and any folder), the keys,
every choice, each range's ends and --metric are checked on the recipe (one validation batch).
Every trial is an ordinary run directory under --root (zoo runs and zoo plot read them); a median
pruner stops trials whose validation metric trails. At the end: the trials table (ROOT/trials.csv),
the best configuration as a recipe (ROOT/best.yaml, for zoo train -c) and one test of the best
trial. With --storage, rerunning the command continues the study up to --trials finished trials
(the sampler is seeded anew, so it proposes new points); several machines can share a database
storage (postgresql://...). Ctrl-C marks the trial it stops failed in the study and exits with
status 130.
"""


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = command_parser(
        "zoo sweep",
        "Search hyperparameters of a recipe with Optuna (TPE sampler, median pruner).",
        EXAMPLES,
        usage="zoo sweep -c RECIPE --space SPACE.yaml --trials N [options] [--KEY VALUE ...]",
    )
    parser.add_argument("--space", required=True, help="the YAML file of the search space")
    parser.add_argument("--trials", type=int, required=True, help="finished trials the study should reach")
    parser.add_argument(
        "--metric", default="val/loss", help="the validation metric to optimize (default: val/loss)"
    )
    parser.add_argument("--direction", choices=["minimize", "maximize"], default=None,
                        help="default: minimize losses and errors, maximize the rest")  # fmt: skip
    parser.add_argument("--storage", default=None, help="an Optuna storage URL, e.g. sqlite:///sweep.db")
    parser.add_argument("--study", default=None, help="the study's name (default: the root folder's name)")
    parser.add_argument(
        "--root", default=None, help="where the trials go (default: runs/sweeps/<space name>)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampler (default: 0)")
    parser.add_argument("--jobs", type=int, default=1, help="trials run in parallel processes (default: 1)")
    # a worker process started by --jobs (its number, from 1)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_known_args(argv)


#: the exit status of a sweep Ctrl-C ended: 128 + SIGINT, what a shell reports for such a command
INTERRUPTED_EXIT = 130


def main(argv: list[str]) -> None:
    args, rest = parse(argv)
    try:
        _sweep(args, rest)
    except KeyboardInterrupt as err:  # anywhere: imports, checks, a trial, the results
        if not args.worker:  # the process that started the workers speaks for them
            print(f"zoo: {err or 'interrupted by SIGINT.'}", file=sys.stderr)
        # the sweep said what became of the trial: not the run's own interruption notice as well
        callbacks = sys.modules.get("zoo.callbacks")
        if callbacks is not None and hasattr(callbacks, "INTERRUPTED"):
            callbacks.INTERRUPTED = None
        sys.exit(getattr(err, "exit_code", INTERRUPTED_EXIT))


def _sweep(args: argparse.Namespace, rest: list[str]) -> None:
    from pathlib import Path

    from zoo.recipes import resolve_config_args

    require_recipe("sweep", rest)
    from zoo.sweep import run_sweep

    root = args.root or str(Path("runs") / "sweeps" / Path(args.space).stem)
    run_sweep(
        resolve_config_args(rest),
        args.space,
        args.trials,
        root,
        metric=args.metric,
        direction=args.direction,
        storage=args.storage,
        study_name=args.study,
        seed=args.seed,
        jobs=args.jobs,
        worker=args.worker,
    )
