"""What the benchmarks share: a ZooTrainer that only trains (no validation, logging, checkpoints,
progress bar or summary), a clock that starts after the warm-up epoch, and a record of results.

Results: every benchmark prints its numbers and, when ``ZOO_BENCH_JSON`` names a file, appends one
JSON object per measurement to it (JSON Lines; ``benchmarks/gpu.sh`` gathers them into one JSON).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch

# the zoo drops Lightning's NVML-based CUDA check where NVML is missing (80 us an optimizer step,
# see zoo.trainer); import it first so that the hand-written loops run as a plain script would
import zoo.trainer  # noqa: F401


def training_only_trainer(**kwargs: Any):
    """``ZooTrainer(**kwargs)`` with everything but training switched off."""
    from zoo.trainer import ZooTrainer

    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    return ZooTrainer(**{**quiet, **kwargs})


def sync(device: str) -> None:
    """Wait for the device's queued work (timings on a GPU are otherwise only launch times)."""
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak_memory(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib(device: str) -> float | None:
    """The most GPU memory tensors held since :func:`reset_peak_memory` (``None`` off the GPU)."""
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def warm_clock(device: str, warmup_epochs: int = 1):
    """A Lightning callback whose ``start`` is the time the first epoch after the warm-up began
    (compilation, cuDNN's autotuning and the allocator's first requests fall in the warm-up)."""
    import lightning.pytorch as pl

    class WarmClock(pl.Callback):
        start = 0.0

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.current_epoch == warmup_epochs:
                sync(device)
                self.start = time.perf_counter()

    return WarmClock()


def record(benchmark: str, **values: Any) -> None:
    """Append ``{"benchmark": ..., **values}`` to the JSON Lines file ``$ZOO_BENCH_JSON``, if set."""
    path = os.environ.get("ZOO_BENCH_JSON")
    if not path:
        return
    device = values.get("device")
    if device == "cuda":
        values.setdefault("card", torch.cuda.get_device_name())
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"benchmark": benchmark, **values}) + "\n")
