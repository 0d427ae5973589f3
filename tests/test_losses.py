"""Loss modules by name, checked against torch's functional forms and hand-written references."""

from __future__ import annotations

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
