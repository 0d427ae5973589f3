"""The pipeline's callbacks: last.ckpt stays current whether or not the monitored value improves."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from conftest import quiet_trainer

from zoo.callbacks import BestAndLastCheckpoint, best_and_last_checkpoint
from zoo.data import TensorLoader


class Worsening(pl.LightningModule):
    """val/loss is the epoch number: the best epoch is always the first."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loaders() -> tuple[TensorLoader, TensorLoader]:
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    return TensorLoader(x, batch_size=4, shuffle=True), TensorLoader(x, batch_size=4)


def _saved(path: Path) -> tuple[int, int]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint["epoch"], checkpoint["global_step"]


def test_last_checkpoint_is_written_every_epoch_without_improvement(tmp_path: Path) -> None:
    callback = best_and_last_checkpoint(dirpath=tmp_path)
    assert isinstance(callback, BestAndLastCheckpoint)
    seen: list[tuple[int, int]] = []

    class Watch(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch > 0:  # what a kill now would leave behind
                seen.append(_saved(tmp_path / "last.ckpt"))

    trainer = quiet_trainer(max_epochs=4, enable_checkpointing=True, callbacks=[callback, Watch()])
    trainer.fit(Worsening(), *_loaders())
    assert seen == [(0, 2), (1, 4), (2, 6)]  # each epoch's end, though only epoch 0 was the best
    assert _saved(tmp_path / "last.ckpt") == (3, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-epoch=000.ckpt", "last.ckpt"]


def test_last_checkpoint_follows_every_n_train_steps(tmp_path: Path) -> None:
    callback = best_and_last_checkpoint(dirpath=tmp_path, every_n_train_steps=3)
    seen: dict[int, tuple[int, int]] = {}

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step in (3, 6):  # just after a save point (2 steps an epoch)
                seen[trainer.global_step] = _saved(tmp_path / "last.ckpt")

    trainer = quiet_trainer(max_epochs=4, enable_checkpointing=True, callbacks=[callback, Watch()])
    trainer.fit(Worsening(), *_loaders())
    # step 3 is mid-epoch 1, step 6 ends epoch 2; val/loss never improves, so no top-k file is
    # written at either, yet last.ckpt holds them
    assert seen == {3: (1, 3), 6: (2, 6)}
