"""LightningModules: the task-aware base and the architectures built on it."""

from zoo.models.base import ZooModule
from zoo.models.conv import ConvNet, FastCifarNet, ResNet
from zoo.models.mlp import MLP
from zoo.models.transformer import GPT, SequenceClassifier, ViT

__all__ = ["GPT", "MLP", "ConvNet", "FastCifarNet", "ResNet", "SequenceClassifier", "ViT", "ZooModule"]
