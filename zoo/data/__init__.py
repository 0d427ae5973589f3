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
from zoo.registry import register_data

# the names `--data NAME` takes (zoo models --data lists them)
for _name in ("digits", "iris", "wine", "breast_cancer", "diabetes"):
    register_data(_name, SklearnDataModule, f"scikit-learn's bundled {_name} dataset.", dataset=_name)
register_data(
    "digits_images",
    SklearnDataModule,
    "scikit-learn's digits as 1x8x8 images.",
    dataset="digits",
    as_images=True,
)
register_data("mnist", MNISTDataModule, "MNIST, 28x28 handwritten digits (torchvision's files in data/).")
register_data("fashion_mnist", FashionMNISTDataModule, "Fashion-MNIST, 28x28 clothing images.")
register_data("cifar10", CIFAR10DataModule, "CIFAR-10, 32x32 colour images of 10 classes.")
register_data(
    "chars", CharTextDataModule, "Character-level text (default: Python's standard library source)."
)
register_data("sequence", SequenceTaskDataModule, "Synthetic sequence problems: reverse, sort, majority.")
register_data("csv", CSVDataModule, "A CSV file (--data.path, --data.target).")
register_data("image_folder", ImageFolderDataModule, "A folder of class sub-folders of images (--data.root).")

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
