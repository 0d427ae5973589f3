"""The training-trick fragments: trainer/ema, trainer/swa, trainer/accumulate (each with a second -c)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import QUIET
from tests.test_cli import run_main
from zoo.data import SklearnDataModule
from zoo.models import ZooModule


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


def _test_loss(model: ZooModule, state: dict) -> float:
    data = SklearnDataModule("digits", batch_size=64)
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


def test_swa_switches_to_its_constant_rate(tmp_path: Path, capsys) -> None:
    run = _train(tmp_path, capsys, "swa", epochs=8)
    rates = [(int(r["step"]), float(r["lr-AdamW/decay"])) for r in _rows(run) if r.get("lr-AdamW/decay")]
    # 20 steps an epoch; averaging from epoch 6 (0.75 of 8), annealed to 1e-3 over 2 epochs
    before = [lr for step, lr in rates if step < 120]
    assert before and all(lr != 1e-3 for lr in before)
    assert rates[-1][1] == pytest.approx(1e-3)  # without SWA the cosine schedule ends near 1e-5


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
