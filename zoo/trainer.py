"""A Trainer with the zoo's whole pipeline as one method: :meth:`ZooTrainer.train`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

METRICS_FILE = "test_metrics.json"


class ZooTrainer(pl.Trainer):
    """``lightning.pytorch.Trainer`` plus :meth:`train`; every Trainer argument works unchanged."""

    def train(
        self,
        model: pl.LightningModule,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
    ) -> dict[str, Any]:
        """Fit, then reload the best checkpoint, test it and write ``test_metrics.json``.

        Args:
            model: the module to train.
            datamodule: provides the train, val and test splits.
            ckpt_path: resume fitting from this checkpoint.

        Returns:
            The test metrics, plus ``best_checkpoint`` (its path, or ``None`` when no checkpoint
            callback kept one and the final weights were tested).
        """
        self.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if self.interrupted:
            return {}
        callback = self.checkpoint_callback
        best = callback.best_model_path if callback is not None and callback.best_model_path else None
        results = self.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics: dict[str, Any] = {k: _number(v) for k, v in (results[0] if results else {}).items()}
        metrics["best_checkpoint"] = best
        if self.is_global_zero and self.log_dir is not None:
            path = Path(self.log_dir) / METRICS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value
