"""LightningModules: the task-aware base and the architectures built on it."""

from zoo.models.base import ZooModule
from zoo.models.conv import ConvNet, FastCifarNet, ResNet
from zoo.models.mlp import MLP

__all__ = ["MLP", "ConvNet", "FastCifarNet", "ResNet", "ZooModule"]
