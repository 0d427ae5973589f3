"""Trained weights that ship with the package: ``zoo.load("pretrained:mlp_digits")``.

``zoo/weights/manifest.json`` lists each shipped model: its safetensors file (weights, the model's
config and its preprocessing facts in the header: loading runs no pickle), the file's sha256, the
recipe and command that produced it, the versions used and the test metrics it reached. Loading
checks the sha256 first and refuses a file that does not match, naming it. ``zoo models
--pretrained`` lists them; ``pretrained:NAME`` works wherever a checkpoint path does (``zoo.load``,
``zoo predict``, ``zoo export``, ``zoo generate``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

PREFIX = "pretrained:"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def manifest() -> dict[str, dict[str, Any]]:
    """The shipped models by name (empty when the package ships none)."""
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path(name: str) -> Path:
    """The verified file of the shipped model ``name`` (with or without the ``pretrained:`` prefix)."""
    name = name.removeprefix(PREFIX)
    entries = manifest()
    if name not in entries:
        shipped = ", ".join(sorted(entries)) or "none"
        raise ZooError(f"no pretrained model named {name!r}; shipped: {shipped} (zoo models --pretrained).")
    entry = entries[name]
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise ZooError(f"pretrained:{name}: {path} is missing from this installation of lightning-zoo.")
    found = sha256(path)
    if found != entry["sha256"]:
        raise ZooError(
            f"pretrained:{name}: {path} does not match its recorded sha256 ({found[:12]}... against "
            f"{entry['sha256'][:12]}...): the file is damaged or was changed; reinstall lightning-zoo."
        )
    return path


def resolve(path: str | os.PathLike) -> str | os.PathLike:
    """``pretrained:NAME`` as its verified weights file; any other path unchanged."""
    if isinstance(path, str) and path.startswith(PREFIX):
        return str(weights_path(path))
    return path


#: what `nox -s weights` rebuilds: shipped name -> the `zoo train` arguments that produce it
RECIPES: dict[str, list[str]] = {"mlp_digits": ["-c", "mlp_digits"]}


def build(name: str, root: str | os.PathLike = "runs/weights") -> dict[str, Any]:
    """Train ``RECIPES[name]`` with ``zoo train``, export its best checkpoint as safetensors into the
    package's weights folder and record it in the manifest (a maintainers' step: ``nox -s weights``)."""
    import platform

    import lightning
    import torch

    from zoo.cli import main as zoo_main
    from zoo.export import export
    from zoo.files import write_json_atomic

    args = [*RECIPES[name], "--trainer.default_root_dir", str(Path(root) / name)]
    zoo_main(["train", *args, "--trainer.enable_progress_bar", "false"])
    runs = sorted(Path(root, name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    metrics = json.loads((runs[-1] / "test_metrics.json").read_text())
    target = WEIGHTS_DIR / f"{name}.safetensors"
    export(metrics.pop("best_checkpoint"), "safetensors", target)
    entries = manifest()
    entries[name] = {
        "file": target.name,
        "sha256": sha256(target),
        "bytes": target.stat().st_size,
        "command": "zoo train " + " ".join(RECIPES[name]),
        "test_metrics": {k: round(v, 6) for k, v in metrics.items() if isinstance(v, float)},
        "versions": {
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "python": platform.python_version(),
        },
    }
    write_json_atomic(MANIFEST, dict(sorted(entries.items())))
    return entries[name]
