"""The training-trick fragments: trainer/ema, trainer/swa, trainer/accumulate (each with a second -c)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.conftest import QUIET
from tests.test_cli import run_main
from zoo.data import SklearnDataModule
from zoo.models import ZooModule
from zoo.trainer import ZooTrainer


def _train(tmp_path: Path, capsys, fragment: str, epochs: int) -> Path:
    root = tmp_path / fragment
    argv = ["train", "-c", "mlp_digits", "-c", f"trainer/{fragment}", *QUIET]
    argv += ["--trainer.max_epochs", str(epochs)]
    code, _, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 0, err[-2000:]
    return root / "version_0"


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _test_loss(model: ZooModule, state: dict, batch_size: int = 64) -> float:
    data = SklearnDataModule("digits", batch_size=batch_size)
    data.setup()
    x, y = data._tensors["test"]
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return float(model.compute_loss(model(x), y))


def test_ema_validates_saves_and_tests_the_averaged_weights(tmp_path: Path, capsys) -> None:
    run = _train(tmp_path, capsys, "ema", epochs=4)
    metrics = json.loads((run / "test_metrics.json").read_text())
    checkpoint = torch.load(metrics["best_checkpoint"], map_location="cpu", weights_only=True)
    model = ZooModule.load_from_checkpoint(metrics["best_checkpoint"])
    averaged = _test_loss(model, checkpoint["state_dict"])
    raw = _test_loss(model, checkpoint["current_model_state"])
    assert abs(averaged - raw) > 1e-3  # the average is not the last step's weights
    # the reported test is the averaged weights' (Lightning's callback would reload the raw ones)
    assert metrics["test/loss"] == pytest.approx(averaged, abs=1e-5)


class EpochEndWeights(pl.Callback):
    """The weights as each epoch's last step leaves them (before its validation)."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if trainer.is_last_batch:
            self.weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _fit(tmp_path: Path, callbacks: list, epochs: int = 4) -> tuple[ZooTrainer, ZooModule]:
    from zoo.callbacks import best_and_last_checkpoint
    from zoo.models import MLP

    pl.seed_everything(0)
    data = SklearnDataModule("digits", batch_size=256)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[32])
    trainer = ZooTrainer(
        max_epochs=epochs, default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[*callbacks, best_and_last_checkpoint()], accelerator="cpu",
    )  # fmt: skip
    trainer.train(model, data)
    return trainer, model


def test_swa_averages_the_epochs_from_start_and_validates_saves_and_tests_the_average(
    tmp_path: Path, seeded_one_thread
) -> None:
    from zoo.callbacks import SWA

    plain = EpochEndWeights()
    _fit(tmp_path / "plain", [plain])
    swa, recorded = SWA(start=0.5), EpochEndWeights()  # epochs 2 and 3 of 4 (from 0)
    trainer, model = _fit(tmp_path / "swa", [swa, recorded])
    # no lr given: the same trajectory as without SWA; the average is the mean of epochs 2 and 3
    for a, b in zip(plain.weights, recorded.weights, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    expected = {k: (plain.weights[2][k] + plain.weights[3][k]) / 2 for k in plain.weights[2]}
    last = torch.load(tmp_path / "swa" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    for name, value in expected.items():
        if value.is_floating_point():
            assert torch.allclose(last["state_dict"][name], value, atol=1e-6), name
    assert torch.equal(last["current_model_state"]["net.head.weight"], plain.weights[3]["net.head.weight"])
    # validation sees the weights themselves before averaging begins, the average from then on
    val = [[float(r["val/loss"]) for r in _rows(run / "version_0") if r.get("val/loss")] for run in (
        tmp_path / "plain", tmp_path / "swa")]  # fmt: skip
    assert val[0][:2] == val[1][:2] and val[0][2:] != val[1][2:]
    metrics = json.loads((tmp_path / "swa" / "version_0" / "test_metrics.json").read_text())
    best = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert metrics["test/loss"] == pytest.approx(_test_loss(model, best["state_dict"], 256), abs=1e-5)


def test_swa_switches_to_its_constant_rate_and_refuses_a_bad_start(tmp_path: Path, capsys) -> None:
    from zoo.callbacks import SWA
    from zoo.errors import ZooError

    run = _train(tmp_path, capsys, "swa", epochs=4)
    rates = [(int(r["step"]), float(r["lr-AdamW/decay"])) for r in _rows(run) if r.get("lr-AdamW/decay")]
    # 20 steps an epoch; averaging and the rate of 1e-3 from epoch 3 (0.75 of 4, counted from 0)
    assert all(lr != 1e-3 for step, lr in rates if step < 60)
    after = [lr for step, lr in rates if step >= 60]
    assert after and all(lr == pytest.approx(1e-3) for lr in after)  # the cosine would end near 1e-5
    with pytest.raises(ZooError, match=r"SWA start: 1\.5 is neither an epoch number"):
        SWA(start=1.5)


def test_accumulation_steps_once_per_four_batches(tmp_path: Path, capsys) -> None:
    run = _train(tmp_path, capsys, "accumulate", epochs=2)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2 * 5  # 20 batches an epoch, one optimizer step per 4
    assert max(int(r["step"]) for r in _rows(run)) == 10


def test_tensorboard_logs_into_the_run_directory_beside_metrics_csv(tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = tmp_path / "runs"
    argv = ["train", "-c", "mlp_digits", "-c", "trainer/debug", "-c", "logger/tensorboard"]
    for _ in range(2):  # the second run: both loggers move on to version_1 together
        code, _, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
        assert code == 0, err[-2000:]
    assert sorted(p.name for p in root.iterdir()) == ["version_0", "version_1"]
    run = root / "version_1"
    events = EventAccumulator(str(run))
    events.Reload()
    logged = [event.value for event in events.Scalars("val/loss")]
    assert logged == pytest.approx([float(r["val/loss"]) for r in _rows(run) if r.get("val/loss")])
    assert "lr-AdamW/decay" in events.Tags()["scalars"]
