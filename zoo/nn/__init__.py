"""Plain PyTorch building blocks and backbones (no Lightning import)."""

from zoo.nn.layers import init_weights, make_activation, make_norm1d
from zoo.nn.mlp import MLP, MLPBlock

__all__ = ["MLP", "MLPBlock", "init_weights", "make_activation", "make_norm1d"]
