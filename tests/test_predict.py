"""Using a trained model: checkpoints carry their preprocessing, `zoo predict CKPT --input` and
`zoo.load(CKPT).predict(...)` turn raw rows, arrays and images into predictions in the user's
terms, and bad input is one clear error."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import quiet_trainer
from tests.test_cli import run_main
from tests.test_vision import write_png_tree
from zoo.data import CSVDataModule, ImageFolderDataModule, SklearnDataModule
from zoo.errors import ZooError
from zoo.models import MLP, ConvNet

CULTIVARS = np.array(["barolo", "grignolino", "barbera"])


@pytest.fixture(scope="module")
def wine(tmp_path_factory) -> dict:
    """Wine as a CSV with text labels and shifted, unscaled features, a model trained on it by
    `zoo train`, and 28 new rows (columns in another order, an id column, no target)."""
    from sklearn.datasets import load_wine

    root = tmp_path_factory.mktemp("wine")
    bunch = load_wine()
    x = bunch.data * 10 + 300
    names = [n.replace("/", "_") for n in bunch.feature_names]
    labels = CULTIVARS[bunch.target]
    order = np.random.default_rng(0).permutation(len(x))
    train, new = order[:150], order[150:]
    with (root / "wine.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "cultivar"])
        writer.writerows([*map(str, x[i]), labels[i]] for i in train)
    with (root / "new.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", *names[::-1]])
        writer.writerows([f"s{i}", *map(str, x[i][::-1])] for i in new)
    torch.manual_seed(0)
    data = CSVDataModule(str(root / "wine.csv"), target="cultivar", batch_size=32)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[32])
    quiet_trainer(max_epochs=25).fit(model, datamodule=data)
    checkpoint = root / "wine.ckpt"
    model.trainer.save_checkpoint(checkpoint)
    test_acc = quiet_trainer().test(model, datamodule=data, verbose=False)[0]["test/acc"]
    return {
        "root": root,
        "model": model,
        "checkpoint": checkpoint,
        "names": names,
        "new_x": x[new],
        "new_labels": labels[new],
        "ids": [f"s{i}" for i in new],
        "test_acc": test_acc,
    }


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_the_checkpoint_alone_predicts_labels_on_new_rows(wine: dict, capsys) -> None:
    code, out, err = run_main(
        ["predict", str(wine["checkpoint"]), "--input", str(wine["root"] / "new.csv")], capsys
    )
    assert code == 0, err[-2000:]
    rows = _read_csv(out)
    assert list(rows[0]) == ["sample_id", "prediction", "prob_barbera", "prob_barolo", "prob_grignolino"]
    assert [r["sample_id"] for r in rows] == wine["ids"]  # the key column, in the input's order
    predicted = np.array([r["prediction"] for r in rows])
    accuracy = float(np.mean(predicted == wine["new_labels"]))
    assert accuracy >= min(0.85, wine["test_acc"] - 0.1), (accuracy, wine["test_acc"])
    probs = np.array([[float(r[f"prob_{c}"]) for c in ("barbera", "barolo", "grignolino")] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # the same numbers from Python: the in-process model and the model loaded from the file
    columns = {name: wine["new_x"][:, i] for i, name in enumerate(wine["names"])}
    in_process = wine["model"].predict(columns)
    loaded = zoo.load(wine["checkpoint"])
    assert not loaded.training
    np.testing.assert_array_equal(loaded.predict(columns), in_process)
    np.testing.assert_array_equal(predicted, in_process)
    np.testing.assert_allclose(loaded.predict_proba(wine["new_x"]), probs, atol=1e-5)  # rows in column order
    # scaling is the training split's: unscaled rows fed to the bare network would disagree
    assert loaded.preprocessing["feature_names"] == wine["names"]
    assert loaded.preprocessing["classes"] == ["barbera", "barolo", "grignolino"]


def test_one_row_or_a_list_of_rows_by_name_are_matched_by_name(wine: dict) -> None:
    """``predict(dict(row))`` (one row by name) raised numpy's AxisError, and a pandas Series (one
    row) was read by position, so a reordered one gave another class; both go by name now."""
    model, names, x = wine["model"], wine["names"], wine["new_x"]
    expected = model.predict_proba(x[:3])
    rows = [{name: float(x[i, j]) for j, name in reversed(list(enumerate(names)))} for i in range(3)]
    np.testing.assert_allclose(model.predict_proba(rows[0]), expected[:1], atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(rows), expected, atol=1e-6)
    with pytest.raises(
        ZooError, match=rf"input: row 2 has no {names[0]!r}; every row needs the model's columns"
    ):
        model.predict([rows[0], {k: v for k, v in rows[1].items() if k != names[0]}])


def test_predictions_go_to_a_file_whole(wine: dict, tmp_path: Path, capsys) -> None:
    output = tmp_path / "predictions.csv"
    argv = ["predict", str(wine["checkpoint"]), "-i", str(wine["root"] / "new.csv"), "-o", str(output)]
    code, out, err = run_main(argv, capsys)
    assert code == 0 and out == "", err
    assert len(_read_csv(output.read_text())) == len(wine["ids"])
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temporary file left


def test_npy_in_and_out_for_a_regression_model(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    data = SklearnDataModule("diabetes", batch_size=64)
    model = MLP(
        task=data.task, input_shape=data.input_shape, target_stats=data.target_stats, hidden_sizes=[16]
    )
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "diabetes.ckpt")
    from sklearn.datasets import load_diabetes

    x = load_diabetes().data[:50]
    np.save(tmp_path / "x.npy", x)
    code, _, err = run_main(
        [
            "predict",
            str(tmp_path / "diabetes.ckpt"),
            "-i",
            str(tmp_path / "x.npy"),
            "-o",
            str(tmp_path / "y.npy"),
        ],
        capsys,
    )
    assert code == 0, err
    predicted = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(predicted, model.predict(x), rtol=1e-5)
    assert 100 < predicted.mean() < 200  # in the target's units (disease progression), not standardized
    with pytest.raises(zoo.ZooError, match="regression model predicts values"):
        model.predict_proba(x)


def test_image_files_and_folders(tmp_path: Path, capsys) -> None:
    write_png_tree(tmp_path / "images", per_class=8, size=12)
    torch.manual_seed(0)
    data = ImageFolderDataModule(str(tmp_path / "images"), batch_size=8, val_size=3, test_size=3)
    model = ConvNet(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "images.ckpt")
    code, out, err = run_main(
        ["predict", str(tmp_path / "images.ckpt"), "-i", str(tmp_path / "images")], capsys
    )
    assert code == 0, err
    rows = _read_csv(out)
    paths = sorted(str(p) for p in (tmp_path / "images").rglob("*.png"))
    assert [r["path"] for r in rows] == paths and list(rows[0])[:2] == ["path", "prediction"]
    assert {r["prediction"] for r in rows} <= {"cat", "dog", "emu"}
    np.testing.assert_array_equal(
        [r["prediction"] for r in rows], zoo.load(tmp_path / "images.ckpt").predict(paths)
    )
    # the images read and normalized as the DataModule does in training
    x = data.transform_batch(torch.from_numpy(_pixels(paths)))
    with torch.no_grad():
        expected = model.eval()(x).argmax(1)
    assert [r["prediction"] for r in rows] == [data.classes[i] for i in expected.tolist()]
    assert sum(r["prediction"] == Path(r["path"]).parent.name for r in rows) >= 0.9 * len(rows)


def _pixels(paths: list[str]) -> np.ndarray:
    from zoo.data.vision import decode_image

    return np.stack([decode_image(p) for p in paths])


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_png_tree(root / "images", per_class=4, size=12)
    data = ImageFolderDataModule(str(root / "images"), batch_size=8, val_size=3, test_size=3)
    model = ConvNet(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape)
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(root / "images.ckpt")
    return root / "images.ckpt"


def _bad_files(root: Path, wine: dict) -> dict[str, Path]:
    from PIL import Image

    files = {}
    files["no_column"] = root / "no_column.csv"
    files["no_column"].write_text(",".join(wine["names"][1:]) + "\n" + ",".join(["1"] * 12) + "\n")
    files["text_value"] = root / "text_value.csv"
    rows = [",".join(wine["names"])] + [",".join(["1"] * 13)] * 3 + [",".join(["1"] * 12 + ["abc"])]
    files["text_value"].write_text("\n".join(rows) + "\n")
    files["notes"] = root / "notes.txt"
    files["notes"].write_text("not data\n")
    files["big_image"] = root / "big.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(files["big_image"])
    files["wrong_width"] = root / "wrong_width.npy"
    np.save(files["wrong_width"], np.zeros((4, 5)))
    files["gray_npy"] = root / "gray.npy"
    np.save(files["gray_npy"], np.zeros((2, 1, 12, 12), dtype=np.uint8))
    files["pickled"] = root / "pickled.npy"
    np.save(files["pickled"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files["binary"] = root / "binary.csv"
    files["binary"].write_bytes(b"a" + bytes(range(0x94, 0x100)) * 8)
    files["twice"] = root / "twice.csv"
    files["twice"].write_text(
        ",".join([*wine["names"], wine["names"][0]]) + "\n" + ",".join(["1"] * 14) + "\n"
    )
    files["complex"] = root / "complex.npy"
    np.save(files["complex"], np.ones((2, 13), dtype=complex))
    files["random"] = root / "random.npy"
    files["random"].write_bytes(np.random.default_rng(0).bytes(2000))
    files["cut_short"] = root / "cut_short.npy"
    np.save(files["cut_short"], np.ones((50, 13)))
    files["cut_short"].write_bytes(files["cut_short"].read_bytes()[:1000])
    files["no_images"] = root / "no_images"
    files["no_images"].mkdir()
    files["digits_nan"] = root / "digits_nan.csv"
    digits = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]
    files["digits_nan"].write_text(",".join(digits) + "\n" + "0,1,nan," + ",".join(["0"] * 61) + "\n")
    files["digits_inf"] = root / "digits_inf.npy"
    np.save(files["digits_inf"], np.pad([[np.inf]], ((1, 0), (3, 60))))
    files["folder.csv"] = root / "folder.csv"
    files["folder.csv"].mkdir()
    files["previous.csv"] = root / "previous.csv"
    files["previous.csv"].write_text("what an earlier run wrote\n")
    files["own.csv"] = root / "own.csv"
    files["own.csv"].write_bytes((wine["root"] / "new.csv").read_bytes())
    return files


LINUX = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")


@pytest.mark.parametrize(
    ("model", "given", "extra", "message"),
    [
        ("wine", "no_column", [], "has no column 'alcohol'; the model takes the columns alcohol, malic_acid"),
        ("wine", "text_value", [], "line 5: column 'proline' must be numeric; found 'abc'"),
        ("wine", "notes", [], "is neither a .csv file, a .npy file, an image"),
        ("wine", "big_image", [], "holds images, but this model takes rows of features"),
        ("wine", "wrong_width", [], "holds examples of shape [5]; the model takes [13]"),
        ("wine", "pickled", [], "is not a plain numeric .npy array: it holds Python objects"),
        ("wine", "missing.csv", [], "--input: MISSING does not exist"),
        ("wine", "new.csv", ["-o", "out.txt"], "--output: out.txt must end in .csv or .npy"),
        ("images", "big_image", [], "big.png is 20x20 pixels; the model takes 12x12"),
        ("images", "no_column", [], "is a table, but this model takes images"),
        ("images", "gray_npy", [], "holds examples of shape [1, 12, 12]; the model takes [3, 12, 12]"),
        ("lm", "new.csv", [], "GPT is a language model; sample from it with `zoo generate`"),
        ("missing.ckpt", "new.csv", [], "checkpoint: MISSING_CKPT does not exist"),
        ("wine", "random", [], "random.npy is not a .npy file numpy can read (it does not start"),
        ("wine", "cut_short", [], "cut_short.npy is cut short: its header announces 5200 bytes of data"),
        ("wine", "complex", [], "complex.npy holds complex128 values; the model takes real numbers"),
        ("wine", "binary", [], "binary.csv is not UTF-8 text (byte 0x94 at offset 1, line 1; save it as"),
        ("wine", "binary", ["-o", "previous.csv"], "binary.csv is not UTF-8 text"),  # previous.csv intact
        ("wine", "twice", [], "twice.csv has the column 'alcohol' twice; give each of the model's columns"),
        ("wine", "no_images", [], "no_images holds no images (no .png, .jpg"),
        ("wine", "no_column", ["notes"], "no_column.csv is one of 2 inputs; several inputs must all be"),
        (
            "wine",
            "new.csv",
            ["-o", "folder.csv"],
            "--output: {folder.csv} is a folder; give a file name in it",
        ),
        ("wine", "new.csv", ["-o", "no_images"], "--output: {no_images} is a folder; give a file name in it"),
        ("wine", "own.csv", ["-o", "own.csv"], "--output: {own.csv} is the --input file"),
        pytest.param(
            "wine", "new.csv", ["-o", "/proc/x.csv"], "--output: cannot write in /proc (", marks=LINUX
        ),
        ("digits", "digits_nan", [], "digits_nan.csv, line 2: column 'pixel_0_2' must be a finite number"),
        ("digits", "digits_inf", [], "digits_inf.npy, row 2: column 'pixel_0_3' must be a finite number"),
    ],
)
def test_bad_input_is_one_clear_error(
    wine: dict,
    image_checkpoint: Path,
    tmp_path: Path,
    capsys,
    model: str,
    given: str,
    extra: list,
    message: str,
) -> None:
    from tests.test_generate import VOCAB, _trained_checkpoint
    from zoo.models import GPT

    files = _bad_files(tmp_path, wine)
    files["new.csv"] = wine["root"] / "new.csv"
    files["missing.csv"] = tmp_path / "missing.csv"
    checkpoints = {
        "wine": wine["checkpoint"],
        "images": image_checkpoint,
        "missing.ckpt": tmp_path / "no.ckpt",
        "digits": "pretrained:mlp_digits",  # numeric columns, no missing-value policy
    }
    if model == "lm":
        ids = torch.randint(0, len(VOCAB), (8, 9))
        gpt = GPT(vocab=VOCAB, input_shape=[8], n_layer=1, n_head=2, n_embd=16)
        checkpoints["lm"] = _trained_checkpoint(tmp_path / "lm.ckpt", gpt, ids[:, :-1], ids[:, 1:])
    before = _contents(tmp_path)
    extra = [str(files[e]) if e in files else e for e in extra]
    argv = ["predict", str(checkpoints[model]), "--input", str(files[given]), *extra]
    code, out, err = run_main(argv, capsys)
    assert code == 2, err
    message = message.replace("MISSING_CKPT", str(tmp_path / "no.ckpt")).replace("MISSING", str(files[given]))
    for name, path in files.items():
        message = message.replace(f"{{{name}}}", str(path))
    assert err.startswith("zoo: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    assert "allow_pickle" not in err  # never a hint to load pickles
    assert out == "" and _contents(tmp_path) == before  # nothing written, nothing changed


def _contents(folder: Path) -> dict[str, bytes | None]:
    return {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}


def test_a_csv_as_spreadsheets_save_it_predicts_as_any_other(wine: dict, tmp_path: Path, capsys) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark, which is no part of the first column's
    name; a column that is not the model's may come twice, and both copies reach the output."""
    names, x = wine["names"], wine["new_x"]
    with (tmp_path / "excel.csv").open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "note", "note"])  # a feature column first, behind the mark
        writer.writerows([*map(str, row), "a", "b"] for row in x)
    code, out, err = run_main(["predict", str(wine["checkpoint"]), "-i", str(tmp_path / "excel.csv")], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "note,note,prediction,prob_barbera,prob_barolo,prob_grignolino"
    assert {line[:4] for line in lines[1:]} == {"a,b,"}
    np.testing.assert_array_equal([line.split(",")[2] for line in lines[1:]], wine["model"].predict(x))


def test_predicting_on_an_earlier_output_replaces_its_prediction_columns(
    wine: dict, tmp_path: Path, capsys
) -> None:
    """An earlier `zoo predict`'s output (ids, features, prediction, prob_*) fed back in: its
    output columns are predicted again, not copied, so no column name comes twice."""
    names, x = wine["names"], wine["new_x"]
    with (tmp_path / "scored.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", *names, "prediction", "prob_barolo"])
        writer.writerows([wine["ids"][i], *map(str, row), "stale", "0.5"] for i, row in enumerate(x))
    code, out, err = run_main(
        ["predict", str(wine["checkpoint"]), "-i", str(tmp_path / "scored.csv")], capsys
    )
    assert code == 0, err
    assert "the input's columns prediction, prob_barolo are replaced by this model's" in err
    rows = _read_csv(out)
    assert out.splitlines()[0] == "sample_id,prediction,prob_barbera,prob_barolo,prob_grignolino"
    np.testing.assert_array_equal([r["prediction"] for r in rows], wine["model"].predict(x))


def test_a_header_only_csv_gives_the_full_header_and_no_rows(wine: dict, tmp_path: Path, capsys) -> None:
    """No rows (a filter that kept none) is no error: the output has the columns every output of
    this model has, so it can be concatenated with the others or read by the same code."""
    (tmp_path / "none.csv").write_text((wine["root"] / "new.csv").read_text().splitlines()[0] + "\n")
    code, out, err = run_main(["predict", str(wine["checkpoint"]), "-i", str(tmp_path / "none.csv")], capsys)
    assert code == 0, err
    assert out == "sample_id,prediction,prob_barbera,prob_barolo,prob_grignolino\n"


def test_python_predict_refuses_complex_features_and_names_a_non_finite_cell() -> None:
    model = zoo.load("pretrained:mlp_digits")  # numeric columns, no missing-value policy
    x = np.zeros((3, 64))
    with pytest.raises(ZooError, match="input: features must be real numbers; got complex128 values"):
        model.predict(x + 1j)  # was cut to its real part, with numpy's ComplexWarning
    x[1, 3] = np.nan
    with pytest.raises(
        ZooError, match=r"input: row 2: column 'pixel_0_3' must be a finite number; found nan"
    ):
        model.predict(x)


def test_a_bare_zoo_predict_names_what_it_needs(capsys) -> None:
    code, out, err = run_main(["predict"], capsys)
    assert code == 2 and out == ""
    assert err == (
        "zoo: error: the following arguments are required: checkpoint, --input/-i\n"
        "Run `zoo predict --help` to see every option.\n"
    )


def test_a_checkpoint_without_preprocessing_still_predicts_with_a_warning(wine: dict, tmp_path: Path) -> None:
    checkpoint = torch.load(wine["checkpoint"], map_location="cpu", weights_only=True)
    del checkpoint["zoo_preprocessing"]  # as written before checkpoints carried it
    torch.save(checkpoint, tmp_path / "old.ckpt")
    model = zoo.load(tmp_path / "old.ckpt")
    data = CSVDataModule(str(wine["root"] / "wine.csv"), target="cultivar")
    data.setup()
    scaled = data._tensors["test"][0]
    with pytest.warns(UserWarning, match="no preprocessing facts"):
        indices = model.predict(scaled)
    assert set(indices.tolist()) <= {0, 1, 2}
    np.testing.assert_array_equal(
        np.asarray(data.classes)[indices],
        wine["model"].predict(data._splits["test"].x * data.feature_std + data.feature_mean),
    )


def test_a_token_sequence_model_is_refused_with_what_to_use(tmp_path: Path, capsys) -> None:
    from tests.test_generate import _trained_checkpoint
    from zoo.models import SequenceClassifier

    ids = torch.randint(0, 8, (8, 6))
    model = SequenceClassifier(
        vocab_size=8, task="multiclass", num_classes=8, input_shape=[6], pooling="none", dim=16
    )
    checkpoint = _trained_checkpoint(tmp_path / "seq.ckpt", model, ids, ids.flip(1))
    np.save(tmp_path / "ids.npy", ids.numpy())
    code, out, err = run_main(["predict", str(checkpoint), "--input", str(tmp_path / "ids.npy")], capsys)
    assert code == 2 and out == ""
    assert (
        err.startswith("zoo: error: predict: SequenceClassifier reads token sequences")
        and err.count("\n") == 1
    )


def test_a_binary_prediction_at_exactly_one_half_is_the_class_the_metrics_count() -> None:
    """A logit of exactly 0 (probability 0.5) is the negative class, as torchmetrics' accuracy (the
    validation and test numbers) counts it; predicting it positive made the two disagree."""
    from torchmetrics.classification import BinaryAccuracy

    from zoo.inference import label_indices

    scores = torch.tensor([0.0, 0.0, 0.1]).sigmoid()  # exactly 0.5, 0.5, then a little above
    targets = torch.tensor([0, 0, 1])
    predicted = label_indices(scores, "binary")
    assert BinaryAccuracy()(scores, targets) == (predicted == targets).float().mean() == 1.0


def test_text_columns_and_missing_cells_are_encoded_at_predict_as_in_training(tmp_path: Path, capsys) -> None:
    from tests.test_data import _raw_rows, _table

    path = _table(tmp_path / "t.csv", n=300, holes=True)
    torch.manual_seed(0)
    data = CSVDataModule(str(path), target="label", missing="mean", batch_size=32)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[32])
    trainer = quiet_trainer(max_epochs=40)
    trainer.fit(model, datamodule=data)
    checkpoint = tmp_path / "t.ckpt"
    trainer.save_checkpoint(checkpoint)

    rows = _raw_rows(path)
    mean = data.encoder.means[0]
    new = [
        *rows,
        {"size": "0.5", "color": "purple"},
        {"size": "", "color": "red"},
        {"size": f"{mean!r}", "color": "red"},
    ]
    with (tmp_path / "new.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["color", "size"])
        writer.writerows([r["color"], r["size"]] for r in new)
    unseen = r"column 'color': 1 value\(s\) the training data never had \('purple'\) encode as all zeros"
    with pytest.warns(UserWarning, match=unseen):
        code, out, err = run_main(["predict", str(checkpoint), "--input", str(tmp_path / "new.csv")], capsys)
    assert code == 0, err
    predicted = [r["prediction"] for r in _read_csv(out)]

    # what the DataModule's own (training-time) encoding and scaling give
    cells = {"size": [r["size"] for r in new], "color": [r["color"] for r in new]}
    x = (data.encoder.transform(cells) - data.feature_mean) / data.feature_std
    with torch.no_grad():
        expected = model.predictions(model(torch.as_tensor(x, dtype=torch.float32)))
    assert predicted == [data.classes[i] for i in (expected.reshape(-1) > 0.5).long().tolist()]
    assert predicted[-2] == predicted[-1]  # a missing size is the training mean
    truth = [r["label"] for r in rows]
    assert np.mean([p == t for p, t in zip(predicted, truth, strict=False)]) >= 0.85

    # the Python path takes the same raw cells, as a mapping of columns
    with pytest.warns(UserWarning, match=unseen):
        assert zoo.load(checkpoint).predict(cells).tolist() == predicted
    # a model trained with data.missing=drop cannot drop a row it is asked to predict
    from zoo.data.columns import ColumnEncoder

    facts = dict(data.encoder.facts(), missing="drop")
    with pytest.raises(
        ZooError, match=r"input: row 1: column 'color' has a missing value \('NA'\); this model"
    ):
        ColumnEncoder.from_facts(facts).transform({"size": ["0.1"], "color": ["NA"]})


@pytest.mark.parametrize("n", [23, 1])
def test_the_ranks_predictions_merge_into_the_file_one_process_writes(tmp_path: Path, n: int) -> None:
    """``zoo predict -c ...`` under several processes: each rank writes the rows of its shard (the
    zoo's evaluation shards are round-robin, so rank R's i-th row is row R + i * world), and rank 0
    merges them into one file in row order, each row once (a padding sampler's repeats, which
    Lightning reports as batch indices, are dropped): the file of one process, and no parts left."""
    from types import SimpleNamespace

    from zoo.callbacks import PredictionsCSV

    torch.manual_seed(0)
    model = MLP(task="multiclass", num_classes=3, input_shape=(4,), hidden_sizes=[8]).eval()
    with torch.no_grad():
        scores = model.predictions(model(torch.randn(n, 4)))

    def predict(path: Path, rank: int, world: int, known_indices: bool) -> None:
        trainer = SimpleNamespace(
            global_rank=rank,
            world_size=world,
            is_global_zero=rank == 0,
            strategy=SimpleNamespace(barrier=lambda name: None),
        )
        writer = PredictionsCSV(path)
        writer.on_predict_start(trainer, model)
        rows = list(range(rank, n, world))
        if known_indices and rank == world - 1:
            rows += [0]  # DistributedSampler pads the last shard by wrapping around
        for start in range(0, len(rows), 4):
            batch = rows[start : start + 4]
            writer.write_on_batch_end(trainer, model, scores[batch], batch if known_indices else None)
        return writer, trainer

    one = tmp_path / "one.csv"
    writer, trainer = predict(one, 0, 1, False)
    writer.on_predict_end(trainer, model)
    for known in (False, True):
        merged = tmp_path / f"merged-{known}" / "predictions.csv"
        ranks = [predict(merged, rank, 3, known) for rank in range(3)]
        for writer, trainer in reversed(ranks):  # rank 0 merges once the others are done
            writer.on_predict_end(trainer, model)
        assert merged.read_text() == one.read_text()
        assert [p.name for p in merged.parent.iterdir()] == ["predictions.csv"]
    assert len(one.read_text().splitlines()) == n + 1 and one.read_text().startswith("row,prediction,prob_0")


def test_the_predictions_writer_hushes_lightnings_index_warning_only_while_predicting(tmp_path: Path) -> None:
    """The zoo's loaders report no batch indices (rows are numbered from the shards), so Lightning
    warns at each prediction; the writer added a process-wide filter that hid it from every later
    predict of the process. It is hushed for its own predict only."""
    import warnings

    from zoo.callbacks import PredictionsCSV

    data = SklearnDataModule("wine", batch_size=32)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[8])
    writer = PredictionsCSV(tmp_path / "p.csv")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        quiet_trainer(callbacks=[writer]).predict(model, datamodule=data, return_predictions=False)
        assert warnings.filters == filters
    assert not [w for w in seen if "infer the batch indices" in str(w.message)]
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + data.split_sizes()["test"]


def test_a_model_cast_to_another_dtype_predicts_as_the_float_model() -> None:
    """`.double()` or `.to(torch.bfloat16)` then `predict` raised "mat1 and mat2 must have the same
    dtype": the features were always float32."""
    from sklearn.datasets import load_digits

    rows = load_digits().data[:300]
    model = zoo.load("pretrained:mlp_digits")
    labels, probabilities = model.predict(rows), model.predict_proba(rows)
    double = zoo.load("pretrained:mlp_digits").double()
    np.testing.assert_array_equal(double.predict(rows), labels)
    np.testing.assert_allclose(double.predict_proba(rows), probabilities, atol=1e-5)
    assert next(double.parameters()).dtype == torch.float64  # predicting casts the inputs, not the model
    half = zoo.load("pretrained:mlp_digits").to(torch.bfloat16)
    assert np.mean(half.predict(rows) == labels) > 0.95
