"""The model card: a ``README.md`` in every run directory of ``zoo train`` that says what was
trained, on what, how well, on which machine, and how to use the result."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from zoo.files import atomic_write

CARD_FILE = "README.md"


def write_model_card(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule | None,
    metrics: dict[str, Any],
    wall_seconds: float,
    folder: Path,
) -> Path:
    """Write ``folder/README.md`` (through a temporary file) and return its path."""
    best = metrics.get("best_checkpoint")
    checkpoint = best or getattr(trainer.checkpoint_callback, "last_model_path", "") or "CKPT"
    rows = [
        ("command", f"`{_command()}`"),
        ("model", f"`{_class_path(model)}`, {sum(p.numel() for p in model.parameters()):,} parameters"),
        ("data", _data(datamodule)),
        ("task", _task(model)),
        ("best epoch", _best(trainer, best)),
        ("trained", f"{trainer.current_epoch} epochs, {trainer.global_step:,} optimizer steps"),
        ("wall time", f"{wall_seconds:.1f} s (fit and test)"),
        ("hardware", _hardware(trainer)),
        ("versions", _versions()),
    ]
    lines = [
        f"# {type(model).__name__} on {_data_name(datamodule)}",
        "",
        f"Trained by lightning-zoo on {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        f"## Test metrics ({'best checkpoint' if best else 'final weights'})",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {_value(v)} |" for k, v in sorted(metrics.items()) if k != "best_checkpoint"],
        "",
        "## Use it",
        "",
        *_usage(model, checkpoint, folder),
    ]
    path = folder / CARD_FILE
    atomic_write(path, lambda handle: handle.write("\n".join(lines)))
    return path


def _usage(model: Any, checkpoint: str, folder: Path) -> list[str]:
    if hasattr(model, "generate"):  # a language model
        use = ["# sample text:", f'zoo generate {checkpoint} --prompt "def " --temperature 0.8']
        python = ['model.generate("def ", max_new_tokens=200)']
    elif getattr(model, "vocab", None) is not None:  # token sequences in, per-token answers out
        use, python = [], ["model(token_ids)              # logits"]
    else:
        use = [
            "# predict on new rows (.csv), arrays (.npy), image files or a folder:",
            f"zoo predict {checkpoint} --input new_rows.csv -o predictions.csv",
        ]
        python = [
            "model.predict(rows)          # raw rows, arrays or image paths -> labels (or values)",
            "model.predict_proba(rows)    # classifiers: class probabilities",
        ]
    return [
        "```bash",
        *use,
        "# export (onnx, pt2, torchscript or safetensors), checked against the checkpoint:",
        f"zoo export {checkpoint} --format onnx",
        "# resume training from the last checkpoint:",
        f"zoo train -c {folder / 'config.yaml'} --ckpt_path {folder / 'checkpoints' / 'last.ckpt'}",
        "```",
        "",
        "```python",
        "import zoo",
        f'model = zoo.load("{checkpoint}")',
        *python,
        "```",
        "",
    ]


def _command() -> str:
    invoked = getattr(sys.modules.get("zoo.cli"), "INVOKED", None)
    return shlex.join(invoked) if invoked else "Python: ZooTrainer.train(...)"


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _data_name(datamodule: Any) -> str:
    if datamodule is None:
        return "its data"
    for attribute in ("dataset", "dataset_name", "path", "root", "problem"):
        value = getattr(datamodule, attribute, None)
        if isinstance(value, (str, os.PathLike)) and str(value):
            return Path(str(value)).name if attribute in ("path", "root") else str(value)
    return type(datamodule).__name__


def _data(datamodule: Any) -> str:
    if datamodule is None:
        return "dataloaders passed to the Trainer"
    text = f"`{_class_path(datamodule)}` ({_data_name(datamodule)})"
    try:
        sizes = datamodule.split_sizes()
    except Exception:  # a DataModule without the zoo's splits
        return text
    return text + ": " + ", ".join(f"{k} {v:,}" for k, v in sizes.items())


def _task(model: Any) -> str:
    task = getattr(model, "task", None)
    if task is None:
        return "-"
    facts = getattr(model, "preprocessing", None) or {}
    classes = facts.get("classes")
    vocab = getattr(model, "vocab", None)
    if vocab is not None and not classes:
        return f"{task} over a vocabulary of {len(vocab)} characters"
    if task == "regression":
        target = facts.get("target")
        return "regression" + (f" of `{target}`" if target else "")
    classes = list(classes or [])
    shown = ", ".join(str(c) for c in classes[:12]) + (", ..." if len(classes) > 12 else "")
    count = len(classes) if classes else getattr(model, "num_classes", None)
    return f"{task}, {count} classes" + (f": {shown}" if classes else "")


def _best(trainer: pl.Trainer, best: str | None) -> str:
    callback = trainer.checkpoint_callback
    if not best or callback is None:
        return "-"
    try:
        epoch = torch.load(best, map_location="cpu", weights_only=True, mmap=True).get("epoch")
    except Exception:
        epoch = None
    score = callback.best_model_score
    monitor = getattr(callback, "monitor", None)
    shown = f"{monitor} {float(score):.4f}" if score is not None and monitor else ""
    return f"{epoch if epoch is not None else '?'} ({shown}), `{best}`"


def _hardware(trainer: pl.Trainer) -> str:
    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    if accelerator == "cuda" and torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name()} x {trainer.num_devices}"
    else:
        device = f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    strategy = type(trainer.strategy).__name__.replace("Strategy", "")
    processes = f"{trainer.world_size} process" + ("es" if trainer.world_size > 1 else "")
    return f"{device}, {accelerator}, strategy {strategy}, precision {trainer.precision}, {processes}"


def versions() -> dict[str, str]:
    """The versions of the zoo and of what it runs on, by package (kept in each run's ``run.json``)."""
    import lightning
    import torchmetrics

    from zoo import __version__

    return {
        "lightning-zoo": __version__,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "python": platform.python_version(),
    }


def _versions() -> str:
    return ", ".join(f"{'Python' if k == 'python' else k} {v}" for k, v in versions().items())


def _value(value: Any) -> str:
    return "nan" if value is None else f"{value:.4f}"
