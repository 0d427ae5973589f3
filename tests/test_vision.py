"""Image DataModules on files written in each dataset's real on-disk format, and the per-batch
augmentation and normalization."""

from __future__ import annotations

import gzip
import math
import pickle
import re
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision

from tests.conftest import quiet_trainer
from zoo.data import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    ImageBatchTransform,
    ImageFolderDataModule,
    MNISTDataModule,
)
from zoo.data.transforms import affine, random_affine, random_crop, random_hflip
from zoo.errors import ZooError
from zoo.models import ConvNet

# ---------------------------------------------------------------------------- writers


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of MNIST: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def read_idx_gz(path: Path) -> np.ndarray:
    """An MNIST-format ``.gz`` file as an array (the inverse of :func:`write_idx`)."""
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_cifar10_from(
    images: np.ndarray, labels: np.ndarray, root: Path, per_batch: int, n_test: int
) -> None:
    """Grey 28x28 images (real Fashion-MNIST) in CIFAR-10's python format: padded to 32x32 and
    repeated over R, G, B, the first ``5 * per_batch`` as training batches, the next as the test batch."""
    rgb = np.repeat(np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None], 3, axis=1).reshape(len(images), 3072)
    batches = {}
    for i, name in enumerate(CIFAR_BATCHES):
        part = slice(i * per_batch, i * per_batch + (n_test if name == "test_batch" else per_batch))
        batches[name] = (rgb[part], labels[part])
    write_cifar_batches(root / "cifar-10-batches-py", batches, per_batch)


def write_cifar_batches(
    folder: Path, batches: dict[str, tuple[np.ndarray, np.ndarray]], per_batch: int
) -> None:
    """CIFAR-10's pickled batch files (``(N, 3072)`` uint8 rows, R, G, B planes) and batches.meta."""
    folder.mkdir(parents=True)
    for name, (rows, labels) in batches.items():
        entry = {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": rows,
            "filenames": [f"{j}.png" for j in range(len(rows))],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def class_images(labels: np.ndarray, size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Noisy images whose class is a bright horizontal band (row block ``label``), HW or HWC."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), size, size, channels), dtype=np.uint8)
    band = size // 10 or 1
    for i, label in enumerate(labels):
        images[i, label * band : (label + 1) * band] = 250
    return images[..., 0] if channels == 1 else images


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 120, n_test: int = 40, gz: bool = False):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    y_train = np.arange(n_train) % 10
    y_test = np.arange(n_test) % 10
    x_train = class_images(y_train, 28, seed=1)
    x_test = class_images(y_test, 28, seed=2)
    for name, array in [
        ("train-images-idx3-ubyte", x_train),
        ("train-labels-idx1-ubyte", y_train),
        ("t10k-images-idx3-ubyte", x_test),
        ("t10k-labels-idx1-ubyte", y_test),
    ]:
        write_idx(raw / name, array.astype(np.uint8))
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
            (raw / name).unlink()
    return x_train, y_train, x_test, y_test


CIFAR_BATCHES = [*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 20, archive: bool = False):
    """The python version of CIFAR-10: pickled dicts of (N, 3072) uint8 rows (R, G, B planes)."""
    folder = root / "cifar-10-batches-py"
    batches = {}
    for i, name in enumerate(CIFAR_BATCHES):
        n = n_test if name == "test_batch" else per_batch
        labels = (np.arange(n) + i) % 10
        hwc = class_images(labels, 32, channels=3, seed=10 + i)
        batches[name] = (hwc.transpose(0, 3, 1, 2).reshape(n, 3072), labels)
    write_cifar_batches(folder, batches, per_batch)
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return batches


def write_png_tree(root: Path, per_class: int = 10, size: int = 12, classes=("cat", "dog", "emu")) -> None:
    from PIL import Image

    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size, size, 3), 20 + i, dtype=np.uint8)
            pixels[..., k] = 200  # each class has its own bright channel
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")


# ---------------------------------------------------------------------------- torchvision sources


def test_mnist_reads_idx_files_and_carves_validation_from_train(tmp_path: Path):
    x_train, y_train, x_test, y_test = write_mnist(tmp_path)
    dm = MNISTDataModule(data_dir=tmp_path, val_size=20, batch_size=16)
    assert dm.split_sizes() == {"train": 100, "val": 20, "test": 40}
    assert dm.input_shape == [1, 28, 28] and dm.num_classes == 10 and dm.task == "multiclass"
    assert dm.classes == torchvision.datasets.MNIST.classes
    splits = dm._splits
    # the official test set is the test split, untouched and in order
    np.testing.assert_array_equal(splits["test"].x[:, 0], x_test)
    np.testing.assert_array_equal(splits["test"].y, y_test)
    # train + val are the official training images, stratified: 2 of each class in val
    together = np.concatenate([splits["train"].x, splits["val"].x])[:, 0]
    assert sorted(map(bytes, together)) == sorted(map(bytes, x_train))
    assert np.bincount(splits["val"].y, minlength=10).tolist() == [2] * 10
    assert splits["train"].x.dtype == np.uint8
    # published statistics, not the fake files' own
    assert dm.transform.mean == [0.1307] and dm.transform.std == [0.3081]


def test_split_depends_on_the_seed_only(tmp_path: Path):
    write_mnist(tmp_path)

    def val_images(seed: int) -> np.ndarray:
        dm = MNISTDataModule(data_dir=tmp_path, val_size=20, seed=seed)
        dm.prepare()
        return dm._splits["val"].x

    np.testing.assert_array_equal(val_images(3), val_images(3))
    assert not np.array_equal(val_images(3), val_images(4))


def test_fashion_mnist_unpacks_gz_files(tmp_path: Path):
    _, _, x_test, _ = write_mnist(tmp_path, folder="FashionMNIST", gz=True)
    dm = FashionMNISTDataModule(data_dir=tmp_path, val_size=10)
    dm.prepare()
    assert (tmp_path / "FashionMNIST/raw/train-images-idx3-ubyte").is_file()
    np.testing.assert_array_equal(dm._splits["test"].x[:, 0], x_test)
    assert dm.classes[0] == "T-shirt/top"
    assert dm.transform.mean == [0.2860] and dm.transform.std == [0.3530]


def test_fashion_mnist_falls_back_to_the_debian_package(tmp_path: Path, monkeypatch):
    # the package's folder holds the four .gz files; data_dir has nothing yet
    _, _, x_test, _ = write_mnist(tmp_path / "package", folder="FashionMNIST", gz=True)
    package = tmp_path / "package" / "FashionMNIST" / "raw"
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(package),))
    dm = FashionMNISTDataModule(data_dir=tmp_path / "data", val_size=10)
    dm.prepare()
    assert (tmp_path / "data/FashionMNIST/raw/t10k-images-idx3-ubyte").is_file()
    np.testing.assert_array_equal(dm._splits["test"].x[:, 0], x_test)
    # neither place: the message names both
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(tmp_path / "not_installed"),))
    with pytest.raises(ZooError) as err:
        FashionMNISTDataModule(data_dir=tmp_path / "empty").prepare()
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in str(err.value)
    assert (
        f"or in {tmp_path / 'not_installed'} (Debian/Ubuntu: apt-get install dataset-fashion-mnist)"
        in str(err.value)
    )


@pytest.mark.parametrize("archive", [False, True], ids=["folder", "tar.gz"])
def test_cifar10_reads_pickled_batches(tmp_path: Path, no_cifar_checksum, archive: bool):
    batches = write_cifar10(tmp_path, archive=archive)
    dm = CIFAR10DataModule(data_dir=tmp_path, val_size=10)
    assert dm.split_sizes() == {"train": 90, "val": 10, "test": 20}
    assert dm.input_shape == [3, 32, 32] and dm.classes == CIFAR_CLASSES
    rows, labels = batches["test_batch"]
    # rows are R, G, B planes of 32x32: the images must come out (N, C, H, W) with the same pixels
    np.testing.assert_array_equal(dm._splits["test"].x, rows.reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(dm._splits["test"].y, labels)
    assert dm.crop_padding == 4 and dm.hflip  # CIFAR-10's standard augmentation is on by default
    assert dm.transform.mean == [0.4914, 0.4822, 0.4465]


def test_missing_files_say_where_they_are_expected(tmp_path: Path):
    dm = MNISTDataModule(data_dir=tmp_path / "nowhere")
    with pytest.raises(ZooError) as err:
        dm.prepare()
    message = str(err.value)
    assert f"{tmp_path / 'nowhere' / 'MNIST' / 'raw'}" in message
    assert "train-images-idx3-ubyte" in message and "--data.download true" in message
    assert not (tmp_path / "nowhere").exists()


def test_torchvision_facts_need_no_files(tmp_path: Path):
    import torchvision.datasets as tvd

    for dm, shape in ((MNISTDataModule, [1, 28, 28]), (CIFAR10DataModule, [3, 32, 32])):
        data = dm(data_dir=tmp_path / "nowhere")
        assert (data.task, data.num_classes, data.input_shape) == ("multiclass", 10, shape)
    assert MNISTDataModule(data_dir=tmp_path).classes == tvd.MNIST.classes
    assert FashionMNISTDataModule(data_dir=tmp_path).classes == tvd.FashionMNIST.classes
    assert CIFAR10DataModule(data_dir=tmp_path).classes == CIFAR_CLASSES  # torchvision reads them from a file
    assert not (tmp_path / "nowhere").exists()


def test_trainer_unpacks_in_prepare_data_once_and_reads_in_setup(tmp_path: Path, monkeypatch):
    write_mnist(tmp_path, gz=True)
    dm = MNISTDataModule(data_dir=tmp_path, val_size=20, batch_size=40)
    calls = []
    original = MNISTDataModule.prepare_data

    def counted(self):
        calls.append(self.trainer is not None)
        original(self)

    monkeypatch.setattr(MNISTDataModule, "prepare_data", counted)
    model = ConvNet(widths=[4], task=dm.task, num_classes=dm.num_classes, input_shape=dm.input_shape)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()  # the model needed no file
    quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1).fit(model, datamodule=dm)
    assert calls[0] is True  # Lightning's hook ran first and unpacked the files
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert dm.split_sizes() == {"train": 100, "val": 20, "test": 40}


def test_corrupt_cifar_files_are_reported(tmp_path: Path):
    write_cifar10(tmp_path)  # real md5 checks on: our files don't match
    with pytest.raises(ZooError, match="incomplete or corrupted"):
        CIFAR10DataModule(data_dir=tmp_path).prepare()


@pytest.mark.parametrize("existing", [False, True], ids=["new-dir", "existing-dir"])
def test_failed_download_is_clear_and_leaves_nothing(tmp_path: Path, monkeypatch, existing: bool):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    data_dir = tmp_path / "data"
    if existing:
        data_dir.mkdir()
        (data_dir / "keep.txt").write_text("mine")
    dm = MNISTDataModule(data_dir=data_dir, download=True)
    with pytest.raises(ZooError, match=r"could not download MNIST into .*offline.*copy the files"):
        dm.prepare()
    if existing:
        assert [p.name for p in data_dir.rglob("*")] == ["keep.txt"]
    else:
        assert not data_dir.exists()


def test_bad_augmentation_option():
    with pytest.raises(ZooError, match="data.crop_padding must be an integer >= 0"):
        MNISTDataModule(crop_padding=-1)


# ---------------------------------------------------------------------------- ImageFolder


def test_image_folder_reads_png_tree_with_seeded_stratified_splits(tmp_path: Path):
    write_png_tree(tmp_path / "tree")
    dm = ImageFolderDataModule(root=tmp_path / "tree", val_size=3, test_size=6, seed=1)
    assert dm.split_sizes() == {"train": 21, "val": 3, "test": 6}
    assert dm.classes == ["cat", "dog", "emu"] and dm.input_shape == [3, 12, 12]
    for name, part in dm._splits.items():
        assert np.bincount(part.y, minlength=3).tolist() == [len(part) // 3] * 3, name
        # PNG is lossless: each image has its class's bright channel, exactly
        for image, label in zip(part.x, part.y, strict=True):
            assert image[label].min() == 200 and np.delete(image, label, axis=0).max() < 200
    # statistics are fit on the training split
    train = dm._splits["train"].x.astype(np.float64) / 255
    np.testing.assert_allclose(dm.channel_mean, train.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(dm.channel_std, train.std(axis=(0, 2, 3)), rtol=1e-6)
    again = ImageFolderDataModule(root=tmp_path / "tree", val_size=3, test_size=6, seed=1)
    again.prepare()
    np.testing.assert_array_equal(again._splits["val"].x, dm._splits["val"].x)


def test_image_folder_resize_grayscale_and_test_root(tmp_path: Path):
    write_png_tree(tmp_path / "train", size=12)
    write_png_tree(tmp_path / "test", per_class=2, size=20)
    dm = ImageFolderDataModule(
        root=tmp_path / "train", test_root=tmp_path / "test", image_size=8, grayscale=True, val_size=3
    )
    assert dm.split_sizes() == {"train": 27, "val": 3, "test": 6}
    assert dm.input_shape == [1, 8, 8]


def test_image_folder_errors(tmp_path: Path):
    with pytest.raises(ZooError, match="data.root: no such folder"):
        ImageFolderDataModule(root=tmp_path / "missing").prepare()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match=r"data.root: .*<class>/<image>.png"):
        ImageFolderDataModule(root=tmp_path / "empty").prepare()
    write_png_tree(tmp_path / "mixed", per_class=3)
    from PIL import Image

    Image.new("RGB", (16, 9)).save(tmp_path / "mixed" / "cat" / "wide.png")
    with pytest.raises(
        ZooError, match=r"differ in size \(12x12 in .*, 16x9 in .*wide.png\); set data.image_size"
    ):
        ImageFolderDataModule(root=tmp_path / "mixed").prepare()
    (tmp_path / "mixed" / "cat" / "wide.png").write_bytes(b"not a png")
    with pytest.raises(ZooError, match="cannot read the image .*wide.png"):
        ImageFolderDataModule(root=tmp_path / "mixed").prepare()
    write_png_tree(tmp_path / "other", per_class=2, classes=("cat", "dog"))
    (tmp_path / "mixed" / "cat" / "wide.png").unlink()
    with pytest.raises(ZooError, match="data.test_root: .* has classes"):
        ImageFolderDataModule(root=tmp_path / "mixed", test_root=tmp_path / "other").prepare()


def _batches(loader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(b) if isinstance(b, (list, tuple)) else (b,) for b in loader]


def _assert_same_batches(a, b) -> None:
    a, b = _batches(a), _batches(b)
    assert len(a) == len(b) > 0
    for batch_a, batch_b in zip(a, b, strict=True):
        for ta, tb in zip(batch_a, batch_b, strict=True):
            assert ta.dtype == tb.dtype and torch.equal(ta, tb)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_image_folder_serves_the_batches_of_the_in_memory_form(tmp_path: Path, workers: int):
    write_png_tree(tmp_path / "tree", per_class=10)
    options = {"root": tmp_path / "tree", "val_size": 3, "test_size": 6, "seed": 1, "batch_size": 4}
    memory = ImageFolderDataModule(**options)
    stream = ImageFolderDataModule(**options, in_memory=False, num_workers=workers)
    assert stream.split_sizes() == memory.split_sizes() == {"train": 21, "val": 3, "test": 6}
    assert stream.input_shape == memory.input_shape == [3, 12, 12]
    assert stream._splits["train"].x.shape == (21, 1)  # file indices, not pixels
    np.testing.assert_allclose(stream.channel_mean, memory.channel_mean, rtol=1e-12)
    np.testing.assert_allclose(stream.channel_std, memory.channel_std, rtol=1e-12)
    for epoch in (0, 3):  # the same shuffled batches, epoch by epoch
        a, b = memory.train_dataloader(), stream.train_dataloader()
        a.sampler.set_epoch(epoch), b.sampler.set_epoch(epoch)
        _assert_same_batches(a, b)
    _assert_same_batches(memory.val_dataloader(), stream.val_dataloader())
    _assert_same_batches(memory.test_dataloader(), stream.test_dataloader())
    _assert_same_batches(memory.predict_dataloader(), stream.predict_dataloader())
    # and the same shard of each rank under two processes
    for dm in (memory, stream):
        dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    _assert_same_batches(memory.train_dataloader(), stream.train_dataloader())
    _assert_same_batches(memory.test_dataloader(), stream.test_dataloader())


def test_streaming_image_folder_trains_with_workers_and_keeps_its_sampler(tmp_path: Path):
    from zoo.data.loader import ShardSampler

    write_png_tree(tmp_path / "tree", per_class=12)
    dm = ImageFolderDataModule(
        root=tmp_path / "tree",
        val_size=6,
        test_size=6,
        batch_size=8,
        in_memory=False,
        num_workers=2,
        hflip=True,
    )
    model = ConvNet(widths=[4], task=dm.task, num_classes=dm.num_classes, input_shape=dm.input_shape)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(model, datamodule=dm)
    assert isinstance(trainer.train_dataloader.sampler, ShardSampler)  # Lightning kept the zoo's shard
    assert trainer.global_step == 2 * 3  # 24 training images in batches of 8
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert 0.0 <= result["test/acc"] <= 1.0 and math.isfinite(result["test/loss"])


def test_streaming_image_folder_errors(tmp_path: Path):
    write_png_tree(tmp_path / "mixed", per_class=3)
    from PIL import Image

    Image.new("RGB", (16, 9)).save(tmp_path / "mixed" / "cat" / "wide.png")
    with pytest.raises(ZooError, match=r"differ in size \(12x12 in .*, 16x9 in .*wide.png\)"):
        ImageFolderDataModule(root=tmp_path / "mixed", in_memory=False).prepare()
    resized = ImageFolderDataModule(root=tmp_path / "mixed", in_memory=False, image_size=8, stratify=False)
    assert resized.input_shape == [3, 8, 8]
    (tmp_path / "mixed" / "cat" / "wide.png").write_bytes(b"not a png")
    with pytest.raises(ZooError, match="cannot read the image .*wide.png"):
        ImageFolderDataModule(root=tmp_path / "mixed", in_memory=False).prepare()
    with pytest.raises(ZooError, match="data.num_workers must be an integer >= 0"):
        ImageFolderDataModule(root=tmp_path / "mixed", num_workers=-1)


# ---------------------------------------------------------------------------- per-batch transforms


def test_random_crop_cuts_a_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = []
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert len(found) == 1, i
        offsets.append(found[0])
    assert len(set(offsets)) > 10  # each image gets its own offset
    assert torch.equal(random_crop(x, 0, g), x)


def test_affine_rotates_and_shifts_like_the_exact_operations():
    x = torch.randint(0, 256, (3, 2, 6, 6), dtype=torch.uint8)
    zero = torch.zeros(3, 2)
    assert torch.equal(
        affine(x, torch.full((3,), 90.0), zero), torch.rot90(x, 1, dims=(2, 3))
    )  # counter-clockwise
    assert torch.equal(affine(x, torch.full((3,), 180.0), zero), x.flip(2, 3))
    assert torch.equal(affine(x, torch.zeros(3), zero), x)
    right = affine(x, torch.zeros(3), torch.tensor([[2.0, 0.0]] * 3))  # two pixels right, zeros come in
    assert torch.equal(right[..., 2:], x[..., :-2]) and not right[..., :2].any()
    down = affine(x, torch.zeros(3), torch.tensor([[0.0, 1.0]] * 3))
    assert torch.equal(down[..., 1:, :], x[..., :-1, :]) and not down[..., :1, :].any()


def test_random_affine_is_seeded_bounded_and_per_image():
    x = torch.zeros(64, 1, 9, 9, dtype=torch.uint8)
    x[:, :, 4, 4] = 255  # a dot in the centre: it moves with the shift, and rotation keeps it there
    assert random_affine(x, 0.0, 0.0) is x
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    moved = random_affine(x, 0.0, 2 / 9, g())
    assert torch.equal(moved, random_affine(x, 0.0, 2 / 9, g()))  # same seed, same batch
    rows, cols = (moved[:, 0] == 255).nonzero()[:, 1:].T
    assert len(rows) == 64 and (rows - 4).abs().max() <= 2 and (cols - 4).abs().max() <= 2
    assert len({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}) > 10  # each image its own shift
    turned = random_affine(x, 30.0, 0.0, g())
    assert (turned[:, 0, 4, 4] == 255).all() and turned.dtype == torch.uint8


@pytest.mark.parametrize(
    ("options", "message"),
    [({"rotate": 200.0}, "data.rotate must be in [0, 180] degrees"), ({"translate": 0.6}, "data.translate")],
)
def test_bad_affine_options(tmp_path: Path, options: dict, message: str):
    with pytest.raises(ZooError, match=re.escape(message)):
        ImageFolderDataModule(root=tmp_path, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        *[
            (
                {"image_size": size},
                "data.image_size must be a whole number of pixels >= 1 (or None: the images' own size); "
                f"got {size!r}.",
            )
            for size in ("12", 12.5, 0)
        ],
        ({"rotate": "10"}, "data.rotate must be in [0, 180] degrees (0: no rotation); got '10'."),
        (
            {"translate": None},
            "data.translate must be a fraction in [0, 0.5) of the image size (0: no shift); got None.",
        ),
        ({"batch_size": "32"}, "data.batch_size must be an integer >= 1; got '32'."),
    ],
    ids=["size str", "size float", "size 0", "rotate str", "translate None", "batch str"],
)
def test_a_wrong_argument_to_an_image_folder_is_named_at_construction(
    tmp_path: Path, options: dict, message: str
):
    """``image_size="12"`` and ``rotate="10"`` said "'<' not supported between 'str' and 'int'"."""
    with pytest.raises(ZooError) as caught:
        ImageFolderDataModule(root=tmp_path, **options)
    assert str(caught.value) == message


def test_random_hflip_flips_some_images_whole():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 5, 5), dtype=torch.uint8)
    out = random_hflip(x, g)
    flipped = [bool(torch.equal(o, xi.flip(-1))) for o, xi in zip(out, x, strict=True)]
    kept = [bool(torch.equal(o, xi)) for o, xi in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_transform_normalizes_and_augments_only_in_training():
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    transform = ImageBatchTransform(mean, std, crop_padding=2, hflip=True, seed=5)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(transform(x, train=False), expected)
    train = transform(x, train=True)
    assert train.dtype == torch.float32 and train.shape == x.shape
    assert not torch.allclose(train, expected)
    # seeded: a fresh transform with the same seed repeats the augmentation
    repeat = ImageBatchTransform(mean, std, crop_padding=2, hflip=True, seed=5)(x, train=True)
    torch.testing.assert_close(repeat, train)
    # one statistic serves every channel
    grey = ImageBatchTransform((0.5,), (0.25,))(x[:, :1], train=False)
    torch.testing.assert_close(grey, (x[:, :1].float() / 255 - 0.5) / 0.25)


def test_trainer_augments_training_batches_only(tmp_path: Path):
    write_png_tree(tmp_path / "tree", per_class=12)
    dm = ImageFolderDataModule(
        root=tmp_path / "tree", val_size=6, test_size=6, batch_size=8, crop_padding=2, hflip=True
    )
    model = ConvNet(widths=[4], task=dm.task, num_classes=dm.num_classes, input_shape=dm.input_shape)
    dm.prepare()
    calls: list[tuple[str, bool]] = []
    transform = dm.transform

    def recording(x, train):
        calls.append((trainer.state.stage.value, train))
        return transform(x, train)

    dm.transform = recording
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert {train for stage, train in calls if stage == "train"} == {True}
    assert {train for stage, train in calls if stage != "train"} == {False}
    assert {"sanity_check", "validate", "test"} <= {stage for stage, _ in calls}


def test_rotation_and_shift_apply_to_training_batches_only():
    x = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    transform = ImageBatchTransform((0.5,), (0.25,), rotate=20.0, translate=0.1, seed=3)
    assert transform.augments
    torch.testing.assert_close(transform(x, train=False), (x.float() / 255 - 0.5) / 0.25)
    trained = transform(x, train=True)
    assert not torch.allclose(trained, transform(x, train=False))
    again = ImageBatchTransform((0.5,), (0.25,), rotate=20.0, translate=0.1, seed=3)(x, train=True)
    assert torch.equal(trained, again)  # seeded


def test_16_bit_images_keep_their_range(tmp_path: Path) -> None:
    """PIL's convert() clips 16-bit grey values at 255: such images came out almost white (a
    folder of them trained on mean 0.997, std 0.05). They are scaled to 8 bits instead."""
    from PIL import Image

    from zoo.data.vision import decode_image

    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    Image.fromarray((values // 257).astype(np.uint8)).save(tmp_path / "flat.png")
    for grayscale in (True, False):
        deep = decode_image(str(tmp_path / "deep.png"), grayscale=grayscale)
        np.testing.assert_array_equal(deep, decode_image(str(tmp_path / "flat.png"), grayscale=grayscale))
    assert deep[:, 0].tolist() == [[0, 1, 128, 255]] * 3


def test_a_link_out_of_a_class_folder_is_refused_and_a_linked_class_folder_is_fine(tmp_path: Path) -> None:
    """torchvision's ImageFolder follows links: `cat/up -> ..` put every class's images under cat
    again, once per level of the loop (dog images labelled cat, copies across the splits)."""
    write_png_tree(tmp_path / "elsewhere", per_class=4, classes=("emu",))
    root = tmp_path / "root"
    write_png_tree(root, per_class=4, classes=("cat", "dog"))
    (root / "emu").symlink_to(tmp_path / "elsewhere" / "emu")  # data kept on another disk: fine
    data = ImageFolderDataModule(str(root), batch_size=4, val_size=2, test_size=2, stratify=False)
    data.prepare()
    assert sum(data.split_sizes().values()) == 12 and data.classes == ["cat", "dog", "emu"]
    (root / "cat" / "up").symlink_to("..")
    with pytest.raises(ZooError, match=r"^data.root: .*cat/up/.*through a link"):
        ImageFolderDataModule(str(root), batch_size=4, val_size=2, test_size=2).prepare()


def test_an_image_folder_of_one_class_names_it(tmp_path: Path) -> None:
    # was "model.num_classes must be >= 2 for a multiclass task; got 1.", an option nobody set
    write_png_tree(tmp_path, per_class=6, classes=("cat",))
    with pytest.raises(
        ZooError, match=r"^data: the targets have a single value \(cat\); classification needs >= 2"
    ):
        ImageFolderDataModule(str(tmp_path), batch_size=4, val_size=1, test_size=1, stratify=False).prepare()
