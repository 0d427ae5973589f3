"""Small building pieces chosen by name: activations, normalization layers, weight init.

Plain torch; nothing here imports Lightning.
"""

from __future__ import annotations

import math
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
    """Softmax over the last dimension. As an MLP hidden layer's activation it makes each layer's
    values sum to 1 (conv nets refuse it: see :func:`check_elementwise`); the zoo's models output
    logits, and their probabilities come from the softmax (or sigmoid) the metrics and ``predict``
    apply."""
    return nn.Softmax(dim=-1)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name, e.g. ``make_activation("gelu")``."""
    return ACTIVATIONS.get(name)()


#: activation modules that mix the values along a dimension instead of acting on each value alone
_NOT_ELEMENTWISE = (nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d, nn.GLU)


def is_elementwise(name: str) -> bool:
    """Whether the activation ``name`` acts on each value alone (``softmax`` does not: it
    normalizes over the last dimension). Unknown names count as elementwise: the registry's lookup
    refuses them with its own message."""
    return name not in ACTIVATIONS or not isinstance(make_activation(name), _NOT_ELEMENTWISE)


def elementwise_activations() -> list[str]:
    """The registered activations that act on each value alone, sorted."""
    return [name for name in ACTIVATIONS.list() if is_elementwise(name)]


def check_elementwise(name: str, option: str = "activation") -> None:
    """Raise a :class:`ZooError` naming ``option`` unless the activation ``name`` is elementwise.

    A conv net's activations see ``(N, C, H, W)`` maps, whose last dimension is the image's width:
    softmax there would make every row of every channel sum to 1.
    """
    if not is_elementwise(name):
        raise ZooError(
            f"{option} {name!r} is not elementwise (it mixes the values along the last dimension, "
            "an image's width in a conv net); valid choices for a conv net: "
            f"{', '.join(elementwise_activations())}."
        )


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

#: activation name -> (``torch.nn.init.calculate_gain``'s nonlinearity, its parameter). Torch knows
#: relu, leaky_relu (with ``nn.LeakyReLU``'s default slope 0.01), tanh, sigmoid, selu and linear;
#: the others get the closest of these: the ReLU-shaped gelu, silu, mish and elu (near 0 or -1 for
#: negative inputs, near ``x`` for positive ones) the relu gain sqrt(2); softplus and softmax, and
#: any name not listed here (an activation registered by the user), the linear gain 1.
ACTIVATION_GAINS: dict[str, tuple[str, float | None]] = {
    "relu": ("relu", None),
    "leaky_relu": ("leaky_relu", 0.01),
    "tanh": ("tanh", None),
    "sigmoid": ("sigmoid", None),
    "selu": ("selu", None),
    "identity": ("linear", None),
    "linear": ("linear", None),
    "gelu": ("relu", None),
    "silu": ("relu", None),
    "mish": ("relu", None),
    "elu": ("relu", None),
    "softplus": ("linear", None),
    "softmax": ("linear", None),
}


def activation_gain(activation: str) -> float:
    """The init gain for a layer followed by ``activation`` (see :data:`ACTIVATION_GAINS`):
    ``torch.nn.init.calculate_gain`` of the activation, or of the closest one torch knows."""
    nonlinearity, param = ACTIVATION_GAINS.get(activation.lower(), ("linear", None))
    return nn.init.calculate_gain(nonlinearity, param)  # type: ignore[arg-type]


def init_weights(module: nn.Module, scheme: str = "default", activation: str = "relu") -> None:
    """Re-initialize every Linear/Conv weight of ``module`` in place; biases are zeroed.

    ``default`` keeps PyTorch's own init; ``kaiming`` is He-normal, ``std = gain / sqrt(fan_in)``;
    ``xavier`` is Glorot-uniform, ``bound = gain * sqrt(6 / (fan_in + fan_out))``. The gain is
    :func:`activation_gain` of ``activation``, the activation that follows these layers: pass
    ``"identity"`` (gain 1) for layers that no activation follows, such as an output layer or a
    skip projection. The zoo's networks do so layer by layer (their ``init`` option).
    """
    if scheme not in INITS:
        raise ZooError(f"Unknown init {scheme!r}. Valid inits: {', '.join(INITS)}.")
    if scheme == "default":
        return
    gain = activation_gain(activation)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if scheme == "kaiming":
                fan_in = m.weight[0].numel()  # in_features, or in_channels/groups * kernel size
                nn.init.normal_(m.weight, 0.0, gain / math.sqrt(fan_in))
            else:
                nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
