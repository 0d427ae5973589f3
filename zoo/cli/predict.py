"""``zoo predict CKPT --input PATH``: predictions on new data from a checkpoint alone.

The checkpoint carries what turns raw inputs into the model's inputs (feature names and scaling,
image size and normalization) and its outputs back into the user's terms (class labels), so no
config and no training data are needed. ``zoo predict -c CONFIG --ckpt_path CKPT`` (LightningCLI's
predict, on a DataModule's test split) is the other form; ``zoo`` tells them apart by the word after
``predict``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from zoo.cli.args import checkpoint_parser, positive_int
from zoo.errors import ZooError
from zoo.files import atomic_write
from zoo.inference import is_number

EXAMPLES = """\
examples:
  zoo predict runs/mlp_digits/version_0/checkpoints/best-epoch=012.ckpt --input new_rows.csv
  zoo predict model.ckpt --input rows.csv --output predictions.csv
  zoo predict model.ckpt --input features.npy --output predictions.npy
  zoo predict model.ckpt --input photos/ --device cuda       # every image under the folder
  zoo predict model.ckpt --input a.png b.png

CSV input: the model's feature columns are matched by name (any order); the target column, if
present, is ignored; other columns (ids, keys) are copied to the output. The output has a
`prediction` column (the class label as trained, or the value in the target's units) and, for
classifiers, one `prob_<label>` column per class. Inputs are read in chunks, so files larger than
memory work.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = checkpoint_parser(
        "zoo predict",
        "Predict with a trained model on new data, from its checkpoint alone.",
        EXAMPLES,
        "a .ckpt file written by `zoo train` (or by a Trainer on a zoo model)",
    )
    parser.add_argument(
        "--input",
        "-i",
        nargs="+",
        required=True,
        help="a CSV file, a .npy array, image files or folders of images",
    )
    parser.add_argument("--output", "-o", default=None, help="a .csv or .npy file (default: CSV on stdout)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=1024, help="examples per forward pass (default: 1024)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N (default: auto)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    predict_files(args.checkpoint, args.input, args.output, args.batch_size, args.device)


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZooError(f"--device: {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device: cuda was asked for, but this machine has no usable GPU; use --device cpu.")
    return device


def predict_files(
    checkpoint: str, inputs: list[str], output: str | None, batch_size: int = 1024, device: str = "auto"
) -> None:
    """Predict on ``inputs`` (paths) with ``checkpoint``; write CSV (or ``.npy``) to ``output``
    or stdout. The output file appears whole or not at all."""
    from zoo.inference import IMAGE_SUFFIXES, Predictor, load

    if output is not None and Path(output).suffix.lower() not in (".csv", ".npy"):
        raise ZooError(f"--output: {output} must end in .csv or .npy.")
    missing = next((p for p in inputs if not Path(p).exists()), None)
    if missing is not None:
        raise ZooError(f"--input: {missing} does not exist.")
    model = load(checkpoint, map_location="cpu")
    predictor = Predictor(model, batch_size=batch_size, device=_device(device))
    first = Path(inputs[0])
    suffix = first.suffix.lower()
    if len(inputs) == 1 and suffix == ".csv":
        _require_table(predictor, first)
        batches = _csv_batches(predictor, first, chunk=max(batch_size, 4096))
    elif len(inputs) == 1 and suffix == ".npy":
        batches = _npy_batches(predictor, first, chunk=max(batch_size, 4096))
    elif all(Path(p).is_dir() or Path(p).suffix.lower() in IMAGE_SUFFIXES for p in inputs):
        if not predictor.takes_images:
            raise ZooError(
                f"--input: {inputs[0]} holds images, but this model takes "
                f"{'rows of features' if predictor.feature_names else 'arrays'} (give a .csv or .npy file)."
            )
        batches = _image_batches(predictor, inputs, chunk=max(batch_size, 256))
    else:
        raise ZooError(
            f"--input: {inputs[0]} is neither a .csv file, a .npy file, an image "
            f"({', '.join(IMAGE_SUFFIXES)}) nor a folder of images."
        )
    if output is not None and output.lower().endswith(".npy"):
        _write_npy(predictor, batches, Path(output))
    else:
        _write_csv(predictor, batches, output)


# ---------------------------------------------------------------------------- inputs
# each yields (key columns {name: values}, predictions, probabilities or None) per chunk


def _require_table(predictor: Any, path: Path) -> None:
    if predictor.takes_images:
        raise ZooError(
            f"--input: {path} is a table, but this model takes images (give image files or a folder)."
        )
    if not predictor.feature_names:
        raise ZooError(
            f"--input: {path}: this model was trained without named columns; give its features as a .npy "
            f"array with {predictor.width} values per example."
        )


def _csv_batches(predictor: Any, path: Path, chunk: int) -> Iterator[tuple[dict, np.ndarray, Any]]:
    target = predictor.facts.get("target")
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as err:
        raise ZooError(f"--input: cannot read {path} ({err.strerror}).") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ZooError(f"--input: {path} is empty; it needs a header row naming the columns.")
        header = [h.strip() for h in header]
        missing = [name for name in predictor.feature_names if name not in header]
        if missing:
            raise ZooError(
                f"--input: {path} has no column {missing[0]!r}; the model takes the columns "
                f"{', '.join(predictor.feature_names)}."
            )
        used = set(predictor.feature_names) | ({target} if target else set())
        keys = [h for h in header if h not in used]
        where = {h: i for i, h in enumerate(header)}
        rows: list[list[str]] = []
        line = 1
        for row in reader:
            line += 1
            if not row:
                continue
            if len(row) != len(header):
                raise ZooError(
                    f"--input: {path}, line {line}: {len(row)} fields, the header has {len(header)}."
                )
            rows.append(row)
            if len(rows) == chunk:
                yield _table_chunk(predictor, rows, where, keys, path, line - len(rows) + 1)
                rows = []
        if rows:
            yield _table_chunk(predictor, rows, where, keys, path, line - len(rows) + 1)


def _table_chunk(
    predictor: Any, rows: list[list[str]], where: dict[str, int], keys: list[str], path: Path, first_line: int
) -> tuple[dict, np.ndarray, Any]:
    cells = {name: [row[where[name]] for row in rows] for name in predictor.feature_names}
    if predictor.encoder is None:  # a checkpoint of an older zoo: numeric columns only
        for name, values in cells.items():
            try:
                cells[name] = np.asarray(values, dtype=np.float64)
            except ValueError:
                i = next(i for i, v in enumerate(values) if not is_number(v))
                raise ZooError(
                    f"--input: {path}, line {first_line + i}: column {name!r} must be numeric; "
                    f"found {values[i]!r}."
                ) from None
    return _predicted(
        predictor,
        cells,
        {k: [row[where[k]] for row in rows] for k in keys},
        where=lambda i: f"--input: {path}, line {first_line + i}",
    )


def _npy_batches(predictor: Any, path: Path, chunk: int) -> Iterator[tuple[dict, np.ndarray, Any]]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:  # object arrays need pickle: refused
        raise ZooError(f"--input: {path} is not a plain numeric .npy array ({err}).") from None
    except OSError as err:
        raise ZooError(f"--input: cannot read {path} as a .npy array ({err}).") from None
    shape = list(predictor.input_shape)
    if array.ndim == len(shape):
        array = array[None]
    if list(array.shape[1:]) != shape:
        raise ZooError(
            f"--input: {path} holds examples of shape {list(array.shape[1:])}; the model takes {shape}."
        )
    for start in range(0, len(array), chunk):
        part = np.asarray(array[start : start + chunk])
        yield _predicted(predictor, part, {})


def _image_batches(predictor: Any, inputs: list[str], chunk: int) -> Iterator[tuple[dict, np.ndarray, Any]]:
    from zoo.inference import _image_paths

    paths = _image_paths(inputs)
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        yield _predicted(predictor, predictor.read_images(part), {"path": part})


def _predicted(
    predictor: Any, inputs: Any, keys: dict, where: Callable[[int], str] | None = None
) -> tuple[dict, np.ndarray, Any]:
    scores = predictor.scores(predictor.features(inputs, where))
    probs = predictor.probabilities(scores) if predictor.task != "regression" else None
    return keys, predictor.labels(scores), probs


# ---------------------------------------------------------------------------- outputs


def _progress(batches: Iterator[Any]) -> Iterator[Any]:
    if not sys.stderr.isatty():
        return batches
    from tqdm import tqdm

    return tqdm(batches, desc="predicting", unit="chunk", file=sys.stderr, leave=False)


def _write_csv(predictor: Any, batches: Iterator[tuple[dict, np.ndarray, Any]], output: str | None) -> None:
    if output is None:
        _csv_rows(predictor, batches, sys.stdout)
        return
    _atomic(Path(output), lambda handle: _csv_rows(predictor, batches, handle), text=True)


def _csv_rows(predictor: Any, batches: Iterator[tuple[dict, np.ndarray, Any]], handle: TextIO) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    header_written = False
    for keys, labels, probs in _progress(batches):
        if not header_written:
            header = [*keys, "prediction"]
            if probs is not None:
                header += [f"prob_{label}" for label in predictor.classes]
            writer.writerow(header)
            header_written = True
        key_columns = list(keys.values())
        for i, label in enumerate(labels.tolist()):
            row = [column[i] for column in key_columns] + [_cell(label)]
            if probs is not None:
                row += [f"{p:.6g}" for p in probs[i].tolist()]
            writer.writerow(row)
    if not header_written:  # no examples: still a header
        writer.writerow(["prediction"])


def _cell(value: Any) -> str:
    return f"{value:.7g}" if isinstance(value, float) else str(value)


def _write_npy(predictor: Any, batches: Iterator[tuple[dict, np.ndarray, Any]], path: Path) -> None:
    parts = [labels for _, labels, _ in _progress(batches)]
    predictions = np.concatenate(parts) if parts else np.zeros(0)
    _atomic(path, lambda handle: np.save(handle, predictions, allow_pickle=False), text=False)


def _atomic(path: Path, write: Any, text: bool) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ZooError(f"--output: the folder {folder} does not exist.")
    atomic_write(path, write, binary=not text)
