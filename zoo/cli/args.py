"""What the zoo's argparse commands share: their parser (:func:`command_parser`; with a checkpoint
argument for ``generate``, ``predict``, ``export``), argument types, and the recipe check of the
commands that build a recipe's run."""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any, NoReturn


def positive_int(text: str) -> int:
    """An integer >= 1, else argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0, else argparse's one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0, else argparse's one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return value


def torch_device(name: str, option: str = "--device") -> Any:
    """The ``torch.device`` that ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``
    names, checked before any work: :class:`~zoo.errors.ZooError` for a name that is not a device,
    or a GPU this machine does not have."""
    import torch

    from zoo.errors import ZooError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZooError(f"{option}: {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZooError(
                f"{option}: cuda was asked for, but this machine has no usable GPU; use {option} cpu."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ZooError(
                f"{option}: there is no {name}; this machine has {count} GPU(s): cuda:0 ... cuda:{count - 1}."
            )
    elif device.type != "cpu" and not (device.type == "mps" and torch.backends.mps.is_available()):
        raise ZooError(f"{option}: {name!r} is not a device the zoo runs on; use auto, cpu, cuda or cuda:N.")
    return device


class CommandParser(argparse.ArgumentParser):
    """argparse's parser whose errors are the zoo's: ``zoo: error: MESSAGE`` and a hint to the
    command's ``--help``, exit status 2, instead of the usage text and ``zoo runs: error: ...``.
    Its sub-commands' parsers (``zoo recipes copy``) are of this class too."""

    def error(self, message: str) -> NoReturn:
        from zoo.cli import program

        typed = f"{program()} {self.prog.removeprefix('zoo ').strip()}"  # python -m zoo recipes copy
        message = " ".join(message.split())  # one line
        action = re.fullmatch(r"argument \{([\w,-]+)\}: invalid choice: '(.*)' \(choose from .*\)", message)
        if action:  # a sub-command's name (zoo recipes NAME): argparse calls it `argument {list,...}`
            valid, given = action.groups()
            message = f"{typed} {given}: no such action; valid actions: {', '.join(valid.split(','))}."
        action = re.fullmatch(r"the following arguments are required: \{([\w,-]+)\}", message)
        if action:
            message = f"{typed} needs an action: {', '.join(action.group(1).split(','))}."
        sys.stderr.write(f"zoo: error: {message}\nRun `{typed} --help` to see every option.\n")
        sys.exit(2)


def command_parser(
    prog: str, description: str, examples: str, usage: str | None = None
) -> argparse.ArgumentParser:
    """The parser of one of the zoo's argparse commands, with its examples as epilog (kept as written)
    and the zoo's one-line errors (:class:`CommandParser`)."""
    return CommandParser(
        prog=prog,
        usage=usage,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --out for --output would pass silently; the pipeline commands refuse it too
    )


def checkpoint_parser(
    prog: str, description: str, examples: str, checkpoint_help: str
) -> argparse.ArgumentParser:
    """The parser of a command whose first argument is a checkpoint, with its examples as epilog."""
    parser = command_parser(prog, description, examples)
    parser.add_argument("checkpoint", help=checkpoint_help)
    parser.add_argument(
        "--import",
        dest="imports",
        metavar="MODULE",
        action=_ImportModule,
        help="import this module first: your package, whose classes the checkpoint names (the zoo "
        "imports no module a file names on its own); may be given more than once",
    )
    return parser


class _ImportModule(argparse.Action):
    """``--import MODULE``: imported as it is parsed, before the checkpoint is read, so that the
    classes it defines are the user's to build (:func:`zoo.checkpoints.is_trusted`)."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        import importlib

        from zoo.errors import ZooError

        try:
            importlib.import_module(value)
        except ImportError as err:
            raise ZooError(f"--import {value}: cannot import it ({type(err).__name__}: {err}).") from None
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), value])


def require_recipe(command: str, argv: list[str]) -> None:
    """A command that builds a recipe's run (``tune-lr``, ``sweep``) needs at least one ``-c``."""
    from zoo.errors import ZooError

    if not any(a in ("-c", "--config") or a.startswith("--config=") for a in argv):
        raise ZooError(f"zoo {command} needs a recipe: -c RECIPE (zoo recipes list), as for zoo train.")
