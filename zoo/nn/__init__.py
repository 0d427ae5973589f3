"""Plain PyTorch building blocks and backbones (no Lightning import)."""

from zoo.nn.conv import BasicBlock, ConvBlock, ConvNet, FastCifarNet, ResNet, make_norm2d
from zoo.nn.layers import init_weights, make_activation, make_norm1d
from zoo.nn.mlp import MLP, MLPBlock

__all__ = [
    "MLP",
    "BasicBlock",
    "ConvBlock",
    "ConvNet",
    "FastCifarNet",
    "MLPBlock",
    "ResNet",
    "init_weights",
    "make_activation",
    "make_norm1d",
    "make_norm2d",
]
