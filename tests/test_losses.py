"""Loss modules by name, checked against torch's functional forms and hand-written references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UnknownNameError
from zoo.losses import BCEWithLogits, ContrastiveLoss, create_loss, l1_penalty


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_regression_losses_match_functional() -> None:
    pred, target = torch.randn(17), torch.randn(17) * 3
    torch.testing.assert_close(create_loss("mse")(pred, target), F.mse_loss(pred, target))
    torch.testing.assert_close(create_loss("l1")(pred, target), F.l1_loss(pred, target))
    torch.testing.assert_close(create_loss("huber")(pred, target), F.huber_loss(pred, target))
    torch.testing.assert_close(
        create_loss("huber", delta=0.3)(pred, target), F.huber_loss(pred, target, delta=0.3)
    )
    # delta really changes the result
    assert not torch.allclose(create_loss("huber", delta=0.3)(pred, target), F.huber_loss(pred, target))
    torch.testing.assert_close(
        create_loss("mse", reduction="sum")(pred, target), F.mse_loss(pred, target, reduction="sum")
    )


def test_cross_entropy_matches_functional() -> None:
    logits, labels = torch.randn(12, 5), torch.randint(0, 5, (12,))
    torch.testing.assert_close(create_loss("cross_entropy")(logits, labels), F.cross_entropy(logits, labels))
    torch.testing.assert_close(
        create_loss("cross_entropy", label_smoothing=0.2)(logits, labels),
        F.cross_entropy(logits, labels, label_smoothing=0.2),
    )
    # None kwargs are dropped (falls back to the default, no smoothing)
    torch.testing.assert_close(
        create_loss("cross_entropy", label_smoothing=None)(logits, labels), F.cross_entropy(logits, labels)
    )


def test_bce_matches_functional_with_and_without_pos_weight() -> None:
    logits, targets = torch.randn(20), torch.randint(0, 2, (20,)).float()
    bce = create_loss("bce")
    assert isinstance(bce, BCEWithLogits)
    torch.testing.assert_close(bce(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    weighted = create_loss("bce", pos_weight=3.0)
    assert torch.is_tensor(weighted.pos_weight)
    expected = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor(3.0))
    torch.testing.assert_close(weighted(logits, targets), expected)
    assert not torch.allclose(weighted(logits, targets), bce(logits, targets))
    # a tensor pos_weight is used as is
    pw = torch.tensor([2.5])
    torch.testing.assert_close(
        create_loss("bce", pos_weight=pw)(logits, targets),
        F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pw),
    )
    # pos_weight=None is the unweighted loss
    torch.testing.assert_close(
        create_loss("bce", pos_weight=None)(logits, targets),
        F.binary_cross_entropy_with_logits(logits, targets),
    )


def contrastive_reference(z: torch.Tensor, labels: torch.Tensor, margin: float) -> float:
    """Mean over i < j of d**2 (same label) or max(0, margin - d)**2 (different labels)."""
    total, pairs = 0.0, 0
    n = z.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            d = float(torch.sqrt(((z[i] - z[j]) ** 2).sum()))
            if int(labels[i]) == int(labels[j]):
                total += d**2
            else:
                total += max(0.0, margin - d) ** 2
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("margin", [0.5, 1.0, 3.0])
def test_contrastive_matches_double_loop_reference(margin: float) -> None:
    z = torch.randn(9, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1])
    loss = create_loss("contrastive", margin=margin)
    assert isinstance(loss, ContrastiveLoss)
    got = loss(z, labels)
    assert got.ndim == 0
    assert got.item() == pytest.approx(contrastive_reference(z, labels, margin), rel=1e-5, abs=1e-7)


def test_contrastive_on_a_binary_models_single_output() -> None:
    # a binary model's (N, 1) output is squeezed to (N,) before the loss: one value per example,
    # still paired as 1-D embeddings (it once summed over every pair into one scalar)
    from zoo.models import MLP

    model = MLP(task="binary", input_shape=[5], hidden_sizes=[4], loss="contrastive")
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    outputs = model.shape_outputs(model(x), y)
    assert outputs.shape == (7,)
    got = model.compute_loss(outputs, y)
    assert got.item() == pytest.approx(contrastive_reference(outputs[:, None].detach(), y, 1.0), rel=1e-5)


def test_contrastive_margin_behaviour() -> None:
    # two points of different labels at distance 2
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    diff = torch.tensor([0, 1])
    same = torch.tensor([1, 1])
    # beyond the margin: no loss; inside it: (margin - d)**2
    assert ContrastiveLoss(margin=1.5)(z, diff).item() == pytest.approx(0.0)
    assert ContrastiveLoss(margin=2.0)(z, diff).item() == pytest.approx(0.0)
    assert ContrastiveLoss(margin=3.0)(z, diff).item() == pytest.approx(1.0)
    assert ContrastiveLoss(margin=5.0)(z, diff).item() == pytest.approx(9.0)
    # same labels: d**2 regardless of the margin
    assert ContrastiveLoss(margin=1.0)(z, same).item() == pytest.approx(4.0)
    assert ContrastiveLoss(margin=10.0)(z, same).item() == pytest.approx(4.0)


def test_contrastive_gradients_are_finite_for_identical_embeddings() -> None:
    z = torch.zeros(3, 2, requires_grad=True)
    loss = ContrastiveLoss(margin=1.0)(z, torch.tensor([0, 0, 1]))
    # pairs: (0,1) same d=0 -> 0, (0,2) and (1,2) different d=0 -> margin**2 = 1
    assert loss.item() == pytest.approx(2.0 / 3.0, rel=1e-5)
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_contrastive_single_example_is_zero_with_grad() -> None:
    z = torch.randn(1, 3, requires_grad=True)
    loss = ContrastiveLoss()(z, torch.tensor([0]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_unknown_loss_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'huber'"):
        create_loss("hubber")


def test_l1_penalty_sums_only_matrices() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2), nn.Conv1d(2, 3, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-2.0, 2.0)  # norm weights/biases non-zero so a wrong filter shows
    expected = sum(p.abs().sum() for p in model.parameters() if p.ndim >= 2)
    everything = sum(p.abs().sum() for p in model.parameters())
    got = l1_penalty(model)
    torch.testing.assert_close(got, expected)
    assert got.item() < everything.item() - 1e-3
    # it is differentiable and its gradient is sign(W) on matrices, nothing on biases
    got.backward()
    torch.testing.assert_close(model[0].weight.grad, model[0].weight.detach().sign())
    assert model[0].bias.grad is None


def test_l1_penalty_leaves_out_what_weight_decay_leaves_out() -> None:
    from zoo.models import ViT

    model = ViT(task="multiclass", num_classes=3, input_shape=[1, 8, 8], patch_size=4, dim=16, depth=1)
    expected = sum(
        p.abs().sum()
        for n, p in model.named_parameters()
        if p.ndim >= 2 and not n.endswith(("pos_embed", "cls_token"))
    )
    torch.testing.assert_close(l1_penalty(model), expected)
    assert model.net.pos_embed.abs().sum() > 0  # so including it would show


def test_l1_penalty_skips_frozen_and_empty() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].weight.requires_grad_(False)
    torch.testing.assert_close(l1_penalty(model), model[1].weight.abs().sum())
    assert l1_penalty(nn.LayerNorm(4)).item() == 0.0


@pytest.mark.parametrize("decay_bias_and_norm", [False, True])
def test_l1_penalty_covers_exactly_what_weight_decay_covers(decay_bias_and_norm: bool) -> None:
    # with decay_bias_and_norm=True weight decay took every parameter, the L1 penalty only the matrices
    from zoo.optim import param_groups

    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-2.0, 2.0)
    decayed = param_groups(model, decay_bias_and_norm)[0]["params"]
    expected = sum(p.abs().sum() for p in decayed)
    torch.testing.assert_close(l1_penalty(model, decay_bias_and_norm), expected)
    everything = sum(p.abs().sum() for p in model.parameters())
    assert (
        l1_penalty(model, decay_bias_and_norm).item() == pytest.approx(everything.item())
    ) is decay_bias_and_norm


# ----------------------------------------------------------------------------- the model's loss options


def test_bce_label_smoothing_moves_the_targets_toward_one_half() -> None:
    logits, y = torch.randn(9), (torch.rand(9) > 0.5).float()
    got = BCEWithLogits(label_smoothing=0.2, pos_weight=1.5)(logits, y)
    expected = F.binary_cross_entropy_with_logits(logits, y * 0.8 + 0.1, pos_weight=torch.tensor(1.5))
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, BCEWithLogits(pos_weight=1.5)(logits, y))


def _mlp(task: str = "multiclass", **kwargs):
    from zoo.models import MLP

    return MLP(
        task=task, num_classes=3 if task == "multiclass" else None, input_shape=[4], hidden_sizes=[], **kwargs
    )


def test_label_smoothing_and_pos_weight_reach_the_loss_that_takes_them() -> None:
    assert _mlp(label_smoothing=0.3).loss_fn.label_smoothing == 0.3
    # a class path given as a string: the option goes to the class (it was dropped)
    assert _mlp(loss="torch.nn.CrossEntropyLoss", label_smoothing=0.3).loss_fn.label_smoothing == 0.3
    binary = _mlp("binary", pos_weight=2.0, label_smoothing=0.1).loss_fn
    assert (binary.pos_weight.item(), binary.label_smoothing) == (2.0, 0.1)
    assert _mlp("binary", loss="torch.nn.BCEWithLogitsLoss", pos_weight=2.0).loss_fn.pos_weight.item() == 2.0


def test_class_weights_weigh_the_cross_entropy(tmp_path) -> None:
    from tests.conftest import quiet_trainer
    from zoo.data import ArrayDataModule
    from zoo.models import ZooModule

    weights = [1.0, 2.0, 5.0]
    logits, y = torch.randn(12, 3), torch.randint(0, 3, (12,))
    model = _mlp(class_weights=weights)
    expected = F.cross_entropy(logits, y, weight=torch.tensor(weights))
    torch.testing.assert_close(model.compute_loss(logits, y), expected)
    assert not torch.allclose(expected, F.cross_entropy(logits, y))
    smoothed = _mlp(class_weights=weights, label_smoothing=0.2).compute_loss(logits, y)
    torch.testing.assert_close(
        smoothed, F.cross_entropy(logits, y, weight=torch.tensor(weights), label_smoothing=0.2)
    )
    # a class path given as a string gets them as torch's `weight`
    by_path = _mlp(loss="torch.nn.CrossEntropyLoss", class_weights=weights).compute_loss(logits, y)
    torch.testing.assert_close(by_path, expected)
    # stored as plain data: the checkpoint loads back with them
    assert model.hparams.class_weights == weights
    data = ArrayDataModule(
        np.random.default_rng(0).normal(size=(30, 4)), np.tile([0, 1, 2], 10), batch_size=8
    )
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "weighted.ckpt")
    back = ZooModule.load_from_checkpoint(tmp_path / "weighted.ckpt")
    torch.testing.assert_close(back.loss_fn.weight, torch.tensor(weights))
    torch.testing.assert_close(back.compute_loss(logits, y), expected)


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("multiclass", {"label_smoothing": 2.0}, "model.label_smoothing must be in [0, 1); got 2.0."),
        ("multiclass", {"label_smoothing": -0.1}, "model.label_smoothing must be in [0, 1); got -0.1."),
        (
            "binary",
            {"pos_weight": -1.0},
            "model.pos_weight must be a number > 0 (the positive class's weight in the loss; 1 weighs both "
            "classes alike); got -1.0.",
        ),
        (
            "regression",
            {"label_smoothing": 0.1},
            "model.label_smoothing applies to the cross_entropy and bce losses; this model's loss is 'mse' "
            "(task 'regression'): unset it (--model.label_smoothing 0).",
        ),
        (
            "multiclass",
            {"pos_weight": 2.0},
            "model.pos_weight applies to the bce (binary tasks) losses; this model's loss is 'cross_entropy' "
            "(task 'multiclass'): unset it (--model.pos_weight null).",
        ),
        (
            "multiclass",
            {"loss": "contrastive", "label_smoothing": 0.1},
            "model.label_smoothing applies to the cross_entropy and bce losses; this model's loss is "
            "'contrastive' (task 'multiclass'): unset it (--model.label_smoothing 0).",
        ),
        (
            "regression",
            {"loss": "torch.nn.MSELoss", "label_smoothing": 0.1},
            "model.label_smoothing is not an option of the loss torch.nn.MSELoss, which takes size_average, "
            "reduce, reduction; unset it (--model.label_smoothing 0).",
        ),
        (
            "regression",
            {"loss": nn.HuberLoss(), "pos_weight": 2.0},
            "model.pos_weight applies to the loss the model builds; with a loss module given (HuberLoss), "
            "set it on that module and unset this one (--model.pos_weight null).",
        ),
        (
            "regression",
            {"loss": "contrastive"},
            "model.loss 'contrastive' is for binary/multiclass tasks, not 'regression'.",
        ),
        (
            "multiclass",
            {"class_weights": [1.0, 2.0]},
            "model.class_weights must give one weight per class, 3 (model.num_classes); got 2: [1.0, 2.0].",
        ),
        (
            "multiclass",
            {"class_weights": [1.0, 0.0, 2.0]},
            "model.class_weights must be a list of numbers > 0, one per class (1 weighs a class as usual); "
            "got [1.0, 0.0, 2.0].",
        ),
        (
            "binary",
            {"class_weights": [1.0, 3.0]},
            "model.class_weights applies to multiclass tasks (one weight per class in the cross-entropy); "
            "this model's task is 'binary': unset it (--model.class_weights null); a binary task weighs its "
            "positive class with model.pos_weight.",
        ),
        (
            "multiclass",
            {"loss": "contrastive", "class_weights": [1.0, 1.0, 2.0]},
            "model.class_weights applies to the cross_entropy (multiclass tasks) losses; this model's loss "
            "is 'contrastive' (task 'multiclass'): unset it (--model.class_weights null).",
        ),
        (
            "multiclass",
            {"loss": nn.CrossEntropyLoss(), "class_weights": [1.0, 1.0, 2.0]},
            "model.class_weights applies to the loss the model builds; with a loss module given "
            "(CrossEntropyLoss), set it on that module and unset this one (--model.class_weights null).",
        ),
    ],
    ids=[
        "smoothing 2",
        "smoothing negative",
        "pos_weight negative",
        "smoothing on mse",
        "pos_weight on cross-entropy",
        "smoothing on contrastive",
        "smoothing on a class path without it",
        "pos_weight with a loss module",
        "contrastive on regression",
        "class_weights of another length",
        "class_weights zero",
        "class_weights on a binary task",
        "class_weights on contrastive",
        "class_weights with a loss module",
    ],
)
def test_loss_options_that_would_be_ignored_or_wrong_are_refused(
    task: str, kwargs: dict, message: str
) -> None:
    """Each was accepted: a negative pos_weight flips the positives' loss, smoothing on mse or a
    class-path loss did nothing, contrastive on regression paired standardized floats by ==."""
    from zoo.errors import ZooError

    with pytest.raises(ZooError) as info:
        _mlp(task, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("task", "loss", "message"),
    [
        (
            "multiclass",
            "torch.nn.MSELoss",
            "model.loss MSELoss cannot take this multiclass model's outputs of shape [5, 3] (float32) and "
            "targets of shape [5] (int64): The size of tensor a (3) must match the size of tensor b (5) "
            "at non-singleton dimension 1",
        ),
        (
            "regression",
            nn.HuberLoss(delta=0.0),
            "model.loss HuberLoss cannot take this regression model's outputs of shape [5] (float32) and "
            "targets of shape [5] (float32): huber_loss does not support non-positive values for delta.",
        ),
        (
            "regression",
            nn.L1Loss(reduction="none"),
            "model.loss L1Loss returns [5] for outputs of shape [5] (float32) and targets of shape [5] "
            "(float32), not one number; give it reduction='mean'.",
        ),
    ],
    ids=["mse on class ids", "huber delta 0", "no reduction"],
)
def test_a_loss_that_cannot_take_the_models_outputs_is_one_error_at_the_first_batch(
    task: str, loss: object, message: str
) -> None:
    from zoo.errors import ZooError

    model = _mlp(task, loss=loss)
    x = torch.randn(5, 4)
    y = torch.randint(0, 3, (5,)) if task == "multiclass" else torch.randn(5)
    with pytest.raises(ZooError) as info:
        model.compute_loss(model.shape_outputs(model(x), y), y)
    assert str(info.value) == message
    good = _mlp(task)
    assert good.compute_loss(good.shape_outputs(good(x), y), y).ndim == 0 and good._loss_checked


def test_a_plateau_schedule_must_follow_its_monitors_direction() -> None:
    """torch's ReduceLROnPlateau waits for a fall unless told: on val/acc it cut the rate while
    accuracy rose."""
    import functools
    from types import SimpleNamespace

    from zoo.errors import ZooError

    plateau = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0)
    model = _mlp(lr_scheduler=plateau, monitor="val/acc")
    model._trainer = SimpleNamespace(estimated_stepping_batches=10)
    with pytest.raises(ZooError) as info:
        model.configure_optimizers()
    assert str(info.value) == (
        "model.monitor val/acc improves as it rises, but the plateau schedule's mode is min (torch's "
        "default is min): add --model.lr_scheduler.mode max."
    )
    model.lr_scheduler = functools.partial(plateau, mode="max")
    assert model.configure_optimizers()["lr_scheduler"]["monitor"] == "val/acc"


# ----------------------------------------------------------------------------- contrastive: an embedding


def test_nearest_neighbour_accuracy_matches_a_brute_force_count() -> None:
    from zoo.metrics import NearestNeighbourAccuracy

    metric = NearestNeighbourAccuracy()
    batches = [(torch.randn(9, 3), torch.randint(0, 3, (9,))), (torch.randn(6, 3), torch.randint(0, 3, (6,)))]
    correct = total = 0
    for z, y in batches:
        metric.update(z, y)
        for i in range(len(y)):
            others = [j for j in range(len(y)) if j != i]
            nearest = min(others, key=lambda j: float((z[i] - z[j]).norm()))
            correct += int(y[nearest] == y[i])
            total += 1
    metric.update(torch.randn(1, 3), torch.tensor([0]))  # one example: no neighbour, not counted
    assert metric.compute().item() == pytest.approx(correct / total)


def test_a_contrastive_model_learns_an_embedding_and_predicts_no_classes(tmp_path) -> None:
    """Its outputs are an embedding: val/acc on their softmax meant nothing (0.05 on digits);
    the nearest-neighbour accuracy of the embedding is what it reports, and predict refuses."""
    from zoo.data import SklearnDataModule
    from zoo.errors import ZooError
    from zoo.models import MLP
    from zoo.trainer import ZooTrainer

    data = SklearnDataModule("digits", batch_size=64, seed=0)
    model = MLP(
        task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[64],
        loss="contrastive",
    )  # fmt: skip
    assert set(model.val_metrics) == {"val/nn_acc"} and model.embeds
    trainer = ZooTrainer(
        max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    before = trainer.validate(model, datamodule=data, verbose=False)[0]["val/nn_acc"]
    trainer.fit(model, datamodule=data)
    after = trainer.validate(model, datamodule=data, verbose=False)[0]["val/nn_acc"]
    assert after >= 0.85 and after > before + 0.2, (before, after)  # 0.53 -> 0.89 when written
    with pytest.raises(ZooError, match="outputs are an embedding, not classes"):
        model.predict(np.zeros((2, 64)))
