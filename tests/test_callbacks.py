"""The pipeline's callbacks: last.ckpt stays current whether or not the monitored value improves."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.conftest import QUIET, quiet_trainer
from tests.test_cli import run_main
from zoo.callbacks import BestAndLastCheckpoint, best_and_last_checkpoint
from zoo.data import TensorLoader
from zoo.models import MLP


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


class DivergesAtStep5(MLP):
    """An MLP whose training loss turns NaN from step 5 on (as a too-high learning rate would)."""

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = super().compute_loss(outputs, targets)
        return loss * float("nan") if self.training and self.trainer.global_step >= 5 else loss


@pytest.mark.parametrize("deferred", [False, True], ids=["every-step", "deferred"])
def test_training_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch, deferred
):
    """On the CPU the loss is checked every step; on an accelerator (``deferred``, forced here) the
    check is read back at sync points (here: before the validation that ends epoch 1, two steps
    later), yet it names the same first non-finite step and no checkpoint holds spoiled weights."""
    from zoo.models.base import ZooModule

    monkeypatch.setattr(ZooModule, "defers_finite_check", property(lambda self: deferred))
    root = tmp_path / "runs"
    code, out, err = run_main(
        [
            "train", "-c", "mlp_digits", *QUIET, "--model.class_path", "tests.test_callbacks.DivergesAtStep5",
            "--data.batch_size", "512", "--trainer.default_root_dir", str(root),
        ],
        capsys,
    )  # fmt: skip
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    assert errors == [
        f"zoo: error: the training loss is nan at step 5 (epoch 1): training diverged and stopped. Lower the "
        f"learning rate (--model.optimizer.lr) or clip gradients (--trainer.gradient_clip_val 1.0); the last "
        f"good checkpoint is {last}."
    ], err
    assert "Traceback" not in err
    # 1257 training rows in batches of 512: epoch 0 is steps 0-2; its checkpoint stays, and is sound
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 3)
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())
    assert not list(root.rglob("test_metrics.json"))


def test_every_rank_joins_the_finite_loss_decision_at_every_step() -> None:
    """Under several processes the ranks decide together whether a step's loss was finite, so one
    rank's NaN stops them all: a rank whose own loss is finite must still join that collective
    each step, or the rank that saw the NaN would wait for it forever."""
    from types import SimpleNamespace

    from zoo.errors import NonFiniteLossError

    asked: list[bool] = []
    elsewhere = [False]  # whether another rank saw a non-finite loss

    def reduce_boolean_decision(decision: bool, all: bool = True) -> bool:
        asked.append(decision)
        return decision or elsewhere[0]

    model = MLP(task="multiclass", num_classes=3, input_shape=(4,), hidden_sizes=[8])
    strategy = SimpleNamespace(reduce_boolean_decision=reduce_boolean_decision)
    model.trainer = SimpleNamespace(
        world_size=2, global_step=7, current_epoch=1, strategy=strategy, checkpoint_callback=None
    )
    model._stop_if_not_finite(torch.tensor(0.5))
    assert asked == [False]  # joined, with a finite loss of its own
    elsewhere[0] = True
    another = r"the training loss is not finite on another process at step 7 \(epoch 1\)"
    with pytest.raises(NonFiniteLossError, match=another):
        model._stop_if_not_finite(torch.tensor(0.5))
    assert asked == [False, False]
    with pytest.raises(NonFiniteLossError, match="the training loss is inf at step 7"):
        model._stop_if_not_finite(torch.tensor(float("inf")))
    assert asked == [False, False, True]


def test_deferred_finite_check_launches_nothing_per_step_and_names_the_first_bad_step(monkeypatch) -> None:
    """On an accelerator a step only keeps its loss (a GPU step of a small model is bound by kernel
    launches); the kept losses are read back together every ``MAX_UNCHECKED_STEPS`` at most (or
    at the loop's sync points), and the first non-finite one is named with its own step and epoch."""
    from types import SimpleNamespace

    from torch.utils._python_dispatch import TorchDispatchMode

    from zoo.errors import NonFiniteLossError
    from zoo.models.base import ZooModule

    class Operators(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(ZooModule, "defers_finite_check", property(lambda self: True))
    monkeypatch.setattr(ZooModule, "MAX_UNCHECKED_STEPS", 4)
    model = MLP(task="multiclass", num_classes=3, input_shape=(4,), hidden_sizes=[8])
    logs = SimpleNamespace(should_update_logs=False)
    trainer = SimpleNamespace(world_size=1, global_step=0, current_epoch=0, checkpoint_callback=None)
    trainer._logger_connector = logs
    model.trainer = trainer
    losses = [torch.tensor(v) for v in (1.0, 2.0, 3.0, 4.0, 5.0, float("inf"), float("nan"), 8.0)]
    operators, first_bad = Operators(), r"the training loss is inf at step 5 \(epoch 1\)"
    with operators, pytest.raises(NonFiniteLossError, match=first_bad):
        for step, loss in enumerate(losses):
            trainer.global_step, trainer.current_epoch = step, step // 3
            model._stop_if_not_finite(loss)
            if step < 3:  # nothing read back yet: the step's only operator is detach (an alias)
                assert operators.seen == ["detach"] * (step + 1)
    assert step == 7  # read back at the 4th and 8th steps: steps 0-3 were finite
    assert model._unchecked_losses == []
    # the loop's sync points read back what is kept
    for step, value in ((8, 1.0), (9, float("nan"))):
        trainer.global_step = step
        model._stop_if_not_finite(torch.tensor(value))
    with pytest.raises(NonFiniteLossError, match=r"the training loss is nan at step 9 \(epoch 2\)"):
        model.on_train_epoch_end()


# ----------------------------------------------------------------------------- early stopping


def test_early_stopping_waits_for_the_first_validation() -> None:
    # max_steps ends the first epoch (2 batches) after one batch, before any validation: Lightning's
    # EarlyStopping raises there ("val/loss which is not available"); the zoo's has nothing to judge
    from lightning.pytorch.callbacks import EarlyStopping

    from zoo.callbacks import StopEarly, early_stopping

    train, val = _loaders()
    stopper = early_stopping()
    assert isinstance(stopper, StopEarly) and stopper.monitor == "val/loss"
    trainer = quiet_trainer(max_steps=1, callbacks=[stopper])
    trainer.fit(Worsening(), train, val)
    assert trainer.global_step == 1 and not trainer.should_stop
    with pytest.raises(RuntimeError, match="val/loss"):  # what it guards against
        quiet_trainer(max_steps=1, callbacks=[EarlyStopping("val/loss")]).fit(Worsening(), train, val)


def test_early_stopping_still_stops_and_still_names_a_monitor_never_logged() -> None:
    from zoo.callbacks import early_stopping

    train, val = _loaders()
    trainer = quiet_trainer(max_epochs=20, callbacks=[early_stopping(patience=2)])
    trainer.fit(Worsening(), train, val)  # val/loss is the epoch: best at 0, patience 2
    assert trainer.current_epoch == 3
    with pytest.raises(RuntimeError, match="val/acc"):
        quiet_trainer(max_epochs=2, callbacks=[early_stopping(monitor="val/acc")]).fit(
            Worsening(), train, val
        )


def test_zoo_train_ends_well_when_max_steps_stops_it_before_a_validation(tmp_path: Path, capsys) -> None:
    argv = ["train", "-c", "mlp_digits", "--trainer.max_steps", "3", *QUIET]
    code, out, err = run_main([*argv, "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert code == 0, err
    (metrics,) = tmp_path.rglob("test_metrics.json")
    assert '"best_checkpoint": null' in metrics.read_text()  # no validation: the final weights were tested


@pytest.mark.parametrize("command", ["train", "fit"])
def test_fast_dev_run_runs_one_batch_and_writes_nothing(tmp_path: Path, capsys, command: str) -> None:
    # Lightning's ModelCheckpoint wrote last.ckpt into ROOT/checkpoints at the end of a
    # fast_dev_run, and `zoo train` then failed on the run directory a fast_dev_run does not have
    root = tmp_path / "runs"
    argv = [command, "-c", "mlp_digits", "--trainer.fast_dev_run", "true", *QUIET]
    code, out, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 0, err
    assert not root.exists()
    if command == "train":
        assert (
            "test/acc" in out
            and "fast_dev_run: one batch of each stage; no run directory was written." in out
        )


def test_early_stopping_and_checkpoint_modes_follow_the_monitored_metric() -> None:
    """`--early_stopping.monitor val/acc` kept Lightning's mode min: it stopped the run as accuracy
    rose (and the checkpoint kept the worst epoch). The mode is now auto unless stated, and a stated
    mode that contradicts a known metric is refused."""
    from zoo.callbacks import BestAndLastCheckpoint, StopEarly
    from zoo.errors import ZooError

    assert [StopEarly(monitor=m).mode for m in ("val/loss", "val/acc", "val/r2", "val/mae")] == [
        "min",
        "max",
        "max",
        "min",
    ]
    assert BestAndLastCheckpoint(monitor="val/f1").mode == "max" and BestAndLastCheckpoint().mode == "min"
    assert StopEarly(monitor="val/custom", mode="max").mode == "max"
    with pytest.raises(ZooError) as info:
        StopEarly(monitor="val/acc", mode="min")
    assert str(info.value) == (
        "early_stopping.mode is min, but val/acc improves as it rises: set early_stopping.mode max (or auto, "
        "which reads it from the name)."
    )
    with pytest.raises(ZooError) as info:
        BestAndLastCheckpoint(monitor="val/custom")
    assert str(info.value) == (
        "checkpoint.mode auto cannot tell whether 'val/custom' should fall or rise; set checkpoint.mode min "
        "or max."
    )


def test_zoo_trainer_checks_its_run_root_when_fitting_and_what_train_is_given(tmp_path: Path) -> None:
    """The run root is checked when a fit starts (evaluating writes nothing there: zoo test in a
    read-only folder was refused), and train() names a loader passed for the DataModule (it raised
    AttributeError: 'TensorLoader' object has no attribute 'on_exception')."""
    from zoo.data import SklearnDataModule
    from zoo.errors import ZooError
    from zoo.models import MLP
    from zoo.trainer import ZooTrainer

    data = SklearnDataModule("wine", batch_size=64)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[8])
    import zoo.trainer

    real = os.access
    # not writable (the suite may run as root, who writes anywhere): built, then refused as a fit starts
    no_writing = lambda path, mode: not mode & os.W_OK and real(path, mode)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo.trainer.os, "access", no_writing)
        trainer = ZooTrainer(default_root_dir=tmp_path / "runs", logger=False, enable_progress_bar=False)
        with pytest.raises(ZooError, match=r"trainer.default_root_dir: .* is not writable by this user, so"):
            trainer.fit(model, datamodule=data)
    data.setup()
    with pytest.raises(TypeError, match=r"datamodule must be a LightningDataModule .* got TensorLoader\."):
        ZooTrainer(logger=False).train(model, data.train_dataloader())
    with pytest.raises(TypeError, match=r"model must be a LightningModule; got SklearnDataModule\."):
        ZooTrainer(logger=False).train(data, data)  # type: ignore[arg-type]
