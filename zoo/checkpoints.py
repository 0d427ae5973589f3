"""Checkpoint files as the zoo's commands meet them: found by name, read without running code,
and refused with one clear message when they are not what they should be."""

from __future__ import annotations

import pickle
import sys
import zipfile
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


def read_checkpoint(path: str | Path, option: str = "--ckpt_path") -> dict[str, Any]:
    """Load a checkpoint's contents on the CPU with ``weights_only=True`` (no pickled code runs).

    Raises :class:`ZooError` naming ``option`` and the file when it is missing, unreadable,
    truncated, holds pickled code or is not a Lightning checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
        raise ZooError(f"{option}: {path} {what}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(
            f"{option}: {path} holds more than tensors and plain values (pickled code?), and the zoo "
            f"does not run code from files ({detail[:160]})."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ZooError(
            f"{option}: {path} is not a readable PyTorch checkpoint (truncated or another kind of file: "
            f"{str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__})."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ZooError(f"{option}: {path} is a PyTorch file but not a Lightning checkpoint (no state_dict).")
    return checkpoint


def run_directory(path: str | Path) -> Path | None:
    """The run directory a checkpoint was written in (``<run>/checkpoints/<file>``), if it was."""
    path = Path(path)
    return path.parent.parent if path.parent.name == "checkpoints" else None


#: packages whose modules a checkpoint may name: importing them runs only code the zoo depends on
TRUSTED_PACKAGES = ("zoo", "torch", "lightning", "torchmetrics", "torchvision")

_CLASS_KEYS = ("class_path", "_class_path", "_instantiator")


def named_classes(hparams: Any) -> list[str]:
    """Every class path a checkpoint's hyper-parameters name (at any depth)."""
    found: list[str] = []
    if isinstance(hparams, dict):
        for key, value in hparams.items():
            if key in _CLASS_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found += named_classes(value)
    elif isinstance(hparams, (list, tuple)):
        for value in hparams:
            found += named_classes(value)
    return found


def is_trusted(class_path: str) -> bool:
    """A class path the zoo will import and build: in :data:`TRUSTED_PACKAGES`, or in a module
    that is already imported (the user's own code, or a class they named on the command line)."""
    module = class_path.rpartition(".")[0]
    return module.split(".")[0] in TRUSTED_PACKAGES or (bool(module) and module in sys.modules)


def check_named_classes(checkpoint: dict[str, Any], path: str | Path, option: str) -> None:
    """Raise :class:`ZooError` if the checkpoint names a class outside the allow-list
    (:func:`is_trusted`), before anything imports it."""
    untrusted = [
        name for name in named_classes(checkpoint.get("hyper_parameters", {})) if not is_trusted(name)
    ]
    if untrusted:
        names = ", ".join(sorted(set(untrusted)))
        raise ZooError(
            f"{option}: {path} names classes outside the zoo, torch, lightning and torchmetrics ({names}); "
            "the zoo does not import modules a file names. If you trust it, import that module first "
            "(for the command line: name the class with --model.class_path)."
        )
