"""LightningDataModules with reproducible train/val/test splits."""

from zoo.data.base import ArraySplit, Loaded, ZooDataModule
from zoo.data.loader import TensorLoader
from zoo.data.tabular import ArrayDataModule, CSVDataModule, SklearnDataModule

__all__ = [
    "ArrayDataModule",
    "ArraySplit",
    "CSVDataModule",
    "Loaded",
    "SklearnDataModule",
    "TensorLoader",
    "ZooDataModule",
]
