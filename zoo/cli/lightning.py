"""The LightningCLI behind ``zoo fit|validate|test|predict|train``."""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from zoo.callbacks import (
    CHECKPOINT_DEFAULTS,
    EARLY_STOPPING_DEFAULTS,
    BestAndLastCheckpoint,
    LearningRates,
    PredictionsCSV,
    RunRecord,
    StopEarly,
)
from zoo.checkpoints import check_named_classes, find_best, find_last, read_checkpoint, run_directory
from zoo.data.base import ZooDataModule
from zoo.errors import ZooError
from zoo.loggers import CSVLogger, WandbLogger
from zoo.models.base import CLASS_KEY, ZooModule
from zoo.pretrained import is_weights_file
from zoo.trainer import METRICS_FILE, ZooTrainer, check_run_root

#: subcommands that read a checkpoint and write no run directory
EVALUATION_COMMANDS = ("validate", "test", "predict")

# facts of the data that the model needs; the CLI passes them on so no recipe states them twice
DATA_TO_MODEL = ("task", "num_classes", "input_shape", "target_stats", "vocab")

TRAINER_DEFAULTS = {
    "default_root_dir": "runs",
    "accelerator": "auto",
    "logger": {
        "class_path": "zoo.loggers.CSVLogger",
    },
}


_STARTED: list[ZooCLI] = []  # CLIs of the current run(), for cleaning up after a user error


class ZooHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the list of known subclasses cut short where it would name every
    class in torch (``--model.loss`` accepts any ``nn.Module``: 670 lines of ``--model.help MLP``)."""

    #: the most subclasses a help entry names
    MAX_LISTED = 12

    def _get_help_string(self, action: Any) -> str:
        text = super()._get_help_string(action)
        head, found, listed = text.partition(", known subclasses: ")
        if not found:
            return text
        listed, closing = (listed[:-1], ")") if listed.endswith(")") else (listed, "")
        names = listed.split(", ")
        if len(names) <= self.MAX_LISTED:
            return text
        # losses first (the one option that lists every module), the zoo's before torch's
        ranked = sorted(names, key=lambda n: ("loss" not in n.lower(), not n.startswith("zoo.")))
        shown = ", ".join(ranked[: self.MAX_LISTED])
        rest = len(names) - self.MAX_LISTED
        return f"{head}, e.g. {shown} and {rest} more: any subclass by class path{closing}"


def _note_unused_model_options(config: Any) -> None:
    """One note naming the model options that the ``-c`` files or the flags set and the model's
    class does not take: after ``-c mlp_digits --model.class_path their.Model`` jsonargparse drops
    the recipe's optimizer, schedule, dropout, ... silently when ``their.Model`` does not take them
    (test accuracy 0.14 where 0.85 was expected). A class with ``**kwargs`` takes anything."""
    import inspect

    import yaml
    from jsonargparse import Namespace

    from zoo import cli

    model = config.get("model")
    class_path = model.get("class_path") if isinstance(model, Namespace) else None
    try:
        params = inspect.signature(_import_class(class_path)).parameters if class_path else None
    except (ImportError, AttributeError, TypeError, ValueError):
        return
    if params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    given: dict[str, None] = {}
    for path in config.get("config") or []:
        try:
            data = yaml.safe_load(Path(str(path)).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        section = data.get("model") if isinstance(data, dict) else None
        if isinstance(section, dict):
            init = section.get("init_args") if isinstance(section.get("init_args"), dict) else {}
            given |= dict.fromkeys([*init, *(k for k in section if k not in ("class_path", "init_args"))])
    for arg in cli.INVOKED or []:
        found = re.match(r"--model\.(?:init_args\.)?(\w+)", arg)
        if found and found.group(1) not in ("class_path", "help"):
            given[found.group(1)] = None
    unused = [name for name in given if name not in params and name != "dict_kwargs"]
    if unused:
        sys.stderr.write(
            f"zoo: note: {class_path} takes no {', '.join(unused)}: the values set for "
            f"{'it' if len(unused) == 1 else 'them'} are not used.\n"
        )


def _note_split_monitors(config: Any) -> None:
    """A note when early stopping and the best checkpoint watch different metrics
    (``--early_stopping.monitor val/acc`` alone left the checkpoint on ``val/loss``: the run stopped
    on accuracy and tested the checkpoint of the lowest loss). Both are kept as given."""
    stopping, checkpoint = config.get("early_stopping"), config.get("checkpoint")
    watched = [getattr(part, "monitor", None) for part in (stopping, checkpoint)]
    if all(watched) and watched[0] != watched[1]:
        sys.stderr.write(
            f"zoo: note: early stopping watches {watched[0]}, the best checkpoint (which is tested) "
            f"{watched[1]}; to keep the checkpoint early stopping judges by, add --checkpoint.monitor "
            f"{watched[0]}.\n"
        )


def _import_class(class_path: str) -> Any:
    import importlib

    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class ZooArgumentParser(LightningArgumentParser):
    """Reports a bad option or value in a few lines instead of the whole usage text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from zoo.cli import program

        kwargs.setdefault("formatter_class", ZooHelpFormatter)
        # argparse would name sys.argv[0]: `__main__.py` under `python -m zoo`, pytest in tests
        kwargs.setdefault("prog", program())
        # `--trainer.max_epoch 3` ran with max_epochs=3 while `--model.drop` was refused: a prefix
        # of an option is refused everywhere, with the did-you-mean of a misspelled one
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        from zoo.cli import program

        prog = self.prog.replace(" [options]", "")
        subcommand = _subcommand_asked()
        if subcommand and len(prog.split()) == len(program().split()):
            # the top-level parser's errors (a missing model, a key of a -c file) are the
            # subcommand's: its help is the one to read
            prog = f"{prog} {subcommand}"
        message = (
            _misspelled(message, list(self._option_string_actions))
            or _required_init_args(message)
            or _missing_model_or_data(message)
            or _unknown_config_key(message, self)
            or _not_one_of(message)
            or _wrong_value(message)
            or concise(message)
        )
        message = _naming_the_file(message)
        sys.stderr.write(f"zoo: error: {message}\nRun `{prog} --help` to see every option.\n")
        sys.exit(2)


def _subcommand_asked() -> str | None:
    """The subcommand of this run (``train``, ``fit``, ...): the first word ``run`` passes on."""
    from zoo.cli import PIPELINE

    word = sys.argv[1] if len(sys.argv) > 1 else None
    return word if word in PIPELINE else None


def _config_files() -> list[tuple[str, Path]]:
    """The ``-c`` files of this run: (the name as typed, the file read), in order. The file read is
    a recipe's path for a recipe's name, or a translated copy (:func:`_config_with_class_paths`)."""
    from zoo import cli

    def listed(argv: list[str]) -> list[str]:
        found = []
        for i, arg in enumerate(argv):
            if arg in ("-c", "--config") and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif arg.startswith("--config="):
                found.append(arg.split("=", 1)[1])
        return found

    read = listed(sys.argv[1:])
    typed = listed(cli.INVOKED or [])
    if len(typed) != len(read):
        typed = read
    return [(name, Path(path)) for name, path in zip(typed, read, strict=True) if Path(path).is_file()]


def _file_holding(key: str, value: str | None = None) -> str | None:
    """The ``-c`` file (as typed) that sets ``key`` (``trainer.bogus_key``; a class's options may sit
    under ``init_args``), to ``value`` where one is given, the last one where several do; ``None``
    when none does."""
    holder = None
    for name, path in _config_files():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        nodes = [data]
        for part in key.split("."):
            found = []
            for node in nodes:
                for where in (node, node.get("init_args")) if isinstance(node, dict) else ():
                    if isinstance(where, dict) and part in where:
                        found.append(where[part])
            nodes = found
        if nodes and (value is None or str(nodes[-1]) == value):
            holder = name
    return holder


def _naming_the_file(message: str) -> str:
    """``message`` about an option (``--model.dropuot is not accepted ...``) that no flag set but a
    ``-c`` file did, with that file named first."""
    found = re.match(r"--([\w.]+)", message)
    if not found:
        return message
    key = found.group(1).replace(".init_args.", ".")
    # a flag that sets it, as --model.dropout or --model.init_args.dropout (the form a sweep gives)
    flags = [a.split("=", 1)[0].replace(".init_args.", ".") for a in sys.argv[1:] if a.startswith("--")]
    if any(flag == f"--{key}" or flag.startswith(f"--{key}.") for flag in flags):
        return message
    holder = _file_holding(key, _refused_value(message, key))
    return f"-c {holder}: {message}" if holder else message


def _refused_value(message: str, key: str) -> str | None:
    """The value a message says the option does not take (``--model.dropout: 'abc' is not a
    number``), as a file would hold it; ``None`` when the message names none."""
    import ast

    given = re.match(r"--[\w.]+: (['\"])(.*?)\1 is not ", message)
    if not given:
        return None
    value: Any = given.group(2)
    if value.startswith("{"):  # the class's values as jsonargparse held them: {'dropout': 'abc'}
        try:
            value = ast.literal_eval(value)
        except (SyntaxError, ValueError):
            return value
        value = value.get("init_args", value) if isinstance(value, dict) else value
        value = value.get(key.rpartition(".")[2], value) if isinstance(value, dict) else value
    return str(value)


def _required_init_args(message: str) -> str | None:
    """For a class (``--model.class_path pkg.Model``) whose required arguments neither the ``-c``
    files nor the flags give: one line naming them, where jsonargparse printed the whole
    ``Namespace(...)`` of the class's values."""
    key = re.match(r'\s*Parser key "([\w.]+)":', message)
    given = re.search(
        r"Problem with given class_path '([\w.]+)':\s*the following arguments are required: ([\w., ]+)",
        message,
    )
    if not (key and given):
        return None
    group, class_path = key.group(1), given.group(1)
    names = [name.strip() for name in given.group(2).split(",") if name.strip()]
    keys = ", ".join(f"{group}.init_args.{name}" for name in names)
    flags = " ".join(f"--{group}.{name} VALUE" for name in names)
    them = "it" if len(names) == 1 else "them"
    return (
        f"{keys} {'is' if len(names) == 1 else 'are'} required: {class_path} takes "
        f"{', '.join(names)} without a default, and neither the -c files nor the flags give {them}; add "
        f"{flags} (or set {them} under {group}: init_args: in a -c file)."
    )


def _missing_model_or_data(message: str) -> str | None:
    """For a pipeline command given neither a recipe nor ``--model``/``--data`` (``zoo train``,
    ``zoo test --ckpt_path CKPT``): what it needs, where jsonargparse named ``train.data,
    train.model``."""
    found = re.fullmatch(r"the following arguments are required: ([\w., ]+)", message.strip())
    if not found:
        return None
    missing = [name.strip().partition(".")[2] for name in found.group(1).split(",")]
    if not missing or any(name not in ("model", "data") for name in missing):
        return None
    subcommand = _subcommand_asked() or "train"
    what = " and ".join("a model" if name == "model" else "data" for name in sorted(missing, reverse=True))
    options = " and ".join(f"--{name} NAME|CLASS" for name in sorted(missing, reverse=True))
    line = (
        f"zoo {subcommand} needs {what}: a recipe (-c RECIPE, e.g. -c mlp_digits; `zoo recipes list`) "
        f"or {options} (`zoo models`, `zoo models --data`)"
    )
    if subcommand in EVALUATION_COMMANDS:
        line += f"; a checkpoint goes with it: zoo {subcommand} -c RECIPE --ckpt_path CKPT"
    return line + "."


def _unknown_config_key(message: str, parser: Any) -> str | None:
    """For a key of a ``-c`` file that the command has no option for (``trainer: {bogus_key: 1}``, a
    top-level ``modle:``): one line naming the file and the key, with the closest keys."""
    import difflib

    found = re.fullmatch(r"Subcommand '(\w+)' does not accept option '([\w.]+)'", message.strip())
    if found:
        subcommand, key = found.groups()
        action = getattr(parser, "_subcommands_action", None)
        sub = getattr(action, "_name_parser_map", {}).get(subcommand) if action is not None else None
    else:
        return None
    flags = list(sub._option_string_actions) if sub is not None else list(parser._option_string_actions)
    keys = [
        flag[2:].split(".")
        for flag in flags
        if flag.startswith("--") and not flag.endswith(("+", ".help")) and flag not in ("--help", "--config")
    ]
    parts = key.split(".")
    close: list[str] = []
    for depth in range(len(parts) - 1, -1, -1):
        # the deepest known group the key is in, and the names at the depth of its first unknown part
        under = [k for k in keys if k[:depth] == parts[:depth] and len(k) > depth]
        if not under:
            continue
        names = sorted({k[depth] for k in under})
        close = [
            ".".join([*parts[:depth], name, *parts[depth + 1 :]])
            for name in difflib.get_close_matches(parts[depth], names, n=3, cutoff=0.6)
        ]
        break
    holder = _file_holding(key)
    where = f"-c {holder}: " if holder else ""
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return f"{where}{key} is not an option of zoo {subcommand}.{hint}"


def _init_options(class_path: str) -> list[str]:
    """The keyword arguments ``class_path``'s constructor takes, through ``**kwargs`` to its bases."""
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    options: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        options += [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return options


def _misspelled(message: str, flags: list[str]) -> str | None:
    """For an option nobody has (``--model.dropuot``, ``--trainer.max_epohcs``): one line naming it,
    with the closest options; ``None`` for any other message."""
    import difflib

    key = re.match(r'Parser key "(\w+)":', message)
    given = re.search(r"Problem with given class_path '([\w.]+)':\s*Option '(\w+)' is not accepted", message)
    if key and given:
        group, (class_path, option) = key.group(1), given.groups()
        close = difflib.get_close_matches(option, _init_options(class_path), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(f'--{group}.{c}' for c in close)}?" if close else ""
        short = class_path.rpartition(".")[2]
        return (
            f"--{group}.{option} is not accepted: {class_path} has no option {option!r}.{hint} "
            f"`--{group}.help {short}` lists its options."
        )
    given = re.search(
        r"expects a function or a callable class: Option '(\w+)' is not accepted\. "
        r"Got value: Namespace\(class_path='([\w.]+)'",
        message,
    )
    if given:  # an option of the optimizer or scheduler given to a model (--model.optimizer.momentum)
        option, class_path = given.groups()
        flag = f"--{'.'.join(_parser_keys(message[: given.start()]))}.{option}"
        takes = _init_options(class_path)[1:]  # less the first, which the model gives (params, optimizer)
        close = difflib.get_close_matches(option, takes, n=3, cutoff=0.6)
        group = flag.rpartition(".")[0]
        hint = f" (did you mean {' or '.join(f'{group}.{c}' for c in close)}?)" if close else ""
        listed = f"it takes {', '.join(takes)}" if takes else "it takes no options"
        return f"{flag}: {class_path} takes no option {option!r}; {listed}{hint}"
    given = re.fullmatch(r"unrecognized arguments: (--[\w.]+)(?:[ =].*)?", message.strip())
    if given:
        group = given.group(1).rpartition(".")[0] + "."
        candidates = [flag for flag in flags if flag.startswith(group)]
        close = difflib.get_close_matches(given.group(1), candidates, n=3, cutoff=0.7)
        if close:
            return f"{message.strip()}. Did you mean {' or '.join(close)}?"
    return None


def _parser_keys(message: str) -> list[str]:
    """The keys of the nested ``Parser key "..."`` lines of a jsonargparse message, outermost first
    (``["model", "optimizer"]``)."""
    return re.findall(r'Parser key "([^"]+)":', message)


def _not_one_of(message: str) -> str | None:
    """For a value that a ``Literal`` option does not take (``--model.norm group``, also nested in
    an optimizer or scheduler, ``--model.lr_scheduler.mode mx``, or a union of ``Literal`` types,
    ``--trainer.precision 12``): one line naming the option and the values it takes; ``None`` for
    any other message."""
    import ast
    import difflib

    expected = re.findall(
        r"Expected a (.+?)(?:\. Got value: (.+?))?(?:\. Got value: Namespace\(.*)?$", message, re.M
    )
    literals = [kind for kind, _ in expected if re.match(r"(typing(_extensions)?\.)?Literal\[", kind)]
    if not literals or any(kind not in literals and kind != "<class 'NoneType'>" for kind, _ in expected):
        return None
    given = [value for _, value in expected if value] or re.findall(r"^\s*Given value: (.+)$", message, re.M)
    keys = _parser_keys(message)
    if len(given) != 1 or not keys:
        return None
    valid: list[str] = []
    for kind in literals:
        try:
            values = ast.literal_eval(kind[kind.index("[") :])
        except (SyntaxError, ValueError):
            return None
        valid += [str(v) for v in (values if isinstance(values, list) else [values]) if str(v) not in valid]
    close = difflib.get_close_matches(given[0], valid, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"--{'.'.join(keys)}: {given[0]!r} is not one of {', '.join(valid)}{hint}"


_TYPE_WORDS = {
    "float": "a number",
    "int": "an integer",
    "bool": "true or false",
    "str": "text",
    "collections.abc.Sequence": "a list ([a, b])",
    "list": "a list ([a, b])",
}


def _wrong_value(message: str) -> str | None:
    """For a value of the wrong type (``--model.dropout abc``, ``--model.optimizer.lr abc``,
    ``--trainer.precision bf16-mix``: four to eight lines of jsonargparse's union alternatives):
    one line naming the option, the value and what it takes; ``None`` for any other message."""
    import ast
    import difflib

    keys = _parser_keys(message)
    given = re.findall(r"Given value: (.+?)(?:\. Got value: .*)?$", message, re.M) or re.findall(
        r"Expected a <class '\w+'>\. Got value: (.+)$", message, re.M
    )
    # a nested option's value comes back as NestedArg(key='optimizer.lr', val='abc')
    given = [re.sub(r"^NestedArg\(key='[\w.]+', val=(.*)\)$", r"\1", value) for value in given]
    given = [value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value for value in given]
    kinds = list(dict.fromkeys(re.findall(r"Expected a <class '([\w.]+)'>", message)))
    literals = re.findall(
        r"Expected a (?:typing(?:_extensions)?\.)?Literal(\[.*?\])(?:\. Got value|$)", message, re.M
    )
    if not keys or len(set(given)) != 1 or any(k not in _TYPE_WORDS and k != "NoneType" for k in kinds):
        return None
    valid: list[str] = []
    for listed in literals:
        try:
            values = ast.literal_eval(listed)
        except (SyntaxError, ValueError):
            return None
        valid += [str(v) for v in (values if isinstance(values, list) else [values]) if str(v) not in valid]
    takes = [_TYPE_WORDS[k] for k in kinds if k in _TYPE_WORDS] + (
        [f"one of {', '.join(valid)}"] if valid else []
    )
    if not takes:
        return None
    close = difflib.get_close_matches(given[0], valid, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"--{'.'.join(keys)}: {given[0]!r} is not {' or '.join(takes)}{hint}"


def concise(message: str) -> str:
    """jsonargparse's message without the alternatives nobody asked about (``Expected a NoneType``...)."""
    noise = (
        "Does not validate against any of the Union subtypes",
        "Subtypes:",
        "Errors:",
        "Given value type:",
        "- Expected a <class 'NoneType'>",
        "- Expected a <class 'bool'>",
        "Given value: NestedArg",
    )
    lines = [ln for ln in message.splitlines() if ln.strip() and not ln.strip().startswith(noise)]
    # a value of a checked type (split sizes...) nested in a class: one line, "data.val_size: why"
    keys = [m.group(1) for ln in lines if (m := re.fullmatch(r'\s*(?:- )?Parser key "([^"]+)":', ln))]
    rest = [ln.strip() for ln in lines if not re.fullmatch(r'\s*(?:- )?Parser key "[^"]+":', ln)]
    rest = [ln for ln in rest if not ln.startswith("- Problem with given class_path")]
    if keys and len(rest) == 1 and (why := re.fullmatch(r"Not of type \w+: (.+)", rest[0])):
        return f"{'.'.join(keys)}: {why.group(1)}"
    return "\n".join(lines)


class ZooSaveConfig(SaveConfigCallback):
    """Saves ``config.yaml`` in the run directory and records the full config in W&B runs. A
    resumed run keeps the ``config.yaml`` it continues and saves its own as ``config.resume.yaml``."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        saved_before = self.already_saved
        with warnings.catch_warnings():  # the note below says what it means
            warnings.filterwarnings("ignore", message=r"\s*Unable to serialize instance")
            super().setup(trainer, pl_module, stage)
        if saved_before or not self.save_to_log_dir:
            return
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if not trainer.is_global_zero or log_dir is None:
            return
        path = Path(log_dir, self.config_filename)
        dropped = _drop_unserializable(path)
        if dropped:
            sys.stderr.write(
                f"zoo: note: {path} leaves out {', '.join(dropped)}: jsonargparse cannot write "
                f"{'its value' if len(dropped) == 1 else 'their values'} (a rerun of the file gives "
                f"{'it its' if len(dropped) == 1 else 'them their'} default).\n"
            )

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if wandb_loggers:
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            for logger in wandb_loggers:
                logger.experiment.config.update(config, allow_val_change=True)


#: the words --ckpt_path takes besides a path: the commands that take each
CKPT_WORDS = {"last": "every command", "best": "validate, test and predict"}


def _accelerators_here() -> str:
    """The accelerators this machine has, as ``--trainer.accelerator`` names them (``cpu``; ``cuda``
    with the number of GPUs; ``mps``)."""
    import torch

    here = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        here.append(f"cuda ({count} GPU{'s' if count > 1 else ''})")
    if torch.backends.mps.is_available():
        here.append("mps")
    return " and ".join(here) if len(here) < 3 else f"{', '.join(here[:-1])} and {here[-1]}"


def _check_ckpt_word(given: str, resuming: bool) -> None:
    """``--ckpt_path`` as a word rather than a path: ``best`` where a run resumes (from its last
    checkpoint), or a word that is neither a file nor one of :data:`CKPT_WORDS` (``Last``, ``bset``):
    one line with the values it takes."""
    import difflib

    if given == "best" and resuming:
        raise ZooError(
            "--ckpt_path best: a run resumes from its last checkpoint, where it stopped; use --ckpt_path "
            "last (the newest run's last.ckpt) or a .ckpt path. best is for validate, test and predict; to "
            "start a new run from the best weights: --model.init_from PATH."
        )
    if given in CKPT_WORDS or Path(given).exists() or given.startswith("pretrained:") or "/" in given:
        return
    if Path(given).suffix in (".ckpt", ".safetensors"):
        return  # a file that is not there: zoo.checkpoints says so
    words = ["last"] if resuming else list(CKPT_WORDS)
    close = difflib.get_close_matches(given.lower(), words, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]}?" if close else ""
    takes = (
        "last (the newest last.ckpt under trainer.default_root_dir) or a .ckpt path"
        if resuming
        else "last (the newest run's last.ckpt), best (the newest run's best checkpoint), a .ckpt path, or "
        "pretrained:NAME"
    )
    raise ZooError(
        f"--ckpt_path: {given} is neither a checkpoint file nor a name it takes.{hint} It takes {takes}."
    )


def _check_run_is_over(given: str, path: Path) -> None:
    """Refuse to resume a run whose process still runs (its run.json says ``running``, with the pid
    of a live process on this host): both would write the same run directory, its metrics.csv
    getting epochs twice and its checkpoints overwritten."""
    import socket

    from zoo.runs import RUN_FILE, process_alive, read_json_object

    run_dir = run_directory(path)
    if run_dir is None:
        return
    record = read_json_object(run_dir / RUN_FILE)
    if record.get("status") != "running" or record.get("host") != socket.gethostname():
        return
    if not process_alive(record):
        return  # killed: its run.json could not say so
    pid = record.get("pid")
    raise ZooError(
        f"--ckpt_path {given}: the run in {run_dir} is still running (pid {pid} on this host, run.json: "
        f"status running); resuming it now would write the same run directory twice. Wait for it to end, "
        f"or stop it (kill {pid}) and then resume; or give another checkpoint."
    )


#: how jsonargparse writes a value it cannot serialize (``device: Unable to serialize instance cpu``),
#: which it cannot read back
UNSERIALIZABLE = "Unable to serialize instance "


def _without_unserializable(data: Any, where: str = "") -> tuple[Any, list[str]]:
    """``data`` (a parsed YAML config) without the values jsonargparse wrote as
    :data:`UNSERIALIZABLE`, and their keys (``trainer.callbacks[0].init_args.device``)."""
    dropped: list[str] = []
    if isinstance(data, dict):
        kept = {}
        for key, value in data.items():
            name = f"{where}.{key}" if where else str(key)
            if isinstance(value, str) and value.startswith(UNSERIALIZABLE):
                dropped.append(name)
                continue
            kept[key], inner = _without_unserializable(value, name)
            dropped += inner
        return kept, dropped
    if isinstance(data, list):
        items = []
        for i, value in enumerate(data):
            if isinstance(value, str) and value.startswith(UNSERIALIZABLE):
                dropped.append(f"{where}[{i}]")
                continue
            item, inner = _without_unserializable(value, f"{where}[{i}]")
            items.append(item)
            dropped += inner
        return items, dropped
    return data, dropped


def _drop_unserializable(path: Path) -> list[str]:
    """Rewrite the config file ``path`` without the values jsonargparse could not write; the keys
    left out (none: the file is untouched)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    if UNSERIALIZABLE not in text:
        return []
    try:
        kept, dropped = _without_unserializable(yaml.safe_load(text))
    except yaml.YAMLError:
        return []
    if dropped:
        from zoo.files import atomic_write

        # as jsonargparse writes its YAML
        style = {"default_flow_style": False, "allow_unicode": True, "sort_keys": False}
        atomic_write(path, lambda handle: yaml.safe_dump(kept, handle, **style))
    return dropped


def _init_from(config: Any) -> Any:
    """The ``model.init_from`` of a parsed config (None when the model class has no such option)."""
    model = config.get("model")
    args = model.get("init_args") if hasattr(model, "get") else None
    return args.get("init_from") if hasattr(args, "get") else None


class ZooCLI(LightningCLI):
    """LightningCLI with the zoo's defaults, data-to-model links and the ``train`` pipeline."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            model_class=ZooModule,
            subclass_mode_model=True,
            datamodule_class=ZooDataModule,
            subclass_mode_data=True,
            trainer_class=ZooTrainer,
            save_config_callback=ZooSaveConfig,
            parser_class=ZooArgumentParser,
            trainer_defaults=TRAINER_DEFAULTS,
            args=args,
            run=run,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            **LightningCLI.subcommands(),
            "train": {"model", "datamodule"},
        }

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """Build the parser of the subcommand asked for only. Each subcommand's parser holds every
        Trainer, model and data option (about 0.1 s of start-up apiece); ``zoo`` dispatches on
        its first word, so the other four would never be used."""
        asked = sys.argv[1] if len(sys.argv) > 1 else None
        every = self.subcommands()
        if asked in every:
            self.subcommands = lambda: {asked: every[asked]}  # type: ignore[method-assign]
        super()._add_subcommands(parser, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(StopEarly, "early_stopping")
        parser.set_defaults({f"early_stopping.{k}": v for k, v in EARLY_STOPPING_DEFAULTS.items()})
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({f"checkpoint.{k}": v for k, v in CHECKPOINT_DEFAULTS.items()})
        for name in DATA_TO_MODEL:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        check_run_root(trainer.default_root_dir)
        zoo_loggers = [lg for lg in loggers if getattr(lg, "class_path", "").startswith("zoo.loggers.")]
        for logger in zoo_loggers:
            if logger.init_args.get("save_dir") is None:
                logger.init_args.save_dir = trainer.default_root_dir
        _note_unused_model_options(config)
        if self.subcommand in ("fit", "train"):
            _note_split_monitors(config)
        self._resume_at: tuple[int, int] | None = None
        if self.subcommand in ("fit", "train") and config.get("ckpt_path"):
            self._prepare_resume(config, zoo_loggers)
        elif self.subcommand in ("fit", "train"):
            self._check_version_is_new(zoo_loggers)
        self._align_versions(zoo_loggers)

    @staticmethod
    def _check_version_is_new(zoo_loggers: list[Any]) -> None:
        """A run directory named by its version (``--trainer.logger.version 0``) must not be one that a
        run already holds: the new run would empty its metrics.csv and mark its run.json failed
        before Lightning refused the config.yaml it found there (a traceback)."""
        from zoo.loggers import RUN_DIRECTORY_LOGGERS

        for logger in zoo_loggers:
            version = logger.init_args.get("version")
            if logger.class_path not in RUN_DIRECTORY_LOGGERS or version is None:
                continue
            folder = Path(str(logger.init_args.save_dir), logger.init_args.get("name") or "")
            folder /= version if isinstance(version, str) else f"version_{version}"
            found = [name for name in ("config.yaml", "metrics.csv", "run.json") if (folder / name).exists()]
            if found:
                raise ZooError(
                    f"--trainer.logger.version: {folder} already holds a run ({found[0]}); name a new "
                    "version, leave it out for the next free one, or continue that run with --ckpt_path."
                )

    @staticmethod
    def _align_versions(zoo_loggers: list[Any]) -> None:
        """The CSV and TensorBoard loggers of one run write into the same ``version_N`` folder: each
        would otherwise pick the next free number on its own, and the second would find the first's."""
        from zoo.loggers import RUN_DIRECTORY_LOGGERS, next_version

        writers = [lg for lg in zoo_loggers if lg.class_path in RUN_DIRECTORY_LOGGERS]
        if len(writers) < 2 or any(lg.init_args.get("version") is not None for lg in writers):
            return
        places = {(str(lg.init_args.get("save_dir")), lg.init_args.get("name") or "") for lg in writers}
        if len(places) == 1:
            save_dir, name = places.pop()
            version = next_version(Path(save_dir) / name)
            for logger in writers:
                logger.init_args.version = version

    def _parse_ckpt_path(self) -> None:
        """``--ckpt_path last`` is the newest ``last.ckpt`` under the run root; any checkpoint is
        read without running code and refused, in one line, when it is missing, not a checkpoint,
        or names classes outside the allow-list, before LightningCLI takes the model's
        hyper-parameters from it (which imports the classes they name)."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        if not config.get("ckpt_path"):
            if subcommand in EVALUATION_COMMANDS and not _init_from(config) and rank_zero_only.rank == 0:
                print(
                    f"zoo {subcommand}: no --ckpt_path, so the model's untrained weights are evaluated; name "
                    "a checkpoint: --ckpt_path last (the newest run's), a .ckpt file, or pretrained:NAME.",
                    file=sys.stderr,
                )
            return
        given = path = config.ckpt_path
        resuming = subcommand in ("fit", "train")
        _check_ckpt_word(str(given), resuming)
        if path in ("last", "best"):
            path = (find_last if path == "last" else find_best)(config.trainer.default_root_dir)
        if resuming and not is_weights_file(path) and rank_zero_only.rank == 0:
            # rank 0 only: the other ranks of a run that Lightning launches parse this command once
            # rank 0 has begun, and its run.json already says running, with rank 0's pid
            _check_run_is_over(str(given), Path(path))
        if given in ("last", "best") and rank_zero_only.rank == 0:
            print(f"zoo: {'resuming from' if resuming else 'using'} {path}", file=sys.stderr)
        if is_weights_file(path):
            self._use_weights_file(subcommand, config, str(path))
            return
        checkpoint = read_checkpoint(path)
        check_named_classes(checkpoint, path, "--ckpt_path")
        config.ckpt_path = str(path)
        self._checkpoint_meta = {k: checkpoint.get(k, 0) for k in ("epoch", "global_step")}
        stored = checkpoint.get("hyper_parameters", {})
        self._checkpoint_facts = {k: stored.get(k) for k in DATA_TO_MODEL if k in stored}
        self._checkpoint_path = str(path)
        self._apply_checkpoint_hparams(subcommand, checkpoint)

    def _use_weights_file(self, subcommand: str, config: Any, path: str) -> None:
        """``--ckpt_path pretrained:NAME`` (or a ``.safetensors`` file of ``zoo export``) for
        validate, test and predict: weights without training state, so the model is built from the
        config in the file's header and given the weights by ``model.init_from``."""
        if subcommand in ("fit", "train"):
            raise ZooError(
                f"--ckpt_path resumes a run from its .ckpt; {path} holds weights alone. To start "
                f"training from them, use --model.init_from {path}."
            )
        from zoo.pretrained import read_config

        stored = read_config(path, option="--ckpt_path")
        check_named_classes(
            {"hyper_parameters": {**stored["hyper_parameters"], "_class_path": stored["class_path"]}},
            path,
            "--ckpt_path",
        )
        hparams = {**stored["hyper_parameters"], "init_from": path}
        config.ckpt_path = None
        self._checkpoint_facts = {k: hparams.get(k) for k in DATA_TO_MODEL if k in hparams}
        self._checkpoint_path = path
        self._apply_checkpoint_hparams(
            subcommand, {"hyper_parameters": hparams, CLASS_KEY: stored["class_path"]}
        )

    def _apply_checkpoint_hparams(self, subcommand: str, checkpoint: dict[str, Any]) -> None:
        """What LightningCLI's ``_parse_ckpt_path`` does (the model's stored hyper-parameters
        become its config), also for checkpoints written from Python, which carry the class in
        ``zoo_class_path`` rather than LightningCLI's ``_class_path``."""
        hparams = dict(checkpoint.get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        class_path = hparams.pop("_class_path", None) or checkpoint.get(CLASS_KEY)
        if not hparams or not isinstance(class_path, str):
            return
        model = {"class_path": class_path, "dict_kwargs": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

    def _prepare_resume(self, config: Any, zoo_loggers: list[Any]) -> None:
        """Continue the checkpoint's run directory (the same ``version_N``, its metrics appended)
        rather than starting a new one."""
        path = config.ckpt_path
        checkpoint = self._checkpoint_meta
        run_dir = run_directory(path)
        if run_dir is None:
            return
        from zoo.loggers import RUN_DIRECTORY_LOGGERS

        for logger in zoo_loggers:
            if logger.class_path in RUN_DIRECTORY_LOGGERS:
                logger.init_args.save_dir, logger.init_args.name = str(run_dir.parent), ""
                logger.init_args.version = run_dir.name
        self._resume_at = (int(checkpoint.get("epoch", 0)), int(checkpoint.get("global_step", 0)))

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        if self.subcommand in EVALUATION_COMMANDS:
            # evaluation reads a checkpoint and prints what it finds: no new run directory (no
            # logger, no config.yaml), no checkpoints, no early stopping
            keep = lambda cb: not isinstance(cb, (ModelCheckpoint, EarlyStopping))  # noqa: E731
            listed = config.get("callbacks") or []
            listed = listed if isinstance(listed, list) else [listed]
            config = {**config, "logger": False, "callbacks": [cb for cb in listed if keep(cb)]}
            callbacks = [cb for cb in callbacks if keep(cb)]
            if self.subcommand == "predict":
                callbacks.append(PredictionsCSV(self._predictions_path(config)))
            self.save_config_callback = None
            warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be")
        elif config.get("enable_checkpointing") is False:
            if self.subcommand == "train":
                raise ZooError(
                    "--trainer.enable_checkpointing false: zoo train reloads the best checkpoint to test "
                    "it, so it needs checkpointing; to train without writing checkpoints use zoo fit "
                    "(no test): zoo fit ... --trainer.enable_checkpointing false."
                )
            # zoo fit without checkpoints: the zoo's own checkpoint callback (--checkpoint.*) goes,
            # where Lightning refused it as a ModelCheckpoint the user never added
            callbacks = [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
        if self.subcommand not in EVALUATION_COMMANDS and config.get("logger") not in (None, False, []):
            # a run directory: record the run
            callbacks = [*callbacks, RunRecord()]  # run.json, for `zoo runs`
            if not any(isinstance(cb, LearningRateMonitor) for cb in callbacks):
                callbacks.append(LearningRates())  # the learning-rate curves of `zoo plot`
        trainer = super()._instantiate_trainer(config, callbacks)
        if not trainer.loggers:
            # --trainer.logger false: no run directory, so no config.yaml either; it would go straight
            # into the root folder, and the next run there would find it and stop
            trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, SaveConfigCallback)]
        return trainer

    def _predictions_path(self, config: dict[str, Any]) -> Path:
        """``predictions.csv`` in the run directory of the checkpoint predicted with, else in the
        run root."""
        checkpoint = getattr(self, "_checkpoint_path", None)
        run_dir = run_directory(checkpoint) if checkpoint else None
        if run_dir is None:
            run_dir = Path(config.get("default_root_dir") or ".")
        return run_dir / "predictions.csv"

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Lightning's own checks of Trainer arguments become one ``zoo: error:`` line."""
        try:
            return super().instantiate_trainer(**kwargs)
        except ZooError:
            raise
        except (MisconfigurationException, ValueError) as err:  # e.g. fsdp asked for on a CPU
            raise ZooError(f"trainer: {err}") from None
        except ImportError as err:  # a TPU (torch_xla), deepspeed, ...: a package this machine lacks
            if "Requirement" not in str(err):
                raise
            trainer = self._get(self.config_init, "trainer", default={})
            accelerator = trainer.get("accelerator")
            if isinstance(accelerator, str) and accelerator.lower() in ("tpu", "xla"):
                raise ZooError(
                    f"--trainer.accelerator {accelerator}: this machine has no TPU (torch_xla is not "
                    f"installed); it has {_accelerators_here()}: use --trainer.accelerator auto (or leave it "
                    "out)."
                ) from None
            raise ZooError(f"trainer: {str(err).splitlines()[0]}") from None

    def instantiate_classes(self) -> None:
        with warnings.catch_warnings():  # ZooSaveConfig leaves such a value out of config.yaml, and says so
            warnings.filterwarnings("ignore", message=r"\s*Unable to serialize instance")
            super().instantiate_classes()
        self._check_checkpoint_fits_data()
        log_dir = self.trainer.log_dir
        self._new_log_dir = Path(log_dir) if log_dir and not Path(log_dir).exists() else None
        # and the folders above it that this command will make (removed after a failure if empty)
        self._new_parents = (
            []
            if self._new_log_dir is None
            else [folder for folder in self._new_log_dir.absolute().parents if not folder.exists()]
        )
        if getattr(self, "_resume_at", None) is not None:
            for logger in self.trainer.loggers:
                if isinstance(logger, CSVLogger):
                    logger.continue_after(*self._resume_at)
            for callback in self.trainer.callbacks:
                if isinstance(callback, ZooSaveConfig) and log_dir and Path(log_dir, "config.yaml").exists():
                    callback.config_filename, callback.overwrite = "config.resume.yaml", True
        _STARTED.append(self)

    def _check_checkpoint_fits_data(self) -> None:
        """A checkpoint given with ``--ckpt_path`` must have been trained on data like the data of
        this command (task, classes, input shape, vocabulary), or its weights cannot load."""
        stored = getattr(self, "_checkpoint_facts", None)
        if not stored:
            return
        names = {
            "task": "task",
            "num_classes": "classes",
            "input_shape": "input shape",
            "vocab": "vocabulary",
        }
        for key, label in names.items():
            if key not in stored:
                continue
            theirs, ours = stored[key], getattr(self.model.hparams, key, None)
            if isinstance(theirs, (list, tuple)) and isinstance(ours, (list, tuple)):
                theirs, ours = list(theirs), list(ours)
            if theirs != ours:
                shown = (lambda v: f"{len(v)} characters") if key == "vocab" and theirs and ours else repr
                raise ZooError(
                    f"--ckpt_path: {self._checkpoint_path} was trained with {label} {shown(theirs)}, but the "
                    f"data of this command gives {shown(ours)}; use the data (or the config.yaml) it was "
                    "trained with."
                )

    def trained(self) -> bool:
        """Whether this invocation's run took a training step or wrote a checkpoint: its run
        directory then holds work worth keeping, even after a failure."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.global_step > 0:
            return True
        new = getattr(self, "_new_log_dir", None)
        return new is not None and new.exists() and any(new.rglob("*.ckpt"))

    def discard_run_dir(self) -> None:
        """Remove the run directory this invocation created (after a failure); on rank 0 only, so
        that another rank's error never removes the directory rank 0 writes."""
        if rank_zero_only.rank != 0:
            return
        trainer = getattr(self, "trainer", None)
        for logger in trainer.loggers if trainer is not None else []:
            if isinstance(logger, WandbLogger):  # its run finished quietly, its wandb/ folder gone
                with contextlib.suppress(Exception):  # the user's error is what to report
                    logger.discard()
        if getattr(self, "_new_log_dir", None) is not None and self._new_log_dir.exists():
            shutil.rmtree(self._new_log_dir, ignore_errors=True)
        for folder in getattr(self, "_new_parents", []):  # nearest first; another run's stay
            with contextlib.suppress(OSError):
                folder.rmdir()

    def train(self, model: ZooModule, datamodule: ZooDataModule, ckpt_path: str | None = None) -> None:
        metrics = self.trainer.train(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if not metrics:
            return
        log_dir = self.trainer.log_dir  # a collective under DDP: asked on every rank
        if not self.trainer.is_global_zero:
            return
        best = metrics.pop("best_checkpoint")
        width = max(len(k) for k in metrics)
        lines = ["", "Test metrics" + (" of the best checkpoint" if best else " (final weights)") + ":"]
        lines += [
            f"  {k:<{width}}  {v:.4f}" if v is not None else f"  {k:<{width}}  nan"
            for k, v in sorted(metrics.items())
        ]
        print("\n".join([*lines, *self._where_it_went(log_dir, best, tested=True)]))

    def after_fit(self) -> None:
        """``zoo fit`` ends, as ``zoo train`` does, with the run directory and its checkpoints."""
        if self.trainer.interrupted:
            return
        log_dir = self.trainer.log_dir  # a collective under DDP: asked on every rank
        if not self.trainer.is_global_zero:
            return
        callback = self.trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") or None
        print("\n".join(self._where_it_went(log_dir, best, tested=False)))

    def _where_it_went(self, log_dir: str | None, best: str | None, tested: bool) -> list[str]:
        """The closing lines of a run: its directory, config, test metrics and checkpoints."""
        if log_dir is None:  # fast_dev_run: Lightning swaps the logger for a dummy and saves nothing
            return ["", "fast_dev_run: one batch of each stage; no run directory was written."]
        folder = Path(log_dir)
        lines = ["", f"Run directory:   {folder}"]
        if any(isinstance(cb, SaveConfigCallback) for cb in self.trainer.callbacks):  # none without a logger
            lines += [f"  config:        {folder / 'config.yaml'}"]
        if tested:
            lines += [f"  test metrics:  {folder / METRICS_FILE}"]
        if best:
            lines += [f"  best ckpt:     {best}"]
        last = getattr(self.trainer.checkpoint_callback, "last_model_path", "")
        if last:
            lines += [f"  last ckpt:     {last}"]
        if self.trainer.checkpoint_callback is None:
            lines += ["  no checkpoints (--trainer.enable_checkpointing false)"]
        return lines


def run(argv: list[str], subcommand: bool = True) -> ZooCLI:
    """Run the CLI on ``argv`` (the words after ``zoo``); with ``subcommand=False`` only build the
    model, data and Trainer from ``argv`` (configs and flags, no subcommand) and return the CLI.

    A :class:`ZooError`, also one raised inside jsonargparse or Lightning, comes out unwrapped,
    and the run directory this invocation created is removed, so a user error leaves nothing
    half-written.
    """
    saved_argv = sys.argv
    sys.argv = [saved_argv[0], *resolve_names(argv)]
    try:
        return ZooCLI(run=subcommand)
    except Exception as err:
        cause = _zoo_error_in(err)
        if cause is None:
            # not the user's to fix (a traceback follows), but a run that failed before its first
            # training step leaves nothing half-written either: no run directory with a config,
            # hparams and a run.json of a run that never trained
            for cli in _STARTED:
                if not cli.trained():
                    cli.discard_run_dir()
            raise
        if not cause.keep_run:
            for cli in _STARTED:
                cli.discard_run_dir()
        raise cause from None
    finally:
        sys.argv = saved_argv
        _STARTED.clear()


#: the options that take a registered name (`zoo models`, `zoo models --data`) as well as a class path
NAMED_OPTIONS = ("--model", "--model.class_path", "--data", "--data.class_path")


def as_flag(key: str, value: Any) -> str:
    """``--key=value`` as jsonargparse reads it: strings as they are, anything else as JSON."""
    import json

    return f"--{key}={value if isinstance(value, str) else json.dumps(value)}"


def _registered(kind: str, name: Any) -> tuple[str, dict[str, Any]] | None:
    """The class path and preset arguments of ``name`` when it is a registered model (``kind``
    ``model``) or data name; ``None`` for anything else (a class path, a class name)."""
    from zoo.registry import DATA, MODELS, named_config

    registry = MODELS if kind == "model" else DATA
    if not isinstance(name, str) or "." in name or name not in registry:
        return None
    return named_config(registry, name)


def resolve_names(argv: list[str]) -> list[str]:
    """``--model resnet20`` and ``--data digits`` (the names ``zoo models`` lists) as the class path
    and the preset's arguments: ``--model zoo.models.ResNet --model.widths=[16, 32, 64]
    --model.blocks_per_stage=3``; later flags still override them. A config file (``-c``) that
    names its model or data so is read through a translated copy. Anything else passes unchanged
    (class paths, and class names jsonargparse resolves)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg, value, step = argv[i], None, 1
        option = arg.split("=", 1)[0]
        if option in ("-c", "--config"):  # a config file may name its model and data too
            if "=" in arg:
                out.append(f"{option}={_config_with_class_paths(arg.split('=', 1)[1])}")
            else:
                out += [arg, *(_config_with_class_paths(v) for v in argv[i + 1 : i + 2])]
                step = 2
            i += step
            continue
        if option in NAMED_OPTIONS:
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                value, step = argv[i + 1], 2
        elif option in CLASS_OPTIONS:
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else None)
        registered = _registered_class_path(option, value) if option in CLASS_OPTIONS else None
        if registered is not None:  # --model.optimizer sgd: the registry's name, as Python takes it
            out += [f"{option}={registered}"] if "=" in arg else [arg, registered]
            i += 1 if "=" in arg else 2
            continue
        _check_bare_class_name(option, value)
        full = _class_path_of_bare_name(option, value) if option in CLASS_OPTIONS else None
        if full is not None:  # a name two classes have: the one the zoo means, by its class path
            out += [f"{option}={full}"] if "=" in arg else [arg, full]
            i += 1 if "=" in arg else 2
            continue
        group = option.split(".")[0]
        named = _registered(group.removeprefix("--"), value)
        if named is None:
            out += argv[i : i + step]
            i += step
            continue
        class_path, defaults = named
        out += [group, class_path, *(as_flag(f"{group[2:]}.{key}", v) for key, v in defaults.items())]
        i += step
    return out


#: options that take a class: a class path, or a bare class name jsonargparse finds among the
#: subclasses of these (imported) bases
CLASS_OPTIONS = {
    "--model.optimizer": ("optimizer", "torch.optim.Optimizer"),
    "--model.optimizer.class_path": ("optimizer", "torch.optim.Optimizer"),
    "--model.lr_scheduler": ("learning-rate scheduler", "torch.optim.lr_scheduler.LRScheduler"),
    "--model.lr_scheduler.class_path": ("learning-rate scheduler", "torch.optim.lr_scheduler.LRScheduler"),
}


def _subclass_names(base: type) -> set[str]:
    names, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if not sub.__name__.startswith("_"):
                names.add(sub.__name__)
            todo.append(sub)
    return names


def _registered_class_path(option: str, value: Any) -> str | None:
    """The class path of an optimizer or schedule given to ``--model.optimizer`` or
    ``--model.lr_scheduler`` by its registered name (``sgd``, ``adamw``, ``warmup_cosine``,
    ``plateau``, in lower case: what ``zoo.create_optimizer`` and ``MLP(optimizer="sgd")`` take), ``null``
    for the schedule ``none``; ``None`` for anything else (class names and paths pass on as they are)."""
    if not isinstance(value, str) or "." in value or value.startswith("{") or value != value.lower():
        return None  # class names (SGD, AdamW, ReduceLROnPlateau) are jsonargparse's to resolve
    from zoo.registry import OPTIMIZERS, SCHEDULERS, public_class_path

    registry = OPTIMIZERS if option.startswith("--model.optimizer") else SCHEDULERS
    if value not in registry:
        return None
    entry = registry.get(value)
    if value.lower() == "none":
        return "null"
    return public_class_path(entry) if isinstance(entry, type) else None


def _class_path_of_bare_name(option: str, value: Any) -> str | None:
    """The class path of a bare class name (no dot) given to ``--model.optimizer`` or
    ``--model.lr_scheduler`` that more than one class has, where jsonargparse would refuse it as
    ambiguous: torch's class (``ReduceLROnPlateau`` is torch.optim.lr_scheduler's; Lightning's
    subclass of it has the same name); a :class:`ZooError` naming the class paths when torch has
    none or several. ``None`` for any other value (one class has the name, or none)."""
    import importlib

    if not isinstance(value, str) or "." in value:
        return None
    base_path = CLASS_OPTIONS[option][1]
    module, _, name = base_path.rpartition(".")
    found, todo = [], [getattr(importlib.import_module(module), name)]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__name__ == value and sub not in found:
                found.append(sub)
            todo.append(sub)
    if len(found) < 2:
        return None
    paths = [f"{cls.__module__}.{cls.__qualname__}" for cls in found]
    torch_paths = [path for path in paths if path.startswith("torch.")]
    if len(torch_paths) == 1:
        return torch_paths[0]
    raise ZooError(
        f"{option.removeprefix('--').removesuffix('.class_path')}: {value!r} names {len(paths)} classes: "
        f"{', '.join(paths)}; give the class path of the one you mean."
    )


def _check_bare_class_name(option: str, value: Any) -> None:
    """A bare name (no dot) given to ``--model``, ``--data``, ``--model.optimizer`` or
    ``--model.lr_scheduler`` that is neither a registered name nor a class jsonargparse would
    find: one :class:`ZooError` naming the option, the closest names and the valid ones (where
    jsonargparse would list the ways a value can be read)."""
    import difflib

    if (
        not isinstance(value, str)
        or "." in value
        or value.lower() in ("null", "none", "")
        or value.startswith("{")
    ):
        return
    if option in NAMED_OPTIONS:
        import lightning.pytorch as pl

        from zoo.registry import DATA, MODELS

        kind = option.removeprefix("--").split(".")[0]
        registry = MODELS if kind == "model" else DATA
        base = pl.LightningModule if kind == "model" else pl.LightningDataModule
        if value.lower() in registry.list() or value in _subclass_names(base):
            return
        example = "zoo.models.MLP" if kind == "model" else "zoo.data.CSVDataModule"
        raise ZooError(
            f"{registry.unknown_message(value, option)} Or a class path ({example}, my_pkg.MyClass); "
            f"`zoo models{' --data' if kind == 'data' else ''}` lists the names."
        )
    if option in CLASS_OPTIONS:
        import importlib

        kind, base_path = CLASS_OPTIONS[option]
        module, _, name = base_path.rpartition(".")
        names = _subclass_names(getattr(importlib.import_module(module), name))
        if kind != "optimizer":
            names |= {"ReduceLROnPlateau"}
        if value in names:
            return
        from zoo.registry import OPTIMIZERS, SCHEDULERS

        short = (OPTIMIZERS if kind == "optimizer" else SCHEDULERS).list()
        close = difflib.get_close_matches(value, sorted(names), n=3, cutoff=0.5) or difflib.get_close_matches(
            value.lower(), short, n=3, cutoff=0.5
        )
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ZooError(
            f"{option.removeprefix('--').removesuffix('.class_path')}: unknown {kind} {value!r}.{hint} Valid "
            f"names: {', '.join(sorted(names))}; the short names {', '.join(short)}; or a class path "
            "(my_pkg.MyClass)."
        )


def _config_with_class_paths(path: str) -> str:
    """``path``, or a copy of it in a temporary folder where its ``model`` or ``data`` names a
    registered name (``model: resnet20``, ``class_path: digits``) with the class path and the
    preset's arguments in its place (the config's own ``init_args`` override them), and where the
    model's optimizer or scheduler is a bare name two classes have, with the class path of torch's."""
    import atexit
    import tempfile

    file = Path(path)
    if not file.is_file() or file.suffix not in (".yaml", ".yml"):
        return path
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return path  # jsonargparse reports it
    if not isinstance(config, dict):
        return path
    config, dropped = _without_unserializable(config)
    if dropped:  # a run's config.yaml saved before such values were left out
        sys.stderr.write(
            f"zoo: note: -c {path}: {', '.join(dropped)} {'holds' if len(dropped) == 1 else 'hold'} a value "
            f"that could not be saved ('{UNSERIALIZABLE}...'); left out, so "
            f"{'its' if len(dropped) == 1 else 'their'} default applies.\n"
        )
    changed = bool(dropped)
    for key in ("model", "data"):
        value = config.get(key)
        named = _registered(key, value.get("class_path") if isinstance(value, dict) else value)
        if named is None:
            continue
        class_path, defaults = named
        given = (value.get("init_args") or {}) if isinstance(value, dict) else {}
        config[key] = {"class_path": class_path, "init_args": {**defaults, **given}}
        changed = True
    model = config.get("model")
    for args in (model.get("init_args"), model) if isinstance(model, dict) else ():
        for key in ("optimizer", "lr_scheduler") if isinstance(args, dict) else ():
            value = args.get(key)
            name = value.get("class_path") if isinstance(value, dict) else value
            full = _class_path_of_bare_name(f"--model.{key}", name)  # ReduceLROnPlateau: torch's
            if full is not None:
                args[key] = {**value, "class_path": full} if isinstance(value, dict) else full
                changed = True
    if not changed:
        return path
    folder = Path(tempfile.mkdtemp(prefix="zoo-config-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    copy = folder / file.name
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(copy)


def _zoo_error_in(err: BaseException | None) -> ZooError | None:
    """The ZooError behind an exception that jsonargparse or Lightning wrapped, if any (Lightning's
    ``MisconfigurationException``, a setting it refuses, becomes one)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ZooError):
            return err
        if isinstance(err, MisconfigurationException):  # Lightning's word for a bad Trainer setting
            return _monitor_not_logged(str(err)) or ZooError(f"trainer: {err}")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _monitor_not_logged(message: str) -> ZooError | None:
    """Lightning's refusal of a plateau scheduler whose metric the run does not log (known only
    once validation has run), as the option that names the metric, ``--model.monitor``, and the
    metrics validation logs; ``None`` for any other message."""
    import ast
    import difflib

    found = re.match(
        r"ReduceLROnPlateau conditioned on metric (.+) which is not available\. "
        r"Available metrics are: (\[.*?\])\.",
        message,
    )
    if found is None:
        return None
    metric, listed = found.groups()
    try:
        logged = sorted(str(name) for name in ast.literal_eval(listed))
    except (SyntaxError, ValueError):
        return None
    validation = [name for name in logged if name.startswith("val/")]
    close = difflib.get_close_matches(metric, validation or logged, n=3, cutoff=0.75)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    if validation:
        return ZooError(
            f"--model.monitor {metric!r} is not logged by validation; it logs {', '.join(validation)}{hint}"
        )
    return ZooError(
        f"--model.monitor {metric!r} is not logged: validation logs no metrics (does it run? "
        f"--trainer.limit_val_batches); the run logs {', '.join(logged) or 'none'}{hint}"
    )
