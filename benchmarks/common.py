"""What the benchmarks share: a ZooTrainer that only trains (no validation, logging, checkpoints,
progress bar or summary), so that its time is the training loop's."""

from __future__ import annotations

from typing import Any


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
