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

from zoo.cli.args import checkpoint_parser, positive_int, torch_device
from zoo.errors import ZooError
from zoo.files import atomic_write, check_writable, utf8_fault
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
classifiers, one `prob_<label>` column per class (an earlier prediction's columns of those names
in the input are replaced). Inputs are read in chunks, so files larger than memory work.
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
    parser.allow_abbrev = False  # `--inp x.csv` is refused with the did-you-mean below, not expanded
    _check_words(parser, argv)
    return parser.parse_args(argv)


def _check_words(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """One line for what argparse would report wrongly or not at all: an option the command does
    not have (``--inptu x.csv`` was reported as a missing ``--input``), with the closest ones; the
    checkpoint left out (``zoo predict --input imgs/``)."""
    import difflib

    options = [option for option in parser._option_string_actions if option.startswith("--")]
    for arg in argv:
        if arg == "--":
            break
        option = arg.split("=", 1)[0]
        if not option.startswith("-") or option in parser._option_string_actions or _is_number(option):
            continue
        close = difflib.get_close_matches(option, options, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ZooError(
            f"zoo predict has no option {option}.{hint} Usage: zoo predict CKPT --input PATH [--output FILE] "
            "(`zoo predict --help`)."
        )
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        given = " ".join(argv)
        raise ZooError(
            f"zoo predict needs the checkpoint first: zoo predict CKPT {given} (CKPT: a .ckpt file such as "
            "runs/mlp_digits/version_0/checkpoints/last.ckpt, or pretrained:NAME); over a recipe's test "
            "split: zoo predict -c RECIPE --ckpt_path CKPT."
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: list[str]) -> None:
    args = parse(argv)
    predict_files(args.checkpoint, args.input, args.output, args.batch_size, args.device)


def predict_files(
    checkpoint: str, inputs: list[str], output: str | None, batch_size: int = 1024, device: str = "auto"
) -> None:
    """Predict on ``inputs`` (paths) with ``checkpoint``; write CSV (or ``.npy``) to ``output``
    or stdout. The output file appears whole or not at all."""
    from zoo.inference import IMAGE_SUFFIXES, Predictor, load

    if output is not None:
        _check_output(Path(output), inputs)
    missing = next((p for p in inputs if not Path(p).exists()), None)
    if missing is not None:
        raise ZooError(f"--input: {missing} does not exist.")
    on = torch_device(device)  # before the model is loaded
    model = load(checkpoint, map_location="cpu")
    predictor = Predictor(model, batch_size=batch_size, device=on)
    first = Path(inputs[0])
    suffix = first.suffix.lower()
    images = all(Path(p).is_dir() or Path(p).suffix.lower() in IMAGE_SUFFIXES for p in inputs)
    if len(inputs) == 1 and suffix == ".csv":
        _require_table(predictor, first)
        batches = _csv_batches(predictor, first, chunk=max(batch_size, 4096))
    elif len(inputs) == 1 and suffix == ".npy":
        batches = _npy_batches(predictor, first, chunk=max(batch_size, 4096))
    elif images:
        from zoo.inference import _image_paths

        paths = _image_paths(inputs, option="--input")  # a folder without images is refused here
        if not predictor.takes_images:
            raise ZooError(
                f"--input: {inputs[0]} holds images, but this model takes "
                f"{'rows of features' if predictor.feature_names else 'arrays'} (give a .csv or .npy file)."
            )
        batches = _image_batches(predictor, paths, chunk=max(batch_size, 256))
    elif len(inputs) > 1:
        other = next(p for p in inputs if not (Path(p).is_dir() or Path(p).suffix.lower() in IMAGE_SUFFIXES))
        raise ZooError(
            f"--input: {other} is one of {len(inputs)} inputs; several inputs must all be images or "
            "folders of images (give one .csv or .npy file at a time)."
        )
    else:
        raise ZooError(
            f"--input: {inputs[0]} is neither a .csv file, a .npy file, an image "
            f"({', '.join(IMAGE_SUFFIXES)}) nor a folder of images."
        )
    if output is not None and output.lower().endswith(".npy"):
        rows = _write_npy(predictor, batches, Path(output))
    else:
        rows = _write_csv(predictor, batches, output)
    if output is not None:  # where they went (on stderr: stdout is the predictions' when no -o)
        print(f"predictions ({rows} rows): {output}", file=sys.stderr)


def _check_output(path: Path, inputs: list[str]) -> None:
    """Refuse an output that could not be written before any prediction is made."""
    check_writable(path, "--output", path / "predictions.csv")
    if path.suffix.lower() not in (".csv", ".npy"):
        raise ZooError(f"--output: {path} must end in .csv or .npy.")
    if path.exists():
        same = next((p for p in inputs if Path(p).exists() and path.samefile(p)), None)
        if same is not None:
            raise ZooError(f"--output: {path} is the --input file; write the predictions to another file.")


# ---------------------------------------------------------------------------- inputs
# each yields (key columns [(name, values)], predictions, probabilities or None) per chunk


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


def _csv_batches(predictor: Any, path: Path, chunk: int) -> Iterator[tuple[list, np.ndarray, Any]]:
    try:  # utf-8-sig: the byte-order mark Excel writes is not part of the first column's name
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise ZooError(f"--input: cannot read {path} ({err.strerror}).") from None
    with handle:
        reader = csv.reader(handle)
        try:
            yield from _csv_chunks(predictor, path, reader, chunk)
        except UnicodeDecodeError as err:
            raise ZooError(f"--input: {path} is not UTF-8 text ({utf8_fault(path, err)}).") from None
        except csv.Error as err:
            raise ZooError(f"--input: {path}, line {reader.line_num}: not readable as CSV ({err}).") from None
        except OSError as err:
            raise ZooError(f"--input: cannot read {path} ({err.strerror or err}).") from None


def _csv_chunks(
    predictor: Any, path: Path, reader: Any, chunk: int
) -> Iterator[tuple[list, np.ndarray, Any]]:
    target = predictor.facts.get("target")
    header = next(reader, None)
    if not header:
        raise ZooError(f"--input: {path} is empty; it needs a header row naming the columns.")
    header = [h.strip() for h in header]
    missing = [name for name in predictor.feature_names if name not in header]
    if missing:
        names = predictor.feature_names
        shown = (
            ", ".join(names) if len(names) <= 12 else f"{', '.join(names[:10])}, ... ({len(names)} in all)"
        )
        raise ZooError(f"--input: {path} has no column {missing[0]!r}; the model takes the columns {shown}.")
    twice = next((name for name in predictor.feature_names if header.count(name) > 1), None)
    if twice is not None:
        raise ZooError(
            f"--input: {path} has the column {twice!r} twice; give each of the model's columns once."
        )
    used = set(predictor.feature_names) | ({target} if target else set())
    keys = [(h, i) for i, h in enumerate(header) if h not in used]  # copied to the output, duplicates too
    outputs = set(_output_columns(predictor))
    replaced = [h for h, _ in keys if h in outputs]  # an earlier prediction's columns, predicted again
    if replaced:
        print(
            f"zoo predict: the input's columns {', '.join(replaced)} are replaced by this model's.",
            file=sys.stderr,
        )
        keys = [(h, i) for h, i in keys if h not in outputs]
    where = {h: header.index(h) for h in predictor.feature_names}
    rows: list[list[str]] = []
    lines: list[int] = []
    chunks = 0
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ZooError(
                f"--input: {path}, line {reader.line_num}: {len(row)} fields, the header has {len(header)}."
            )
        rows.append(row)
        lines.append(reader.line_num)
        if len(rows) == chunk:
            yield _table_chunk(predictor, rows, where, keys, path, lines)
            chunks += 1
            rows, lines = [], []
    if rows or not chunks:  # a header alone: no rows, but the columns of any output
        yield _table_chunk(predictor, rows, where, keys, path, lines)


def _table_chunk(
    predictor: Any,
    rows: list[list[str]],
    where: dict[str, int],
    keys: list[tuple[str, int]],
    path: Path,
    lines: list[int],
) -> tuple[list, np.ndarray, Any]:
    cells: dict[str, Any] = {name: [row[where[name]] for row in rows] for name in predictor.feature_names}
    if predictor.encoder is None:  # a checkpoint of numeric columns only (no missing-value policy)
        for name, values in cells.items():
            try:
                numbers = np.asarray(values, dtype=np.float64)
            except ValueError:
                i = next(i for i, v in enumerate(values) if not is_number(v))
                raise ZooError(
                    f"--input: {path}, line {lines[i]}: column {name!r} must be numeric; found {values[i]!r}."
                ) from None
            bad = np.flatnonzero(~np.isfinite(numbers))
            if bad.size:
                i = int(bad[0])
                raise ZooError(
                    f"--input: {path}, line {lines[i]}: column {name!r} must be a finite number; "
                    f"found {values[i]!r}."
                )
            cells[name] = numbers
    return _predicted(
        predictor,
        cells,
        [(name, [row[i] for row in rows]) for name, i in keys],
        where=lambda i: f"--input: {path}, line {lines[i]}",
    )


def _npy_batches(predictor: Any, path: Path, chunk: int) -> Iterator[tuple[list, np.ndarray, Any]]:
    array = _npy_array(path)
    shape = list(predictor.input_shape)
    if array.ndim == len(shape):
        array = array[None]
    if list(array.shape[1:]) != shape:
        raise ZooError(
            f"--input: {path} holds examples of shape {list(array.shape[1:])}; the model takes {shape}."
        )
    for start in range(0, len(array), chunk):
        part = np.asarray(array[start : start + chunk])
        yield _predicted(predictor, part, [], where=_row_of(path, start))


def _row_of(path: Path, start: int) -> Callable[[int], str]:
    return lambda i: f"--input: {path}, row {start + i + 1}"


def _npy_array(path: Path) -> np.ndarray:
    """The array of a .npy file, memory-mapped; never unpickled."""
    fmt = np.lib.format
    try:
        with path.open("rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise ZooError(
                    f"--input: {path} is not a .npy file numpy can read (it does not start with the "
                    "signature numpy.save writes)."
                )
            handle.seek(0)
            try:
                version = fmt.read_magic(handle)
                read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
                header = read(handle) if read else None
            except (ValueError, SyntaxError, TypeError) as err:
                raise ZooError(f"--input: {path} is not a .npy file numpy can read ({err}).") from None
            start = handle.tell()
        size = path.stat().st_size
    except OSError as err:
        raise ZooError(f"--input: cannot read {path} as a .npy array ({err.strerror or err}).") from None
    if header is not None:
        shape, _, dtype = header
        if dtype.hasobject:
            raise ZooError(
                f"--input: {path} is not a plain numeric .npy array: it holds Python objects, which are "
                "never loaded (unpickling runs code); save the array with a numeric dtype."
            )
        needed = int(np.prod(shape)) * dtype.itemsize
        if size - start < needed:
            raise ZooError(
                f"--input: {path} is cut short: its header announces {needed} bytes of data "
                f"(shape {list(shape)}, {dtype}), the file holds {size - start}."
            )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ZooError(f"--input: {path} is not a .npy file numpy can read ({err}).") from None
    except OSError as err:
        raise ZooError(f"--input: cannot read {path} as a .npy array ({err.strerror or err}).") from None
    if array.dtype.kind in "cmMV":
        raise ZooError(
            f"--input: {path} holds {array.dtype} values; the model takes real numbers (save the array "
            "as floats or integers)."
        )
    return array


def _image_batches(predictor: Any, paths: list[str], chunk: int) -> Iterator[tuple[list, np.ndarray, Any]]:
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        yield _predicted(predictor, predictor.read_images(part), [("path", part)])


def _predicted(
    predictor: Any, inputs: Any, keys: list, where: Callable[[int], str] | None = None
) -> tuple[list, np.ndarray, Any]:
    scores = predictor.scores(predictor.features(inputs, where))
    probs = predictor.probabilities(scores) if predictor.task != "regression" else None
    return keys, predictor.labels(scores), probs


# ---------------------------------------------------------------------------- outputs


def _progress(batches: Iterator[Any]) -> Iterator[Any]:
    if not sys.stderr.isatty():
        return batches
    from tqdm import tqdm

    return tqdm(batches, desc="predicting", unit="chunk", file=sys.stderr, leave=False)


def _write_csv(predictor: Any, batches: Iterator[tuple[list, np.ndarray, Any]], output: str | None) -> int:
    """Write the predictions as CSV to ``output`` (stdout when None); the number of rows."""
    if output is None:
        return _csv_rows(predictor, batches, sys.stdout)
    rows: list[int] = []
    _atomic(Path(output), lambda handle: rows.append(_csv_rows(predictor, batches, handle)), text=True)
    return rows[0]


def _csv_rows(predictor: Any, batches: Iterator[tuple[list, np.ndarray, Any]], handle: TextIO) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    header_written = False
    count = 0
    for keys, labels, probs in _progress(batches):
        if not header_written:
            writer.writerow([name for name, _ in keys] + _output_columns(predictor))
            header_written = True
        key_columns = [values for _, values in keys]
        for i, label in enumerate(labels.tolist()):
            row = [column[i] for column in key_columns] + [_cell(label)]
            if probs is not None:
                row += [f"{p:.6g}" for p in probs[i].tolist()]
            writer.writerow(row)
        count += len(labels)
    if not header_written:  # no examples: still the header of any output
        writer.writerow(_output_columns(predictor))
    return count


def _output_columns(predictor: Any) -> list[str]:
    if predictor.task == "regression":
        return ["prediction"]
    return ["prediction"] + [f"prob_{label}" for label in predictor.classes]


def _cell(value: Any) -> str:
    return f"{value:.7g}" if isinstance(value, float) else str(value)


def _write_npy(predictor: Any, batches: Iterator[tuple[list, np.ndarray, Any]], path: Path) -> int:
    parts = [labels for _, labels, _ in _progress(batches)]
    predictions = np.concatenate(parts) if parts else np.zeros(0)
    _atomic(path, lambda handle: np.save(handle, predictions, allow_pickle=False), text=False)
    return len(predictions)


def _atomic(path: Path, write: Any, text: bool) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise ZooError(f"--output: the folder {folder} does not exist.")
    try:
        atomic_write(path, write, binary=not text)
    except OSError as err:  # a full disk, a folder gone meanwhile: nothing was written
        raise ZooError(f"--output: cannot write {path} ({err.strerror or err}).") from None
