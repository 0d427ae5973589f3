"""Tabular sources: scikit-learn's bundled datasets, user arrays and CSV files."""

from __future__ import annotations

import csv
import numbers
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zoo.data.base import ArraySplit, Loaded, TaskOrAuto, ZooDataModule, check_task
from zoo.data.columns import ColumnEncoder, MissingPolicy, check_missing_policy, column_kinds, is_missing
from zoo.errors import ZooError
from zoo.files import utf8_fault
from zoo.inference import is_number

SklearnName = Literal["digits", "iris", "wine", "breast_cancer", "diabetes"]

_SKLEARN_TASKS = {
    "digits": "multiclass",
    "iris": "multiclass",
    "wine": "multiclass",
    "breast_cancer": "binary",
    "diabetes": "regression",
}


class SklearnDataModule(ZooDataModule):
    """One of scikit-learn's bundled datasets (no download needed).

    Args:
        dataset: ``digits`` (8x8 handwritten digits, 10 classes, 1797 examples), ``iris``,
            ``wine`` (3 classes), ``breast_cancer`` (binary) or ``diabetes`` (regression).
        as_images: serve digits as ``1 x 8 x 8`` images (for convolutional nets) instead of 64
            features; standardization is then per channel.
        **kwargs: split, batch and standardization options of :class:`ZooDataModule`.
    """

    def __init__(self, dataset: SklearnName = "digits", as_images: bool = False, **kwargs: Any) -> None:
        if dataset not in _SKLEARN_TASKS:
            raise ZooError(f"data.dataset must be one of {', '.join(_SKLEARN_TASKS)}; got {dataset!r}.")
        if as_images and dataset != "digits":
            raise ZooError(f"data.as_images works for the digits dataset only, not {dataset!r}.")
        self.as_images = as_images
        super().__init__(**kwargs)
        self.dataset = dataset

    def load(self) -> Loaded:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{self.dataset}")()
        task = _SKLEARN_TASKS[self.dataset]
        y = bunch.target.astype(np.float64 if task == "regression" else np.int64)
        classes = list(bunch.target_names) if task != "regression" and "target_names" in bunch else None
        names = [str(n) for n in bunch.get("feature_names", [])]
        if self.as_images:  # 1 x 8 x 8 grey images for convolutional nets
            return Loaded(ArraySplit(bunch.images[:, None].astype(np.float64), y), task=task, classes=classes)
        return Loaded(
            ArraySplit(bunch.data.astype(np.float64), y), task=task, classes=classes, feature_names=names
        )


class ArrayDataModule(ZooDataModule):
    """User data from NumPy arrays or tensors.

    Args:
        x: features, one row per example (any trailing shape).
        y: targets: integer labels ``0..K-1`` or real values.
        task: ``auto`` (inferred from ``y``), ``multiclass``, ``binary`` or ``regression``.
        num_classes: states the number of classes; labels outside ``0..num_classes-1`` are an error.
        x_test, y_test: an official test set; validation is then carved out of ``x, y``.
        **kwargs: split, batch and standardization options of :class:`ZooDataModule`.
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        task: TaskOrAuto = "auto",
        num_classes: int | None = None,
        x_test: Any = None,
        y_test: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("x", x), ("y", y)):
            if value is None:
                raise ZooError(
                    f"data.{name} is None: give the features x (one row per example) and the targets y "
                    "(one per row) as arrays, tensors or lists."
                )
        check_task(task)
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
        ):
            raise ZooError(
                f"data.num_classes must be an integer >= 2 or None (from the labels); got {num_classes!r}."
            )
        if num_classes is not None and num_classes < 2:
            raise ZooError(f"data.num_classes must be >= 2 (or None: from the labels); got {num_classes}.")
        if (x_test is None) != (y_test is None):
            raise ZooError("data: give both x_test and y_test, or neither.")
        self.arrays = (x, y, x_test, y_test)
        self.declared_task = task
        self.declared_classes = num_classes

    def load(self) -> Loaded:
        x, y, x_test, y_test = (None if a is None else np.asarray(a) for a in self.arrays)
        test = ArraySplit(x_test, y_test) if x_test is not None else None
        if self.declared_classes is not None and self.declared_task != "regression":
            labels = np.concatenate([y] + ([y_test] if y_test is not None else []))
            bad = labels[(labels < 0) | (labels >= self.declared_classes) | (np.mod(labels, 1) != 0)]
            if len(bad):
                raise ZooError(
                    f"data: labels must be integers in 0..{self.declared_classes - 1} for num_classes="
                    f"{self.declared_classes}; found {np.unique(bad)[:5].tolist()}."
                )
        classes = list(range(self.declared_classes)) if self.declared_classes is not None else None
        task = self.declared_task
        if task == "auto" and classes is not None:  # the stated count decides, not the labels seen
            task = "binary" if len(classes) == 2 else "multiclass"
        return Loaded(ArraySplit(x, y), test=test, task=task, classes=classes)


def _checked_delimiter(delimiter: Any) -> str:
    """``data.delimiter`` as the one character :mod:`csv` takes; the two characters ``\\t`` (as a
    shell passes ``'\\t'``) are a tab."""
    if delimiter == "\\t":
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ZooError(
            "data.delimiter must be one character other than a quote or a line break, such as ',', ';', "
            f"'|' or '\\t' (a tab); got {delimiter!r}."
        )
    return delimiter


def _checked_features(features: list[str] | None, target: str) -> list[str] | None:
    """``data.features``, refused where it names a column twice or names the target."""
    if features is None:
        return None
    features = list(features)
    if not features:
        raise ZooError(
            "data.features is empty: the model would have no input; name the feature columns, or leave "
            "data.features unset (null) to use every column but the target."
        )
    twice = next((name for i, name in enumerate(features) if name in features[:i]), None)
    if twice is not None:
        raise ZooError(f"data.features names the column {twice!r} twice; name each feature column once.")
    if target in features:
        raise ZooError(
            f"data.features includes the target {target!r} (data.target): the model would read the "
            "answer from its input; leave it out of data.features."
        )
    return features


class CSVDataModule(ZooDataModule):
    """A CSV file with a header row: feature columns and one target column.

    Numeric columns are features as they are; a column with text values (or named in
    ``categorical``) is one-hot encoded with the categories of the training split. Missing cells
    (empty, ``NA``, ``NaN``, ``null``, ``?``, ...) follow ``missing``. Both are fitted on the training
    split and stored in every checkpoint, so ``zoo predict`` encodes new rows the same way (see
    :mod:`zoo.data.columns`). Text labels in the target column become classes ``0..K-1`` (in
    sorted order, see :attr:`classes`).

    Args:
        path: the CSV file.
        target: name of the target column.
        features: names of the feature columns (default: every other column).
        task: ``auto`` (text or integer labels -> classification, reals -> regression),
            ``multiclass``, ``binary`` or ``regression``.
        delimiter: the field separator.
        missing: what a missing feature cell does: ``error`` (the default: say where it is),
            ``drop`` (drop its row before the split) or ``mean`` (fill in the training split's mean;
            for a text column, its category frequencies). A row without a target is an error
            unless ``drop``.
        categorical: columns to one-hot encode even though their values are numbers (codes, ids
            of a few kinds).
        max_categories: the most categories a text column may have; more is refused (an id or
            free-text column would become thousands of useless features).
        **kwargs: split, batch and standardization options of :class:`ZooDataModule`.
    """

    def __init__(
        self,
        path: str | Path,
        target: str,
        features: list[str] | None = None,
        task: TaskOrAuto = "auto",
        delimiter: str = ",",
        missing: MissingPolicy = "error",
        categorical: list[str] | None = None,
        max_categories: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_task(task)
        check_missing_policy(missing)
        if max_categories < 2:
            raise ZooError(f"data.max_categories must be >= 2; got {max_categories}.")
        self.path = Path(path)
        self.target = target
        self.features = _checked_features(features, target)
        self.declared_task = task
        self.delimiter = _checked_delimiter(delimiter)
        self.missing = missing
        self.categorical = list(categorical or [])
        self.max_categories = max_categories

    @property
    def target_name(self) -> str:
        return self.target

    def _read(self) -> tuple[list[str], list[list[str]], list[int]]:
        """The header (names stripped of blanks) and the non-empty data rows with their file lines."""
        if not self.path.is_file():
            raise ZooError(f"data.path: no such file: {self.path}")
        rows: list[list[str]] = []
        lines: list[int] = []
        try:  # utf-8-sig: the byte-order mark Excel writes is not part of the first column's name
            with self.path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f, delimiter=self.delimiter)
                last = 0  # the file line the previous record ended on
                try:
                    for row in reader:
                        if row or not rows:  # blank lines are skipped; the header is the first line
                            rows.append(row)
                            lines.append(last + 1)  # where the record starts
                        last = reader.line_num
                except csv.Error as err:
                    raise ZooError(
                        f"data.path: {self.path}, line {last + 1}: not readable as CSV ({err}); "
                        "an unclosed quote?"
                    ) from None
                if (
                    rows
                    and last > lines[-1]
                    and any("\n" in c or "\r" in c for c in rows[-1])
                    and self._open_quote()
                ):
                    raise ZooError(
                        f"data.path: {self.path}, line {lines[-1]}: a quoted field there is never closed "
                        "(the file ends inside it); close the quote, or double a quote that is part of "
                        'a value ("").'
                    )
        except UnicodeDecodeError as err:
            raise ZooError(
                f"data.path: {self.path} is not UTF-8 text ({utf8_fault(self.path, err)})."
            ) from None
        except OSError as err:
            raise ZooError(f"data.path: cannot read {self.path} ({err.strerror or err}).") from None
        if len(rows) < 2:
            raise ZooError(f"data.path: {self.path} needs a header row and at least one data row.")
        raw_header = rows[0]
        header = [h.strip() for h in raw_header]
        seen: dict[str, int] = {}
        for j, name in enumerate(header):
            if name in seen:
                i = seen[name]
                spaces = (
                    f" ({raw_header[i]!r} and {raw_header[j]!r} once blanks are stripped)"
                    if raw_header[i] != raw_header[j]
                    else ""
                )
                raise ZooError(
                    f"data.path: {self.path} has the column {name!r} twice (columns {i + 1} and {j + 1})"
                    f"{spaces}; rename one of them: column names must be unique."
                )
            seen[name] = j
        for line, r in zip(lines[1:], rows[1:], strict=True):
            if len(r) != len(header):
                quote = " (a quoted field runs over several lines: an unclosed quote?)"
                raise ZooError(
                    f"data.path: {self.path} line {line} has a different number of fields than the header "
                    f"({len(r)}, not {len(header)}){quote if any(chr(10) in c for c in r) else ''}."
                )
        return header, rows[1:], lines[1:]

    def _open_quote(self) -> bool:
        """Whether the file ends inside a quoted field (which the lenient reader takes as a value)."""
        with self.path.open(newline="", encoding="utf-8-sig") as f:
            try:
                for _ in csv.reader(f, delimiter=self.delimiter, strict=True):
                    pass
            except csv.Error as err:
                return "unexpected end of data" in str(err)
        return False

    def load(self) -> Loaded:
        header, body, lines = self._read()
        if self.target not in header:
            raise ZooError(
                f"data.target {self.target!r} is not a column of {self.path}; columns: {', '.join(header)}."
            )
        features = self.features or [h for h in header if h != self.target]
        for option, names in (("features", features), ("categorical", self.categorical)):
            unknown = [f for f in names if f not in header]
            if unknown:
                raise ZooError(
                    f"data.{option} {unknown} are not columns of {self.path}; columns: {', '.join(header)}."
                )
        where = {h: i for i, h in enumerate(header)}
        used = [where[name] for name in [*features, self.target]]
        holes = [any(is_missing(r[i]) for i in used) for r in body]
        if any(holes):
            if self.missing == "drop":
                body = [r for r, hole in zip(body, holes, strict=True) if not hole]
                lines = [line for line, hole in zip(lines, holes, strict=True) if not hole]
                warnings.warn(
                    f"data.missing=drop: dropped {sum(holes)} of {len(holes)} rows of {self.path} "
                    "with a missing value.",
                    stacklevel=2,
                )
                if not body:
                    raise ZooError(f"data.missing=drop: every row of {self.path} has a missing value.")
            else:
                self._refuse_holes(body, lines, features, where)
        raw = np.array([[r[where[name]].strip() for name in features] for r in body], dtype=object)
        raw = raw.reshape(len(body), len(features))
        kinds = column_kinds(features, raw, self.categorical)
        for j, name in enumerate(features):
            if kinds[j] == "number":
                bad = [
                    i
                    for i, v in enumerate(raw[:, j].tolist())
                    if not is_missing(v) and not np.isfinite(float(v))
                ]
                if bad:
                    raise ZooError(
                        f"data: column {name!r} of {self.path} has {raw[bad[0], j]!r} on line "
                        f"{lines[bad[0]]}; features must be finite numbers."
                    )
                self._refuse_huge(name, raw[:, j].tolist())
            else:
                if name not in self.categorical:
                    self._refuse_stray_text(name, raw[:, j].tolist(), lines)
                count = len({v for v in raw[:, j].tolist() if not is_missing(v)})
                if count > self.max_categories:
                    raise ZooError(
                        f"data: column {name!r} of {self.path} has {count} distinct text values, more "
                        f"than data.max_categories={self.max_categories}: an id or free text makes no "
                        "useful one-hot features. Leave it out with data.features, or raise "
                        "data.max_categories."
                    )
        targets = [r[where[self.target]].strip() for r in body]
        classes = None
        if all(is_number(v) for v in targets):
            y = np.array([float(v) for v in targets])
        else:
            if self.declared_task == "regression":
                raise ZooError(
                    f"data: target column {self.target!r} has text values; "
                    "a regression target must be numeric."
                )
            classes = sorted(set(targets))
            index = {c: i for i, c in enumerate(classes)}
            y = np.array([index[v] for v in targets], dtype=np.int64)
        classify = self.declared_task in ("binary", "multiclass") or (
            self.declared_task == "auto" and (classes is not None or bool(np.all(np.mod(y, 1) == 0)))
        )
        if classify and len(np.unique(y)) == 1:
            raise ZooError(
                f"data.target {self.target!r} has a single value ({targets[0]}) in {self.path}; "
                "classification needs >= 2 classes (rows of at least two different labels). Check "
                "data.target names the label column"
                + (", or set data.task=regression for a numeric target." if classes is None else ".")
            )
        return Loaded(
            ArraySplit(raw, y),
            task=self.declared_task,
            classes=classes,
            feature_names=features,
            encoder=ColumnEncoder(features, kinds, self.missing),
        )

    def _refuse_huge(self, name: str, cells: list[str]) -> None:
        """Refuse a number column whose mean or standard deviation overflows (standardization would
        divide by ``inf`` and store it in the checkpoint), or, unstandardized, whose values overflow
        the model's 32-bit floats."""
        values = np.array([float(v) for v in cells if not is_missing(v)])
        if not len(values):
            return
        top = float(np.max(np.abs(values)))
        with np.errstate(over="ignore", invalid="ignore"):
            # the sum of |x| bounds the sum of every split (the mean, the fill value of
            # data.missing=mean); the whole column's spread bounds that of every split
            fits = bool(np.isfinite(np.sum(np.abs(values))))
            if self.standardize:
                fits = fits and bool(np.isfinite(np.std(values)))
                what = "to standardize (their mean or standard deviation overflows)"
            else:
                fits = fits and top <= float(np.finfo(np.float32).max)
                what = f"for the model's 32-bit floats (at most {float(np.finfo(np.float32).max):.3g})"
        if not fits:
            raise ZooError(
                f"data.path: column {name!r} of {self.path} holds values too large {what}: up to "
                f"{top:.3g}; rescale the column (divide it by a power of ten, or take its logarithm), or "
                "leave it out with data.features."
            )

    def _refuse_stray_text(self, name: str, cells: list[str], lines: list[int]) -> None:
        """Refuse a column of numbers with a few text values: a typo or a corrupt cell (``"2.0x"``)
        would otherwise turn the whole column into one-hot categories of its numbers."""
        present = [i for i, v in enumerate(cells) if not is_missing(v)]
        stray = [i for i in present if not is_number(cells[i])]
        if len(stray) > 0.1 * len(present):
            return  # a text column (possibly with a few numbers in it)
        first = stray[0]
        raise ZooError(
            f"data: column {name!r} of {self.path} holds numbers but for {cells[first]!r} on line "
            f"{lines[first]} ({len(stray)} of {len(present)} values are not numbers); correct them, or "
            "name the column in data.categorical to read its values as text."
        )

    def _refuse_holes(
        self, body: list[list[str]], lines: list[int], features: list[str], where: dict
    ) -> None:
        """The first missing cell, named with its file line and the policy that would take it."""
        for r, line in zip(body, lines, strict=True):
            if is_missing(r[where[self.target]]):
                raise ZooError(
                    f"data: {self.path} line {line} has no target ({self.target!r} is "
                    f"{r[where[self.target]]!r}); rows without a target cannot train "
                    "(data.missing=drop drops them)."
                )
            if self.missing == "error":
                name = next((n for n in features if is_missing(r[where[n]])), None)
                if name is not None:
                    raise ZooError(
                        f"data.missing=error: column {name!r} of {self.path} has a missing value "
                        f"({r[where[name]]!r}) on line {line}; fill it in, or set data.missing to drop "
                        "(drop such rows) or mean (fill in the training split's mean)."
                    )
