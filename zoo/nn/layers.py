"""Small building pieces chosen by name: activations, normalization layers, weight init.

Plain torch; nothing here imports Lightning.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from zoo.errors import ZooError
from zoo.registry import ACTIVATIONS

for _name, _cls in {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}.items():
    ACTIVATIONS.register(_name, _cls)


@ACTIVATIONS.register("softmax")
def _softmax() -> nn.Module:
    """Softmax over the last dimension. As a hidden layer's activation it makes each layer's
    values sum to 1; the zoo's models output logits, and their probabilities come from the softmax
    (or sigmoid) the metrics and ``predict`` apply."""
    return nn.Softmax(dim=-1)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name, e.g. ``make_activation("gelu")``."""
    return ACTIVATIONS.get(name)()


Norm = Literal["none", "batch", "layer"]
NORMS = ("none", "batch", "layer")


def make_norm1d(kind: str, features: int) -> nn.Module:
    """Normalization for ``(batch, features)`` activations: ``none``, ``batch`` or ``layer``."""
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise ZooError(f"Unknown norm {kind!r}. Valid norms: {', '.join(NORMS)}.")


Init = Literal["default", "kaiming", "xavier"]
INITS = ("default", "kaiming", "xavier")

_GAIN_NAMES = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid"}


def init_weights(module: nn.Module, scheme: str = "default", activation: str = "relu") -> None:
    """Re-initialize every Linear/Conv weight of ``module`` in place; biases are zeroed.

    ``default`` keeps PyTorch's own init; ``kaiming`` is He-normal (fan_in) for the given
    activation; ``xavier`` is Glorot-uniform with the activation's recommended gain.
    """
    if scheme not in INITS:
        raise ZooError(f"Unknown init {scheme!r}. Valid inits: {', '.join(INITS)}.")
    if scheme == "default":
        return
    nonlinearity = _GAIN_NAMES.get(activation, "relu")
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
            else:
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(nonlinearity))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
