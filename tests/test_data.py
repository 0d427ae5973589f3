"""DataModules: tasks, reproducible (stratified) splits, standardization, sources and the loader."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data import ArrayDataModule, CSVDataModule, SklearnDataModule, TensorLoader, ZooDataModule
from zoo.errors import ZooError

DATASETS = {
    # name: (task, num_classes, n_features, n_examples)
    "digits": ("multiclass", 10, 64, 1797),
    "iris": ("multiclass", 3, 4, 150),
    "wine": ("multiclass", 3, 13, 178),
    "breast_cancer": ("binary", 2, 30, 569),
    "diabetes": ("regression", None, 10, 442),
}


def split(dm: ZooDataModule, name: str):
    dm.prepare()
    return dm._splits[name]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_sklearn_dataset_facts(name: str) -> None:
    task, num_classes, n_features, n = DATASETS[name]
    dm = SklearnDataModule(name)
    assert dm.task == task
    assert dm.num_classes == num_classes
    assert dm.input_shape == [n_features]
    sizes = dm.split_sizes()
    assert set(sizes) == {"train", "val", "test"}
    assert sum(sizes.values()) == n
    assert sizes["test"] == round(0.15 * n)
    assert sizes["val"] == round(0.15 * n)  # a fraction of the whole dataset, not of the rest
    for part in ("train", "val", "test"):
        s = split(dm, part)
        assert s.x.shape == (sizes[part], n_features)
        assert np.all(np.isfinite(s.x))
    if task == "regression":
        y = split(dm, "train").y
        assert dm.target_stats == pytest.approx((y.mean(), y.std()))
        assert dm.classes is None
    else:
        assert dm.target_stats is None
        assert len(dm.classes) == num_classes


def test_sklearn_unknown_dataset() -> None:
    with pytest.raises(ZooError, match="data.dataset must be one of digits, iris"):
        SklearnDataModule("mnist")


def test_splits_reproducible_by_seed() -> None:
    a, b, c = (
        SklearnDataModule("wine", seed=3),
        SklearnDataModule("wine", seed=3),
        SklearnDataModule("wine", seed=4),
    )
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(split(a, part).x, split(b, part).x)
        np.testing.assert_array_equal(split(a, part).y, split(b, part).y)
    assert not np.array_equal(split(a, "test").x, split(c, "test").x)
    assert not np.array_equal(split(a, "train").y, split(c, "train").y)


def test_splits_partition_the_data() -> None:
    import sklearn.datasets

    raw = sklearn.datasets.load_wine().data
    dm = SklearnDataModule("wine", standardize=False)
    rows = np.concatenate([split(dm, p).x for p in ("train", "val", "test")])
    # every original row appears exactly once
    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(raw, axis=0))
    assert len(rows) == len(raw)


@pytest.mark.parametrize("name", ["iris", "wine", "digits", "breast_cancer"])
def test_stratified_splits_keep_class_proportions(name: str) -> None:
    dm = SklearnDataModule(name, val_size=0.2, test_size=0.2, seed=1)
    total = np.bincount(np.concatenate([split(dm, p).y for p in ("train", "val", "test")]))
    n = total.sum()
    for part in ("train", "val", "test"):
        y = split(dm, part).y
        counts = np.bincount(y, minlength=len(total))
        expected = total * len(y) / n
        assert np.all(np.abs(counts - expected) <= 2), (part, counts, expected)


def test_unstratified_split_differs_from_stratified() -> None:
    a = SklearnDataModule("iris", stratify=True, seed=0)
    b = SklearnDataModule("iris", stratify=False, seed=0)
    assert not np.array_equal(split(a, "test").y, split(b, "test").y)


@pytest.mark.parametrize("name", ["digits", "diabetes", "wine"])
def test_standardization_uses_train_statistics_only(name: str) -> None:
    dm = SklearnDataModule(name, seed=2)
    raw = SklearnDataModule(name, seed=2, standardize=False)
    x_train = split(dm, "train").x
    raw_train = split(raw, "train").x
    mean, std = raw_train.mean(0), raw_train.std(0)
    # the statistics are the training split's, not the whole dataset's
    np.testing.assert_allclose(dm.feature_mean, mean)
    all_raw = np.concatenate([split(raw, p).x for p in ("train", "val", "test")])
    assert not np.allclose(dm.feature_mean, all_raw.mean(0))
    constant = std == 0
    np.testing.assert_allclose(dm.feature_std[~constant], std[~constant])
    np.testing.assert_array_equal(dm.feature_std[constant], 1.0)
    # training features: mean 0, std 1 (0 for constant columns); nothing blows up
    np.testing.assert_allclose(x_train.mean(0), 0.0, atol=1e-9)
    expected_std = np.where(constant, 0.0, 1.0)
    np.testing.assert_allclose(x_train.std(0), expected_std, atol=1e-9)
    for part in ("val", "test"):
        x = split(dm, part).x
        assert np.all(np.isfinite(x))
        # val/test are transformed with the train statistics
        np.testing.assert_allclose(x, (split(raw, part).x - mean) / np.where(constant, 1.0, std))
    if name == "digits":
        assert constant.any()  # all-zero pixel columns exist


def test_counts_and_fractions() -> None:
    assert SklearnDataModule("iris", val_size=20, test_size=30).split_sizes() == {
        "train": 100,
        "val": 20,
        "test": 30,
    }
    assert SklearnDataModule("iris", val_size=0.2, test_size=0.1).split_sizes() == {
        "train": 105,
        "val": 30,
        "test": 15,
    }
    assert SklearnDataModule("iris", val_size=12, test_size=0.2).split_sizes() == {
        "train": 108,
        "val": 12,
        "test": 30,
    }
    assert SklearnDataModule("wine", val_size=3.0, test_size=0.1).split_sizes()["val"] == 3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"val_size": 0.5, "test_size": 0.5}, "data.val_size + data.test_size"),
        ({"val_size": 0.7, "test_size": 0.6}, "data.val_size + data.test_size"),
        ({"val_size": 0}, "data.val_size"),
        ({"test_size": 0}, "data.test_size"),
        ({"val_size": -0.1}, "data.val_size"),
        ({"test_size": -5}, "data.test_size"),
        ({"val_size": 2.5}, "data.val_size"),
        ({"test_size": True}, "data.test_size"),
        ({"val_size": "10"}, "data.val_size"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"eval_batch_size": 0}, "data.eval_batch_size"),
    ],
)
def test_bad_options_raise_at_construction(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ZooError) as info:
        SklearnDataModule("iris", **kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"test_size": 150}, "data.test_size=150 takes 150 of 150"),
        ({"test_size": 400}, "data.test_size"),
        (
            {"val_size": 140, "test_size": 10},
            "data.val_size=140 (140 of the 150 examples) and data.test_size=10 (10) leave none",
        ),
        (
            {"test_size": 2},
            "data.test_size=2: a stratified split puts each of the 3 classes on both sides, but this split "
            "gets 2 of the 150 examples; give each side at least 3, or set data.stratify=false.",
        ),
        (
            {"test_size": 148},
            "data.test_size=148: a stratified split puts each of the 3 classes on both sides, but what "
            "remains gets 2 of the 150 examples; give each side at least 3, or set data.stratify=false.",
        ),
    ],
)
def test_bad_counts_raise_when_prepared(kwargs: dict, fragment: str) -> None:
    dm = SklearnDataModule("iris", **kwargs)
    with pytest.raises(ZooError) as info:
        dm.prepare()
    assert fragment in str(info.value)


def test_a_class_too_rare_to_stratify_is_named_by_its_label() -> None:
    """scikit-learn's message named class codes ("Classes with too few members are: [0]")."""
    with pytest.raises(ZooError) as info:
        ArrayDataModule(_x(81), np.array([0] * 40 + [1] * 40 + [2])).prepare()
    assert str(info.value) == (
        "data: a stratified split needs at least 2 examples of each class in the data; too few of "
        "2 (1). Drop those rows, or set data.stratify=false."
    )
    assert ArrayDataModule(_x(81), np.array([0] * 40 + [1] * 40 + [2]), stratify=False).split_sizes()["train"]


def test_a_csv_class_too_rare_to_stratify_is_named_by_its_label(tmp_path: Path) -> None:
    rows = [f"{i},{['cat', 'dog'][i % 2]}" for i in range(80)] + ["3,emu"]
    path = _write(tmp_path / "rare.csv", "a,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(ZooError, match=r"too few of 'emu' \(1\)\. Drop those rows"):
        CSVDataModule(path, target="label").prepare()


# ----------------------------------------------------------------------------- ArrayDataModule


def _x(n: int, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_array_task_inference() -> None:
    rng = np.random.default_rng(0)
    reg = ArrayDataModule(_x(60), rng.normal(size=60))
    assert (reg.task, reg.num_classes) == ("regression", None)
    binary = ArrayDataModule(_x(60), np.tile([0, 1], 30))
    assert (binary.task, binary.num_classes) == ("binary", 2)
    multi = ArrayDataModule(_x(60), np.tile([0, 1, 2, 3], 15))
    assert (multi.task, multi.num_classes) == ("multiclass", 4)
    # integral floats are labels
    floats = ArrayDataModule(_x(60), np.tile([0.0, 1.0, 2.0], 20))
    assert (floats.task, floats.num_classes) == ("multiclass", 3)
    # torch tensors work too
    tensors = ArrayDataModule(torch.randn(60, 2), torch.arange(60) % 3)
    assert (tensors.task, tensors.num_classes) == ("multiclass", 3)


def test_array_declared_num_classes_beyond_seen_labels() -> None:
    dm = ArrayDataModule(_x(60), np.tile([0, 1], 30), num_classes=3)
    assert (dm.task, dm.num_classes) == ("multiclass", 3)
    dm = ArrayDataModule(_x(60), np.tile([0, 1, 2], 20), num_classes=5, task="multiclass")
    assert dm.num_classes == 5


def test_array_dtypes_of_tensors() -> None:
    reg = ArrayDataModule(_x(40), np.linspace(0, 1, 40) + 0.01, batch_size=8)
    reg.setup()
    x, y = next(iter(reg.val_dataloader()))
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    cls = ArrayDataModule(_x(40), np.tile([0, 1, 2, 3], 10), batch_size=8)
    x, y = next(iter(cls.val_dataloader()))
    assert x.dtype == torch.float32 and y.dtype == torch.long


def test_array_official_test_split() -> None:
    x, y = _x(100), np.tile([0, 1, 2, 3], 25)
    x_test, y_test = _x(17, seed=5), np.arange(17) % 4
    dm = ArrayDataModule(x, y, x_test=x_test, y_test=y_test, val_size=0.2, test_size=0.5, standardize=False)
    assert dm.split_sizes() == {"train": 80, "val": 20, "test": 17}  # test_size is ignored
    np.testing.assert_array_equal(split(dm, "test").x, x_test)
    np.testing.assert_array_equal(split(dm, "test").y, y_test)
    carved = np.concatenate([split(dm, "train").x, split(dm, "val").x])
    np.testing.assert_array_equal(np.unique(carved, axis=0), np.unique(x, axis=0))
    # standardized: the test set gets the train statistics, and the user's array is left alone
    x_test_copy = x_test.copy()
    std = ArrayDataModule(x, y, x_test=x_test, y_test=y_test, val_size=0.2)
    train_raw = split(dm, "train").x
    np.testing.assert_allclose(split(std, "test").x, (x_test - train_raw.mean(0)) / train_raw.std(0))
    np.testing.assert_array_equal(x_test, x_test_copy)


def test_array_test_needs_both() -> None:
    with pytest.raises(ZooError, match="give both x_test and y_test"):
        ArrayDataModule(_x(10), np.zeros(10), x_test=_x(3))


@pytest.mark.parametrize(
    ("y", "y_test", "found"),
    [
        (np.tile([0, 1, 2, 5], 10), None, "[5]"),
        (np.tile([0, 1, -1, 2], 10), None, "[-1]"),
        (np.tile([0, 1, 2, 0], 10), np.array([0, 7, 1, 9]), "[7, 9]"),
    ],
)
def test_array_labels_out_of_range(y: np.ndarray, y_test: np.ndarray | None, found: str) -> None:
    x_test = None if y_test is None else _x(len(y_test))
    dm = ArrayDataModule(_x(40), y, num_classes=3, x_test=x_test, y_test=y_test)
    with pytest.raises(ZooError) as info:
        dm.prepare()
    msg = str(info.value)
    assert "labels must be integers in 0..2 for num_classes=3" in msg
    assert f"found {found}" in msg


def test_array_binary_with_three_labels() -> None:
    dm = ArrayDataModule(_x(30), np.tile([0, 1, 2], 10), task="binary")
    with pytest.raises(ZooError, match="task 'binary' needs labels 0 and 1; got 3 distinct labels"):
        dm.prepare()


def test_array_bad_labels_and_features() -> None:
    with pytest.raises(ZooError, match="labels must be integers 0..K-1"):
        ArrayDataModule(_x(30), np.tile([0.0, 1.0, 2.5], 10), task="multiclass").prepare()
    with pytest.raises(ZooError, match="one row per target"):
        ArrayDataModule(_x(30), np.zeros(29)).prepare()
    bad = _x(30)
    bad[3, 1] = np.nan
    with pytest.raises(ZooError, match="finite numbers"):
        ArrayDataModule(bad, np.tile([0, 1], 15)).prepare()


def test_array_image_shaped_input() -> None:
    x = np.random.default_rng(0).normal(size=(50, 1, 4, 4))
    dm = ArrayDataModule(x, np.tile([0, 1], 25))
    assert dm.input_shape == [1, 4, 4]
    # images are standardized per channel, with training-split statistics
    assert dm.feature_mean.shape == (1, 1, 1, 1)
    raw = ArrayDataModule(x, np.tile([0, 1], 25), standardize=False)
    raw.prepare()
    assert np.isclose(dm.feature_mean.item(), raw._splits["train"].x.mean())
    dm.setup()
    assert abs(float(dm._tensors["train"][0].mean())) < 1e-5


# ----------------------------------------------------------------------------- CSVDataModule


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_numeric_target(tmp_path: Path) -> None:
    rows = ["a,b,y"] + [f"{i},{i % 7},{0.5 * i + 0.25}" for i in range(40)]
    path = _write(tmp_path / "reg.csv", "\n".join(rows) + "\n")
    dm = CSVDataModule(path, target="y", val_size=5, test_size=5, standardize=False)
    assert dm.task == "regression"
    assert dm.input_shape == [2]
    assert dm.classes is None
    assert dm.split_sizes() == {"train": 30, "val": 5, "test": 5}
    for part in ("train", "val", "test"):
        s = split(dm, part)
        np.testing.assert_allclose(s.y, 0.5 * s.x[:, 0] + 0.25)  # rows stay aligned
        np.testing.assert_allclose(s.x[:, 1], s.x[:, 0] % 7)


def test_csv_text_labels_sorted(tmp_path: Path) -> None:
    names = ["zebra", "cat", "moose"]
    rows = ["idx,label,size"] + [f"{i},{names[i % 3]},{i % 3}" for i in range(45)]
    path = _write(tmp_path / "cls.csv", "\n".join(rows))
    dm = CSVDataModule(path, target="label", standardize=False)
    assert dm.task == "multiclass"
    assert dm.num_classes == 3
    assert dm.classes == ["cat", "moose", "zebra"]
    assert dm.input_shape == [2]
    s = split(dm, "train")
    idx = s.x[:, 0].astype(int)
    decoded = [dm.classes[k] for k in s.y]
    assert decoded == [names[i % 3] for i in idx]


def test_csv_two_text_labels_is_binary_and_features_subset(tmp_path: Path) -> None:
    rows = ["f1;f2;f3;t"] + [f"{i};{2 * i};x{i};{'yes' if i % 2 else 'no'}" for i in range(30)]
    path = _write(tmp_path / "b.csv", "\n".join(rows))
    dm = CSVDataModule(path, target="t", features=["f2", "f1"], delimiter=";", standardize=False)
    assert (dm.task, dm.num_classes, dm.classes) == ("binary", 2, ["no", "yes"])
    s = split(dm, "test")
    np.testing.assert_array_equal(s.x[:, 0], 2 * s.x[:, 1])  # column order follows `features`
    np.testing.assert_array_equal(s.y, s.x[:, 1].astype(int) % 2)


def test_csv_missing_target_lists_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4,y\n")
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="target").prepare()
    msg = str(info.value)
    assert "data.target 'target' is not a column" in msg
    assert "columns: a, b, label" in msg


def test_csv_missing_feature_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4,y\n")
    with pytest.raises(ZooError, match=r"data.features \['c'\] are not columns"):
        CSVDataModule(path, target="label", features=["a", "c"]).prepare()


def _table(path: Path, n: int = 200, seed: int = 0, holes: bool = False) -> Path:
    """A CSV with a numeric column `size`, a text column `color` and labels; with `holes`, every
    7th size is empty and every 11th color is NA."""
    rng = np.random.default_rng(seed)
    lines = ["size,color,label"]
    for i in range(n):
        color = ["red", "green", "blue"][rng.integers(3)]
        size = rng.normal()
        label = "yes" if (color == "red") ^ (size > 0) else "no"
        size_cell = "" if holes and i % 7 == 0 else f"{size:.4f}"
        lines.append(f"{size_cell},{'NA' if holes and i % 11 == 0 else color},{label}")
    return _write(path, "\n".join(lines) + "\n")


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_csv_text_column_is_one_hot_encoded_with_the_training_categories(tmp_path: Path) -> None:
    path = _table(tmp_path / "t.csv")
    dm = CSVDataModule(path, target="label", standardize=False)
    assert dm.input_shape == [4]
    assert dm.encoder.feature_names == ["size", "color=blue", "color=green", "color=red"]
    rows = _raw_rows(path)
    by_size = {round(float(r["size"]), 4): r["color"] for r in rows}
    for part in ("train", "val", "test"):
        x = split(dm, part).x
        np.testing.assert_array_equal(x[:, 1:].sum(axis=1), 1.0)  # exactly one category each
        colors = [by_size[round(v, 4)] for v in x[:, 0]]
        expected = np.array([[c == "blue", c == "green", c == "red"] for c in colors], dtype=float)
        np.testing.assert_array_equal(x[:, 1:], expected)


@pytest.mark.parametrize("cell", ["2.0\x00", "2.0x", "two"])
def test_csv_number_column_with_a_stray_text_value_is_refused(tmp_path: Path, cell: str) -> None:
    # read as text, the column would silently become one-hot categories of its 60 numbers
    lines = ["a,b,label"] + [f"{i * 0.5},{(i * 7) % 11},{i % 2}" for i in range(60)]
    lines[5] = f"{cell},3,1"
    path = _write(tmp_path / "stray.csv", "\n".join(lines) + "\n")
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label").prepare()
    assert str(info.value) == (
        f"data: column 'a' of {path} holds numbers but for {cell!r} on line 6 (1 of 60 values are not "
        "numbers); correct them, or name the column in data.categorical to read its values as text."
    )
    dm = CSVDataModule(path, target="label", categorical=["a"], standardize=False)
    assert dm.input_shape == [1 + len(dm.encoder.categories[0])]  # as asked: text


def test_csv_category_only_outside_the_training_split_encodes_as_zeros(tmp_path: Path) -> None:
    # "purple" is on one row; stratified splits put it in train or not, so look where it went
    lines = ["shade,label"] + [f"{['a', 'b'][i % 2]},{i % 2}" for i in range(40)] + ["purple,1"]
    path = _write(tmp_path / "p.csv", "\n".join(lines))
    for seed in range(10):
        dm = CSVDataModule(path, target="label", standardize=False, seed=seed, val_size=10, test_size=10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dm.prepare()
        if "purple" not in dm.encoder.categories[0]:
            break
    else:
        pytest.fail("purple landed in the training split for every seed")
    assert dm.encoder.categories[0] == ["a", "b"]
    assert any("'purple') encode as all zeros" in str(w.message) for w in caught)
    x = np.concatenate([split(dm, "val").x, split(dm, "test").x])
    assert (x.sum(axis=1) == 0).sum() == 1  # the purple row


def test_csv_missing_values_error_drop_and_mean(tmp_path: Path) -> None:
    path = _table(tmp_path / "h.csv", holes=True)
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label").prepare()
    assert str(info.value) == (
        f"data.missing=error: column 'size' of {path} has a missing value ('') on line 2; fill it in, "
        "or set data.missing to drop (drop such rows) or mean (fill in the training split's mean)."
    )

    rows = _raw_rows(path)
    complete = sum(1 for r in rows if r["size"] and r["color"] != "NA")
    with pytest.warns(UserWarning, match=f"dropped {len(rows) - complete} of {len(rows)} rows"):
        dropped = CSVDataModule(path, target="label", missing="drop", standardize=False)
        dropped.prepare()
    assert sum(dropped.split_sizes().values()) == complete

    mean = CSVDataModule(path, target="label", missing="mean", standardize=False)
    assert sum(mean.split_sizes().values()) == len(rows)
    x = split(mean, "train").x
    filled = (x[:, 1:] == 1.0).sum(axis=1) == 0  # rows whose color was missing hold frequencies
    assert filled.sum() > 5
    known = x[~filled, 1:]
    np.testing.assert_allclose(x[filled, 1:], np.broadcast_to(known.mean(axis=0), x[filled, 1:].shape))
    sizes = [float(r["size"]) for r in rows if r["size"]]
    in_train = [v for v in x[:, 0] if round(v, 4) in {round(s, 4) for s in sizes}]
    assert mean.encoder.means[0] == pytest.approx(np.mean(in_train))
    assert np.sum(x[:, 0] == mean.encoder.means[0]) > 0  # the filled sizes


def test_csv_categorical_option_and_encoding_facts_round_trip(tmp_path: Path) -> None:
    from zoo.data.columns import ColumnEncoder

    lines = ["code,v,label"] + [f"{10 * (i % 3)},{i},{i % 2}" for i in range(60)]
    path = _write(tmp_path / "c.csv", "\n".join(lines))
    dm = CSVDataModule(path, target="label", categorical=["code"], standardize=False)
    assert dm.encoder.feature_names == ["code=0", "code=10", "code=20", "v"]
    facts = dm.preprocessing()["encoding"]
    again = ColumnEncoder.from_facts(facts)
    cells = {"code": ["20", 0, 10.0, "NA"], "v": ["1.5", 2, "3", "4"]}
    with pytest.raises(ZooError, match=r"input: row 4: column 'code' has a missing value \('NA'\)"):
        again.transform(cells)
    cells["code"][3] = "10"
    np.testing.assert_array_equal(
        again.transform(cells), [[0, 0, 1, 1.5], [1, 0, 0, 2], [0, 1, 0, 3], [0, 1, 0, 4]]
    )
    with pytest.raises(ZooError, match=r"data.categorical \['nope'\] are not columns"):
        CSVDataModule(path, target="label", categorical=["nope"]).prepare()
    with pytest.raises(ZooError, match="data.missing must be one of error, drop, mean; got 'zero'"):
        CSVDataModule(path, target="label", missing="zero")


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="data.path: no such file"):
        CSVDataModule(tmp_path / "nope.csv", target="y").prepare()


def test_csv_ragged_and_empty(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "a,b,y\n1,2,0\n3,1\n4,5,1\n")
    with pytest.raises(ZooError, match="line 3 has a different number of fields"):
        CSVDataModule(path, target="y").prepare()
    path = _write(tmp_path / "e.csv", "a,b,y\n")
    with pytest.raises(ZooError, match="header row and at least one data row"):
        CSVDataModule(path, target="y").prepare()


def test_csv_text_target_with_regression_task(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "a,y\n1,low\n2,high\n")
    with pytest.raises(ZooError, match="a regression target must be numeric"):
        CSVDataModule(path, target="y", task="regression").prepare()


def _labelled(n: int = 40) -> str:
    return "".join(f"{i},{i % 2}\n" for i in range(n))


@pytest.mark.parametrize(
    "data, fragment",
    [
        (
            b"a,label\n" + "caf\xe9,1\n".encode("latin-1") + b"x,0\n",
            "(byte 0xe9 at offset 11, line 2; save it as UTF-8).",
        ),
        ("a,label\n1,0\n2,1\n".encode("utf-16"), "(it is UTF-16; save it as UTF-8)."),
    ],
    ids=["latin1", "utf16"],
)
def test_csv_not_utf8(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(data)
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label").prepare()
    assert str(info.value) == f"data.path: {path} is not UTF-8 text {fragment}"


def test_csv_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("label,a\n" + "".join(f"{i % 2},{i}\n" for i in range(40)), encoding="utf-8-sig")
    dm = CSVDataModule(path, target="label", standardize=False)
    assert (dm.task, dm._feature_names) == ("binary", ["a"])


@pytest.mark.parametrize("delimiter", ["\\t", "\t"], ids=["escape", "tab"])
def test_csv_tab_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = _write(tmp_path / "t.tsv", "a\tlabel\n" + _labelled().replace(",", "\t"))
    assert CSVDataModule(path, target="label", delimiter=delimiter).input_shape == [1]


@pytest.mark.parametrize("delimiter", [";;", "", '"', "\n"], ids=["two", "empty", "quote", "newline"])
def test_csv_bad_delimiter_is_refused_at_construction(tmp_path: Path, delimiter: str) -> None:
    with pytest.raises(ZooError) as info:
        CSVDataModule(tmp_path / "nope.csv", target="label", delimiter=delimiter)
    assert str(info.value) == (
        "data.delimiter must be one character other than a quote or a line break, such as ',', ';', "
        f"'|' or '\\t' (a tab); got {delimiter!r}."
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            'a,label\n1,0\n2,"' + "y" * 140_000 + "\n",
            "line 3: not readable as CSV (field larger than field limit",
        ),
        ('a,label\n1,0\n"x\n3,1\n4,0\n', "line 3: a quoted field there is never closed (the file ends"),
        ('a,label\n1,"0\n2,1\n', "line 2: a quoted field there is never closed"),
        (
            'a,b,label\n1,"2,0\n3,4,1\n5,6",0,7\n8,9,1\n',
            "line 2 has a different number of fields than the header (4, not 3) "
            "(a quoted field runs over several lines: an unclosed quote?).",
        ),
    ],
    ids=["field-limit", "eof", "eof-last-column", "ragged"],
)
def test_csv_unclosed_quote(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path / "q.csv", text)
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label").prepare()
    assert str(info.value).startswith(f"data.path: {path}")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "header, fragment",
    [
        ("a,a,label", "the column 'a' twice (columns 1 and 2); rename one"),
        ("a,label,label", "the column 'label' twice (columns 2 and 3); rename one"),
        ("a,label ,label", "the column 'label' twice (columns 2 and 3) ('label ' and 'label' once blanks"),
    ],
    ids=["feature", "target", "blanks"],
)
def test_csv_duplicate_column_names(tmp_path: Path, header: str, fragment: str) -> None:
    path = _write(tmp_path / "d.csv", header + "\n" + "".join(f"{i},{i % 2},{i % 2}\n" for i in range(40)))
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label").prepare()
    assert str(info.value).startswith(f"data.path: {path} has {fragment}")


@pytest.mark.parametrize(
    "features, message",
    [
        (
            ["a", "label"],
            "data.features includes the target 'label' (data.target): the model would read the "
            "answer from its input; leave it out of data.features.",
        ),
        (["a", "a"], "data.features names the column 'a' twice; name each feature column once."),
        (
            [],
            "data.features is empty: the model would have no input; name the feature columns, or leave "
            "data.features unset (null) to use every column but the target.",
        ),
    ],
    ids=["target", "twice", "empty"],
)
def test_csv_bad_features_are_refused_at_construction(tmp_path: Path, features: list, message: str) -> None:
    with pytest.raises(ZooError) as info:
        CSVDataModule(tmp_path / "nope.csv", target="label", features=features)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "values, standardize, fragment",
    [
        (
            ["1e300", "2e300", "-3e300"],
            True,
            "too large to standardize (their mean or standard deviation overflows): up to 3e+300; rescale",
        ),
        (["1e39", "2", "3"], False, "too large for the model's 32-bit floats (at most 3.4e+38): up to 1e+39"),
    ],
    ids=["standardized", "unstandardized"],
)
def test_csv_too_large_numbers(tmp_path: Path, values: list, standardize: bool, fragment: str) -> None:
    rows = "".join(f"{values[i % 3]},{i},{i % 2}\n" for i in range(30))
    path = _write(tmp_path / "h.csv", "a,b,label\n" + rows)
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label", standardize=standardize).prepare()
    assert str(info.value).startswith(f"data.path: column 'a' of {path} holds values {fragment}")


def test_csv_large_numbers_that_standardize_are_kept(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.csv", "a,label\n" + "".join(f"{i}e150,{i % 2}\n" for i in range(30)))
    dm = CSVDataModule(path, target="label")
    assert np.all(np.isfinite(split(dm, "train").x)) and np.all(np.isfinite(dm.feature_std))


@pytest.mark.parametrize(
    "label, task, shown, hint",
    [
        ("0", "auto", "0", ", or set data.task=regression for a numeric target."),
        ("cat", "auto", "cat", "."),
        ("1", "binary", "1", ", or set data.task=regression for a numeric target."),
    ],
    ids=["number", "text", "declared"],
)
def test_csv_single_class_target(tmp_path: Path, label: str, task: str, shown: str, hint: str) -> None:
    path = _write(tmp_path / "s.csv", "a,label\n" + "".join(f"{i},{label}\n" for i in range(30)))
    with pytest.raises(ZooError) as info:
        CSVDataModule(path, target="label", task=task).prepare()
    assert str(info.value) == (
        f"data.target 'label' has a single value ({shown}) in {path}; classification needs >= 2 classes "
        "(rows of at least two different labels). Check data.target names the label column" + hint
    )


# ----------------------------------------------------------------------------- TensorLoader


def _epoch(loader: TensorLoader) -> list[torch.Tensor]:
    return [b[0] for b in loader]


def test_loader_covers_every_row_once_and_keeps_alignment() -> None:
    x = torch.arange(23)
    loader = TensorLoader(x, x * 10, batch_size=5, shuffle=True, seed=1)
    for _ in range(3):
        batches = list(loader)
        assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
        for bx, by in batches:
            assert torch.equal(by, bx * 10)
        assert torch.equal(torch.cat([b[0] for b in batches]).sort().values, x)


def test_loader_without_shuffle_is_in_order() -> None:
    x = torch.arange(10).float().unsqueeze(1)
    batches = _epoch(TensorLoader(x, batch_size=4))
    assert torch.equal(torch.cat(batches), x)
    assert [len(b) for b in batches] == [4, 4, 2]


def test_loader_shuffle_differs_between_epochs_but_reproducible() -> None:
    x = torch.arange(50)
    a = TensorLoader(x, batch_size=50, shuffle=True, seed=7)
    b = TensorLoader(x, batch_size=50, shuffle=True, seed=7)
    c = TensorLoader(x, batch_size=50, shuffle=True, seed=8)
    a1, a2 = _epoch(a)[0], _epoch(a)[0]
    b1, b2 = _epoch(b)[0], _epoch(b)[0]
    assert not torch.equal(a1, a2)
    assert not torch.equal(a1, x)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, _epoch(c)[0])


@pytest.mark.parametrize(
    ("n", "bs", "with_rest", "without_rest"), [(10, 3, 4, 3), (9, 3, 3, 3), (2, 5, 1, 0)]
)
def test_loader_len(n: int, bs: int, with_rest: int, without_rest: int) -> None:
    x = torch.zeros(n, 2)
    keep = TensorLoader(x, batch_size=bs)
    drop = TensorLoader(x, batch_size=bs, drop_last=True, shuffle=True)
    assert len(keep) == with_rest == len(list(keep))
    assert len(drop) == without_rest == len(list(drop))
    assert all(len(b[0]) == bs for b in drop)


def test_loader_errors() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        TensorLoader(torch.zeros(3), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(torch.zeros(3), batch_size=0)
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorLoader(batch_size=2)


def test_datamodule_train_loader_drops_a_single_example_batch() -> None:
    x, y = _x(101), np.tile([0, 1], 51)[:101]
    dm = ArrayDataModule(x, y, val_size=10, test_size=10, batch_size=8, eval_batch_size=3)
    assert dm.split_sizes()["train"] == 81  # 81 = 10 * 8 + 1
    train = dm.train_dataloader()
    assert train.drop_last and train.shuffle
    assert len(train) == 10
    assert all(len(b[0]) == 8 for b in train)
    # evaluation keeps every example
    val = dm.val_dataloader()
    assert not val.shuffle
    assert len(val) == 4 and sum(len(b[0]) for b in val) == 10
    # a last batch of 2 is kept
    dm2 = ArrayDataModule(x, y, val_size=10, test_size=10, batch_size=79)
    assert not dm2.train_dataloader().drop_last
    assert [len(b[0]) for b in dm2.train_dataloader()] == [79, 2]
    assert dm2.eval_batch_size == 79


def test_predict_loader_yields_test_features() -> None:
    dm = ArrayDataModule(_x(40), np.tile([0, 1], 20), val_size=5, test_size=7, batch_size=4)
    batches = list(dm.predict_dataloader())
    assert all(len(b) == 1 for b in batches)
    dm.setup()
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), dm._tensors["test"][0])


def test_digits_as_images_are_standardized_per_channel_on_the_train_split():
    dm = SklearnDataModule("digits", as_images=True, seed=0)
    assert dm.input_shape == [1, 8, 8]
    assert dm.task == "multiclass" and dm.num_classes == 10
    dm.setup()
    x_train, _ = dm._tensors["train"]
    assert x_train.shape[1:] == (1, 8, 8)
    assert abs(float(x_train.mean())) < 1e-5 and abs(float(x_train.std()) - 1) < 1e-3
    x_test, _ = dm._tensors["test"]
    assert abs(float(x_test.mean())) > 1e-4  # test statistics were not used
    # the images are the same pixels as the flat features, in the same order
    flat = SklearnDataModule("digits", seed=0, standardize=False)
    images = SklearnDataModule("digits", as_images=True, seed=0, standardize=False)
    flat.setup(), images.setup()
    assert torch.equal(flat._tensors["train"][0], images._tensors["train"][0].flatten(1))


def test_as_images_is_for_digits_only():
    with pytest.raises(ZooError, match="data.as_images works for the digits dataset only"):
        SklearnDataModule("iris", as_images=True)


def test_classes_are_counted_over_every_split_and_missing_ones_are_named() -> None:
    from zoo.data import ArrayDataModule

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), np.tile([0, 1, 2], 20)
    x_test, y_test = rng.normal(size=(6, 3)), np.array([0, 1, 2, 3, 3, 3])  # 3 only in the test set
    data = ArrayDataModule(x, y, x_test=x_test, y_test=y_test, val_size=0.2)
    with pytest.warns(
        UserWarning, match=r"the train split has no examples of class\(es\) \[3\]; the model cannot"
    ):
        assert data.num_classes == 4


# ---------------------------------------------------------------------------- data on the device


def test_on_device_decision() -> None:
    from zoo.data.base import ON_DEVICE_FRACTION, keeps_data_on

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    free = 8 * 2**30
    fits = int(ON_DEVICE_FRACTION * free)
    assert keeps_data_on("auto", cuda, fits, free) and not keeps_data_on("auto", cuda, fits + 1, free)
    assert not keeps_data_on("auto", cuda, 1, None)  # free memory unknown (e.g. MPS): stay on the host
    assert keeps_data_on(True, torch.device("mps"), 10**12, None)  # asked for: always
    assert not keeps_data_on(False, cuda, 1, free)
    assert not any(keeps_data_on(s, cpu, 1, free) for s in (True, "auto"))  # nothing to move


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_on_device_bad_value(value: object) -> None:
    with pytest.raises(ZooError, match=r"data.on_device must be true, false or auto; got"):
        SklearnDataModule("digits", on_device=value)


def _device_trainer(device: str = "cpu") -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=0, world_size=1, training=True
    )


def _epochs(loader: object, n: int = 2) -> list[list[torch.Tensor]]:
    batches = []
    for epoch in range(n):
        loader.sampler.set_epoch(epoch)
        batches += [list(b) for b in loader]
    return batches


@pytest.mark.parametrize("kind", ["table", "images", "chars", "sequence"])
def test_on_device_loaders_serve_the_host_batches(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the data kept on the device, every loader serves the batches of the host path, in the
    same order (the copies are made once, and the windows of text cut from them). This machine
    has no accelerator, so the decision is forced and the 'device' is the CPU; benchmarks/gpu.sh
    makes the same comparison on a GPU."""
    import zoo.data.base as base
    from zoo.data import CharTextDataModule, SequenceTaskDataModule

    def make() -> ZooDataModule:
        if kind == "table":
            return SklearnDataModule("digits", batch_size=100, seed=3)
        if kind == "images":
            return SklearnDataModule("digits", batch_size=100, seed=3, as_images=True)
        if kind == "chars":
            return CharTextDataModule(block_size=16, batch_size=8, train_batches_per_epoch=5, max_chars=20000)
        return SequenceTaskDataModule(num_examples=500, batch_size=50)

    host, kept = make(), make()
    host.trainer, kept.trainer = _device_trainer(), _device_trainer()
    assert not kept.keeps_data_on_device()  # the CPU: nothing to move
    kept._on_device_decision = None
    monkeypatch.setattr(base, "keeps_data_on", lambda *args: True)
    assert kept.keeps_data_on_device()
    for make_loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        expected, got = _epochs(getattr(host, make_loader)()), _epochs(getattr(kept, make_loader)())
        assert len(got) == len(expected) > 0
        for a, b in zip(expected, got, strict=True):
            for x, y in zip(a, b, strict=True):
                assert torch.equal(x, y) and x.dtype == y.dtype
    assert kept._device_copies  # the loaders read the copies
    if kind == "chars":
        assert kept._device_copies["tokens"][0].dtype == torch.long


def test_on_device_true_needs_images_in_memory(tmp_path: Path) -> None:
    from zoo.data import ImageFolderDataModule

    needs = r"data.on_device true needs the images in memory \(data.in_memory true\)"
    with pytest.raises(ZooError, match=needs):
        ImageFolderDataModule(tmp_path, in_memory=False, on_device=True)


def _xy(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n * 2, dtype=float).reshape(n, 2), np.tile([0, 1], n // 2)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SklearnDataModule(batch_size="32"), "data.batch_size must be an integer >= 1; got '32'."),
        (lambda: SklearnDataModule(batch_size=1.5), "data.batch_size must be an integer >= 1; got 1.5."),
        (lambda: SklearnDataModule(batch_size=True), "data.batch_size must be an integer >= 1; got True."),
        (
            lambda: SklearnDataModule(eval_batch_size=2.5),
            "data.eval_batch_size must be an integer >= 1 or None; got 2.5.",
        ),
        (
            lambda: ArrayDataModule(_xy()[0], None),
            "data.y is None: give the features x (one row per example) and the targets y (one per row) as "
            "arrays, tensors or lists.",
        ),
        (
            lambda: ArrayDataModule(*_xy(), task="classification"),
            "data.task must be one of auto, multiclass, binary, regression; got 'classification'.",
        ),
        (
            lambda: ArrayDataModule(*_xy(), num_classes="3"),
            "data.num_classes must be an integer >= 2 or None (from the labels); got '3'.",
        ),
        (
            lambda: ArrayDataModule(*_xy(), num_classes=1),
            "data.num_classes must be >= 2 (or None: from the labels); got 1.",
        ),
        (
            lambda: CSVDataModule("d.csv", "label", task="classification"),
            "data.task must be one of auto, multiclass, binary, regression; got 'classification'.",
        ),
    ],
    ids=[
        "batch str",
        "batch float",
        "batch bool",
        "eval batch float",
        "y None",
        "task",
        "classes str",
        "one class",
        "csv task",
    ],
)
def test_a_wrong_argument_to_a_data_module_is_named_at_construction(build, message: str) -> None:
    """These said "'<' not supported", "object of type 'NoneType' has no len()", or were accepted and
    failed later: at fit ("'float' object cannot be interpreted as an integer") or as the model's task."""
    with pytest.raises(ZooError) as caught:
        build()
    assert str(caught.value) == message
