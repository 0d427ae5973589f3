"""Tuners: the learning-rate range test and the batch size search on zoo models, from Python and the shell."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.tuner import Tuner

from tests.test_cli import run_main
from zoo.callbacks import BatchSizeSearch, LearningRateSearch, steepest_descent_lr
from zoo.data import SklearnDataModule
from zoo.models import MLP
from zoo.optim import WarmupCosineLR
from zoo.trainer import ZooTrainer


def _model(data: SklearnDataModule, **kwargs) -> MLP:
    torch.manual_seed(0)
    return MLP(
        hidden_sizes=[32],
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        **kwargs,
    )


def _trainer(tmp_path: Path, **kwargs) -> ZooTrainer:
    options = {"max_epochs": 1, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    options |= {"enable_model_summary": False, "accelerator": "cpu", "default_root_dir": tmp_path}
    return ZooTrainer(**{**options, **kwargs})


def test_steepest_descent_is_taken_per_decade() -> None:
    lrs = np.logspace(-6, 0, 121)
    losses = 2.0 - np.tanh(2.0 * (np.log10(lrs) + 3.0))  # falls fastest at 1e-3, symmetric in log(lr)
    found = steepest_descent_lr({"lr": list(lrs), "loss": list(losses)})
    assert abs(math.log10(found) + 3.0) <= 0.05 + 1e-9
    # Lightning's suggestion (the gradient against lr itself) points elsewhere on the same curve
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    finder = _LRFinder("exponential", 1e-6, 1.0, 121)
    finder.results = {"lr": list(lrs), "loss": list(losses)}
    assert abs(math.log10(finder.suggestion()) + 3.0) > 0.3
    assert steepest_descent_lr({"lr": [1e-3, 1e-2], "loss": [1.0, 0.5]}, skip_begin=0, skip_end=0) is None


def test_lr_attribute_scales_the_injected_optimizer_and_its_schedule(tmp_path: Path) -> None:
    data = SklearnDataModule("digits", batch_size=64)
    model = _model(data)
    model.lr = 0.02
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [0.02, 0.02]
    # Lightning's own range test no longer fails on a zoo model (the rate lives in `model.lr`)
    model = _model(data, lr_scheduler=functools.partial(WarmupCosineLR, warmup_steps=2, total_steps=40))
    finder = Tuner(_trainer(tmp_path, max_steps=40)).lr_find(model, datamodule=data, num_training=30)
    assert finder is not None and model.lr == pytest.approx(finder.suggestion())


def test_learning_rate_search_trains_at_its_suggestion(tmp_path: Path) -> None:
    data = SklearnDataModule("digits", batch_size=64)
    model = _model(data, lr_scheduler=functools.partial(WarmupCosineLR, warmup_steps=1, total_steps=100))
    search = LearningRateSearch(num_training_steps=40, max_lr=1.0)
    trainer = _trainer(tmp_path, callbacks=[search], max_epochs=3, limit_val_batches=0)
    trainer.fit(model, data)
    assert search.suggested_lr is not None and model.lr == search.suggested_lr
    assert search.suggested_lr == steepest_descent_lr(search.optimal_lr.results)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.base_lrs == pytest.approx([search.suggested_lr] * 2)  # the schedule follows


def test_batch_size_search_stops_at_the_training_set(tmp_path: Path) -> None:
    data = SklearnDataModule("digits", batch_size=64)
    rows = data.split_sizes()["train"]
    search = BatchSizeSearch(init_val=256, steps_per_trial=1)
    trainer = _trainer(tmp_path, callbacks=[search], limit_train_batches=2, limit_val_batches=0)
    trainer.fit(_model(data), data)
    assert search.optimal_batch_size == data.batch_size == rows  # Lightning's own finder: 2048


def test_zoo_tune_commands(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["tune-lr", "-c", "mlp_digits", "--steps", "60", "-o", "rates.png"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    suggestion = float(lines[-3].split()[3])
    assert 1e-5 <= suggestion <= 0.3
    assert lines[-1] == f"train with: zoo train -c mlp_digits --model.optimizer.lr {suggestion:.3g}"
    assert (tmp_path / "rates.png").stat().st_size > 10_000
    # a tuning run leaves no run directory behind: no config.yaml, no checkpoint
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "rates.png"]
    code, out, _ = run_main(["tune-batch-size", "-c", "mlp_digits", "--init-val", "512"], capsys)
    rows = SklearnDataModule("digits").split_sizes()["train"]
    assert code == 0 and f"largest batch size that fits: {rows} (capped at {rows}" in out
    code, _, err = run_main(["tune-lr", "--steps", "5"], capsys)
    assert code == 2 and "zoo tune-lr needs a recipe: -c RECIPE" in err
