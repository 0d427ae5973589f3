"""Loss functions as ``nn.Module`` s, reachable by short name or by ``class_path``.

>>> from zoo.losses import create_loss
>>> create_loss("huber", delta=0.5)
HuberLoss()
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import LOSSES

LOSSES.register("mse", nn.MSELoss)
LOSSES.register("l1", nn.L1Loss)
LOSSES.register("huber", nn.HuberLoss)
LOSSES.register("cross_entropy", nn.CrossEntropyLoss)


@LOSSES.register("bce")
class BCEWithLogits(nn.BCEWithLogitsLoss):
    """Binary cross-entropy on logits. ``pos_weight`` may be a plain float (weight of positives);
    ``label_smoothing`` ``e`` moves the targets to ``e/2`` and ``1 - e/2`` (as cross-entropy's
    smoothing does for two classes)."""

    def __init__(
        self,
        pos_weight: float | torch.Tensor | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        if pos_weight is not None and not torch.is_tensor(pos_weight):
            pos_weight = torch.tensor(float(pos_weight))
        super().__init__(reduction=reduction, pos_weight=pos_weight)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return super().forward(input, target)


@LOSSES.register("contrastive")
class ContrastiveLoss(nn.Module):
    """Pairwise margin (contrastive) loss on embeddings, over every pair in the batch.

    For embeddings ``z_i, z_j`` at Euclidean distance ``d``: same label -> ``d**2``, different
    label -> ``max(0, margin - d)**2``; the result is the mean over all ``i < j`` pairs
    (Hadsell, Chopra and LeCun, 2006).

    Args:
        margin: how far apart embeddings of different labels are pushed.
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim == 1:  # one value per example (a binary task's single output)
            embeddings = embeddings[:, None]
        n = embeddings.shape[0]
        if n < 2:
            return embeddings.sum() * 0.0
        i, j = torch.triu_indices(n, n, offset=1, device=embeddings.device)
        d = (embeddings[i] - embeddings[j]).pow(2).sum(-1).clamp_min(1e-12).sqrt()
        same = labels[i] == labels[j]
        per_pair = torch.where(same, d.pow(2), F.relu(self.margin - d).pow(2))
        return per_pair.mean()


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """A loss module by short name (``mse``, ``l1``, ``huber``, ``cross_entropy``, ``bce``,
    ``contrastive``); ``None``-valued kwargs are dropped."""
    return LOSSES.create(name, **kwargs)


def l1_penalty(module: nn.Module, decay_bias_and_norm: bool = False) -> torch.Tensor:
    """Sum of absolute values of the parameters weight decay applies to: weight matrices and
    kernels, and with ``decay_bias_and_norm`` biases and normalization parameters too (as
    :func:`zoo.optim.param_groups` decays them); names a module exempts with ``no_weight_decay()``
    (positions, [CLS] tokens) are always left out (:func:`zoo.optim.is_decayed`)."""
    from zoo.optim import is_decayed, no_weight_decay_names

    exempt = no_weight_decay_names(module)
    terms = [
        p.abs().sum()
        for name, p in module.named_parameters()
        if p.requires_grad and is_decayed(name, p, exempt, decay_bias_and_norm)
    ]
    return torch.stack(terms).sum() if terms else torch.zeros(())
