"""The "clean" step for tables: missing values and text (categorical) feature columns.

A :class:`ColumnEncoder` turns raw table cells (strings as read from a CSV file, or numbers) into
the float feature matrix a model takes:

- a **number** column becomes one feature; a missing cell is refused (``missing="error"``), its row
  dropped before the split (``"drop"``), or filled with the training split's mean (``"mean"``);
- a **category** column (any text value, or named in ``categorical``) becomes one 0/1 feature per
  category seen in the training split (one-hot, categories in sorted order). A category the
  training split never saw encodes as all zeros, with a warning; a missing cell, under ``"mean"``,
  as the training split's category frequencies (the mean of the one-hot columns).

The encoder is fitted on the training split only, and its facts (:meth:`ColumnEncoder.facts`)
travel in every checkpoint, so ``zoo predict`` encodes new rows exactly as the training data were.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from zoo.errors import ZooError

MissingPolicy = Literal["error", "drop", "mean"]
MISSING_POLICIES = ("error", "drop", "mean")

#: cells read as missing (compared after stripping blanks, case-insensitively), as pandas reads them
MISSING_TOKENS = frozenset({"", "na", "n/a", "#n/a", "nan", "-nan", "null", "none", "<na>", "?"})


def check_missing_policy(missing: str) -> None:
    """Raise :class:`ZooError` unless ``missing`` is one of :data:`MISSING_POLICIES`."""
    if missing not in MISSING_POLICIES:
        raise ZooError(f"data.missing must be one of {', '.join(MISSING_POLICIES)}; got {missing!r}.")


def is_missing(value: Any) -> bool:
    """True for ``None``, a float NaN and the usual spellings of a missing cell ("", "NA", "?", ...)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def _number(value: Any) -> float | None:
    """``value`` as a float (``inf`` included), or ``None`` when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _cell(value: Any) -> str:
    """A category cell as the text the encoder compares (numbers as their shortest spelling)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def column_kinds(names: Sequence[str], raw: np.ndarray, categorical: Sequence[str] = ()) -> list[str]:
    """``"number"`` or ``"category"`` for each column of ``raw`` (object array, one column per
    name): a column is a category when it is named in ``categorical`` or holds any value that is
    neither missing nor a number."""
    kinds = []
    for j, name in enumerate(names):
        text = name in categorical or any(
            not is_missing(v) and _number(v) is None for v in raw[:, j].tolist()
        )
        kinds.append("category" if text else "number")
    return kinds


class ColumnEncoder:
    """Encodes table columns as model features; see the module docstring.

    Args:
        names: the feature columns, in the model's order.
        kinds: ``"number"`` or ``"category"`` per column (see :func:`column_kinds`).
        missing: ``error``, ``drop`` or ``mean``.
    """

    def __init__(self, names: Sequence[str], kinds: Sequence[str], missing: str = "error") -> None:
        check_missing_policy(missing)
        self.names = [str(n) for n in names]
        self.kinds = list(kinds)
        self.missing = missing
        self.means: list[float | None] = [None] * len(self.names)
        self.categories: list[list[str]] = [[] for _ in self.names]
        self.frequencies: list[list[float]] = [[] for _ in self.names]
        self.fitted = False

    # ------------------------------------------------------------------ fit on the training split

    def fit(self, raw: np.ndarray) -> ColumnEncoder:
        """Learn the means and the categories from the training split's raw cells."""
        for j, name in enumerate(self.names):
            cells = [v for v in raw[:, j].tolist() if not is_missing(v)]
            if self.kinds[j] == "number":
                if not cells:
                    raise ZooError(
                        f"data: column {name!r} has no values in the training split; leave it out "
                        "with data.features."
                    )
                self.means[j] = float(np.mean([float(v) for v in cells]))
            else:
                values, counts = np.unique([_cell(v) for v in cells], return_counts=True)
                self.categories[j] = [str(v) for v in values]
                self.frequencies[j] = (counts / max(1, len(cells))).tolist()
        self.fitted = True
        return self

    @property
    def width(self) -> int:
        """Features per row after encoding."""
        return sum(1 if k == "number" else len(c) for k, c in zip(self.kinds, self.categories, strict=True))

    @property
    def feature_names(self) -> list[str]:
        """One name per encoded feature: the column, or ``column=category`` for one-hot features."""
        out: list[str] = []
        for name, kind, cats in zip(self.names, self.kinds, self.categories, strict=True):
            out += [name] if kind == "number" else [f"{name}={c}" for c in cats]
        return out

    # ------------------------------------------------------------------ encode

    def transform(
        self, columns: np.ndarray | Mapping[str, Sequence[Any]], where: Callable[[int], str] | None = None
    ) -> np.ndarray:
        """Encode raw cells: an object array ``(N, len(names))`` or a mapping of column -> cells.

        ``where(i)`` starts an error message about row ``i`` (default: ``input: row i+1``).
        """
        where = where or (lambda i: f"input: row {i + 1}")
        get = (lambda j: list(columns[self.names[j]])) if isinstance(columns, Mapping) else None
        n = len(get(0)) if get and self.names else (0 if get else len(columns))
        out = np.zeros((n, self.width), dtype=np.float64)
        at = 0
        for j, name in enumerate(self.names):
            cells = get(j) if get else columns[:, j].tolist()
            if len(cells) != n:
                raise ZooError(f"input: column {name!r} has {len(cells)} values, the others {n}.")
            if self.kinds[j] == "number":
                out[:, at] = self._numbers(name, j, cells, where)
                at += 1
            else:
                self._one_hot(name, j, cells, out[:, at : at + len(self.categories[j])], where)
                at += len(self.categories[j])
        return out

    def _missing_cell(self, name: str, i: int, value: Any, where: Callable[[int], str]) -> None:
        # under "drop" such rows were dropped before training; a prediction cannot drop its row
        raise ZooError(
            f"{where(i)}: column {name!r} has a missing value ({value!r}); this model was trained "
            f"with data.missing={self.missing}, so every feature needs a value (data.missing=mean "
            "fills them in)."
        )

    def _numbers(self, name: str, j: int, cells: list[Any], where: Callable[[int], str]) -> np.ndarray:
        values = np.empty(len(cells))
        for i, value in enumerate(cells):
            if is_missing(value):
                if self.missing != "mean":
                    self._missing_cell(name, i, value, where)
                values[i] = self.means[j]
                continue
            number = _number(value)
            if number is None or not np.isfinite(number):
                what = "numeric" if number is None else "finite numbers"
                raise ZooError(f"{where(i)}: column {name!r} must be {what}; found {value!r}.")
            values[i] = number
        return values

    def _one_hot(
        self, name: str, j: int, cells: list[Any], out: np.ndarray, where: Callable[[int], str]
    ) -> None:
        index = {c: k for k, c in enumerate(self.categories[j])}
        unseen: set[str] = set()
        for i, value in enumerate(cells):
            if is_missing(value):
                if self.missing != "mean":
                    self._missing_cell(name, i, value, where)
                out[i] = self.frequencies[j]
                continue
            k = index.get(_cell(value))
            if k is None:
                unseen.add(_cell(value))
            else:
                out[i, k] = 1.0
        if unseen:
            shown = sorted(unseen)
            warnings.warn(
                f"column {name!r}: {len(shown)} value(s) the training data never had "
                f"({', '.join(map(repr, shown[:5]))}{', ...' if len(shown) > 5 else ''}) "
                "encode as all zeros.",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ checkpoint facts

    def facts(self) -> dict[str, Any]:
        """Plain data for the checkpoint (see :meth:`from_facts`)."""
        columns = []
        for j, name in enumerate(self.names):
            if self.kinds[j] == "number":
                columns.append({"name": name, "kind": "number", "mean": self.means[j]})
            else:
                columns.append(
                    {
                        "name": name,
                        "kind": "category",
                        "categories": self.categories[j],
                        "frequencies": self.frequencies[j],
                    }
                )
        return {"missing": self.missing, "columns": columns}

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> ColumnEncoder:
        columns = list(facts["columns"])
        encoder = cls(
            [c["name"] for c in columns], [c["kind"] for c in columns], facts.get("missing", "error")
        )
        for j, column in enumerate(columns):
            if column["kind"] == "number":
                encoder.means[j] = column.get("mean")
            else:
                encoder.categories[j] = [str(c) for c in column["categories"]]
                encoder.frequencies[j] = [float(f) for f in column["frequencies"]]
        encoder.fitted = True
        return encoder
