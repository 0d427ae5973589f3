"""Shipped weights: each loads without pickle, reproduces its recorded test metric, is checked by
sha256, and works wherever a checkpoint path does (pretrained:NAME)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
import zoo.pretrained as pretrained
from tests.test_cli import run_main
from zoo.data import SklearnDataModule
from zoo.errors import ZooError

SHIPPED = pretrained.manifest()


def test_something_ships_and_every_entry_is_complete() -> None:
    assert "mlp_digits" in SHIPPED
    for name, entry in SHIPPED.items():
        assert (pretrained.WEIGHTS_DIR / entry["file"]).suffix == ".safetensors", name
        assert {"sha256", "bytes", "command", "test_metrics", "versions"} <= set(entry), name


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_model_reproduces_its_recorded_test_metric(name: str) -> None:
    entry = SHIPPED[name]
    model = zoo.load(f"pretrained:{name}")
    assert model.preprocessing is not None  # raw rows in, labels out
    if name == "mlp_digits":  # the recipe's own split
        data = SklearnDataModule("digits", batch_size=64, val_size=0.15, test_size=0.15)
    data.setup()
    x, y = data._tensors["test"]
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    assert acc == pytest.approx(entry["test_metrics"]["test/acc"], abs=0.005)


def test_a_damaged_file_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for item in pretrained.WEIGHTS_DIR.iterdir():
        shutil.copy(item, tmp_path / item.name)
    damaged = tmp_path / SHIPPED["mlp_digits"]["file"]
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the weights
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "manifest.json")
    with pytest.raises(
        ZooError, match=rf"pretrained:mlp_digits: {damaged} does not match its recorded sha256"
    ):
        zoo.load("pretrained:mlp_digits")
    with pytest.raises(ZooError, match=r"no pretrained model named 'mlp_digit'; shipped: mlp_digits"):
        zoo.load("pretrained:mlp_digit")


def test_pretrained_names_work_in_the_commands(tmp_path: Path, capsys) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.save(tmp_path / "rows.npy", digits.data[:50])
    code, out, err = run_main(
        ["predict", "pretrained:mlp_digits", "--input", str(tmp_path / "rows.npy")], capsys
    )
    assert code == 0, err
    labels = [int(line.split(",")[0]) for line in out.strip().splitlines()[1:]]
    assert len(labels) == 50 and np.mean(np.array(labels) == digits.target[:50]) >= 0.9
    code, out, _ = run_main(["models", "--pretrained"], capsys)
    assert code == 0 and out.startswith("pretrained:mlp_digits") and "test/acc 0.96" in out
    code, out, err = run_main(
        ["export", "pretrained:mlp_digits", "--format", "safetensors", "-o", str(tmp_path / "m.safetensors")],
        capsys,
    )
    assert code == 0, err
