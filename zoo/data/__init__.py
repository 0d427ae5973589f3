"""LightningDataModules with reproducible train/val/test splits."""

from zoo.data.base import ArraySplit, Loaded, ZooDataModule
from zoo.data.loader import TensorLoader
from zoo.data.tabular import ArrayDataModule, CSVDataModule, SklearnDataModule
from zoo.data.text import CharTextDataModule, RandomWindowLoader, SequenceTaskDataModule
from zoo.data.transforms import ImageBatchTransform
from zoo.data.vision import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    TorchvisionDataModule,
)

__all__ = [
    "ArrayDataModule",
    "CIFAR10DataModule",
    "CharTextDataModule",
    "FashionMNISTDataModule",
    "ImageBatchTransform",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "TorchvisionDataModule",
    "ArraySplit",
    "CSVDataModule",
    "Loaded",
    "RandomWindowLoader",
    "SequenceTaskDataModule",
    "SklearnDataModule",
    "TensorLoader",
    "ZooDataModule",
]
