"""The task-aware LightningModule (through the MLP) and a short end-to-end fit."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.callbacks import best_and_last_checkpoint, early_stopping
from zoo.data import ArrayDataModule, SklearnDataModule
from zoo.errors import ZooError
from zoo.losses import BCEWithLogits, ContrastiveLoss
from zoo.models import MLP
from zoo.optim import WarmupCosineLR
from zoo.trainer import METRICS_FILE, ZooTrainer


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(
    ("task", "num_classes", "width", "loss_cls"),
    [
        ("multiclass", 5, 5, nn.CrossEntropyLoss),
        ("binary", None, 1, BCEWithLogits),
        ("regression", None, 1, nn.MSELoss),
    ],
)
def test_output_width_and_default_loss(
    task: str, num_classes: int | None, width: int, loss_cls: type
) -> None:
    model = MLP(hidden_sizes=[8], task=task, num_classes=num_classes, input_shape=[6])
    assert model.num_outputs == width
    assert isinstance(model.loss_fn, loss_cls)
    assert model(torch.randn(3, 6)).shape == (3, width)
    # image-shaped input is flattened
    img = MLP(hidden_sizes=[8], task=task, num_classes=num_classes, input_shape=[1, 2, 3])
    assert img.num_inputs == 6
    assert img(torch.randn(4, 1, 2, 3)).shape == (4, width)


def _batch(task: str, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 4)
    if task == "multiclass":
        return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    if task == "binary":
        return x, (x[:, 0] + x[:, 1] > 0).long()
    return x, 3 * x[:, 0] - x[:, 2] + 1


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression"])
def test_training_steps_lower_the_loss(task: str) -> None:
    model = MLP(
        hidden_sizes=[16],
        task=task,
        num_classes=3 if task == "multiclass" else None,
        input_shape=[4],
        optimizer=functools.partial(torch.optim.Adam, lr=0.02),
    )
    opt = model.configure_optimizers()
    x, y = _batch(task)

    def loss() -> torch.Tensor:
        return model.compute_loss(model.shape_outputs(model(x), y), y)

    start = loss().item()
    for _ in range(20):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.7 * start


def test_binary_loss_uses_float_targets_and_pos_weight() -> None:
    model = MLP(hidden_sizes=[4], task="binary", input_shape=[4], pos_weight=2.5)
    x, y = _batch("binary")
    out = model.shape_outputs(model(x), y)
    assert out.shape == (32,)
    expected = F.binary_cross_entropy_with_logits(out, y.float(), pos_weight=torch.tensor(2.5))
    torch.testing.assert_close(model.compute_loss(out, y), expected)
    torch.testing.assert_close(model.predictions(out), out.sigmoid())


def test_multiclass_predictions_are_probabilities() -> None:
    model = MLP(hidden_sizes=[4], task="multiclass", num_classes=3, input_shape=[4])
    out = model(torch.randn(5, 4))
    torch.testing.assert_close(model.predictions(out), out.softmax(-1))


def test_unknown_loss_lists_valid_names() -> None:
    with pytest.raises(ZooError) as info:
        MLP(task="multiclass", num_classes=3, input_shape=[4], loss="cross_entropie")
    msg = str(info.value)
    assert "Unknown loss 'cross_entropie' for model.loss" in msg
    assert "Did you mean 'cross_entropy'" in msg
    assert "bce, contrastive, cross_entropy, huber, l1, mse" in msg


@pytest.mark.parametrize(
    ("task", "loss"),
    [
        ("multiclass", "mse"),
        ("multiclass", "huber"),
        ("binary", "l1"),
        ("binary", "cross_entropy"),
        ("regression", "bce"),
    ],
)
def test_loss_for_the_wrong_task(task: str, loss: str) -> None:
    with pytest.raises(ZooError, match=f"model.loss '{loss}' is for .* tasks, not '{task}'"):
        MLP(task=task, num_classes=3 if task == "multiclass" else None, input_shape=[4], loss=loss)


def test_named_and_module_losses() -> None:
    assert isinstance(MLP(task="regression", input_shape=[4], loss="Huber").loss_fn, nn.HuberLoss)
    assert isinstance(MLP(task="binary", input_shape=[4], loss="contrastive").loss_fn, ContrastiveLoss)
    custom = nn.SmoothL1Loss(beta=0.5)
    model = MLP(task="regression", input_shape=[4], loss=custom)
    assert model.loss_fn is custom
    assert "loss" not in model.hparams  # a module can't be stored as plain data


def test_label_smoothing_reaches_cross_entropy() -> None:
    model = MLP(hidden_sizes=[4], task="multiclass", num_classes=4, input_shape=[3], label_smoothing=0.3)
    assert isinstance(model.loss_fn, nn.CrossEntropyLoss)
    assert model.loss_fn.label_smoothing == 0.3
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(model.compute_loss(logits, y), F.cross_entropy(logits, y, label_smoothing=0.3))
    assert model.hparams.label_smoothing == 0.3


def test_target_stats_standardize_loss_and_destandardize_predictions() -> None:
    model = MLP(hidden_sizes=[4], task="regression", input_shape=[2], target_stats=(10.0, 2.0))
    assert model.target_stats == (10.0, 2.0)
    outputs = torch.tensor([0.0, 1.0, -0.5])
    targets = torch.tensor([10.0, 14.0, 9.0])  # standardized: [0, 2, -0.5]
    # loss in standardized units: ((0-0)^2 + (1-2)^2 + (-0.5+0.5)^2) / 3
    assert model.compute_loss(outputs, targets).item() == pytest.approx(1 / 3)
    # predictions in original units: outputs * 2 + 10
    torch.testing.assert_close(model.predictions(outputs), torch.tensor([10.0, 12.0, 9.0]))
    x = torch.randn(5, 2)
    pred = model.predict_step((x,), 0)
    assert pred.shape == (5,)
    torch.testing.assert_close(pred, model(x).squeeze(-1) * 2 + 10)
    # target_stats only apply to regression
    assert MLP(task="binary", input_shape=[2], target_stats=(10.0, 2.0)).target_stats is None


def test_l1_lambda_penalizes_training_only() -> None:
    from unittest import mock

    model = MLP(hidden_sizes=[4], task="regression", input_shape=[3], l1_lambda=0.1)
    x, y = torch.randn(4, 3), torch.ones(4)
    data_loss = model.compute_loss(model.shape_outputs(model(x), y), y)
    penalty = 0.1 * sum(p.abs().sum() for p in model.parameters() if p.ndim >= 2)
    logged = {}
    record = mock.patch.object(model, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    with record, mock.patch.object(model, "_trainer", mock.MagicMock(world_size=1)):
        torch.testing.assert_close(model.training_step((x, y), 0), data_loss + penalty)
        model.validation_step((x, y), 0)
    torch.testing.assert_close(logged["train/loss"], data_loss)  # the logged losses are the data loss
    torch.testing.assert_close(logged["val/loss"], data_loss)


def test_l1_lambda_follows_decay_bias_and_norm() -> None:
    # the penalty covered only the matrices while weight decay, so set, covered every parameter
    from unittest import mock

    model = MLP(hidden_sizes=[4], task="regression", input_shape=[3], norm="layer", l1_lambda=0.1)
    model.decay_bias_and_norm = True
    x, y = torch.randn(4, 3), torch.ones(4)
    data_loss = model.compute_loss(model.shape_outputs(model(x), y), y)
    penalty = 0.1 * sum(p.abs().sum() for p in model.parameters())
    with mock.patch.object(model, "log"), mock.patch.object(model, "_trainer", mock.MagicMock(world_size=1)):
        torch.testing.assert_close(model.training_step((x, y), 0), data_loss + penalty)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"task": "ranking"}, "model.task must be one of multiclass, binary, regression"),
        ({"task": "multiclass", "num_classes": 1}, "model.num_classes must be >= 2"),
        ({"task": "multiclass"}, "model.num_classes must be >= 2"),
        ({"task": "regression", "l1_lambda": -1.0}, "model.l1_lambda must be >= 0"),
        ({"task": "regression", "activation": "relux"}, "for model.activation"),
        ({"task": "regression", "norm": "group"}, "model.norm must be one of none, batch, layer"),
        ({"task": "regression", "init": "he"}, "model.init must be one of default, kaiming, xavier"),
        ({"task": "regression", "dropout": 1.0}, "model.dropout must be in [0, 1)"),
    ],
)
def test_bad_model_options(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ZooError) as info:
        MLP(input_shape=[4], **kwargs)
    assert fragment in str(info.value)


def test_missing_input_shape() -> None:
    with pytest.raises(ZooError, match="model.input_shape is not set"):
        MLP(task="regression")


def test_configure_optimizers_param_groups() -> None:
    model = MLP(hidden_sizes=[8, 8], task="multiclass", num_classes=3, input_shape=[4], norm="layer")
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW)  # the default
    assert len(opt.param_groups) == 2
    decayed, plain = opt.param_groups
    assert (
        decayed["weight_decay"] == torch.optim.AdamW([nn.Parameter(torch.zeros(1))]).defaults["weight_decay"]
    )
    assert plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert all(p.ndim <= 1 for p in plain["params"])
    n_params = sum(1 for _ in model.parameters())
    assert len(decayed["params"]) + len(plain["params"]) == n_params
    assert len(decayed["params"]) == 3  # two hidden linears and the head

    sgd = MLP(
        hidden_sizes=[8],
        task="regression",
        input_shape=[4],
        optimizer=functools.partial(torch.optim.SGD, lr=0.1, weight_decay=0.5),
        decay_bias_and_norm=True,
    ).configure_optimizers()
    assert isinstance(sgd, torch.optim.SGD)
    assert len(sgd.param_groups) == 1 and sgd.param_groups[0]["weight_decay"] == 0.5


def test_configure_optimizers_with_schedules() -> None:
    model = MLP(
        hidden_sizes=[8],
        task="regression",
        input_shape=[4],
        lr_scheduler=functools.partial(WarmupCosineLR, warmup_steps=2),
    )
    model._trainer = SimpleNamespace(estimated_stepping_batches=40)  # what a Trainer would provide
    config = model.configure_optimizers()
    sched = config["lr_scheduler"]["scheduler"]
    assert isinstance(sched, WarmupCosineLR)
    assert sched.total_steps == 40
    assert config["lr_scheduler"]["interval"] == "step"
    assert sched.optimizer is config["optimizer"]

    plateau = MLP(
        task="regression",
        input_shape=[4],
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=1),
        monitor="val/mse",
    )
    plateau._trainer = SimpleNamespace(estimated_stepping_batches=40)
    config = plateau.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/mse"
    assert config["lr_scheduler"]["interval"] == "epoch"


def test_hparams_are_plain() -> None:
    model = MLP(
        hidden_sizes=[8],
        task="multiclass",
        num_classes=3,
        input_shape=[4],
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
    )
    assert model.hparams.hidden_sizes == [8]
    assert model.hparams.num_classes == 3
    assert "optimizer" not in model.hparams
    assert "lr_scheduler" in model.hparams and model.hparams.lr_scheduler is None


def test_optimizer_and_schedule_by_registered_name(tmp_path: Path) -> None:
    # were accepted at construction, then fit failed: TypeError: 'str' object is not callable
    from tests.conftest import quiet_trainer
    from zoo.models import ZooModule

    assert MLP(task="regression", input_shape=[4], optimizer="SGD").optimizer is torch.optim.SGD  # any case
    named = MLP(
        hidden_sizes=[8], task="multiclass", num_classes=3, input_shape=[4], optimizer="sgd",
        lr_scheduler="warmup_cosine",
    )  # fmt: skip
    named._trainer = SimpleNamespace(estimated_stepping_batches=40)
    config = named.configure_optimizers()
    assert type(config["optimizer"]) is torch.optim.SGD
    assert isinstance(config["lr_scheduler"]["scheduler"], WarmupCosineLR)
    assert config["lr_scheduler"]["scheduler"].total_steps == 40
    assert config["lr_scheduler"]["interval"] == "step"
    # kept as class paths, which load_from_checkpoint and the command line's parser both read
    assert (named.hparams.optimizer, named.hparams.lr_scheduler) == (
        "torch.optim.SGD",
        "zoo.optim.WarmupCosineLR",
    )
    none = MLP(task="regression", input_shape=[4], lr_scheduler="none")
    none._trainer = SimpleNamespace(estimated_stepping_batches=40)
    assert isinstance(none.configure_optimizers(), torch.optim.AdamW) and none.hparams.lr_scheduler is None

    named._trainer = None
    data = ArrayDataModule(
        np.random.default_rng(0).normal(size=(30, 4)), np.tile([0, 1, 2], 10), batch_size=8
    )
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(named, datamodule=data)
    trainer.save_checkpoint(tmp_path / "named.ckpt")
    back = ZooModule.load_from_checkpoint(tmp_path / "named.ckpt")
    assert (back.optimizer, back.lr_scheduler) == (torch.optim.SGD, WarmupCosineLR)
    resumed = quiet_trainer(max_steps=3, limit_val_batches=0, default_root_dir=tmp_path)
    resumed.fit(back, datamodule=data, ckpt_path=tmp_path / "named.ckpt")  # the same optimizer's state
    assert type(resumed.optimizers[0]) is torch.optim.SGD and resumed.global_step == 3

    with pytest.raises(ZooError) as info:
        MLP(task="regression", input_shape=[4], optimizer="sgdd")
    message = str(info.value)
    assert message.startswith(
        "Unknown optimizer 'sgdd' for model.optimizer. Did you mean 'sgd'? Valid optimizer"
    )
    assert message.endswith(
        "sgd. Or pass the class itself (torch.optim.SGD), or a functools.partial of it with its options."
    )


def _trainer(tmp_path: Path, max_epochs: int) -> ZooTrainer:
    return ZooTrainer(
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[early_stopping(patience=10), best_and_last_checkpoint(dirpath=tmp_path / "ckpt")],
        deterministic=True,
    )


def test_fit_iris_and_reload_checkpoint(tmp_path: Path) -> None:
    dm = SklearnDataModule("iris", batch_size=16, seed=0)
    make_opt = functools.partial(torch.optim.Adam, lr=0.02)
    model = MLP(
        hidden_sizes=[32],
        task=dm.task,
        num_classes=dm.num_classes,
        input_shape=dm.input_shape,
        optimizer=make_opt,
    )
    results = _trainer(tmp_path, 30).train(model, dm)
    assert results["test/acc"] >= 0.9
    assert {"test/loss", "test/acc", "test/f1"} <= set(results)
    best = results["best_checkpoint"]
    assert best is not None and Path(best).is_file()
    assert Path(best).name.startswith("best-epoch=")
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    assert json.loads((tmp_path / METRICS_FILE).read_text()) == results
    card = (tmp_path / "README.md").read_text()  # the model card
    assert "| command | `Python: ZooTrainer.train(...)` |" in card
    assert f"`zoo.models.mlp.MLP`, {sum(p.numel() for p in model.parameters()):,} parameters" in card
    sizes = dm.split_sizes()
    assert f"(iris): train {sizes['train']}, val {sizes['val']}, test {sizes['test']}" in card
    assert "multiclass, 3 classes: setosa, versicolor, virginica" in card
    assert f"| test/acc | {results['test/acc']:.4f} |" in card and f'zoo.load("{best}")' in card

    loaded = MLP.load_from_checkpoint(best, optimizer=make_opt)
    assert loaded.task == "multiclass" and loaded.num_classes == 3
    assert loaded.hparams.hidden_sizes == [32]
    x_test = dm._tensors["test"][0]
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x_test), model(x_test))  # `model` holds the best weights after test
        acc = (loaded(x_test).argmax(-1) == dm._tensors["test"][1]).float().mean().item()
    assert acc == pytest.approx(results["test/acc"])
    assert isinstance(loaded.configure_optimizers(), torch.optim.Adam)


def test_fit_regression_reports_original_units(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = 1000.0 + 50.0 * (x @ np.array([1.0, -0.5, 0.25])) + rng.normal(scale=1.0, size=200)
    dm = ArrayDataModule(x, y, batch_size=32, seed=0)
    assert dm.task == "regression"
    mean, std = dm.target_stats
    assert mean == pytest.approx(1000.0, abs=10.0)
    model = MLP(
        hidden_sizes=[],
        task="regression",
        input_shape=dm.input_shape,
        target_stats=dm.target_stats,
        optimizer=functools.partial(torch.optim.Adam, lr=0.05),
    )
    results = _trainer(tmp_path, 15).train(model, dm)
    # metrics are in the original units: a good fit has a tiny MSE relative to var(y) (~3900),
    # while forgetting to de-standardize would give an MSE of about 1000**2
    assert results["test/mse"] < 100.0
    assert results["test/r2"] > 0.95
    # the loss is in standardized units: mse / std**2
    assert results["test/loss"] == pytest.approx(results["test/mse"] / std**2, rel=1e-3)
    loaded = MLP.load_from_checkpoint(results["best_checkpoint"])
    assert loaded.target_stats == pytest.approx((mean, std))


def test_epoch_metrics_cover_every_batch_and_survive_validate_then_fit() -> None:
    """val/acc and val/f1 are computed over the whole epoch (uneven batches), logged once, reset
    between runs, and trainer.validate (inference mode) followed by fit works."""
    from torchmetrics.functional.classification import multiclass_f1_score

    from tests.conftest import quiet_trainer
    from zoo.data.loader import TensorLoader

    torch.manual_seed(0)
    model = MLP(num_classes=3, input_shape=[4], hidden_sizes=[8])
    x, y = torch.randn(23, 4), torch.randint(0, 3, (23,))
    loader = TensorLoader(x, y, batch_size=10)  # batches of 10, 10 and 3
    trainer = quiet_trainer(max_epochs=2)
    with torch.no_grad():
        pred = model(x).argmax(-1)
    for _ in range(2):  # the second run must not see the first run's counts
        metrics = trainer.validate(model, loader, verbose=False)[0]
        assert metrics["val/acc"] == pytest.approx((pred == y).float().mean().item())
        f1 = multiclass_f1_score(pred, y, num_classes=3, average="macro").item()
        assert metrics["val/f1"] == pytest.approx(f1)
    trainer.fit(model, loader, loader)
    assert {"train/acc", "val/acc", "val/f1", "val/loss"} <= set(trainer.callback_metrics)


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_running_accuracy_equals_torchmetrics(task: str) -> None:
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

    from zoo.metrics import RunningAccuracy

    ours = RunningAccuracy(task)
    reference = MulticlassAccuracy(4, average="micro") if task == "multiclass" else BinaryAccuracy()
    for n in (7, 64, 1):  # uneven batches
        logits = torch.randn(n, 4) if task == "multiclass" else torch.randn(n)
        logits[0] = 0.0  # a tie at the threshold / between classes
        target = torch.randint(0, 4 if task == "multiclass" else 2, (n,))
        ours.update(logits, target)
        reference.update(logits.softmax(-1) if task == "multiclass" else logits.sigmoid(), target)
    assert ours.compute().item() == pytest.approx(reference.compute().item())
    assert ours.total.item() == 72


def test_train_loss_is_logged_every_n_steps_as_the_window_mean_and_per_epoch(tmp_path: Path) -> None:
    """train/loss in metrics.csv: every log_every_n_steps, the mean of the steps since the last
    row; once per epoch (beside train/acc), the epoch's mean; train/acc counts every example."""
    import csv

    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import CSVLogger

    class Record(Callback):
        losses: list[float] = []
        correct: list[int] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            with torch.no_grad():  # the weights the step's forward pass sees
                self.correct.append(int((module(batch[0]).argmax(-1) == batch[1]).sum()))

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.losses.append(float(outputs["loss"]))

    data = SklearnDataModule("digits", batch_size=100, val_size=0.1, test_size=0.1)  # 15 batches
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[16])
    record = Record()
    trainer = ZooTrainer(
        max_epochs=2,
        log_every_n_steps=4,
        logger=CSVLogger(tmp_path),
        callbacks=[record],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, data)
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    steps = [(int(r["step"]), float(r["train/loss"])) for r in rows if r["train/loss"] and not r["train/acc"]]
    losses = np.array(record.losses)
    assert [s for s, _ in steps] == [3, 7, 11, 15, 19, 23, 27]  # every 4th step, across epochs
    for (step, logged), start in zip(steps, range(0, 28, 4), strict=True):
        assert logged == pytest.approx(losses[start : step + 1].mean(), rel=1e-5)
    epochs = [(float(r["train/loss"]), float(r["train/acc"])) for r in rows if r["train/acc"]]
    n_train = data.split_sizes()["train"]
    for epoch, (loss, acc) in enumerate(epochs):
        batches = slice(15 * epoch, 15 * (epoch + 1))
        assert loss == pytest.approx(losses[batches].mean(), rel=1e-5)
        assert acc == pytest.approx(sum(record.correct[batches]) / n_train, abs=1e-6)
    assert len(epochs) == 2


def test_compile_trains_and_matches_eager_outputs(tmp_path: Path) -> None:
    """``compile=True`` compiles the network in place at setup (checked through the compiled
    ``__call__``): it trains through the Trainer, its outputs equal the eager ``forward``, and its
    checkpoint loads into an eager model (parameter names unchanged)."""
    dm = SklearnDataModule("iris", batch_size=32, seed=0)
    make_opt = functools.partial(torch.optim.Adam, lr=0.05)
    model = MLP(
        hidden_sizes=[16], num_classes=3, input_shape=dm.input_shape, optimizer=make_opt, compile=True
    )
    assert model.net._compiled_call_impl is None  # nothing compiles before a Trainer sets it up
    results = _trainer(tmp_path, 15).train(model, dm)
    assert model.net._compiled_call_impl is not None
    assert results["test/acc"] >= 0.8
    x = dm._tensors["test"][0]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net.forward(x), rtol=1e-5, atol=1e-6)
    eager = MLP.load_from_checkpoint(results["best_checkpoint"], optimizer=make_opt, compile=False)
    assert eager.hparams.compile is False and eager.net._compiled_call_impl is None
    eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(eager(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("built", "wanted"),
    [
        ({"num_classes": 5}, "MLP.num_classes is 5, but the data (SklearnDataModule) gives 3"),
        ({"num_classes": 2}, "MLP.num_classes is 2, but the data (SklearnDataModule) gives 3"),
        (
            {"task": "binary", "num_classes": None},
            "MLP.task is 'binary', but the data (SklearnDataModule) gives 'multiclass'",
        ),
        (
            {"input_shape": (12,)},
            "MLP.input_shape is (12,), but the data (SklearnDataModule) gives (13,)",
        ),
    ],
    ids=["more classes", "fewer classes", "task", "width"],
)
def test_a_model_built_for_other_data_is_refused_at_fit_start(built: dict, wanted: str) -> None:
    """From Python the model and the data are built apart: 5 outputs for wine's 3 classes trained
    silently and then predicted class indices with no label; 2 failed deep in the loss."""
    data = SklearnDataModule("wine", batch_size=32)
    facts = {"task": data.task, "num_classes": data.num_classes, "input_shape": data.input_shape, **built}
    model = MLP(**facts, hidden_sizes=[8])
    with pytest.raises(ZooError, match=re.escape(wanted)):
        ZooTrainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False).fit(
            model, data
        )


class NoisyMLP(MLP):
    """A user's subclass, as `zoo train --model.class_path` trains one: its own option, the rest
    passed on to MLP."""

    def __init__(self, noise: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.noise = noise


_FACTS = {"task": "multiclass", "num_classes": 3, "input_shape": [4]}
_IMAGE = {"task": "multiclass", "num_classes": 3, "input_shape": [1, 8, 8]}
_LM = {"vocab": "abc", "input_shape": [8]}
_SEQ = {"task": "multiclass", "num_classes": 3, "input_shape": [8], "vocab_size": 5}


def _model(name: str, **kwargs):
    from zoo.models import GPT, ConvNet, FastCifarNet, SequenceClassifier, ViT

    classes = {"MLP": MLP, "NoisyMLP": NoisyMLP, "ConvNet": ConvNet, "FastCifarNet": FastCifarNet}
    classes |= {"ViT": ViT, "GPT": GPT, "SequenceClassifier": SequenceClassifier}
    return classes[name](**kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "MLP",
            {**_FACTS, "hidden_sizes": 64},
            "model.hidden_sizes must be a list of widths >= 1, e.g. [256, 128] ([] for none); got 64.",
        ),
        (
            "MLP",
            {**_FACTS, "hidden_sizes": "64"},
            "model.hidden_sizes must be a list of widths >= 1, e.g. [256, 128] ([] for none); got '64'.",
        ),
        ("MLP", {**_FACTS, "dropout": "0.1"}, "model.dropout must be a number in [0, 1); got '0.1'."),
        (
            "MLP",
            {**_FACTS, "num_classes": "3"},
            "model.num_classes must be an integer (the number of classes); got '3'.",
        ),
        ("MLP", {**_FACTS, "l1_lambda": "a"}, "model.l1_lambda must be a number >= 0; got 'a'."),
        ("MLP", {**_FACTS, "l1_lambda": float("nan")}, "model.l1_lambda must be >= 0; got nan."),
        (
            "MLP",
            {**_FACTS, "label_smoothing": "a"},
            "model.label_smoothing must be a number in [0, 1); got 'a'.",
        ),
        (
            "MLP",
            {"task": "binary", "input_shape": [4], "pos_weight": "2"},
            "model.pos_weight must be a number > 0 (the positive class's weight in the loss; 1 weighs "
            "both classes alike); got 2.",
        ),
        *[
            (
                "MLP",
                {**_FACTS, "input_shape": shape},
                "model.input_shape must be one example's shape, a list of sizes >= 1 such as [64] or "
                f"[1, 8, 8]; got {shown}.",
            )
            for shape, shown in ((4, "4"), ([-4], "[-4]"), ([0], "[0]"), ([], "[]"), ("64", "'64'"))
        ],
        (
            "MLP",
            {**_FACTS, "loss": torch.nn.CrossEntropyLoss},
            "model.loss is the class torch.nn.CrossEntropyLoss: pass an instance, "
            "torch.nn.CrossEntropyLoss(), or a loss name (bce, contrastive, cross_entropy, huber, l1, mse).",
        ),
        (
            "MLP",
            {**_FACTS, "loss": 3},
            "model.loss must be a loss name (bce, contrastive, cross_entropy, huber, l1, mse), a class path "
            "such as 'torch.nn.HuberLoss', or a loss module such as torch.nn.HuberLoss(); got 3.",
        ),
        (
            "MLP",
            {**_FACTS, "monitor": 3},
            "model.monitor must be the name of a metric validation logs, e.g. 'val/loss'; got 3.",
        ),
        *[
            (
                "MLP",
                {"task": "binary", "num_classes": k, "input_shape": [4]},
                "model.num_classes must be 2 (or None) for a binary task, which has one output (the positive "
                f"class's logit); got {k}. More classes: task='multiclass'.",
            )
            for k in (5, 0, 1)
        ],
        (
            "MLP",
            {**_FACTS, "hiden_sizes": [8]},
            "MLP has no argument 'hiden_sizes'; did you mean 'hidden_sizes'?",
        ),
        ("NoisyMLP", {**_FACTS, "nosie": 0.2}, "NoisyMLP has no argument 'nosie'; did you mean 'noise'?"),
        ("ConvNet", {**_IMAGE, "hidden": "a"}, "model.hidden must be a list of positive ints; got 'a'."),
        (
            "ConvNet",
            {**_IMAGE, "widths": 32},
            "model.widths must be a non-empty list of positive ints, e.g. [32, 64]; got 32.",
        ),
        (
            "ConvNet",
            {**_IMAGE, "blocks_per_stage": 1.5},
            "model.blocks_per_stage must be an integer >= 1; got 1.5.",
        ),
        (
            "ConvNet",
            {**_IMAGE, "head_dropout": "0"},
            "model.head_dropout must be a number in [0, 1); got '0'.",
        ),
        ("ConvNet", {**_IMAGE, "widht": [4]}, "ConvNet has no argument 'widht'; did you mean 'widths'?"),
        (
            "FastCifarNet",
            {**_IMAGE, "logit_scale": 0},
            "model.logit_scale must be a finite number > 0; got 0.",
        ),
        ("ViT", {**_IMAGE, "dim": "64"}, "model.dim must be an integer >= 1; got '64'."),
        ("ViT", {**_IMAGE, "patch": 2}, "ViT has no argument 'patch'; did you mean 'patch_size' or 'depth'?"),
        ("GPT", {**_LM, "dropout": "a"}, "model.dropout must be a number in [0, 1); got 'a'."),
        ("GPT", {**_LM, "n_layers": 2}, "GPT has no argument 'n_layers'; did you mean 'n_layer'?"),
        ("SequenceClassifier", {**_SEQ, "heads": "4"}, "model.heads must be an integer >= 1; got '4'."),
    ],
)
def test_a_wrong_argument_is_named_at_construction(name: str, kwargs: dict, message: str) -> None:
    """Wrong types said torch's or Python's words ("'int' object is not iterable", "'<' not
    supported"), naming no argument; some wrong values were accepted (binary with 5 classes,
    input_shape [0], monitor=3); a misspelled name blamed ZooModule.__init__."""
    with pytest.raises(ZooError) as caught:
        _model(name, **kwargs)
    assert str(caught.value) == message


def test_an_unknown_argument_without_a_close_name_lists_the_arguments() -> None:
    with pytest.raises(ZooError) as caught:
        MLP(**_FACTS, zzz=1)
    assert str(caught.value).startswith(
        "MLP has no argument 'zzz'; it takes hidden_sizes, activation, dropout,"
    )
    assert str(caught.value).endswith(", compile, init_from, freeze.")


def test_a_subclass_may_pass_the_base_options_itself() -> None:
    """What MLP passes on is checked against ZooModule's arguments, not the subclass's signature."""

    class Fixed(MLP):
        def __init__(self, width: int = 8) -> None:
            super().__init__(hidden_sizes=[width], task="multiclass", num_classes=3, input_shape=[4])

    assert Fixed(width=4).num_outputs == 3


def test_binary_models_take_the_class_count_the_data_gives() -> None:
    data = ArrayDataModule(np.random.default_rng(0).normal(size=(40, 4)), np.tile([0, 1], 20))
    assert (data.task, data.num_classes) == ("binary", 2)
    for k in (None, 2):
        assert MLP(task="binary", num_classes=k, input_shape=[4]).num_outputs == 1


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "0.1", True])
def test_the_lr_attribute_refuses_a_rate_torch_would_refuse(value: object) -> None:
    """``model.lr = -1.0`` went into the parameter groups, and training diverged (train/loss 1e6)."""
    model = MLP(**_FACTS, hidden_sizes=[4])
    model.lr = 0.01
    with pytest.raises(ZooError) as caught:
        model.lr = value
    assert str(caught.value) == (
        "model.lr must be a finite number >= 0 (a learning rate), or None for the optimizer's own; "
        f"got {value!r}."
    )
    assert model.lr == 0.01
    model.lr, model.lr = 0, None  # torch takes a rate of 0; None: the optimizer's own
    assert model.lr is None


@pytest.fixture(scope="module")
def noisy_checkpoint(tmp_path_factory) -> Path:
    """A NoisyMLP checkpoint as `zoo train --model.class_path` writes it (LightningCLI's instantiator
    and class path in the hyper-parameters), made without training."""
    import lightning

    model = NoisyMLP(noise=0.2, **_FACTS, hidden_sizes=[8])
    hparams = dict(model.hparams) | {
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "_class_path": f"{NoisyMLP.__module__}.NoisyMLP",
    }
    path = tmp_path_factory.mktemp("noisy") / "noisy.ckpt"
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": hparams}
    torch.save(
        checkpoint | {"pytorch-lightning_version": lightning.__version__, "epoch": 0, "global_step": 0}, path
    )
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dropout": 3}, "model.dropout must be in [0, 1); got 3.0."),
        ({"nosie": 3}, "NoisyMLP has no argument 'nosie'; did you mean 'noise'?"),
        ({"hidden_sizes": "abc"}, "hidden_sizes expected a Sequence; got 'abc'."),
    ],
    ids=["value", "name", "type"],
)
def test_a_bad_override_of_a_checkpoint_is_one_line(
    noisy_checkpoint: Path, overrides: dict, message: str
) -> None:
    """These were jsonargparse's lines of Union subtypes and the whole Namespace given."""
    given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    for cls in (NoisyMLP, MLP):  # the base class builds the file's subclass
        with pytest.raises(ZooError) as caught:
            cls.load_from_checkpoint(noisy_checkpoint, **overrides)
        assert str(caught.value) == f"NoisyMLP.load_from_checkpoint(path, {given}): {message}"
    loaded = NoisyMLP.load_from_checkpoint(noisy_checkpoint, dropout=0.2, weights_only=True)
    assert (loaded.noise, loaded.hparams.dropout) == (0.2, 0.2)


def test_freeze_backbone_without_a_head_says_what_to_define() -> None:
    """It said the output layer "shares weights with its input", which is a GPT's reason only."""
    from zoo.models import ZooModule

    class Headless(ZooModule):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    class OwnHead(ZooModule):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.body, self.out = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5)), nn.Linear(8, 3)

        def output_head(self) -> nn.Module:
            return self.out

    with pytest.raises(ZooError) as caught:
        Headless(**_FACTS, freeze="backbone").freeze_backbone()
    assert str(caught.value) == (
        "model.freeze backbone trains the model's output head alone, which output_head() returns "
        "(self.net.head by default); this Headless has no self.net.head: name its output layer "
        "self.net.head, or override Headless.output_head() to return it."
    )
    model = OwnHead(**_FACTS, freeze="backbone")  # no self.net: the overridden output_head() is enough
    model.freeze_backbone()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"out.weight", "out.bias"}
    model.train()
    assert model.training and model.out.training and not model.body[1].training


def test_a_refused_model_option_is_one_line_on_the_command_line(capsys, tmp_path: Path) -> None:
    from tests.test_cli import run_main

    argv = ["train", "-c", "mlp_digits", "--model.monitor", "", "--trainer.default_root_dir", str(tmp_path)]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        "zoo: error: model.monitor must be the name of a metric validation logs, e.g. 'val/loss'; got ''."
    )
