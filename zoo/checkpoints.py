"""Checkpoint files as the zoo's commands meet them: found by name, read without running code,
and refused with one clear message when they are not what they should be."""

from __future__ import annotations

import os
import pickle
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError

LAST = "last.ckpt"


def find_last(root: str | Path) -> Path:
    """The newest ``last.ckpt`` under ``root`` (by modification time), for ``--ckpt_path last``."""
    root = Path(root)
    found = sorted(root.rglob(LAST), key=lambda p: p.stat().st_mtime_ns) if root.is_dir() else []
    if not found:
        raise ZooError(
            f"--ckpt_path last: there is no {LAST} under {root} (trainer.default_root_dir); train without "
            "--ckpt_path first, or give the path of a checkpoint."
        )
    return found[-1]


def find_best(root: str | Path) -> Path:
    """The best checkpoint of the newest run under ``root``, for ``--ckpt_path best``: the run of the
    newest checkpoint file, and in it the checkpoint its checkpoint callback last named best."""
    root = Path(root)
    found = sorted(root.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns) if root.is_dir() else []
    found = [p for p in found if p.parent.name == "checkpoints"]
    if not found:
        raise ZooError(
            f"--ckpt_path best: there is no checkpoint under {root} (trainer.default_root_dir); train "
            "first, or give the path of a checkpoint."
        )
    folder = found[-1].parent
    run = [p for p in found if p.parent == folder]
    named = _best_named_in(run[-1])
    if named is not None and (folder / named).is_file():
        return folder / named
    kept = [p for p in run if not p.name.startswith(LAST.removesuffix(".ckpt"))]
    if len(kept) == 1:
        return kept[0]
    listed = ", ".join(p.name for p in kept) or "only last checkpoints"
    raise ZooError(
        f"--ckpt_path best: {folder} holds no checkpoint that its run named best ({listed}); give the "
        "path of the one you mean."
    )


def _best_named_in(checkpoint: Path) -> str | None:
    """The file name of the best checkpoint as ``checkpoint``'s ModelCheckpoint state records it."""
    try:
        states = read_checkpoint(checkpoint).get("callbacks") or {}
    except ZooError:
        return None
    for key, state in states.items() if isinstance(states, dict) else ():
        best = state.get("best_model_path") if isinstance(state, dict) else None
        if "Checkpoint" in str(key) and isinstance(best, str) and best:
            return Path(best).name
    return None


def read_checkpoint(path: str | Path, option: str = "--ckpt_path") -> dict[str, Any]:
    """Load a checkpoint's contents on the CPU with ``weights_only=True`` (no pickled code runs).

    Raises :class:`ZooError` naming ``option`` and the file when it is missing, empty, unreadable,
    truncated, another kind of file (a safetensors file named ``.ckpt``), holds pickled code or is
    not a Lightning checkpoint.
    """
    from zoo.pretrained import PREFIX, entry

    if str(path).startswith(PREFIX):  # a trained model of the zoo: weights and config, no training state
        name = str(path).removeprefix(PREFIX)
        entry(name)  # an unknown name says which there are
        raise ZooError(
            f"{option}: {path} is a trained model of the zoo (a safetensors file), not a PyTorch "
            f"checkpoint; load it with zoo.load({str(path)!r}) or "
            f"zoo.create_model({name!r}, pretrained=True)."
        )
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
        raise ZooError(f"{option}: {path} {what}.")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as err:
        raise ZooError(f"{option}: cannot read {path} ({err.strerror or type(err).__name__}).") from None
    kind = _file_kind(head, size)
    if kind == "empty":
        raise ZooError(
            f"{option}: {path} is empty (0 bytes), not a checkpoint; was its writing or copy cut short?"
        )
    if kind == "safetensors":
        if path.suffix == ".safetensors":  # zoo export's weights and config
            raise ZooError(
                f"{option}: {path} is a safetensors file (of `zoo export`), not a PyTorch checkpoint; "
                f"load it with zoo.load({str(path)!r})."
            )
        raise ZooError(
            f"{option}: {path} is a safetensors file, not a PyTorch checkpoint; the zoo reads safetensors "
            f"files by their suffix: rename it to {path.with_suffix('.safetensors').name}."
        )
    if kind == "other":
        raise ZooError(
            f"{option}: {path} is not a readable PyTorch checkpoint: it is neither a zip archive (what "
            "torch.save writes) nor an older pickle-format PyTorch file."
        )
    try:
        # mmap reads only the zip format; the older pickle format is read whole
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as err:
        named = re.search(r"GLOBAL ([\w.]+)", str(err))
        raise ZooError(
            f"{option}: {path} holds more than tensors and plain values (pickled code?), and the zoo "
            "does not run code from files" + (f" (it names {named.group(1)})." if named else ".")
        ) from None
    except Exception as err:  # noqa: BLE001  (a damaged file fails in many ways, all of them this one)
        cause = _short_cause(err, 80)
        raise ZooError(
            f"{option}: {path} is not a readable PyTorch checkpoint: "
            + (
                "a zip archive as torch.save writes, but damaged or cut short"
                if kind == "zip"
                else "an older pickle-format PyTorch file, but damaged or cut short"
            )
            + (f" ({cause})." if cause else ".")
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ZooError(f"{option}: {path} is a PyTorch file but not a Lightning checkpoint (no state_dict).")
    return checkpoint


def _file_kind(head: bytes, size: int) -> str:
    """What a file's first bytes say it is: ``empty``, ``zip`` (torch.save's format), ``pickle``
    (torch.save's older format), ``safetensors`` or ``other``."""
    if size == 0:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":  # a pickle protocol opcode
        return "pickle"
    # safetensors: an 8-byte little-endian header length, then the JSON header
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    return "other"


def _short_cause(err: BaseException, limit: int) -> str:
    """The first line of ``err``'s message when it is short and not advice addressed to a
    programmer (torch's suggestions of arguments to torch.load); else ``""``."""
    text = str(err).strip()
    first = text.splitlines()[0].strip().rstrip(".") if text else type(err).__name__
    if len(first) > limit or "torch.save" in first or "torch.load" in first or "weights_only" in first:
        return ""
    return first


def run_directory(path: str | Path) -> Path | None:
    """The run directory a checkpoint was written in (``<run>/checkpoints/<file>``), if it was."""
    path = Path(path)
    return path.parent.parent if path.parent.name == "checkpoints" else None


#: packages whose modules a checkpoint may name: importing them runs only code the zoo depends on
TRUSTED_PACKAGES = ("zoo", "torch", "lightning", "torchmetrics", "torchvision")

_CLASS_KEYS = ("class_path", "_class_path", "_instantiator")


#: hyper-parameters whose string value may be a class path the model imports (``loss:
#: torch.nn.HuberLoss``, built by ``ZooModule``; ``optimizer: torch.optim.SGD``, stored for a
#: registered name, read back by LightningCLI's parser under ``zoo test --ckpt_path``)
_CLASS_PATH_VALUES = ("loss", "optimizer", "lr_scheduler")


def named_classes(hparams: Any) -> list[str]:
    """Every class path a checkpoint's hyper-parameters name (at any depth)."""
    found: list[str] = []
    if isinstance(hparams, dict):
        for key, value in hparams.items():
            names_class = key in _CLASS_KEYS or (key in _CLASS_PATH_VALUES and "." in str(value))
            if names_class and isinstance(value, str):
                found.append(value)
            else:
                found += named_classes(value)
    elif isinstance(hparams, (list, tuple)):
        for value in hparams:
            found += named_classes(value)
    return found


def _module_of(class_path: str) -> str:
    """The module of a class path; a class made in a function
    (``tests.test_x.test_fit.<locals>.Model``) is its module's."""
    outer = class_path.split(".<locals>")[0]
    return outer.rpartition(".")[0] if outer != class_path else class_path.rpartition(".")[0]


def is_trusted(class_path: str) -> bool:
    """A class path the zoo will import and build: in :data:`TRUSTED_PACKAGES`, or in a module
    that is already imported (the user's own code, or a class they named on the command line)."""
    module = _module_of(class_path)
    return module.split(".")[0] in TRUSTED_PACKAGES or (bool(module) and module in sys.modules)


def check_named_classes(checkpoint: dict[str, Any], path: str | Path, option: str) -> None:
    """Raise :class:`ZooError` if the checkpoint names a class outside the allow-list
    (:func:`is_trusted`, and the modules of the classes installed ``lightning_zoo`` plugins
    register: :func:`zoo.registry.plugin_modules`), before anything imports it."""
    named = named_classes(checkpoint.get("hyper_parameters", {})) + model_class_paths(checkpoint)
    untrusted = [name for name in named if not is_trusted(name)]
    if untrusted:  # installed plugins are imported (as on any name lookup), never what the file names
        from zoo.registry import plugin_modules

        registered = plugin_modules()
        untrusted = [name for name in untrusted if _module_of(name) not in registered]
    if untrusted:
        names = ", ".join(sorted(set(untrusted)))
        modules = " ".join(f"--import {m}" for m in sorted({n.rpartition(".")[0] for n in untrusted}))
        raise ZooError(
            f"{option}: {path} names classes outside the zoo, torch, lightning and torchmetrics ({names}); "
            "the zoo does not import modules a file names. If you trust it, import that module first "
            f"(from Python: import it; zoo predict, export and generate: {modules}; zoo fit, validate, "
            "test: --model.class_path with the model's class)."
        )
    for class_path in model_class_paths(checkpoint):
        problem = _model_class_problem(class_path)
        if problem:
            raise ZooError(
                f"{option}: {path} names {class_path} as its model class, but {problem}; a zoo checkpoint "
                "names a zoo model (zoo models lists them) or one of your LightningModule classes."
            )


def model_class_paths(checkpoint: dict[str, Any]) -> list[str]:
    """The class paths a checkpoint names for its model (none for a plain Lightning checkpoint):
    LightningCLI's ``_class_path`` in the hyper-parameters, and the ``zoo_class_path`` that
    ``ZooModule.on_save_checkpoint`` writes at the top level (``zoo.models.base.CLASS_KEY``)."""
    hparams = checkpoint.get("hyper_parameters")
    found = [hparams.get("_class_path")] if isinstance(hparams, dict) else []
    found.append(checkpoint.get("zoo_class_path"))
    return [name for name in dict.fromkeys(found) if isinstance(name, str)]


def _model_class_problem(class_path: str) -> str | None:
    """Why ``class_path`` cannot be a checkpoint's model class, read from the modules already
    imported (nothing is imported); ``None`` when it may be one. A class missing from a module
    outside :data:`TRUSTED_PACKAGES` is let through: ``MyModel.load_from_checkpoint`` builds
    ``MyModel`` from a checkpoint saved as ``__main__.MyModel``."""
    from lightning.pytorch import LightningModule

    parts = class_path.split(".")
    if "<locals>" in parts:  # a class made in a function: no name finds it
        return None
    imported = next((i for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in sys.modules), None)
    if imported is None:
        return None
    found: Any = sys.modules[".".join(parts[:imported])]
    for i in range(imported, len(parts)):
        if not hasattr(found, parts[i]):
            if parts[0] not in TRUSTED_PACKAGES or _is_module(".".join(parts[: i + 1])):
                return None  # let Lightning say whether it will build that (it reads sys.modules)
            return f"{'.'.join(parts[:i])} has no {parts[i]}"
        found = getattr(found, parts[i])
    if not (isinstance(found, type) and issubclass(found, LightningModule)):
        what = "class" if isinstance(found, type) else type(found).__name__.replace("_", " ")
        return f"that is a {what}, not a LightningModule"
    return None


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module that can be imported (found without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_zoo_model(checkpoint: dict[str, Any], path: str | Path, option: str = "checkpoint") -> None:
    """Raise :class:`ZooError` unless the checkpoint can rebuild its model alone: it names its model
    class (:func:`model_class_paths`) and holds the hyper-parameters to build it with. A plain
    Lightning checkpoint names no class, so ``ZooModule.load_from_checkpoint`` would build the
    abstract base with defaults."""
    hparams = checkpoint.get("hyper_parameters")
    names = model_class_paths(checkpoint)
    if not names:
        raise ZooError(
            f"{option}: {path} was not written by a zoo model (it names no zoo class); give a checkpoint "
            "of `zoo train` or of a Trainer fitting a zoo model, or load it in Python with its own "
            "class: YourModel.load_from_checkpoint(path)."
        )
    if not isinstance(hparams, dict) or not hparams:
        raise ZooError(
            f"{option}: {path} was not written by a zoo model (it holds no hyper-parameters to build its "
            f"{names[0]} with); give a checkpoint of `zoo train` or of a Trainer fitting a zoo model."
        )


@contextmanager
def loading_errors(
    path: str | Path, option: str = "checkpoint", hparams: dict[str, Any] | None = None
) -> Iterator[None]:
    """Turn what Lightning raises while building a checkpoint's model (hyper-parameters the model
    or jsonargparse refuses, a class it blocks, weights that do not fit) into one
    :class:`ZooError` naming ``option`` and the file. ``hparams``: the file's hyper-parameters,
    to quote a refused value."""
    import argparse

    try:
        yield
    except ZooError as err:
        if str(err).startswith(f"{option}:"):  # about the file already
            raise
        raise ZooError(f"{option}: {path} has a hyper-parameter its model refuses: {err}") from None
    except RuntimeError as err:
        if not str(err).startswith("Error(s) in loading state_dict"):
            raise
        raise ZooError(
            f"{option}: {path}'s weights do not fit its model ({_state_dict_problems(err)})."
        ) from None
    except (argparse.ArgumentError, TypeError, ValueError) as err:
        raise ZooError(f"{option}: {path} {_build_problem(err, hparams or {})}") from None


def _state_dict_problems(err: RuntimeError, most: int = 3) -> str:
    """torch's ``load_state_dict`` report, short: ``missing a, b; unexpected c; size mismatch for
    d: [3, 3] in the file, [16, 64] in the model``."""

    def some(names: list[str]) -> str:
        more = f" and {len(names) - most} more" if len(names) > most else ""
        return ", ".join(names[:most]) + more

    parts = []
    text = str(err)
    for label, pattern in (("missing", "Missing key"), ("unexpected", "Unexpected key")):
        match = re.search(pattern + r"\(s\) in state_dict: (.*?)\.\s*$", text, re.MULTILINE)
        if match:
            names = re.findall(r'"([^"]+)"', match.group(1))
            parts.append(f"{label} {some(names)}")
    sizes = re.findall(
        r"size mismatch for (\S+): copying a param with shape torch.Size\((\[.*?\])\) from checkpoint, "
        r"the shape in current model is torch.Size\((\[.*?\])\)",
        text,
    )
    if sizes:
        shown = [f"{name}: {theirs} in the file, {ours} in the model" for name, theirs, ours in sizes[:most]]
        more = f"; and {len(sizes) - most} more" if len(sizes) > most else ""
        parts.append("size mismatch for " + "; ".join(shown) + more)
    return "; ".join(parts) or text.splitlines()[0]


def _build_problem(err: Exception, hparams: dict[str, Any]) -> str:
    """What keeps a checkpoint's model from being built, as the rest of a sentence about the file."""
    text = str(err)
    blocked = re.search(r"^The (?:class|instantiator) '([^']+)'.*was blocked", text, re.DOTALL)
    base = re.search(r"imported subclass of (\w+)", text)
    stored = _imported_class(blocked.group(1)) if blocked else None
    if blocked and base and stored is not None:  # a model of another class: say which loads it
        return _not_a(blocked.group(1), stored, base.group(1))
    if blocked:
        return (
            f"names {blocked.group(1)}, which Lightning will not build (not an imported model class, or "
            "not a trusted instantiator); a zoo checkpoint names a zoo model (zoo models lists them)."
        )
    cause = err.__cause__
    if isinstance(cause, ZooError):  # the model's own check, through jsonargparse
        return f"has a hyper-parameter its model refuses: {cause}"
    keys = re.findall(r'Parser key "([^"]+)":\s*\n\s*(.+)', text)
    if keys:
        key, why = keys[-1]  # the innermost: the hyper-parameter itself
        why = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", why).split(". Got value")[0].rstrip(".")
        why = why[:1].lower() + why[1:]
        value = f"={hparams[key]!r}" if key in hparams else ""
        return f"has a hyper-parameter its model refuses: {key}{value} ({why})."
    first = text.strip().splitlines()[0][:160] if text.strip() else type(err).__name__
    return f"does not build its model ({first})."


def _not_a(class_path: str, stored: type, wanted: str) -> str:
    return (
        f"holds a {class_path}, which is not a {wanted}; load it with {stored.__name__}.load_from_checkpoint"
        "(path), or with zoo.load(path), which builds the class the file names."
    )


def check_model_class(
    cls: type, checkpoint: dict[str, Any], path: str | Path, option: str = "checkpoint"
) -> None:
    """Raise :class:`ZooError` when the checkpoint's model class (:func:`model_class_paths`) is an
    imported class of another line than ``cls``, neither a subclass nor a base of it
    (``ConvNet.load_from_checkpoint`` of an MLP's checkpoint), naming the class that loads it.
    Nothing is imported."""
    for class_path in model_class_paths(checkpoint):
        stored = _imported_class(class_path)
        if stored is not None and not issubclass(stored, cls) and not issubclass(cls, stored):
            raise ZooError(f"{option}: {path} {_not_a(class_path, stored, cls.__name__)}")


def _imported_class(class_path: str) -> type | None:
    """The LightningModule class ``class_path`` names, found among the imported modules (nothing is
    imported); ``None`` when it is not there."""
    from lightning.pytorch import LightningModule

    module, _, name = class_path.rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, LightningModule) else None


def load_model(path: str | os.PathLike, map_location: Any = "cpu", option: str = "checkpoint") -> Any:
    """:func:`zoo.inference.load` for the commands: the checkpoint is checked first (readable, a
    trusted and existing model class, :func:`check_zoo_model`), and whatever keeps its model from
    being built is one :class:`ZooError` naming ``option`` and the file (:func:`loading_errors`)."""
    from zoo.inference import load
    from zoo.pretrained import is_weights_file, resolve

    source = resolve(path)  # pretrained:NAME -> its file
    hparams = None
    if not is_weights_file(source):
        checkpoint = read_checkpoint(source, option)
        check_named_classes(checkpoint, source, option)
        check_zoo_model(checkpoint, source, option)
        hparams = checkpoint["hyper_parameters"]
        del checkpoint
    with loading_errors(source, option, hparams):
        return load(source, map_location=map_location)
