"""Tuners: the learning-rate range test and the batch size search on zoo models, from Python and the shell."""

from __future__ import annotations

import functools
import logging
import math
import tempfile
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
    # a tuning run leaves no run directory behind: no config.yaml, no checkpoint, no empty runs/mlp_digits
    assert [p.name for p in tmp_path.iterdir()] == ["rates.png"]
    code, out, _ = run_main(["tune-batch-size", "-c", "mlp_digits", "--init-val", "512"], capsys)
    rows = SklearnDataModule("digits").split_sizes()["train"]
    assert code == 0 and f"largest batch size that fits: {rows} (capped at {rows}" in out
    assert [p.name for p in tmp_path.iterdir()] == ["rates.png"]
    code, _, err = run_main(["tune-lr", "--steps", "5"], capsys)
    assert code == 2 and "zoo tune-lr needs a recipe: -c RECIPE" in err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """An empty working directory, with the temporary folders of the run kept apart in ``scratch``."""
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return work


def assert_nothing_left(work: Path) -> None:
    """Nothing in the working directory, and no scratch folder of the tuner in the temporary one."""
    assert not list(work.iterdir()), sorted(work.rglob("*"))
    assert not list(Path(tempfile.gettempdir()).glob("zoo-tune-*"))


BAD_TUNER_OPTIONS = {
    "batch size 0": (["tune-batch-size", "--init-val", "0"], "--init-val must be >= 1; got 0"),
    "steps per trial 0": (
        ["tune-batch-size", "--steps-per-trial", "0"],
        "--steps-per-trial must be >= 1; got 0",
    ),
    "no steps": (["tune-lr", "--steps", "0"], "--steps must be >= 14; got 0"),
    "too few steps": (["tune-lr", "--steps", "13"], "--steps must be >= 14; got 13"),
    "min above max": (
        ["tune-lr", "--min-lr", "1", "--max-lr", "0.001"],
        "--min-lr must be below --max-lr (the rates grow from one to the other); got --min-lr 1 and",
    ),
    "rate 0": (["tune-lr", "--max-lr", "0"], "--max-lr must be a finite number > 0; got 0"),
    "rate nan": (["tune-lr", "--min-lr", "nan"], "--min-lr must be a finite number > 0; got nan"),
    "plot in no folder": (
        ["tune-lr", "-o", "no/such/lr.png"],
        "--output: the folder no/such does not exist.",
    ),
    "plot format": (["tune-lr", "-o", "lr.xyz"], "--output lr.xyz: the extension names the image format"),
    # the Trainer runs no training step: nothing would be measured (every batch size "fits")
    "no epochs": (
        ["tune-batch-size", "--trainer.max_epochs", "0"],
        "--trainer.max_epochs 0 runs no training step, so there is nothing to tune",
    ),
    "no epochs (lr)": (
        ["tune-lr", "--trainer.max_epochs", "0"],
        "--trainer.max_epochs 0 runs no training step",
    ),
    "no steps (trainer)": (["tune-batch-size", "--trainer.max_steps", "0"], "--trainer.max_steps 0 runs no"),
    "fast dev run": (
        ["tune-lr", "--trainer.fast_dev_run", "true"],
        "--trainer.fast_dev_run: Lightning's tuners skip",
    ),
    "batches below one": (
        ["tune-lr", "--trainer.limit_train_batches", "0.001"],
        "trainer: You requested to check 0.001 of the `train_dataloader`",
    ),
    "no batches": (
        ["tune-batch-size", "--trainer.limit_train_batches", "0.0", "--model.lr_scheduler", "null"],
        "--trainer.limit_train_batches 0.0 runs no training step",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TUNER_OPTIONS))
def test_bad_tuner_options_get_one_line_and_write_nothing(case, capsys, workdir: Path) -> None:
    (command, *flags), message = BAD_TUNER_OPTIONS[case]
    code, out, err = run_main([command, "-c", "mlp_digits", *flags], capsys)
    assert code == 2
    assert err.startswith(f"zoo: error: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert_nothing_left(workdir)


def test_a_failing_tuner_leaves_no_scratch_checkpoint(capsys, workdir: Path, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("a step failed")

    monkeypatch.setattr(MLP, "training_step", fail)
    with pytest.raises(RuntimeError, match="a step failed"):  # after Lightning saved its scratch checkpoint
        run_main(["tune-batch-size", "-c", "mlp_digits", "--steps-per-trial", "1"], capsys)
    assert_nothing_left(workdir)


def test_tune_lr_says_why_the_range_test_ended_early(capsys, workdir: Path) -> None:
    lightning_says = []
    handler = logging.Handler()
    handler.emit = lambda record: lightning_says.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch.tuner.lr_finder")
    logger.addHandler(handler)
    epoch = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches"]
    try:
        # the epoch ends the test, not a diverging loss (Lightning would say "due to diverging loss")
        code, out, err = run_main(["tune-lr", "-c", "mlp_digits", "--steps", "20", *epoch, "15"], capsys)
        assert code == 0, err
        assert (
            "zoo tune-lr: only 15 of the 20 rates were tried: --trainer.max_epochs 1 (15 batches an epoch)"
            in err
        )
        assert "15 rates from 1e-06 to 1" in out
        assert not [m for m in lightning_says if "diverging" in m]
        (workdir / "lr_find.png").unlink()
        # too few for a suggestion: the error names the epoch, not --max-lr
        code, out, err = run_main(["tune-lr", "-c", "mlp_digits", "--steps", "20", *epoch, "10"], capsys)
        last = err.splitlines()[-1]  # after the progress bar
        assert code == 2 and last.startswith(
            "zoo: error: the learning-rate finder found no suggestion: only 10 of the 20"
        )
        assert_nothing_left(workdir)
        # a loss that turns NaN at once: the range test's rates are to blame, not --model.optimizer.lr
        rates = ["--min-lr", "1e30", "--max-lr", "1e300", "--model.optimizer", "SGD"]
        argv = ["tune-lr", "-c", "mlp_digits", "--steps", "14", *rates, "--model.lr_scheduler", "null"]
        code, out, err = run_main(argv, capsys)
        assert code == 2 and "of the learning-rate range test (rates from 1e+30 to 1e+300)" in err, err
        assert "lower --max-lr" in err and "--model.optimizer.lr" not in err
        assert_nothing_left(workdir)
    finally:
        logger.removeHandler(handler)
