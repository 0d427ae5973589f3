"""Training-time metrics cheap enough to update every step.

torchmetrics' classification metrics check their inputs and build confusion statistics on every
update (about 0.25 ms on a CPU, a fifth of a small MLP's whole step). Training only needs running
sums, so these update in two or three tensor operations and never leave the device; they are
still :class:`torchmetrics.Metric` objects, so their states are summed over processes, saved in
mid-epoch checkpoints and reset like any other. Validation and test keep torchmetrics' metrics.
"""

from __future__ import annotations

from typing import Literal

import torch
import torchmetrics


class RunningAccuracy(torchmetrics.Metric):
    """Micro-averaged accuracy from raw outputs: the argmax of ``(N, C)`` logits (multiclass) or
    ``sigmoid(logit) > 0.5`` (binary, the threshold of torchmetrics' ``BinaryAccuracy``)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, task: Literal["multiclass", "binary"]) -> None:
        super().__init__()
        self.task = task
        self.add_state("correct", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        if self.task == "multiclass":
            predicted = outputs.argmax(-1)
        else:
            predicted = (outputs.sigmoid() > 0.5).to(target.dtype)
        # new tensors rather than in-place sums: states reset under inference mode stay usable
        self.correct = self.correct + (predicted == target).sum()
        self.total = self.total + target.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class NearestNeighbourAccuracy(torchmetrics.Metric):
    """How often an example's nearest other embedding in its batch (Euclidean distance) has its
    label: the leave-one-out 1-NN accuracy of an embedding trained with a pairwise loss
    (contrastive), whose outputs are no class scores. It depends on the batch (larger batches
    offer more neighbours); a batch of one example counts nothing."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, embeddings: torch.Tensor, target: torch.Tensor) -> None:
        if embeddings.ndim == 1:  # one value per example (a binary model's single output)
            embeddings = embeddings[:, None]
        if len(target) < 2:
            return
        distances = torch.cdist(embeddings.float(), embeddings.float())
        distances.fill_diagonal_(float("inf"))
        nearest = distances.argmin(-1)
        self.correct = self.correct + (target[nearest] == target).sum()
        self.total = self.total + target.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class RunningMean(torchmetrics.Metric):
    """The mean of the scalars given to :meth:`update` (one per step), e.g. the training loss."""

    full_state_update = False
    is_differentiable = False

    def __init__(self) -> None:
        super().__init__()
        # float32 (not float64): Apple's MPS has none
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor) -> None:
        self.total = self.total + value.detach().float()
        self.count = self.count + 1

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1)
