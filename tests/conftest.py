"""Shared fixtures: the installed ``zoo`` command and an offline environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl  # imported first: its log handlers bind to the real stderr
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="session")
def fashion_gz(tmp_path_factory) -> Path:
    """The folder of real Fashion-MNIST's four ``.gz`` files: Debian's ``dataset-fashion-mnist``
    package, installed or still in the apt cache; the test is skipped without it."""
    if all((FASHION_DIR / f"{name}.gz").is_file() for name in FASHION_FILES):
        return FASHION_DIR
    debs = sorted(Path("/var/cache/apt/archives").glob("dataset-fashion-mnist_*.deb"))
    if not debs or not shutil.which("dpkg-deb"):
        pytest.skip("needs Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)")
    out = tmp_path_factory.mktemp("fashion-deb")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(out)], check=True)
    return out / "usr/share/datasets/fashion-mnist"


def zoo_executable() -> str:
    """The ``zoo`` console script of the Python running the tests."""
    candidate = Path(sys.executable).parent / "zoo"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("zoo")
    if not found:
        pytest.fail("the `zoo` command is not installed: run `pip install -e .[test]` first")
    return found


@pytest.fixture
def zoo(tmp_path: Path):
    """Run ``zoo ARGS...`` in a subprocess inside ``tmp_path``; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
        full_env.pop("WANDB_SERVICE", None)  # a W&B service this test process started: zoo starts its own
        proc = subprocess.run(
            [zoo_executable(), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"zoo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    return run


def read_metrics(root: Path) -> dict:
    """The test_metrics.json of the only run under ``root``."""
    found = list(root.rglob("test_metrics.json"))
    assert len(found) == 1, f"expected one test_metrics.json under {root}, found {found}"
    return json.loads(found[0].read_text())


@pytest.fixture
def seeded_one_thread():
    """Seed torch and run on one thread: tiny models are faster (and steadier beside other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_cifar_checksum(monkeypatch):
    """Our CIFAR files can't match the real md5 sums: check only that each file exists."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())


def quiet_trainer(**kwargs) -> pl.Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar or model summary (each overridable)."""
    defaults = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**defaults, **kwargs})


QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")
