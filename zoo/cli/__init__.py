"""The ``zoo`` command.

``zoo fit|validate|test|predict|train`` run LightningCLI (imported only then); ``zoo recipes``
and ``zoo --help`` answer without importing torch.
"""

from __future__ import annotations

import sys

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


#: the command line of this process's ``zoo`` command, as typed (for the model card)
INVOKED: list[str] | None = None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``zoo`` console command."""
    global INVOKED
    argv = list(sys.argv[1:] if argv is None else argv)
    INVOKED = ["zoo", *argv]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP, end="")
        return
    if argv[0] in ("-V", "--version"):
        from zoo import __version__

        print(f"lightning-zoo {__version__}")
        return
    try:
        command = argv[0]
        if command == "recipes":
            from zoo.cli.recipes import main as recipes_main

            recipes_main(argv[1:])
        elif command == "generate":
            from zoo.cli.generate import main as generate_main

            generate_main(argv[1:])
        elif command == "sweep":
            from zoo.cli.sweep import main as sweep_main

            sweep_main(argv[1:])
        elif command in ("tune-lr", "tune-batch-size"):
            from zoo.cli.tune import main as tune_main

            tune_main(command, argv[1:])
        elif command == "runs":
            from zoo.cli.runs import main as runs_main

            runs_main(argv[1:])
        elif command == "plot":
            from zoo.cli.plot import main as plot_main

            plot_main(argv[1:])
        elif command == "export":
            from zoo.cli.export import main as export_main

            export_main(argv[1:])
        elif command == "models":
            from zoo.cli.models import main as models_main

            models_main(argv[1:])
        elif command == "predict" and len(argv) > 1 and (argv[1] in ("-h", "--help") or argv[1][0] != "-"):
            from zoo.cli.predict import main as predict_main  # zoo predict CKPT --input ...

            predict_main(argv[1:])
        elif command in PIPELINE and any(a in ("-h", "--help") for a in argv[1:]):
            from zoo.cli.pipeline_help import short_help

            print(short_help(command), end="")
        elif command in PIPELINE:
            # --help-all: LightningCLI's own help, every option of the Trainer, model and data
            argv = [("--help" if a == "--help-all" else a) for a in argv]
            from zoo.recipes import resolve_config_args

            argv = resolve_config_args(argv)
            from zoo.cli.lightning import run

            run(argv)
        else:
            raise ZooError(
                f"unknown command {command!r}; "
                f"valid commands: {', '.join(PIPELINE)}, generate, export, sweep, tune-lr, tune-batch-size, "
                "runs, plot, recipes, models."
            )
    except ZooError as err:
        print(f"zoo: error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        INVOKED = None
