"""The callbacks of the zoo's pipeline: early stopping and best/last checkpointing on ``val/loss``.

Lightning provides both; these functions only fix the zoo's defaults in one place, for the CLI
and for Python users building their own Trainer.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

EARLY_STOPPING_DEFAULTS = {"monitor": "val/loss", "mode": "min", "patience": 10}
CHECKPOINT_DEFAULTS = {
    "monitor": "val/loss",
    "mode": "min",
    "save_top_k": 1,
    "save_last": True,
    "filename": "best-{epoch:03d}",
}


def early_stopping(**overrides: object) -> EarlyStopping:
    """Stop when ``val/loss`` has not improved for ``patience`` (10) validation runs."""
    return EarlyStopping(**{**EARLY_STOPPING_DEFAULTS, **overrides})


def best_and_last_checkpoint(**overrides: object) -> ModelCheckpoint:
    """Keep the checkpoint with the lowest ``val/loss`` (``best-epoch=NNN.ckpt``) and ``last.ckpt``."""
    return ModelCheckpoint(**{**CHECKPOINT_DEFAULTS, **overrides})
