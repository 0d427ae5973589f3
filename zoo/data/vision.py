"""Image sources: MNIST, FashionMNIST and CIFAR-10 through torchvision, and a folder of class
sub-folders.

Every image dataset here is decoded once into one ``uint8`` array ``(N, C, H, W)`` and served in
whole batches like the tabular data. Normalization and augmentation happen per batch after the
batch reaches the training device (:meth:`ImageDataModule.on_after_batch_transfer`): on a GPU the
pixels travel as bytes and are cropped, flipped and scaled there.
"""

from __future__ import annotations

import numbers
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from zoo.data.base import ArraySplit, Loaded, SplitSize, ZooDataModule
from zoo.data.transforms import ImageBatchTransform
from zoo.errors import ZooError


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class ImageDataModule(ZooDataModule):
    """Base for image datasets held in memory as uint8 pixels ``(N, C, H, W)``.

    Batches leave the loaders as raw uint8 images; after they reach the device, training batches
    are augmented (random rotation and shift, crop with zero padding, horizontal flip) and every
    batch is normalized
    per channel, with the dataset's published statistics (:attr:`mean`, :attr:`std`) or, for
    datasets without them, statistics of the training split.

    Args:
        crop_padding: random crop with this many pixels of zero padding on each side
            (training only; 0 turns it off).
        hflip: random horizontal flips (training only). Off for digits and letters.
        rotate: random rotations by up to this many degrees either way (training only; 0: off).
        translate: random shifts by up to this fraction of the width and height (training only).
        **kwargs: split and batch options of :class:`ZooDataModule`; ``standardize=False``
            scales pixels to ``[0, 1]`` only.
    """

    #: per-channel statistics of the dataset in [0, 1] units; empty: fit on the training split
    mean: ClassVar[tuple[float, ...]] = ()
    std: ClassVar[tuple[float, ...]] = ()

    def __init__(
        self,
        crop_padding: int = 0,
        hflip: bool = False,
        rotate: float = 0.0,
        translate: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ZooError(
                f"data.crop_padding must be an integer >= 0 (0: no random crop); got {crop_padding!r}."
            )
        if not _is_number(rotate) or not 0 <= rotate <= 180:
            raise ZooError(f"data.rotate must be in [0, 180] degrees (0: no rotation); got {rotate!r}.")
        if not _is_number(translate) or not 0 <= translate < 0.5:
            raise ZooError(
                f"data.translate must be a fraction in [0, 0.5) of the image size (0: no shift); "
                f"got {translate!r}."
            )
        super().__init__(**kwargs)
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.rotate = rotate
        self.translate = translate
        self.channel_mean: tuple[float, ...] = (0.0,)
        self.channel_std: tuple[float, ...] = (1.0,)
        self.transform: ImageBatchTransform | None = None

    # ------------------------------------------------------------------ base hooks

    def _check_features(self, x: np.ndarray) -> None:
        if x.dtype != np.uint8 or x.ndim != 4:
            raise ZooError(
                f"data: images must be uint8 pixels of shape (N, C, H, W); got {x.dtype} {tuple(x.shape)}."
            )

    def _standardize(self, splits: dict[str, ArraySplit]) -> None:
        if type(self).mean:
            self.channel_mean, self.channel_std = tuple(self.mean), tuple(self.std)
            return
        self.channel_mean, self.channel_std = channel_statistics(self._train_pixel_chunks(splits["train"]))

    def _train_pixel_chunks(self, train: ArraySplit) -> Iterator[np.ndarray]:
        """The training images as uint8 ``(n, C, H, W)`` chunks (a float64 copy of all pixels at
        once could be large)."""
        for start in range(0, len(train.x), 4096):
            yield train.x[start : start + 4096]

    def prepare(self) -> None:
        super().prepare()
        if self.transform is None:
            self.transform = ImageBatchTransform(
                self.channel_mean,
                self.channel_std,
                self.crop_padding,
                self.hflip,
                seed=self.seed,
                rotate=self.rotate,
                translate=self.translate,
            )

    def _features_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x))  # stays uint8: 4x less memory and transfer

    def preprocessing(self) -> dict[str, Any]:
        """As for tables, with the images' normalization: uint8 pixels ``p`` become
        ``(p / 255 - mean) / std`` per channel; ``image_size`` is the resizing the files had."""
        facts = super().preprocessing()
        facts.update(
            kind="image",
            mean=list(self.channel_mean),
            std=list(self.channel_std),
            image_size=getattr(self, "image_size", None),
        )
        return facts

    # ------------------------------------------------------------------ per-batch transform

    def random_state(self) -> dict[str, Any]:
        """The augmentation generators' states on this rank (stored in checkpoints for resuming)."""
        return {"augment": self.transform.random_state() if self.transform is not None else {}}

    def set_random_state(self, state: dict[str, Any]) -> None:
        self.prepare()
        if self.trainer is not None:
            self.transform.rank = self.trainer.global_rank
        self.transform.set_random_state(state.get("augment", {}))

    def transform_batch(self, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Normalize a batch of uint8 images (and augment it, if ``train``), on its own device."""
        self.prepare()
        return self.transform(x, train=train)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, *rest = batch
        if x.dtype != torch.uint8:
            return batch
        training = self.trainer is not None and self.trainer.training
        if self.trainer is not None:
            self.prepare()
            self.transform.rank = self.trainer.global_rank  # each rank draws its own augmentation
        return (self.transform_batch(x, train=training), *rest)


# ---------------------------------------------------------------------------- torchvision datasets


class TorchvisionDataModule(ImageDataModule):
    """A torchvision dataset with an official train/test split, loaded from ``data_dir``.

    Validation is carved from the official training set (stratified, seeded); the official test
    set is the test split. With ``download=False`` (the default) nothing is fetched: missing files
    raise one message that says where they are expected. Compressed copies (``.gz`` files, the
    CIFAR archive) found there are unpacked without a download.

    Unpacking and downloading happen in :meth:`prepare_data`, which Lightning runs once per node
    before any process reads; reading happens in ``setup``. The facts the model needs (task,
    classes, image shape) are class attributes, so building a model from the DataModule reads
    no file, and several processes started at once (torchrun, SLURM) never download together.

    Args:
        data_dir: the folder torchvision reads and downloads into.
        download: fetch the files if they are not in ``data_dir`` (needs internet).
        val_size: validation examples taken from the official training set.
        **kwargs: augmentation, split and batch options of :class:`ImageDataModule`.
    """

    #: the class in ``torchvision.datasets``
    dataset_name: ClassVar[str] = ""
    #: where the files live under ``data_dir`` and their names
    folder: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    #: an archive in ``data_dir`` that holds ``folder`` (CIFAR); else each file may be ``<name>.gz``
    archive: ClassVar[str] = ""
    #: folders where an operating-system package installs the (``.gz``) files, read when
    #: ``data_dir`` has none, and how to get that package
    system_dirs: ClassVar[tuple[str, ...]] = ()
    system_package: ClassVar[str] = ""
    #: the class names, in label order, and the shape of one image: known without the files
    class_names: ClassVar[tuple[str, ...]] = ()
    image_shape: ClassVar[tuple[int, int, int]] = (1, 1, 1)

    def __init__(
        self,
        data_dir: str | Path = "data",
        download: bool = False,
        val_size: SplitSize = 5000,
        **kwargs: Any,
    ) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.data_dir = Path(data_dir)
        self.download = download

    @property
    def task(self) -> str:
        return "multiclass"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> list[int]:
        return list(self.image_shape)

    @property
    def classes(self) -> list[str]:
        return list(self.class_names)

    @property
    def files_dir(self) -> Path:
        return self.data_dir / self.folder

    def _missing(self) -> list[str]:
        return [name for name in self.files if not (self.files_dir / name).is_file()]

    def _unpack_local_copies(self) -> None:
        from torchvision.datasets.utils import extract_archive

        if self.archive:
            if (self.data_dir / self.archive).is_file():
                extract_archive(str(self.data_dir / self.archive), str(self.data_dir))
            return
        for name in self._missing():
            places = [self.files_dir, *map(Path, self.system_dirs)]
            packed = next((d / f"{name}.gz" for d in places if (d / f"{name}.gz").is_file()), None)
            if packed is not None:
                self.files_dir.mkdir(parents=True, exist_ok=True)
                extract_archive(str(packed), str(self.files_dir))

    def _where(self) -> str:
        packed = f"{self.archive} in {self.data_dir}" if self.archive else "the same names with .gz"
        where = f"{self.files_dir} (expected {', '.join(self.files)}; or {packed})"
        for folder in self.system_dirs:
            where += f" or in {folder} ({self.system_package})"
        return where

    def prepare_data(self) -> None:
        """Unpack local archives, or download (with ``download=True``), when files are missing;
        once per node under several processes. Raises :class:`ZooError` when the files can't be had."""
        if not self._missing():
            return
        self._unpack_local_copies()
        if not self._missing():
            return
        if not self.download:
            raise ZooError(
                f"data: {self.dataset_name} files not found in {self._where()}. Add --data.download true "
                f"to download them (needs internet), or copy them there; --data.data_dir sets the folder."
            )
        import torchvision.datasets

        created = _new_paths_guard(self.data_dir)
        try:
            getattr(torchvision.datasets, self.dataset_name)(str(self.data_dir), train=True, download=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            created.remove_new()
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise ZooError(
                f"data.download: could not download {self.dataset_name} into {self.data_dir} ({reason}). "
                f"Without internet, copy the files to {self._where()}."
            ) from None

    def load(self) -> Loaded:
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, self.dataset_name)
        self.prepare_data()  # without a Trainer nobody called it: does nothing when the files are there
        try:
            train = dataset_class(str(self.data_dir), train=True)
            test = dataset_class(str(self.data_dir), train=False)
        except (RuntimeError, OSError, ValueError) as err:
            raise ZooError(
                f"data: the {self.dataset_name} files in {self.files_dir} are incomplete or corrupted "
                f"({err}). "
                "Delete them and run again with --data.download true, or copy good files there."
            ) from None
        x_train, x_test = _pixels(train.data), _pixels(test.data)
        if x_train.shape[1:] != self.image_shape or len(train.classes) != len(self.class_names):
            found, expected = "x".join(map(str, x_train.shape[1:])), "x".join(map(str, self.image_shape))
            raise ZooError(
                f"data: the {self.dataset_name} files in {self.files_dir} hold {len(train.classes)} classes "
                f"of {found} images, not {len(self.class_names)} of {expected}; copy the original files."
            )
        return Loaded(
            ArraySplit(x_train, np.asarray(train.targets, dtype=np.int64)),
            test=ArraySplit(x_test, np.asarray(test.targets, dtype=np.int64)),
            task="multiclass",
            classes=list(self.class_names),
        )


def channel_statistics(chunks: Iterable[np.ndarray]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation in ``[0, 1]`` units of uint8 image chunks
    ``(n, C, H, W)``, accumulated in float64 (a constant channel gets std 1, not 0)."""
    total = squares = None
    count = 0
    for chunk in chunks:
        scaled = np.asarray(chunk, dtype=np.float64) / 255.0
        sums, sq = scaled.sum(axis=(0, 2, 3)), np.square(scaled).sum(axis=(0, 2, 3))
        total, squares = (sums, sq) if total is None else (total + sums, squares + sq)
        count += scaled.shape[0] * scaled.shape[2] * scaled.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(v) if v > 1e-6 else 1.0 for v in std)


def _pixels(data: Any) -> np.ndarray:
    """torchvision's ``.data`` as uint8 ``(N, C, H, W)``: MNIST's (N, H, W), CIFAR's (N, H, W, C)."""
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    array = array[:, None] if array.ndim == 3 else array.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(array, dtype=np.uint8)


class _new_paths_guard:
    """Remembers what exists under a folder, to remove what a failed download left behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_existed = root.exists()
        self.before = set(root.rglob("*")) if self.root_existed else set()

    def remove_new(self) -> None:
        if not self.root_existed:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for path in sorted(set(self.root.rglob("*")) - self.before, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class MNISTDataModule(TorchvisionDataModule):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 1x28x28, 10 classes.

    Files: ``<data_dir>/MNIST/raw/`` (the four idx files, or their ``.gz`` originals).
    """

    dataset_name = "MNIST"
    folder = "MNIST/raw"
    files = _MNIST_FILES
    class_names = tuple(f"{d} - {name}" for d, name in enumerate(_DIGIT_NAMES))
    image_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)


class FashionMNISTDataModule(TorchvisionDataModule):
    """Fashion-MNIST: Zalando's clothing images in MNIST's format and sizes, 10 classes.

    Files: ``<data_dir>/FashionMNIST/raw/`` (the four idx files, or their ``.gz`` originals). When
    they are not there, the ``.gz`` files of Debian's ``dataset-fashion-mnist`` package
    (``/usr/share/datasets/fashion-mnist``) are unpacked into it: real images, offline.
    """

    dataset_name = "FashionMNIST"
    folder = "FashionMNIST/raw"
    files = _MNIST_FILES
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    system_package = "Debian/Ubuntu: apt-get install dataset-fashion-mnist"
    class_names = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    image_shape = (1, 28, 28)
    mean = (0.2860,)
    std = (0.3530,)


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 3x32x32, 10 classes.

    Files: ``<data_dir>/cifar-10-batches-py/`` (or ``cifar-10-python.tar.gz`` in ``data_dir``).
    Augmented by default the standard way: random crops with 4 pixels of padding and flips.
    """

    dataset_name = "CIFAR10"
    folder = "cifar-10-batches-py"
    files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
    archive = "cifar-10-python.tar.gz"
    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    image_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(
        self,
        data_dir: str | Path = "data",
        download: bool = False,
        crop_padding: int = 4,
        hflip: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data_dir=data_dir, download=download, crop_padding=crop_padding, hflip=hflip, **kwargs
        )


# ---------------------------------------------------------------------------- a folder of images


class ImageFolderDataModule(ImageDataModule):
    """A folder with one sub-folder of images per class: ``root/<class>/<image>.png``.

    Class names are the sub-folder names, in sorted order. The images are split into seeded,
    stratified train/val/test sets; normalization statistics are fit on the training split.

    **In memory** (``in_memory: true``, the default) every image is decoded once into one uint8
    array and served in whole-batch slices, the fastest form for data that fits. **Streaming**
    (``in_memory: false``) keeps only the file list: each image is decoded when a batch needs it,
    in ``num_workers`` DataLoader worker processes, so a folder larger than memory trains in
    constant memory. Both forms make the same splits, fit the same statistics (streaming reads the
    training images once for them) and serve the same batches in the same order for the same seed
    (a :class:`~zoo.data.loader.ShardSampler`, also under several processes); augmentation and
    normalization run per batch on the device in both.

    Args:
        root: the folder of class sub-folders.
        test_root: an official test set laid out the same way (optional); validation and
            training then share ``root``.
        image_size: resize every image to ``image_size x image_size`` (required when the
            images differ in size).
        grayscale: load one channel instead of three (RGB).
        in_memory: decode everything once into memory (``true``) or stream from the files.
        num_workers: worker processes that decode images when streaming (0: in the main process).
            Streaming keeps nothing on the device (``on_device`` applies in memory).
        **kwargs: augmentation, split and batch options of :class:`ImageDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        test_root: str | Path | None = None,
        image_size: int | None = None,
        grayscale: bool = False,
        in_memory: bool = True,
        num_workers: int = 2,
        **kwargs: Any,
    ) -> None:
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1
        ):
            raise ZooError(
                f"data.image_size must be a whole number of pixels >= 1 (or None: the images' own size); "
                f"got {image_size!r}."
            )
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ZooError(
                f"data.num_workers must be an integer >= 0 (0: decode in the main process); "
                f"got {num_workers!r}."
            )
        if not in_memory and kwargs.get("on_device") is True:
            raise ZooError(
                "data.on_device true needs the images in memory (data.in_memory true); streaming "
                "decodes each batch from the files on the host."
            )
        super().__init__(**kwargs)
        self.root = Path(root)
        self.test_root = Path(test_root) if test_root is not None else None
        self.image_size = image_size
        self.grayscale = grayscale
        self.in_memory = in_memory
        self.num_workers = num_workers
        self._paths: list[str] = []  # streaming: every file; the splits hold indices into it
        self._image_shape: list[int] = []

    def load(self) -> Loaded:
        x, y, classes = self._read(self.root, "root")
        test = None
        if self.test_root is not None:
            x_test, y_test, test_classes = self._read(self.test_root, "test_root")
            if test_classes != classes:
                raise ZooError(
                    f"data.test_root: {self.test_root} has classes {test_classes}, "
                    f"but data.root has {classes}; "
                    "both need the same class sub-folders."
                )
            if self._shape_of(x_test) != self._shape_of(x):
                shape, test_shape = self._shape_of(x), self._shape_of(x_test)
                raise ZooError(
                    f"data.test_root: its images are {test_shape[2]}x{test_shape[1]}, those of data.root "
                    f"{shape[2]}x{shape[1]}; set data.image_size to resize both."
                )
            test = ArraySplit(x_test, y_test)
        if not self.in_memory:
            self._image_shape = list(self._shape_of(x))
        return Loaded(ArraySplit(x, y), test=test, task="multiclass", classes=classes)

    def _shape_of(self, x: np.ndarray) -> tuple[int, ...]:
        """``(C, H, W)`` of the images that ``x`` holds (pixels) or indexes (streaming)."""
        if self.in_memory:
            return tuple(x.shape[1:])
        return self._file_shapes[int(x[0, 0])]

    def _read(self, root: Path, option: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The folder's images (uint8 ``(N, C, H, W)``; streaming: their indices in
        :attr:`_paths`, as ``(N, 1)``), labels and class names."""
        from torchvision.datasets import ImageFolder

        if not root.is_dir():
            raise ZooError(f"data.{option}: no such folder: {root}")
        try:
            listing = ImageFolder(str(root))
        except (FileNotFoundError, RuntimeError) as err:
            raise ZooError(
                f"data.{option}: {err} Expected one sub-folder of images per class: "
                f"{root}/<class>/<image>.png"
            ) from None
        _check_linked_images(root, option, listing.samples, listing.classes)
        paths = [path for path, _ in listing.samples]
        labels = np.asarray([label for _, label in listing.samples], dtype=np.int64)
        if self.in_memory:
            with ThreadPoolExecutor(max_workers=8) as pool:
                images = list(pool.map(self._decode, paths))
            self._check_sizes(root, paths, [img.shape for img in images])
            return np.stack(images), labels, list(listing.classes)
        with ThreadPoolExecutor(max_workers=8) as pool:
            shapes = list(pool.map(self._header_shape, paths))
        self._check_sizes(root, paths, shapes)
        if not hasattr(self, "_file_shapes"):
            self._file_shapes: dict[int, tuple[int, ...]] = {}
        first = len(self._paths)
        self._paths += paths
        self._file_shapes[first] = shapes[0]
        return np.arange(first, first + len(paths), dtype=np.int64)[:, None], labels, list(listing.classes)

    def _check_sizes(self, root: Path, paths: list[str], shapes: list[tuple[int, ...]]) -> None:
        odd = next((i for i, shape in enumerate(shapes) if shape[1:] != shapes[0][1:]), None)
        if odd is not None:
            raise ZooError(
                f"data: the images in {root} differ in size ({_size(shapes[0])} in {paths[0]}, "
                f"{_size(shapes[odd])} in {paths[odd]}); set data.image_size to resize them all."
            )

    def _decode(self, path: str) -> np.ndarray:
        return decode_image(path, self.grayscale, self.image_size)

    def _header_shape(self, path: str) -> tuple[int, ...]:
        """``(C, H, W)`` the decoded image will have, read from the file's header alone."""
        from PIL import Image, UnidentifiedImageError

        channels = 1 if self.grayscale else 3
        if self.image_size is not None:
            return (channels, self.image_size, self.image_size)
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (UnidentifiedImageError, OSError) as err:
            raise ZooError(f"data: cannot read the image {path} ({err}).") from None
        return (channels, height, width)

    # ------------------------------------------------------------------ streaming

    @property
    def input_shape(self) -> list[int]:
        if self.in_memory:
            return super().input_shape
        self.prepare()
        return list(self._image_shape)

    def _check_features(self, x: np.ndarray) -> None:
        if self.in_memory:
            super()._check_features(x)

    def _files(self, part: ArraySplit, targets: bool = True) -> ImageFiles:
        paths = [self._paths[i] for i in part.x[:, 0].tolist()]
        return ImageFiles(paths, part.y if targets else None, self.grayscale, self.image_size)

    def _train_pixel_chunks(self, train: ArraySplit) -> Iterator[np.ndarray]:
        if self.in_memory:
            yield from super()._train_pixel_chunks(train)
            return
        from torch.utils.data import DataLoader

        files = self._files(train, targets=False)
        for batch in DataLoader(files, batch_size=1024, num_workers=self.num_workers):
            yield batch.numpy()

    def setup(self, stage: str | None = None) -> None:
        if self.in_memory:
            super().setup(stage)
        else:
            self.prepare()

    def _loader(self, name: str, train: bool = False, targets: bool = True) -> Any:
        if self.in_memory:
            return super()._loader(name, train=train, targets=targets)
        from zoo.data.loader import ShardedDataLoader, ShardSampler

        self.prepare()
        part = self._splits[name]
        bs = self.batch_size if train else self.eval_batch_size
        rank, world = self.distributed_position()
        sampler = ShardSampler(
            len(part), shuffle=train, seed=self.seed, rank=rank, world_size=world, even=train
        )
        return ShardedDataLoader(
            self._files(part, targets=targets),
            batch_size=bs,
            sampler=sampler,
            drop_last=train and len(sampler) % bs == 1,  # as in memory: no batch of one (batch norm)
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )


def _check_linked_images(root: Path, option: str, samples: list[tuple[str, int]], classes: list[str]) -> None:
    """Raise :class:`ZooError` for an image reached through a link out of its class folder, or
    twice: torchvision's ``ImageFolder`` follows links, so ``cat/up -> ..`` put every class's
    images under ``cat`` too, once per level (820 samples from 20 files, dog images labelled cat,
    copies on both sides of the split). A class folder that is itself a link is fine."""
    seen: dict[str, str] = {}
    for path, label in samples:
        real = os.path.realpath(path)
        home = os.path.realpath(root / classes[label])
        if not real.startswith(home + os.sep):
            raise ZooError(
                f"data.{option}: {path} is reached through a link out of the class folder "
                f"'{classes[label]}' (it is {real}); a class's images must lie in its own folder."
            )
        if real in seen:
            raise ZooError(
                f"data.{option}: {real} is in {root} twice ({seen[real]} and {path}), through a link."
            )
        seen[real] = path


def _as_8_bit(img: Any) -> Any:
    """A 16-bit (or 32-bit integer) grey image as 8-bit grey, its range kept: PIL's convert() to
    ``L`` or ``RGB`` clips such values at 255, so a 16-bit image came out almost white."""
    from PIL import Image

    if not (img.mode.startswith("I;16") or img.mode == "I"):
        return img
    values = np.asarray(img, dtype=np.int64)
    top = 65535 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255
    return Image.fromarray((np.clip(values, 0, top) * 255 // top).astype(np.uint8), mode="L")


def decode_image(path: str, grayscale: bool = False, image_size: int | None = None) -> np.ndarray:
    """One image file as uint8 ``(C, H, W)``: RGB (or one grey channel), resized with bilinear
    filtering to ``image_size x image_size`` if given. An unreadable file is a :class:`ZooError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = _as_8_bit(img)
            img = img.convert("L" if grayscale else "RGB")
            if image_size is not None:
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            array = np.array(img, dtype=np.uint8)  # a copy: PIL's buffer is read-only
    except (UnidentifiedImageError, OSError) as err:
        raise ZooError(f"data: cannot read the image {path} ({err}).") from None
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


class ImageFiles(torch.utils.data.Dataset):
    """Images decoded from their files on each access (in DataLoader workers): item ``i`` is
    ``(uint8 (C, H, W) tensor, label)``, or the image alone when there are no labels."""

    def __init__(
        self,
        paths: list[str],
        labels: np.ndarray | None,
        grayscale: bool = False,
        image_size: int | None = None,
    ) -> None:
        self.paths = paths
        self.labels = labels
        self.grayscale = grayscale
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        image = torch.from_numpy(decode_image(self.paths[index], self.grayscale, self.image_size))
        return image if self.labels is None else (image, int(self.labels[index]))


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[1]}"
