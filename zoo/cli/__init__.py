"""The ``zoo`` command.

``zoo fit|validate|test|predict|train`` run LightningCLI (imported only then); ``zoo recipes``
and ``zoo --help`` answer without importing torch.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable

from zoo.errors import ZooError

HELP = """\
usage: zoo <command> [options]

Train and evaluate lightning-zoo models from YAML recipes.

pipeline commands (LightningCLI; `zoo <command> --help` shows the common options,
`--help-all` every one):
  train      fit with early stopping and checkpoints, reload the best checkpoint, test it,
             print and save the test metrics
  fit        Lightning's fit
  validate   Lightning's validate
  test       Lightning's test
  predict    `zoo predict CKPT --input PATH`: predict on new rows, arrays or images from a
             checkpoint alone (`zoo predict --help`); with -c CONFIG, Lightning's predict

other commands:
  generate   sample text from a language-model checkpoint (`zoo generate --help`)
  export     write a checkpoint as ONNX, TorchScript or safetensors, checked against it
             (`zoo export --help`)
  sweep      hyperparameter search with Optuna over a recipe (`zoo sweep --help`)
  tune-lr    Lightning's learning-rate finder on a recipe: the rate to train with, and its plot
  tune-batch-size  the largest batch that fits, capped by the training set
  runs       list the runs under a folder with their results and status (`zoo runs --help`)
  plot       draw the learning curves of runs into a PNG file (`zoo plot --help`)
  recipes    list, show or copy the shipped recipes (`zoo recipes --help`)
  models     the model names --model takes (`--data`: the data names; `-v`: class paths)

examples:
  zoo train -c mlp_digits
  zoo train -c mlp_digits --model.dropout 0.3 --trainer.max_epochs 20
  zoo train -c mlp_digits -c my_changes.yaml -c logger/wandb
  zoo train -c mlp_digits --model.class_path my_pkg.MyModel
  zoo train -c gpt_chars && zoo generate runs/gpt_chars/version_0/checkpoints/last.ckpt
  zoo predict runs/mlp_digits/version_0/checkpoints/last.ckpt --input rows.csv -o predictions.csv
  zoo recipes list

-c/--config takes a shipped recipe's name or a path to a YAML file; several are merged in order.
"""

PIPELINE = ("train", "fit", "validate", "test", "predict")


def program() -> str:
    """The command as the user typed it, for messages that tell what to run next: ``python -m zoo``
    under ``python -m zoo`` (or ``torchrun -m zoo``), where ``sys.argv[0]`` is this package's
    ``__main__.py``, else ``zoo``."""
    script = os.path.normpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(script) == "__main__.py" and os.path.basename(os.path.dirname(script)) == "zoo":
        return "python -m zoo"
    return "zoo"


#: the command line of this process's ``zoo`` command, as typed (for the model card)
INVOKED: list[str] | None = None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``zoo`` console command (``argv`` None: this process's own arguments)."""
    owns_process = argv is None
    try:
        _main(list(sys.argv[1:] if argv is None else argv), owns_process)
    except BrokenPipeError:
        if not owns_process:
            raise
        # the reader of a pipe stopped early (`zoo runs | head`): end quietly, as a tool killed
        # by SIGPIPE does, and keep the interpreter's flush at exit from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # 128 + SIGPIPE: what a shell reports for such a tool


def _main(argv: list[str], owns_process: bool) -> None:
    global INVOKED
    INVOKED = ["zoo", *argv]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP, end="")
        return
    if argv[0] in ("-V", "--version"):
        from zoo import __version__

        print(f"lightning-zoo {__version__}")
        return
    if owns_process:
        # The command's imports (torch, Lightning: about half a million objects, nearly all of
        # them kept until the process ends) made the cyclic collector walk everything so far
        # seven times over, 1.4 s of `zoo train -c mlp_digits` on a 2-core CPU: collect nothing
        # while importing, then freeze what the imports left, so that later passes skip it too.
        # Not in-process (tests, notebooks), where what a command leaves must stay collectable.
        gc.disable()
    callbacks = sys.modules.get("zoo.callbacks")
    if callbacks is not None:
        callbacks.INTERRUPTED = None
    try:
        command = _command(argv)  # imports what the command needs
        if owns_process:
            gc.freeze()
            gc.enable()
        command()
    except ZooError as err:
        print(f"zoo: error: {_message(err)}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a full disk or a read-only folder under Lightning's own writes (config.yaml)
        from zoo.files import disk_error

        found = disk_error(err)
        if found is None:
            raise
        print(f"zoo: error: {found}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C in a run (ZooTrainer raises it again after Lightning's shutdown), or a SIGTERM,
        # which Lightning ends with a SystemExit of code None (it reads as success): say where the
        # run is and exit as the signal would; Ctrl-C outside a run (loading data, importing) too
        interruption = getattr(sys.modules.get("zoo.callbacks"), "INTERRUPTED", None)
        if interruption is None:
            if isinstance(sys.exc_info()[1], SystemExit):
                raise
            print("zoo: interrupted.", file=sys.stderr)
            sys.exit(130)
        if interruption.speaks:
            print(f"zoo: {interruption.message()}", file=sys.stderr)
        sys.exit(interruption.exit_code)
    finally:
        INVOKED = None
        if owns_process:
            _leave_process_group()
            # the process ends next: spare the interpreter its last full collection, a walk over
            # everything left (2-3 s after a training run on a 2-core CPU); atexit handlers and
            # the files they flush run as before
            gc.freeze()
            gc.enable()  # had the imports failed


def _leave_process_group() -> None:
    """Destroy this process's torch.distributed group, if a run made one, before the interpreter
    exits: left to exit, its communication threads were destroyed while still joinable now and
    then ("terminate called without an active exception", exit -6, after a finished DDP run)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _message(err: ZooError) -> str:
    """The error's own words: a ZooError raised in a DataLoader worker comes back re-raised with
    the worker's whole traceback as its text ("Caught ZooError in DataLoader worker process 0.")."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        marker = f"{type(err).__module__}.{type(err).__qualname__}: "
        if marker in text:
            return text.rsplit(marker, 1)[1].strip()
    return text


def _predict_input_without_config(rest: list[str]) -> bool:
    """``zoo predict --input PATH ...`` without ``-c``: the checkpoint form with its checkpoint
    forgotten, not LightningCLI's predict (which has no ``--input``)."""
    configs = any(a in ("-c", "--config") or a.startswith("--config=") for a in rest)
    return not configs and any(a in ("-i", "--input") or a.startswith("--input=") for a in rest)


def _positional_word(command: str, word: str) -> str:
    """What ``zoo COMMAND WORD`` (a word where LightningCLI takes only options; ``zoo predict WORD`` is
    the checkpoint form) should have been:
    ``zoo test CKPT`` is ``zoo test -c RECIPE --ckpt_path CKPT``, ``zoo train mlp_digits`` is
    ``zoo train -c mlp_digits``."""
    looks_like_checkpoint = word.endswith((".ckpt", ".safetensors")) or word.startswith("pretrained:")
    if looks_like_checkpoint and command in ("validate", "test"):
        return (
            f"zoo {command} takes its checkpoint with --ckpt_path, and the data with a recipe: "
            f"zoo {command} -c RECIPE --ckpt_path {word}."
        )
    if looks_like_checkpoint:
        return (
            f"zoo {command} takes options only; to continue the run of {word}: zoo {command} -c RECIPE "
            f"--ckpt_path {word} (to start from its weights: --model.init_from {word})."
        )
    return (
        f"zoo {command} takes options only, not {word!r}: a recipe goes with -c "
        f"(zoo {command} -c {word if '/' not in word and ' ' not in word else 'RECIPE'}); "
        f"`zoo {command} --help` lists the options."
    )


#: the commands whose module's ``main`` takes the rest of the command line
OWN_PARSERS = {
    name: f"zoo.cli.{name}" for name in ("recipes", "generate", "sweep", "runs", "plot", "export", "models")
}


def _command(argv: list[str]) -> Callable[[], None]:
    """The command ``argv`` names, its module imported, ready to run."""
    command, rest = argv[0], argv[1:]
    if command in OWN_PARSERS:
        module = importlib.import_module(OWN_PARSERS[command])
        return lambda: module.main(rest)
    if command in ("tune-lr", "tune-batch-size"):
        from zoo.cli.tune import main as tune_main

        return lambda: tune_main(command, rest)
    if command == "predict" and (
        not rest or rest[0] in ("-h", "--help") or rest[0][0] != "-" or _predict_input_without_config(rest)
    ):
        # zoo predict CKPT --input ...; a bare `zoo predict` (or `zoo predict --input PATH`, the
        # checkpoint forgotten) is told what this form needs, where LightningCLI's form would ask
        # for predict.data and predict.model (or refuse --input)
        from zoo.cli.predict import main as predict_main

        return lambda: predict_main(rest)
    if command in PIPELINE and rest and not rest[0].startswith("-"):
        raise ZooError(_positional_word(command, rest[0]))
    if command in PIPELINE and any(a in ("-h", "--help") for a in rest):
        from zoo.cli.pipeline_help import short_help

        return lambda: print(short_help(command), end="")
    if command in PIPELINE:
        # --help-all: LightningCLI's own help, every option of the Trainer, model and data
        from zoo.recipes import resolve_config_args

        resolved = resolve_config_args([("--help" if a == "--help-all" else a) for a in argv])
        from zoo.cli.lightning import run

        return lambda: run(resolved)
    raise ZooError(
        f"unknown command {command!r}; "
        f"valid commands: {', '.join(PIPELINE)}, generate, export, sweep, tune-lr, tune-batch-size, "
        "runs, plot, recipes, models."
    )
