"""Plain PyTorch building blocks and backbones (no Lightning import)."""

from zoo.nn.conv import BasicBlock, ConvBlock, ConvNet, FastCifarNet, ResNet, make_norm2d
from zoo.nn.layers import init_weights, make_activation, make_norm1d
from zoo.nn.mlp import MLP, MLPBlock
from zoo.nn.transformer import GPT, SelfAttention, SequenceTransformer, TransformerBlock, VisionTransformer

__all__ = [
    "MLP",
    "BasicBlock",
    "ConvBlock",
    "ConvNet",
    "FastCifarNet",
    "GPT",
    "MLPBlock",
    "ResNet",
    "SelfAttention",
    "SequenceTransformer",
    "TransformerBlock",
    "VisionTransformer",
    "init_weights",
    "make_activation",
    "make_norm1d",
    "make_norm2d",
]
