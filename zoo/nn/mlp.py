"""A multilayer perceptron backbone: plain ``nn.Module``, usable without Lightning."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.nn.layers import init_weights, make_activation, make_norm1d


class MLPBlock(nn.Module):
    """``Linear -> norm -> activation -> dropout``, with an optional residual path.

    With ``residual=True`` the block returns ``x + f(x)``; when the widths differ the skip path
    is a bias-free linear projection (as in ResNets' 1x1 projection shortcuts).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=norm != "batch")
        self.norm = make_norm1d(norm, out_features)
        self.act = make_activation(activation)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.skip: nn.Module | None = None
        if residual:
            same = in_features == out_features
            self.skip = nn.Identity() if same else nn.Linear(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(self.act(self.norm(self.linear(x))))
        return y if self.skip is None else y + self.skip(x)


class MLP(nn.Module):
    """``in_features -> hidden_sizes... -> out_features``; the last layer is a plain Linear (logits).

    ``init`` (``default``, ``kaiming``, ``xavier``) re-initializes the weights: see
    :meth:`reset_weights`.

    Example:
        >>> net = MLP(64, [128, 128], 10, activation="gelu", norm="layer", residual=True)
        >>> net(torch.zeros(5, 64)).shape
        torch.Size([5, 10])
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        residual: bool = False,
        init: str = "default",
    ) -> None:
        super().__init__()
        widths = [in_features, *hidden_sizes]
        self.blocks = nn.Sequential(
            *(
                MLPBlock(a, b, activation, norm, dropout, residual)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        self.head = nn.Linear(widths[-1], out_features)
        self.reset_weights(init, activation)

    def reset_weights(self, init: str = "default", activation: str = "relu") -> None:
        """Re-initialize the weights with ``init`` (see :func:`zoo.nn.init_weights`): each hidden
        Linear gets the gain of ``activation``, the output layer and the skip projections, which
        no activation follows, the linear gain 1."""
        for block in self.blocks:
            init_weights(block.linear, init, activation)
            if block.skip is not None:
                init_weights(block.skip, init, "identity")
        init_weights(self.head, init, "identity")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden representation (before the output layer)."""
        return self.blocks(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
