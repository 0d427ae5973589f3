"""``zoo tune-lr`` and ``zoo tune-batch-size``: Lightning's tuners on a recipe's model and data.

    zoo tune-lr -c RECIPE [--min-lr 1e-6] [--max-lr 1] [--steps 100] [-o lr_find.png] [--KEY VALUE ...]
    zoo tune-batch-size -c RECIPE [--mode power|binsearch] [--KEY VALUE ...]

Both build the model, data and Trainer exactly as ``zoo train`` would from the same configs and
flags, run the tuner on them (no run directory, no checkpoints kept: Lightning's scratch checkpoint
goes to a temporary folder that is removed afterwards) and print the flag to train with. The
learning rate goes where the zoo's optimizer is injected (``--model.optimizer.lr``); the batch size
search is capped by the training set (:class:`zoo.callbacks.BatchSizeSearch`).
"""

from __future__ import annotations

import argparse
import logging
import math
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

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

#: the fewest rates that can give a suggestion: steepest_descent_lr leaves out the first 10 and the
#: last, and takes a slope over 3 or more of the rest
SKIP_BEGIN, SKIP_END = 10, 1
MIN_STEPS = SKIP_BEGIN + SKIP_END + 3

#: Lightning's range test stops once the smoothed loss exceeds this multiple of the best one
EARLY_STOP_THRESHOLD = 4.0


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
        parser.add_argument(
            "--steps", type=int, default=100, help=f"rates tried, a step each, >= {MIN_STEPS} (default: 100)"
        )
        parser.add_argument("--output", "-o", default="lr_find.png", help="the plot (default: lr_find.png)")
    else:
        parser.add_argument("--mode", choices=["power", "binsearch"], default="power")
        parser.add_argument("--init-val", type=int, default=2, help="the first batch size tried (default: 2)")
        parser.add_argument("--steps-per-trial", type=int, default=3, help="steps run per size (default: 3)")
    args, rest = parser.parse_known_args(argv)
    return args, rest


def check_options(command: str, args: argparse.Namespace) -> None:
    """Raise :class:`ZooError` for a tuner option out of range, before anything is built or written."""
    from zoo.errors import ZooError

    if command != "tune-lr":
        for option, value in (("--init-val", args.init_val), ("--steps-per-trial", args.steps_per_trial)):
            if value < 1:
                raise ZooError(f"{option} must be >= 1; got {value}.")
        return
    if args.steps < MIN_STEPS:
        raise ZooError(
            f"--steps must be >= {MIN_STEPS}; got {args.steps}. The suggestion leaves out the first "
            f"{SKIP_BEGIN} rates and the last, and needs 3 more to take a slope (default: 100)."
        )
    for option, value in (("--min-lr", args.min_lr), ("--max-lr", args.max_lr)):
        if not (value > 0 and math.isfinite(value)):
            raise ZooError(f"{option} must be a finite number > 0; got {value:g}.")
    if not args.min_lr < args.max_lr:
        raise ZooError(
            f"--min-lr must be below --max-lr (the rates grow from one to the other); "
            f"got --min-lr {args.min_lr:g} and --max-lr {args.max_lr:g}."
        )
    check_plot_path(args.output)


def check_plot_path(output: str) -> None:
    """Raise :class:`ZooError` unless matplotlib can write the plot at ``output`` (checked before
    the range test runs, not after)."""
    from zoo.curves import check_image_path
    from zoo.files import check_writable

    check_image_path(output, "--output")
    check_writable(output, "--output", Path(output) / "lr_find.png")


def check_trainer_trains(trainer: Any) -> None:
    """Raise :class:`ZooError` for a Trainer under which no training step runs: the tuners would
    measure nothing (every batch size "fits"), and the printed command would train nothing."""
    from zoo.errors import ZooError

    if trainer.fast_dev_run:
        raise ZooError(
            "--trainer.fast_dev_run: Lightning's tuners skip a fast_dev_run, so there is nothing to tune; "
            "leave it out (or false)."
        )
    limits = (
        ("max_epochs", trainer.max_epochs, "a number of epochs >= 1, or -1 for no limit"),
        ("max_steps", trainer.max_steps, "a number of steps >= 1, or -1 for no limit"),
        ("limit_train_batches", trainer.limit_train_batches, "batches >= 1, or a fraction in (0, 1]"),
    )
    for name, value, valid in limits:
        if value is not None and value == 0:
            raise ZooError(
                f"--trainer.{name} {value} runs no training step, so there is nothing to tune (nor to "
                f"train with); give {valid}."
            )


class _DropMisleadingStop(logging.Filter):
    """Drops Lightning's "LR finder stopped early ... due to diverging loss", which it logs whenever
    fewer steps ran than asked, also when the epochs ran out; :func:`cut_short` says which."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("LR finder stopped early")


def cut_short(results: dict[str, list[float]], steps: int, trainer: Any) -> str | None:
    """Why the range test tried fewer than ``steps`` rates (``None`` when it tried them all)."""
    ran = len(results.get("lr", []))
    if ran >= steps:
        return None
    losses = [loss for loss in results.get("loss", []) if math.isfinite(loss)]
    if len(losses) >= 2 and losses[-1] > EARLY_STOP_THRESHOLD * min(losses[:-1]):
        return f"the loss diverged after {ran} of the {steps} rates; the test stopped there"
    batches = trainer.num_training_batches
    per_epoch = f" ({batches} batches an epoch)" if isinstance(batches, int) else ""
    return (
        f"only {ran} of the {steps} rates were tried: --trainer.max_epochs {trainer.max_epochs}{per_epoch} "
        "ended the test, not a diverging loss; raise --trainer.max_epochs or lower --steps"
    )


def main(command: str, argv: list[str]) -> None:
    args, rest = parse(command, argv)
    from zoo.recipes import resolve_config_args

    require_recipe(command, rest)
    check_options(command, args)
    rest = resolve_config_args(rest)
    # Lightning saves a scratch checkpoint under the Trainer's default_root_dir (and leaves it behind
    # when a trial fails): give it a temporary folder, so that no run folder is made or left
    with tempfile.TemporaryDirectory(prefix="zoo-tune-") as scratch:
        tune(command, args, argv, [*rest, "--trainer.logger", "false", "--trainer.default_root_dir", scratch])


def tune(command: str, args: argparse.Namespace, argv: list[str], cli_args: list[str]) -> None:
    from lightning.pytorch.cli import SaveConfigCallback
    from lightning.pytorch.tuner import Tuner
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from zoo.callbacks import BatchSizeSearch, batch_size_cap, steepest_descent_lr
    from zoo.cli.lightning import run
    from zoo.errors import NonFiniteLossError, ZooError

    cli = run(cli_args, subcommand=False)
    check_trainer_trains(cli.trainer)
    # a tuning run keeps nothing: no config.yaml (it would also block the next run's in that folder)
    cli.trainer.callbacks = [cb for cb in cli.trainer.callbacks if not isinstance(cb, SaveConfigCallback)]
    tuner = Tuner(cli.trainer)
    flags = shlex.join(argv_without_tuner_options(argv, args))
    if command == "tune-lr":
        lightning_log = logging.getLogger("lightning.pytorch.tuner.lr_finder")
        drop = _DropMisleadingStop()
        lightning_log.addFilter(drop)
        try:
            finder = tuner.lr_find(
                cli.model,
                datamodule=cli.datamodule,
                min_lr=args.min_lr,
                max_lr=args.max_lr,
                num_training=args.steps,
                early_stop_threshold=EARLY_STOP_THRESHOLD,
                update_attr=False,
            )
        except MisconfigurationException as err:  # e.g. a limit_train_batches fraction below one batch
            raise ZooError(f"trainer: {err}") from None
        except NonFiniteLossError as err:  # a rate so large that one step spoiled the loss
            where = str(err).partition(":")[0]  # "the training loss is nan at step 3 (epoch 0)"
            raise ZooError(
                f"{where} of the learning-rate range test (rates from {args.min_lr:g} to {args.max_lr:g}), "
                "before it could stop on a rising loss; lower --max-lr, or --min-lr if the first steps fail."
            ) from None
        finally:
            lightning_log.removeFilter(drop)
        results = finder.results if finder is not None else {}
        why = cut_short(results, args.steps, cli.trainer) if finder is not None else None
        suggestion = steepest_descent_lr(results, SKIP_BEGIN, SKIP_END) if finder is not None else None
        if suggestion is None:
            if why is None or why.startswith("the loss diverged"):
                raise ZooError(
                    "the learning-rate finder found no suggestion (too few steps ran before the loss "
                    "diverged); raise --steps or lower --max-lr."
                )
            raise ZooError(f"the learning-rate finder found no suggestion: {why}.")
        if why is not None:
            print(f"zoo {command}: {why}.", file=sys.stderr)
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
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    except MisconfigurationException as err:
        raise ZooError(f"trainer: {err}") from None
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
