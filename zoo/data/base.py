"""The DataModule base: seeded train/val/test splits of in-memory data, served in whole batches.

A source subclasses :class:`ZooDataModule` and implements :meth:`~ZooDataModule.load`; the base
validates the arrays, infers the task, makes the splits (stratified for classification), fits
feature standardization on the training split only and serves tensors through
:class:`~zoo.data.loader.TensorLoader`.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from jsonargparse.typing import register_type

from zoo.data.columns import ColumnEncoder
from zoo.data.loader import TensorLoader
from zoo.distributed import distributed_position
from zoo.errors import ZooError
from zoo.inference import jsonable

TaskOrAuto = Literal["auto", "multiclass", "binary", "regression"]

#: ``data.on_device``: ``true``, ``false``, or ``"auto"`` (on a CUDA device when the data fits);
#: typed ``bool | str`` rather than with a ``Literal`` so that a wrong value gets the zoo's message
#: (naming all three) instead of the command-line parser's, which names only ``bool``
OnDevice = bool | str

#: ``data.on_device: auto`` keeps the data on a CUDA device when all of it takes at most this
#: fraction of the device's free memory (the rest is for the model, activations and optimizer)
ON_DEVICE_FRACTION = 0.25


def keeps_data_on(setting: OnDevice, device: torch.device, nbytes: int, free_bytes: int | None) -> bool:
    """Whether data of ``nbytes`` should live on ``device`` under ``data.on_device: setting``.

    On the CPU there is nothing to move. ``True`` moves it to any accelerator; ``auto`` only where
    the free memory is known (CUDA) and the data takes at most :data:`ON_DEVICE_FRACTION` of it.
    """
    if device.type == "cpu" or setting is False:
        return False
    if setting is True:
        return True
    return free_bytes is not None and nbytes <= ON_DEVICE_FRACTION * free_bytes


def free_device_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (``None`` elsewhere: unknown)."""
    if device.type != "cuda":
        return None
    return torch.cuda.mem_get_info(device)[0]


def check_seed(seed: Any, option: str = "data.seed") -> None:
    """Raise :class:`ZooError` unless ``seed`` is what numpy and scikit-learn take as a seed: an
    integer in [0, 2**32 - 1] (it was reported as a stratification problem)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ZooError(f"{option} must be an integer in [0, 2**32 - 1]; got {seed!r}.")


#: the values of a DataModule's ``task``
TASKS_OR_AUTO = ("auto", "multiclass", "binary", "regression")


def check_task(task: Any) -> None:
    """``data.task``: ``auto`` or one of the model's tasks (``classification`` was accepted here and
    refused later as the model's task)."""
    if not isinstance(task, str) or task not in TASKS_OR_AUTO:
        raise ZooError(f"data.task must be one of {', '.join(TASKS_OR_AUTO)}; got {task!r}.")


def check_count(value: Any, option: str, none: bool = False) -> None:
    """An integer >= 1 (``None`` too where ``none``): ``data.batch_size="32"`` or ``1.5`` failed in a
    comparison or when the loader sliced; said here in one line naming the option."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        also = " or None" if none else ""
        raise ZooError(f"data.{option} must be an integer >= 1{also}; got {value!r}.")
    if value < 1:
        raise ZooError(f"data.{option} must be >= 1; got {value}.")


def check_on_device(value: Any) -> None:
    if not (isinstance(value, bool) or value == "auto"):
        raise ZooError(f"data.on_device must be true, false or auto; got {value!r}.")


@dataclass
class ArraySplit:
    """Features ``x`` (rows = examples) and targets ``y`` of one split."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Loaded:
    """What :meth:`ZooDataModule.load` returns.

    ``test`` is the official test set where the source has one (validation is then carved out of
    ``train``); otherwise all three splits are made from ``train``. ``classes`` names the labels
    ``0..K-1`` when they were encoded from other values.
    """

    train: ArraySplit
    test: ArraySplit | None = None
    task: TaskOrAuto = "auto"
    classes: list[Any] | None = None
    feature_names: list[str] = field(default_factory=list)
    #: raw table cells in ``x`` (an object array) that this encoder, fitted on the training
    #: split, turns into features after the split (see :mod:`zoo.data.columns`)
    encoder: ColumnEncoder | None = None


class SplitSize(float):
    """The type of a split-size option: a fraction in (0, 1) (``0.15``) or a count >= 1 (``200``).

    Plain ``int`` and ``float`` values are what the options hold; this class only tells the
    command line (jsonargparse) how to read and check them, so that ``--data.val_size 1.5`` is
    refused as it is parsed, also by ``--print_config``.
    """


def _checked_split_size(size: Any, option: str = "split size") -> int | float:
    """``size`` as a fraction in (0, 1) or an int >= 1, else a :class:`ZooError` naming ``option``."""
    bad = ZooError(f"data.{option} must be a fraction in (0, 1) or a count >= 1; got {size!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise bad
    if 0 < size < 1:
        return float(size)
    if size < 1 or size != int(size):
        raise bad
    return int(size)


def _parse_split_size(value: Any) -> int | float:
    """A split size from the command line or a config file (where ``"200"`` may be a string)."""
    try:
        if isinstance(value, str):
            return _checked_split_size(float(value) if any(c in value for c in ".eE") else int(value))
        return _checked_split_size(value)
    except (ValueError, ZooError):
        raise ValueError(f"must be a fraction in (0, 1) or a count >= 1; got {value!r}") from None


register_type(SplitSize, serializer=lambda value: value, deserializer=_parse_split_size)


def _split_count(size: int | float, n: int, option: str) -> int:
    """A split size (a fraction in (0, 1) or a count >= 1) as a number of examples out of ``n``."""
    size = _checked_split_size(size, option)
    return max(1, round(size * n)) if size < 1 else size


def infer_task(y: np.ndarray) -> str:
    """``regression`` for non-integral values, else ``binary`` (2 distinct labels) or ``multiclass``."""
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (np.mod(y, 1) == 0)):
        return "regression"
    return "binary" if len(np.unique(y)) == 2 else "multiclass"


class ZooDataModule(pl.LightningDataModule):
    """Base for in-memory datasets with reproducible splits.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict (default: ``batch_size``).
        val_size: validation split, a fraction of the data (``0.15``) or a count (``200``).
        test_size: test split, likewise; ignored where the source has an official test set.
        seed: seeds the split and the shuffling, so the same seed gives the same run.
        stratify: keep class proportions equal across splits (classification only).
        standardize: scale each feature (each channel, for images) to zero mean and unit
            variance with statistics of the training split (constant features are left at zero,
            not divided by zero).
        on_device: keep every split on the training device (a GPU) and slice batches there, so
            no batch is copied from the host: ``true``; ``false``: batches are sliced in host
            memory and copied; ``auto``: on a CUDA device when the data takes at most a quarter
            of its free memory (:data:`ON_DEVICE_FRACTION`). The batches are the same either way.
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_size: SplitSize = 0.15,
        test_size: SplitSize = 0.15,
        seed: int = 0,
        stratify: bool = True,
        standardize: bool = True,
        on_device: OnDevice = "auto",
    ) -> None:
        super().__init__()
        check_on_device(on_device)
        check_count(batch_size, "batch_size")
        check_count(eval_batch_size, "eval_batch_size", none=True)
        check_seed(seed)
        for option, size in (("val_size", val_size), ("test_size", test_size)):
            _split_count(size, 10**9, option)  # type and range check now; counts vs. n later
        fractions = [s for s in (val_size, test_size) if isinstance(s, float) and 0 < s < 1]
        if len(fractions) == 2 and sum(fractions) >= 1:
            raise ZooError(
                f"data.val_size + data.test_size = {val_size} + {test_size} = {sum(fractions):g} leaves no "
                "training data; the fractions must add up to less than 1."
            )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.test_size = test_size
        self.seed = seed
        self.stratify = stratify
        self.standardize = standardize
        self.on_device = on_device
        self._on_device_decision: tuple[torch.device, bool] | None = None
        self._device_copies: dict[str, tuple[torch.Tensor, ...]] = {}
        self._splits: dict[str, ArraySplit] | None = None
        self._encoder: ColumnEncoder | None = None
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ for subclasses

    def load(self) -> Loaded:
        """Return the raw arrays. Called once, lazily."""
        raise NotImplementedError

    # ------------------------------------------------------------------ facts the model needs

    @property
    def task(self) -> str:
        """``multiclass``, ``binary`` or ``regression``."""
        self.prepare()
        return self._task

    @property
    def num_classes(self) -> int | None:
        """Number of classes for classification, ``None`` for regression."""
        self.prepare()
        return self._num_classes

    @property
    def input_shape(self) -> list[int]:
        """Shape of one example."""
        self.prepare()
        return list(self._splits["train"].x.shape[1:])

    @property
    def classes(self) -> list[Any] | None:
        """Original label values for the class indices, when they were encoded."""
        self.prepare()
        return self._classes

    @property
    def encoder(self) -> ColumnEncoder | None:
        """How table cells became features (text columns one-hot, missing cells filled), fitted on
        the training split; ``None`` for sources that load numbers."""
        self.prepare()
        return self._encoder

    def preprocessing(self) -> dict[str, Any]:
        """What turns raw examples into this DataModule's model inputs, and class indices back into
        the original labels, as plain data: every zoo checkpoint stores it, so a trained model
        predicts on new raw data from its checkpoint alone (see :mod:`zoo.inference`)."""
        self.prepare()
        facts: dict[str, Any] = {
            "kind": "array",
            "task": self.task,
            "input_shape": list(self.input_shape),
            "classes": jsonable(self.classes),
            "feature_names": list(getattr(self, "_feature_names", [])),
            "target": self.target_name,
        }
        if self._encoder is not None:
            facts["encoding"] = self._encoder.facts()
        if self.standardize and getattr(self, "feature_mean", None) is not None:
            facts["mean"], facts["std"] = jsonable(self.feature_mean), jsonable(self.feature_std)
        return facts

    #: the name of the target (a CSV column), for predictions in the user's terms
    target_name: str | None = None

    def split_sizes(self) -> dict[str, int]:
        self.prepare()
        return {k: len(v) for k, v in self._splits.items()}

    @property
    def num_train_examples(self) -> int:
        """Distinct training examples (rows, images, sequences): the most a batch can hold."""
        return self.split_sizes()["train"]

    # ------------------------------------------------------------------ preparation

    def prepare(self) -> None:
        """Load, validate, split and standardize (once). Raises :class:`ZooError` on bad data."""
        if self._splits is not None:
            return
        loaded = self.load()
        task, classes = self._check_targets(loaded)
        self._task, self._classes = task, classes
        if task == "regression":
            self._num_classes = None
        else:
            labels = [loaded.train.y] + ([loaded.test.y] if loaded.test is not None else [])
            # over every split: a label only in the test set still needs an output
            self._num_classes = len(classes) if classes is not None else int(max(y.max() for y in labels)) + 1
        self._feature_names = [str(name) for name in loaded.feature_names]
        splits = self._make_splits(loaded)
        self._encoder = loaded.encoder
        if self._encoder is not None:  # raw cells: fit on the training split, then encode every split
            self._encoder.fit(splits["train"].x)
            for part in splits.values():
                part.x = self._encoder.transform(part.x)
        if task != "regression":
            self._warn_missing_classes(splits)
        if self.standardize:
            self._standardize(splits)
        self._splits = splits

    def _warn_missing_classes(self, splits: dict[str, ArraySplit]) -> None:
        """Say which classes a split has no example of (the model cannot learn a class missing from
        training; a metric over a split without it is biased)."""
        for name, part in splits.items():
            missing = sorted(set(range(self._num_classes)) - {int(v) for v in np.unique(part.y)})
            if missing and len(part):
                shown = [self._classes[i] for i in missing] if self._classes is not None else missing
                warnings.warn(
                    f"data: the {name} split has no examples of class(es) {shown[:10]}"
                    + (f" (and {len(shown) - 10} more)" if len(shown) > 10 else "")
                    + ("; the model cannot learn them." if name == "train" else "."),
                    stacklevel=2,
                )

    def _standardize(self, splits: dict[str, ArraySplit]) -> None:
        """Scale features with statistics of the training split (in place)."""
        x_train = splits["train"].x
        # tabular rows: one statistic per feature; images (N, C, H, W): one per channel
        axes = (0, 2, 3) if x_train.ndim == 4 else 0
        self.feature_mean = x_train.mean(axis=axes, keepdims=x_train.ndim == 4)
        std = x_train.std(axis=axes, keepdims=x_train.ndim == 4)
        self.feature_std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(self.feature_mean)), std, 1.0)
        for part in splits.values():
            part.x = (part.x - self.feature_mean) / self.feature_std

    def _check_targets(self, loaded: Loaded) -> tuple[str, list[Any] | None]:
        parts = [loaded.train] + ([loaded.test] if loaded.test is not None else [])
        for part in parts:
            if part.x.ndim < 2 or len(part.x) != len(part.y):
                raise ZooError(
                    f"data: features must have one row per target; got x {part.x.shape}, y {part.y.shape}."
                )
            if loaded.encoder is None:  # raw cells are checked as they are encoded
                self._check_features(part.x)
        y_all = np.concatenate([p.y for p in parts])
        task = loaded.task if loaded.task != "auto" else infer_task(y_all)
        if task == "regression":
            if not np.issubdtype(y_all.dtype, np.number) or not np.all(np.isfinite(y_all)):
                raise ZooError("data: regression targets must be finite numbers.")
            return task, None
        if loaded.classes is None and (
            not np.issubdtype(y_all.dtype, np.number) or np.any(np.mod(y_all, 1) != 0) or y_all.min() < 0
        ):
            raise ZooError(
                f"data: {task} labels must be integers 0..K-1; "
                f"got values like {np.unique(y_all)[:5].tolist()}."
            )
        k = len(loaded.classes) if loaded.classes is not None else int(y_all.max()) + 1
        if len(np.unique(y_all)) < 2:
            only = y_all.flat[0] if len(y_all) else None
            shown = loaded.classes[int(only)] if loaded.classes is not None and only is not None else only
            raise ZooError(
                f"data: the targets have a single value ({shown}); classification needs >= 2 classes."
            )
        if task == "binary" and (k > 2 or y_all.max() > 1):
            raise ZooError(
                f"data: task 'binary' needs labels 0 and 1; got {len(np.unique(y_all))} distinct labels."
            )
        return task, loaded.classes

    def _check_stratifiable(self, y: np.ndarray, count: int, option: str, size: int | float) -> None:
        """The split scikit-learn's stratified ``train_test_split`` refuses, said in the user's terms
        (its own message names class codes and ``test_size``)."""
        values, counts = np.unique(y, return_counts=True)
        if (counts < 2).any():
            self._refuse_rare_classes(values, counts, 2, f"what is left for data.{option}")
        k, n = len(values), len(y)
        if count < k or n - count < k:
            side, got = ("this split", count) if count < k else ("what remains", n - count)
            raise ZooError(
                f"data.{option}={size}: a stratified split puts each of the {k} classes on both sides, "
                f"but {side} gets {got} of the {n} examples; give each side at least {k}, or set "
                "data.stratify=false."
            )

    def _refuse_rare_classes(self, values: np.ndarray, counts: np.ndarray, need: int, where: str) -> None:
        rare = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if c < need]
        if not rare:
            return
        names = [
            f"{self._classes[v]!r} ({c})" if self._classes is not None else f"{v} ({c})" for v, c in rare
        ]
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} classes in all)" if len(names) > 5 else "")
        raise ZooError(
            f"data: a stratified split needs at least {need} examples of each class in {where}; "
            f"too few of {shown}. Drop those rows, or set data.stratify=false."
        )

    def _check_features(self, x: np.ndarray) -> None:
        """Raise :class:`ZooError` unless ``x`` holds finite numbers."""
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise ZooError("data: features must be finite numbers (found NaN, inf or non-numeric values).")

    def _make_splits(self, loaded: Loaded) -> dict[str, ArraySplit]:
        from sklearn.model_selection import train_test_split

        def carve(
            part: ArraySplit, size: int | float, option: str, given: int | float | None = None
        ) -> tuple[ArraySplit, ArraySplit]:
            n = len(part)
            count = _split_count(size, n, option)
            if count >= n:
                if given is None:
                    raise ZooError(
                        f"data.{option}={size} takes {count} of {n} examples and leaves none to train on."
                    )
                total = len(loaded.train)
                raise ZooError(
                    f"data.{option}={given} ({count} of the {total} examples) and data.test_size="
                    f"{self.test_size} ({total - n}) leave none to train on; make them smaller."
                )
            stratify = part.y if self.stratify and self._task != "regression" else None
            if stratify is not None:
                self._check_stratifiable(part.y, count, option, size)
            try:
                xa, xb, ya, yb = train_test_split(
                    part.x, part.y, test_size=count, random_state=self.seed, stratify=stratify
                )
            except ValueError as err:
                raise ZooError(
                    f"data.{option}={size}: cannot make a stratified split of {n} examples ({err}); "
                    "use a larger split or data.stratify=false."
                ) from None
            return ArraySplit(xa, ya), ArraySplit(xb, yb)

        if self.stratify and self._task != "regression":  # scikit-learn's own rule, in the user's terms
            values, counts = np.unique(loaded.train.y, return_counts=True)
            self._refuse_rare_classes(values, counts, 2, "the data")
        if loaded.test is not None:
            test = loaded.test
            train, val = carve(loaded.train, self.val_size, "val_size")
        else:
            rest, test = carve(loaded.train, self.test_size, "test_size")
            val_size = self.val_size
            if isinstance(val_size, float) and 0 < val_size < 1:  # a fraction of the whole, not of the rest
                val_size = max(1, int(round(val_size * len(loaded.train))))
            train, val = carve(rest, val_size, "val_size", given=self.val_size)
        return {"train": train, "val": val, "test": test}

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        if self._tensors:
            return
        y_dtype = torch.float32 if self._task == "regression" else torch.long
        for name, part in self._splits.items():
            y = torch.as_tensor(
                np.ascontiguousarray(part.y).astype(np.float64 if y_dtype == torch.float32 else np.int64)
            )
            self._tensors[name] = (self._features_tensor(part.x), y.to(y_dtype))

    def _features_tensor(self, x: np.ndarray) -> torch.Tensor:
        """The tensor the loaders serve for a split's features (float32 here)."""
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)

    def distributed_position(self) -> tuple[int, int]:
        """``(rank, world_size)`` of this process; the loaders serve this rank's shard."""
        return distributed_position(self.trainer)

    # ------------------------------------------------------------------ data on the device

    def _training_device(self) -> torch.device | None:
        """The device the Trainer trains on (``None`` without a Trainer)."""
        strategy = getattr(self.trainer, "strategy", None)  # None outside a Trainer
        return getattr(strategy, "root_device", None)

    def _data_bytes(self) -> int:
        """Bytes the data takes on a device (every split)."""
        self.setup()
        return sum(t.nbytes for tensors in self._tensors.values() for t in tensors)

    def keeps_data_on_device(self) -> bool:
        """Whether the loaders slice batches out of copies on the training device (decided once per
        device, see ``on_device``)."""
        device = self._training_device()
        if device is None:
            return False
        if self._on_device_decision is None or self._on_device_decision[0] != device:
            nbytes = self._data_bytes()
            keep = keeps_data_on(self.on_device, device, nbytes, free_device_memory(device))
            self._on_device_decision = (device, keep)
            if keep:
                from lightning.pytorch.utilities import rank_zero_info

                rank_zero_info(f"data.on_device: the data ({nbytes / 2**20:.1f} MiB) stays on {device}.")
        return self._on_device_decision[1]

    def split_tensors(self, name: str) -> tuple[torch.Tensor, ...]:
        """A split's ``(x, y)`` where the loaders slice it: on the training device when the data is
        kept there (copied once), else in host memory."""
        self.setup()
        tensors = self._tensors[name]
        return self._device_copy(name, tensors) if self.keeps_data_on_device() else tensors

    def _device_copy(
        self, key: str, tensors: tuple[torch.Tensor, ...], dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``tensors`` on the training device, copied once per device and kept under ``key``."""
        device = self._on_device_decision[0]
        copies = self._device_copies.get(key)
        if copies is None or copies[0].device != device:
            copies = self._device_copies[key] = tuple(t.to(device, dtype) for t in tensors)
        return copies

    def _loader(self, name: str, train: bool = False, targets: bool = True) -> TensorLoader:
        """A split's loader: training shuffles per epoch and gives every rank as many rows (padding
        as ``DistributedSampler`` does); evaluation counts each example once across ranks."""
        x, y = self.split_tensors(name)
        bs = self.batch_size if train else self.eval_batch_size
        rank, world = self.distributed_position()
        # a last training batch of one example would break batch norm: drop it
        per_rank = -(-len(y) // world) if train else len(y)
        drop_last = train and per_rank % bs == 1
        return TensorLoader(
            *((x, y) if targets else (x,)),
            batch_size=bs,
            shuffle=train,
            drop_last=drop_last,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorLoader:
        return self._loader("val")

    def test_dataloader(self) -> TensorLoader:
        return self._loader("test")

    def predict_dataloader(self) -> TensorLoader:
        return self._loader("test", targets=False)

    @property
    def vocab(self) -> str | None:
        """For token data: the characters of the vocabulary in id order; ``None`` otherwise."""
        return None

    @property
    def target_stats(self) -> tuple[float, float] | None:
        """``(mean, std)`` of the training targets for regression, ``None`` otherwise. The model
        learns standardized targets with them and reports metrics in the original units."""
        if self.task != "regression":
            return None
        y = self._splits["train"].y.astype(np.float64)
        return float(y.mean()), float(y.std() or 1.0)
