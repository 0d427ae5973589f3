"""A Trainer with the zoo's whole pipeline as one method: :meth:`ZooTrainer.train`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from zoo.files import write_json_atomic
from zoo.model_card import write_model_card

METRICS_FILE = "test_metrics.json"


class ZooTrainer(pl.Trainer):
    """``lightning.pytorch.Trainer`` plus :meth:`train`; every Trainer argument works unchanged."""

    def train(
        self,
        model: pl.LightningModule,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
    ) -> dict[str, Any]:
        """Fit, then reload the best checkpoint, test it and write ``test_metrics.json`` and the
        model card (``README.md``: see :mod:`zoo.model_card`) into the run directory.

        Args:
            model: the module to train.
            datamodule: provides the train, val and test splits.
            ckpt_path: resume fitting from this checkpoint.

        Returns:
            The test metrics, plus ``best_checkpoint`` (its path, or ``None`` when no checkpoint
            callback kept one and the final weights were tested).
        """
        started = time.perf_counter()
        self.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if self.interrupted:
            return {}
        callback = self.checkpoint_callback
        best = callback.best_model_path if callback is not None and callback.best_model_path else None
        results = self.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics: dict[str, Any] = {k: _number(v) for k, v in (results[0] if results else {}).items()}
        metrics["best_checkpoint"] = best
        log_dir = self.log_dir  # a collective under DDP: every rank must ask, not rank 0 alone
        if self.is_global_zero and log_dir is not None:
            write_json_atomic(Path(log_dir) / METRICS_FILE, metrics)
            write_model_card(self, model, datamodule, metrics, time.perf_counter() - started, Path(log_dir))
        return metrics


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value
