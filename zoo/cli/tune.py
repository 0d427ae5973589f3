"""``zoo tune-lr`` and ``zoo tune-batch-size``: Lightning's tuners on a recipe's model and data.

    zoo tune-lr -c RECIPE [--min-lr 1e-6] [--max-lr 1] [--steps 100] [-o lr_find.png] [--KEY VALUE ...]
    zoo tune-batch-size -c RECIPE [--mode power|binsearch] [--KEY VALUE ...]

Both build the model, data and Trainer exactly as ``zoo train`` would from the same configs and
flags, run the tuner on them (no run directory, no checkpoints kept) and print the flag to train
with. The learning rate goes where the zoo's optimizer is injected (``--model.optimizer.lr``); the
batch size search is capped by the training set (:class:`zoo.callbacks.BatchSizeSearch`).
"""

from __future__ import annotations

import argparse
import shlex

from zoo.cli.args import command_parser, require_recipe

EXAMPLES = {
    "tune-lr": """\
examples:
  zoo tune-lr -c mlp_digits                       # prints the suggestion, writes lr_find.png
  zoo tune-lr -c convnet_digits --model.optimizer SGD --steps 200 -o sgd.png

Lightning's learning-rate range test: --steps training steps with the rate growing exponentially
from --min-lr to --max-lr (stopping early if the loss explodes), then the rate where the smoothed
loss falls fastest per decade of rate. The weights are restored afterwards. As a callback during
training: --trainer.callbacks+=zoo.callbacks.LearningRateSearch (the found rate becomes the model's `lr`).
""",
    "tune-batch-size": """\
examples:
  zoo tune-batch-size -c resnet_cifar10 --trainer.accelerator gpu

Lightning's batch size finder: doubles the batch from --init-val while a few training steps fit in
memory, never beyond the training examples of one process. As a callback during training:
--trainer.callbacks+=zoo.callbacks.BatchSizeSearch.
""",
}


def parse(command: str, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = command_parser(
        f"zoo {command}",
        "Run Lightning's "
        + ("learning-rate finder" if command == "tune-lr" else "batch size finder")
        + " on a recipe's model and data; -c and --KEY VALUE work as in `zoo train`.",
        EXAMPLES[command],
        usage=f"zoo {command} -c RECIPE [options] [--KEY VALUE ...]",
    )
    if command == "tune-lr":
        parser.add_argument("--min-lr", type=float, default=1e-6, help="the first rate tried (default: 1e-6)")
        parser.add_argument("--max-lr", type=float, default=1.0, help="the last rate tried (default: 1)")
        parser.add_argument("--steps", type=int, default=100, help="rates tried, a step each (default: 100)")
        parser.add_argument("--output", "-o", default="lr_find.png", help="the plot (default: lr_find.png)")
    else:
        parser.add_argument("--mode", choices=["power", "binsearch"], default="power")
        parser.add_argument("--init-val", type=int, default=2, help="the first batch size tried (default: 2)")
        parser.add_argument("--steps-per-trial", type=int, default=3, help="steps run per size (default: 3)")
    args, rest = parser.parse_known_args(argv)
    return args, rest


def main(command: str, argv: list[str]) -> None:
    args, rest = parse(command, argv)
    from zoo.errors import ZooError
    from zoo.recipes import resolve_config_args

    require_recipe(command, rest)
    rest = resolve_config_args(rest)
    from lightning.pytorch.cli import SaveConfigCallback
    from lightning.pytorch.tuner import Tuner

    from zoo.callbacks import BatchSizeSearch, batch_size_cap, steepest_descent_lr
    from zoo.cli.lightning import run

    cli = run([*rest, "--trainer.logger", "false"], subcommand=False)
    # a tuning run keeps nothing: no config.yaml (it would also block the next run's in that folder)
    cli.trainer.callbacks = [cb for cb in cli.trainer.callbacks if not isinstance(cb, SaveConfigCallback)]
    tuner = Tuner(cli.trainer)
    flags = shlex.join(argv_without_tuner_options(argv, args))
    if command == "tune-lr":
        finder = tuner.lr_find(
            cli.model,
            datamodule=cli.datamodule,
            min_lr=args.min_lr,
            max_lr=args.max_lr,
            num_training=args.steps,
            update_attr=False,
        )
        suggestion = steepest_descent_lr(finder.results) if finder is not None else None
        if suggestion is None:
            raise ZooError(
                "the learning-rate finder found no suggestion (too few steps ran before the loss "
                "diverged); raise --steps or lower --max-lr."
            )
        import matplotlib

        matplotlib.use("Agg")
        figure = finder.plot()
        axes = figure.axes[0]
        best = finder.results["lr"].index(suggestion)
        axes.plot([suggestion], [finder.results["loss"][best]], "o", color="red", ms=8, label="suggested")
        axes.set_title(f"learning-rate range test: {suggestion:.3g} (steepest fall per decade)")
        axes.legend()
        figure.savefig(args.output, dpi=110)
        tried = len(finder.results["lr"])
        print(
            f"suggested learning rate: {suggestion:.3g} (where the smoothed loss falls fastest per decade; "
            f"{tried} rates from {args.min_lr:g} to {args.max_lr:g})\nwrote {args.output}\n"
            f"train with: zoo train {flags} --model.optimizer.lr {suggestion:.3g}"
        )
        return
    search = BatchSizeSearch(mode=args.mode, init_val=args.init_val, steps_per_trial=args.steps_per_trial)
    search._early_exit = True  # search only, as Tuner.scale_batch_size does
    cli.trainer.callbacks = [*cli.trainer.callbacks, search]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    size, cap = search.optimal_batch_size, batch_size_cap(cli.trainer)
    print(
        f"largest batch size that fits: {size} (capped at {cap}, the training examples per process)\n"
        f"train with: zoo train {flags} --data.batch_size {size}"
    )


def argv_without_tuner_options(argv: list[str], args: argparse.Namespace) -> list[str]:
    """The configs and flags of ``argv`` without the tuner's own options (for the printed command)."""
    own = {"--min-lr", "--max-lr", "--steps", "--output", "-o", "--mode", "--init-val", "--steps-per-trial"}
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in own:
            skip = True
            continue
        if arg.split("=", 1)[0] in own:
            continue
        out.append(arg)
    return out
