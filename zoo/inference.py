"""Using a trained model: from raw inputs in the user's terms to predictions in the user's terms.

A zoo checkpoint carries, beside the weights, what its DataModule did to the data
(``checkpoint["zoo_preprocessing"]``, see :meth:`zoo.data.ZooDataModule.preprocessing`): the feature
names and their order, the training split's scaling statistics, the image channels, size and
normalization, and the original class labels. :func:`load` returns the model with those facts, and
:class:`Predictor` applies them, so ``zoo.load(path).predict(rows)`` needs neither the DataModule
nor the data the model was trained on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.models.base import ZooModule

#: where a checkpoint keeps its preprocessing facts
PREPROCESSING_KEY = "zoo_preprocessing"

#: file endings read as images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def load(path: str | os.PathLike, map_location: Any = "cpu") -> ZooModule:
    """The model of a zoo checkpoint (or of a ``zoo export --format safetensors`` file, or a shipped
    model: ``pretrained:mlp_digits``), in eval mode, ready for :meth:`~zoo.models.ZooModule.predict`.

    The file is read without running code (see :meth:`zoo.models.ZooModule.load_from_checkpoint`);
    its preprocessing facts come back as ``model.preprocessing``.
    """
    from zoo.pretrained import resolve

    path = resolve(path)  # pretrained:NAME -> the shipped file, its sha256 checked
    if Path(path).suffix == ".safetensors":
        from zoo.export import load_safetensors

        return load_safetensors(path, map_location=map_location)
    from zoo.models.base import ZooModule

    model = ZooModule.load_from_checkpoint(path, map_location=map_location)
    model.eval()
    return model


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (numpy scalars and arrays become Python numbers and lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


class Predictor:
    """Turns raw inputs into a model's inputs and its outputs into labels, values or probabilities.

    Args:
        model: a trained :class:`~zoo.models.ZooModule` (its ``preprocessing`` is used).
        batch_size: examples per forward pass.
        device: where the model runs (default: where its parameters are).
    """

    def __init__(self, model: ZooModule, batch_size: int = 1024, device: Any = None) -> None:
        if batch_size < 1:
            raise ZooError(f"--batch-size must be >= 1; got {batch_size}.")
        self.model = model
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else _device_of(model)
        self.facts: dict[str, Any] = dict(getattr(model, "preprocessing", None) or {})
        if getattr(model, "reads_tokens", False):
            name = type(model).__name__
            if hasattr(model, "generate"):
                raise ZooError(f"predict: {name} is a language model; sample from it with `zoo generate`.")
            raise ZooError(
                f"predict: {name} reads token sequences, which this predictor does not take yet (it takes "
                "tables, arrays and images); use `zoo predict -c CONFIG --ckpt_path CKPT` on its data, "
                "or call the model on token ids."
            )
        if getattr(model, "embeds", False):
            raise ZooError(
                f"predict: this {type(model).__name__} was trained with a pairwise loss (contrastive): its "
                "outputs are an embedding, not classes; call the model on its inputs for the embeddings."
            )
        if not self.facts:
            warnings.warn(
                "this checkpoint holds no preprocessing facts (it was written by an older zoo or without "
                "a zoo DataModule): inputs are taken as the model's own, already scaled features, and "
                "classes come back as indices.",
                stacklevel=2,
            )
        self.task: str = model.task
        self.classes: list[Any] | None = class_labels(model, self.facts)
        self.input_shape = list(model.input_shape or self.facts.get("input_shape") or [])
        self.kind: str = self.facts.get("kind", "array")
        self.feature_names: list[str] = list(self.facts.get("feature_names") or [])
        mean, std = self.facts.get("mean"), self.facts.get("std")
        from zoo.data.columns import ColumnEncoder

        encoding = self.facts.get("encoding")
        self.encoder = ColumnEncoder.from_facts(encoding) if encoding else None
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.model.to(self.device).eval()

    # ------------------------------------------------------------------ inputs

    @property
    def takes_images(self) -> bool:
        return self.kind == "image"

    def features(self, inputs: Any, where: Callable[[int], str] | None = None) -> torch.Tensor:
        """The model's input for raw ``inputs`` (see :meth:`predict`), float32 on the CPU.
        ``where(i)`` starts an error message about row ``i`` of a table."""
        if self.takes_images:
            if _is_paths(inputs):
                inputs = self.read_images(_image_paths(inputs))
            return self._normalized_images(_as_array(inputs))
        return self._scaled_rows(self.rows(inputs, where))

    def rows(self, inputs: Any, where: Callable[[int], str] | None = None) -> np.ndarray:
        """A table (a mapping or DataFrame of columns, an array, a tensor, a list of rows) as a
        float64 array of examples in the model's feature order, text columns one-hot encoded and
        missing cells filled in as the training data were (see :mod:`zoo.data.columns`). One row
        by name (a mapping of values, a pandas Series) and a list of such rows are matched by
        name too."""
        inputs = _by_name(inputs, self.feature_names) if self.feature_names else inputs
        if isinstance(inputs, Mapping) or hasattr(inputs, "columns"):
            if not self.feature_names:
                raise ZooError(
                    "predict: this model was trained without feature names; give an array of rows "
                    f"with {self.width} values each, in the training data's column order."
                )
            columns = []
            for name in self.feature_names:
                try:
                    column = inputs[name]
                except (KeyError, IndexError):
                    raise ZooError(
                        f"input: there is no column {name!r}; the model takes the columns "
                        f"{', '.join(self.feature_names)}."
                    ) from None
                columns.append(column if self.encoder else _numeric(column, name))
            if self.encoder is not None:
                cells = {
                    n: _as_array(c.to_numpy() if hasattr(c, "to_numpy") else c).reshape(-1).tolist()
                    for n, c in zip(self.feature_names, columns, strict=True)
                }
                x = self.encoder.transform(cells, where)
            else:
                x = np.stack(columns, axis=1) if columns else np.zeros((0, 0))
        elif self.encoder is not None:  # rows of raw cells, in the training data's column order
            cells = _as_array(inputs)
            if cells.ndim == 1:
                cells = cells[None]
            if cells.ndim != 2 or cells.shape[1] != len(self.encoder.names):
                raise ZooError(
                    f"input: rows of {list(cells.shape[1:])} values; the model takes "
                    f"{len(self.encoder.names)} columns ({', '.join(self.encoder.names)})."
                )
            x = self.encoder.transform(cells.astype(object), where)
        else:
            array = _as_array(inputs)
            if array.dtype.kind in "cmMV":  # astype would drop imaginary parts, count days, ...
                raise ZooError(f"input: features must be real numbers; got {array.dtype} values.")
            try:
                x = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ZooError("input: features must be numbers.") from None
            if x.ndim == len(self.input_shape):  # one example
                x = x[None]
        if list(x.shape[1:]) != self.input_shape:
            raise ZooError(
                f"input: examples of shape {list(x.shape[1:])}; the model takes {self.input_shape}"
                + (f" ({', '.join(self.feature_names)})." if self.feature_names else ".")
            )
        flat = x.reshape(len(x), -1) if x.size else x
        bad = np.argwhere(~np.isfinite(flat))
        if len(bad):
            i, j = (int(k) for k in bad[0][:2])
            named = self.encoder is None and x.ndim == 2 and len(self.feature_names) == x.shape[1]
            column = f"column {self.feature_names[j]!r}" if named else f"feature {j}"
            at = where(i) if where else f"input: row {i + 1}"
            raise ZooError(f"{at}: {column} must be a finite number; found {flat[i, j]}.")
        return x

    @property
    def width(self) -> int:
        """Values per example the model takes."""
        return int(np.prod(self.input_shape)) if self.input_shape else 0

    def _scaled_rows(self, x: np.ndarray) -> torch.Tensor:
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)

    def read_images(self, paths: Sequence[str]) -> np.ndarray:
        """Image files decoded as the training data were: channels, resizing, uint8 ``(N, C, H, W)``."""
        from zoo.data.vision import decode_image

        channels = self.input_shape[0] if self.input_shape else 3
        size = self.facts.get("image_size")
        images = [decode_image(str(p), grayscale=channels == 1, image_size=size) for p in paths]
        for path, image in zip(paths, images, strict=True):
            if list(image.shape) != self.input_shape:
                raise ZooError(
                    f"input: {path} is {image.shape[2]}x{image.shape[1]} pixels; the model takes "
                    f"{self.input_shape[2]}x{self.input_shape[1]} (resize the images, or train with "
                    "data.image_size to have them resized)."
                )
        return np.stack(images) if images else np.zeros([0, *self.input_shape], dtype=np.uint8)

    def _normalized_images(self, x: np.ndarray) -> torch.Tensor:
        if x.ndim == len(self.input_shape):
            x = x[None]
        if list(x.shape[1:]) != self.input_shape:
            raise ZooError(f"input: images of shape {list(x.shape[1:])}; the model takes {self.input_shape}.")
        if x.dtype != np.uint8:
            raise ZooError(f"input: images must be uint8 pixels (0-255); got {x.dtype}.")
        pixels = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
        channels = x.shape[1]
        mean = torch.tensor(_per_channel(self.facts.get("mean", [0.0]), channels)).view(1, -1, 1, 1)
        std = torch.tensor(_per_channel(self.facts.get("std", [1.0]), channels)).view(1, -1, 1, 1)
        return (pixels - mean) / std

    # ------------------------------------------------------------------ outputs

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """What the model's metrics see, batch by batch: class probabilities (multiclass), the
        positive class's probability (binary) or values in the target's units (regression).
        Floating inputs are cast to the dtype of the model's parameters."""
        out = []
        dtype = _float_dtype_of(self.model)  # a model cast with .double() or .to(torch.bfloat16)
        for start in range(0, len(features), self.batch_size):
            x = features[start : start + self.batch_size]
            x = x.to(self.device, dtype=dtype) if x.is_floating_point() else x.to(self.device)
            outputs = self.model.shape_outputs(self.model(x))
            out.append(self.model.predictions(outputs.float()).cpu())
        if not out:
            width = [len(self.classes)] if self.task == "multiclass" and self.classes else []
            return torch.zeros([0, *width])
        return torch.cat(out)

    def probabilities(self, scores: torch.Tensor) -> np.ndarray:
        """``(N, K)`` class probabilities, in the order of :attr:`classes`."""
        if self.task == "regression":
            raise ZooError("predict_proba: a regression model predicts values, not class probabilities.")
        return class_probabilities(scores, self.task).numpy()

    def labels(self, scores: torch.Tensor) -> np.ndarray:
        """The predicted class labels (as trained: strings stay strings), or the predicted values."""
        if self.task == "regression":
            return scores.numpy()
        return np.asarray([self.classes[i] for i in label_indices(scores, self.task).tolist()])

    def predict(self, inputs: Any) -> np.ndarray:
        return self.labels(self.scores(self.features(inputs)))

    def predict_proba(self, inputs: Any) -> np.ndarray:
        return self.probabilities(self.scores(self.features(inputs)))


def class_labels(model: ZooModule, facts: Mapping[str, Any]) -> list[Any] | None:
    """The labels of a classifier's outputs, in output order: the original ones from its
    preprocessing facts, else the indices; ``None`` for regression."""
    if model.task == "regression":
        return None
    classes = facts.get("classes")
    if classes is None:
        classes = list(range(model.num_outputs if model.task == "multiclass" else 2))
    return classes


def label_indices(scores: torch.Tensor, task: str) -> torch.Tensor:
    """The predicted class index of each score (of :meth:`ZooModule.predictions`): the positive
    class at probability above 0.5 for binary tasks (as torchmetrics' ``BinaryAccuracy`` counts it,
    and scikit-learn's classifiers decide), the largest probability otherwise."""
    return (scores > 0.5).long() if task == "binary" else scores.argmax(dim=-1)


def class_probabilities(scores: torch.Tensor, task: str) -> torch.Tensor:
    """Scores as probabilities over the classes (last axis): binary ``p`` becomes ``(1 - p, p)``."""
    return torch.stack([1 - scores, scores], dim=-1) if task == "binary" else scores


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _float_dtype_of(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point parameters (float32 when it has none): what its
    floating inputs are cast to."""
    found = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return found or torch.float32


def _per_channel(values: Sequence[float], channels: int) -> list[float]:
    values = [float(v) for v in np.asarray(values).reshape(-1)]
    return values * channels if len(values) == 1 else values


def _by_name(inputs: Any, names: list[str]) -> Any:
    """Rows given by name as a mapping of columns: a pandas Series (one row, its index the names),
    a mapping of single values (one row) or a list of mappings (rows, each holding the model's
    ``names``); anything else unchanged."""
    if hasattr(inputs, "index") and hasattr(inputs, "to_dict") and not hasattr(inputs, "columns"):
        inputs = inputs.to_dict()  # a Series: by its index's names, never by position
    if isinstance(inputs, Mapping) and inputs and all(np.ndim(v) == 0 for v in inputs.values()):
        return {name: [value] for name, value in inputs.items()}
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(r, Mapping) for r in inputs):
        for i, row in enumerate(inputs):
            missing = [name for name in names if name not in row]
            if missing:
                raise ZooError(
                    f"input: row {i + 1} has no {missing[0]!r}; every row needs the model's columns "
                    f"({', '.join(names)})."
                )
        return {name: [row[name] for row in inputs] for name in names}
    return inputs


def _as_array(inputs: Any) -> np.ndarray:
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().cpu().numpy()
    return np.asarray(inputs)


def _numeric(column: Any, name: str) -> np.ndarray:
    values = _as_array(column.to_numpy() if hasattr(column, "to_numpy") else column)
    if values.dtype.kind in "cmMV":
        raise ZooError(f"input: column {name!r} must be real numbers; got {values.dtype} values.")
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in values.reshape(-1) if not is_number(v)), None)
        raise ZooError(f"input: column {name!r} must be numeric; found {bad!r}.") from None


def is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_paths(inputs: Any) -> bool:
    if isinstance(inputs, (str, os.PathLike)):
        return True
    return (
        isinstance(inputs, (list, tuple))
        and bool(inputs)
        and all(isinstance(p, (str, os.PathLike)) for p in inputs)
    )


def _image_paths(inputs: str | os.PathLike | Iterable[str | os.PathLike], option: str = "input") -> list[str]:
    """Image files: a file, a folder (searched recursively, sorted) or a list of either.
    ``option`` starts the error messages."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    paths: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ZooError(
                    f"{option}: {path} holds no images (no {', '.join(IMAGE_SUFFIXES)} files in it or "
                    "its subfolders)."
                )
            paths += [str(p) for p in found]
        elif path.is_file():
            paths.append(str(path))
        else:
            raise ZooError(f"{option}: {path} does not exist.")
    return paths
