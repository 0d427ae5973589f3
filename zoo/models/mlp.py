"""The MLP family: a multilayer perceptron on flat (or flattened) inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo import nn as znn
from zoo.errors import ZooError
from zoo.models.base import ZooModule, check_base_arguments, is_integer, require_number
from zoo.nn.layers import INITS, NORMS, Init, Norm
from zoo.registry import ACTIVATIONS, register_model


@register_model("mlp")
class MLP(ZooModule):
    """A multilayer perceptron for classification or regression.

    Args:
        hidden_sizes: widths of the hidden layers, e.g. ``[256, 128]``.
        activation: ``relu``, ``gelu``, ``tanh``, ``sigmoid``, ``silu``, ``leaky_relu``, ... (see
            ``zoo.registry.ACTIVATIONS``).
        dropout: dropout probability after each hidden layer.
        norm: ``none``, ``batch`` or ``layer`` normalization in each hidden layer.
        residual: add a skip connection around each hidden layer.
        init: weight initialization: ``default`` (PyTorch's), ``kaiming`` or ``xavier``, each hidden
            layer with the gain of ``activation``, the output layer with gain 1
            (:func:`zoo.nn.layers.activation_gain`).
        **kwargs: the task, loss, optimizer and schedule options of :class:`ZooModule`.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: Norm = "none",
        residual: bool = False,
        init: Init = "default",
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ZooError(ACTIVATIONS.unknown_message(activation, option="model.activation"))
        if norm not in NORMS:
            raise ZooError(f"model.norm must be one of {', '.join(NORMS)}; got {norm!r}.")
        if init not in INITS:
            raise ZooError(f"model.init must be one of {', '.join(INITS)}; got {init!r}.")
        require_number(dropout, "model.dropout", "in [0, 1)")
        if not 0.0 <= dropout < 1.0:
            raise ZooError(f"model.dropout must be in [0, 1); got {dropout}.")
        if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence):
            raise ZooError(
                "model.hidden_sizes must be a list of widths >= 1, e.g. [256, 128] ([] for none); "
                f"got {hidden_sizes!r}."
            )
        if any(not is_integer(w) or w < 1 for w in hidden_sizes):
            widths = list(hidden_sizes)
            raise ZooError(
                f"model.hidden_sizes must be widths >= 1, e.g. [256, 128] ([] for none); got {widths}."
            )
        self.net = znn.MLP(
            self.num_inputs,
            list(hidden_sizes),
            self.num_outputs,
            activation=activation,
            norm=norm,
            dropout=dropout,
            residual=residual,
            init=init,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
