"""lightning-zoo: reusable LightningModules, DataModules and LightningCLI recipes.

Heavy modules (torch, lightning) load on first use, so ``import zoo`` and ``zoo --help`` stay fast.

>>> import zoo
>>> "mlp" in zoo.list_models()
True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "register_model": "zoo.registry",
    "list_models": "zoo.registry",
    "create_model": "zoo.registry",
    "create_loss": "zoo.losses",
    "create_optimizer": "zoo.optim",
    "create_scheduler": "zoo.optim",
    "ZooError": "zoo.errors",
    "ZooModule": "zoo.models",
    "MLP": "zoo.models",
    "ConvNet": "zoo.models",
    "ResNet": "zoo.models",
    "FastCifarNet": "zoo.models",
    "SequenceClassifier": "zoo.models",
    "ViT": "zoo.models",
    "GPT": "zoo.models",
    "ZooDataModule": "zoo.data",
    "SklearnDataModule": "zoo.data",
    "ArrayDataModule": "zoo.data",
    "CSVDataModule": "zoo.data",
    "ImageDataModule": "zoo.data",
    "MNISTDataModule": "zoo.data",
    "FashionMNISTDataModule": "zoo.data",
    "CIFAR10DataModule": "zoo.data",
    "ImageFolderDataModule": "zoo.data",
    "CharTextDataModule": "zoo.data",
    "SequenceTaskDataModule": "zoo.data",
    "ZooTrainer": "zoo.trainer",
    "load": "zoo.inference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
