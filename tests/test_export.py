"""zoo export: ONNX, TorchScript and safetensors files that match their checkpoint, carry its
preprocessing, and load back without pickle; failures leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import quiet_trainer
from tests.test_cli import run_main
from zoo.data import SklearnDataModule, TensorLoader
from zoo.export import export
from zoo.models import GPT, MLP, ConvNet, ResNet, SequenceClassifier, ViT

VOCAB = "abcdefgh"
FAMILIES = ("mlp", "convnet", "resnet", "vit", "gpt", "sequence")


def _family(name: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    if name == "gpt":
        ids = torch.randint(0, len(VOCAB), (8, 17))
        return GPT(vocab=VOCAB, input_shape=[16], n_layer=1, n_head=2, n_embd=16), ids[:, :-1], ids[:, 1:]
    if name == "sequence":
        ids = torch.randint(0, len(VOCAB), (8, 16))
        model = SequenceClassifier(
            vocab_size=len(VOCAB), task="multiclass", num_classes=3, input_shape=[16], dim=16
        )
        return model, ids, torch.randint(0, 3, (8,))
    shapes = {"mlp": [13], "convnet": [1, 8, 8], "resnet": [3, 16, 16], "vit": [1, 8, 8]}
    x, y = torch.randn(16, *shapes[name]), torch.randint(0, 3, (16,))
    common = {"task": "multiclass", "num_classes": 3, "input_shape": shapes[name]}
    model = {
        "mlp": lambda: MLP(hidden_sizes=[8], **common),
        "convnet": lambda: ConvNet(**common),
        "resnet": lambda: ResNet(widths=[8, 16], blocks_per_stage=1, **common),
        "vit": lambda: ViT(patch_size=4, dim=16, depth=1, heads=2, **common),
    }[name]()
    return model, x, y


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    paths = {}
    for name in FAMILIES:
        model, x, y = _family(name)
        trainer = quiet_trainer(max_steps=2)
        trainer.fit(model, train_dataloaders=TensorLoader(x, y, batch_size=8))
        paths[name] = root / f"{name}.ckpt"
        trainer.save_checkpoint(paths[name])
    return paths


FAST = [
    (family, fmt)
    for family in ("mlp", "convnet", "resnet", "vit", "gpt")
    for fmt in ("torchscript", "safetensors")
]
# ONNX and torch.export trace through torch.export (seconds each): two families by default
TRACED = [("mlp", "onnx"), ("convnet", "onnx"), ("mlp", "pt2")] + [
    pytest.param(family, fmt, marks=pytest.mark.slow)
    for fmt, families in (("onnx", FAMILIES[2:]), ("pt2", FAMILIES[1:]))
    for family in families
]


@pytest.mark.parametrize(("family", "fmt"), FAST + TRACED)
def test_every_format_matches_its_checkpoint(
    checkpoints: dict, tmp_path: Path, family: str, fmt: str
) -> None:
    target = tmp_path / f"model.{fmt}"
    path, difference = export(checkpoints[family], fmt, target)
    assert path == target and difference <= 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left

    # the exported model itself, on a new batch, against the checkpoint's model
    model = zoo.load(checkpoints[family])
    x = torch.randint(0, len(VOCAB), (3, 16)) if model.reads_tokens else torch.randn(3, *model.input_shape)
    with torch.no_grad():
        expected = model(x)
    if fmt == "onnx":
        import onnx
        import onnxruntime

        meta = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    elif fmt == "torchscript":
        files = {"zoo.json": ""}
        got = torch.jit.load(str(target), _extra_files=files)(x)
        meta = {"zoo": files["zoo.json"]}
    elif fmt == "pt2":
        files = {"zoo.json": ""}
        got = torch.export.load(str(target), extra_files=files).module()(x)
        meta = {"zoo": files["zoo.json"]}
    else:
        from safetensors import safe_open

        with safe_open(str(target), "pt") as handle:
            meta = handle.metadata()
        reloaded = zoo.load(target)
        assert type(reloaded) is type(model) and not reloaded.training
        with torch.no_grad():
            got = reloaded(x)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    config = json.loads(meta["zoo"])
    assert config["class_path"] == f"{type(model).__module__}.{type(model).__qualname__}"
    assert config["hyper_parameters"]["input_shape"] == list(model.input_shape)


def test_safetensors_export_predicts_like_the_checkpoint(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    data = SklearnDataModule("wine", batch_size=32)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[16])
    trainer = quiet_trainer(max_epochs=5)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "wine.ckpt")
    code, out, err = run_main(["export", str(tmp_path / "wine.ckpt"), "--format", "safetensors"], capsys)
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'wine.safetensors'} (safetensors); largest output difference")
    # readable as any new file is (not the owner-only mode of a temporary file): it may be shipped
    (tmp_path / "plain").write_text("")
    assert (tmp_path / "wine.safetensors").stat().st_mode == (tmp_path / "plain").stat().st_mode
    from sklearn.datasets import load_wine

    raw = load_wine().data[:20]  # unscaled rows: the preprocessing travels in the file
    loaded = zoo.load(tmp_path / "wine.safetensors")
    np.testing.assert_array_equal(loaded.predict(raw), model.predict(raw))
    np.testing.assert_allclose(loaded.predict_proba(raw), model.predict_proba(raw), atol=1e-6)


def test_a_failed_parity_check_writes_nothing(checkpoints: dict, tmp_path: Path, monkeypatch) -> None:
    import zoo.export as export_module

    real = export_module._run_torchscript
    monkeypatch.setattr(export_module, "_run_torchscript", lambda path, x: real(path, x) + 0.01)
    with pytest.raises(
        zoo.ZooError, match=r"differ from the checkpoint's by up to 0.01 \(tolerance 0.0001\)"
    ):
        export(checkpoints["mlp"], "torchscript", tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_bad_exports_are_one_clear_error(checkpoints: dict, tmp_path: Path, capsys) -> None:
    ckpt = str(checkpoints["mlp"])
    code, _, err = run_main(["export", ckpt, "--format", "pickle"], capsys)
    assert code == 2 and "argument --format/-f: invalid choice: 'pickle'" in err
    code, _, err = run_main(["export", ckpt, "-f", "onnx", "-o", str(tmp_path / "no" / "m.onnx")], capsys)
    assert code == 2 and err == f"zoo: error: --output: the folder {tmp_path / 'no'} does not exist.\n"
    code, _, err = run_main(["export", str(tmp_path / "none.ckpt"), "-f", "onnx"], capsys)
    assert code == 2 and err == f"zoo: error: checkpoint: {tmp_path / 'none.ckpt'} does not exist.\n"


def test_hostile_safetensors_files_are_refused(checkpoints: dict, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    export(checkpoints["mlp"], "safetensors", tmp_path / "good.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "good.safetensors"), "pt") as handle:
        config = json.loads(handle.metadata()["zoo"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    config["class_path"] = "evil_module.Payload"  # a module nobody imported: never imported
    save_file(tensors, tmp_path / "evil.safetensors", metadata={"zoo": json.dumps(config)})
    with pytest.raises(
        zoo.ZooError, match=r"names classes outside the zoo, torch, lightning and torchmetrics \(evil_module"
    ):
        zoo.load(tmp_path / "evil.safetensors")
    import sys

    assert "evil_module" not in sys.modules
    save_file(tensors, tmp_path / "bare.safetensors")  # weights without the zoo's config
    with pytest.raises(zoo.ZooError, match="is not a safetensors file written by `zoo export`"):
        zoo.load(tmp_path / "bare.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(zoo.ZooError, match="is not a safetensors file written by `zoo export`"):
        zoo.load(tmp_path / "junk.safetensors")


@pytest.mark.parametrize(
    "case",
    ["same-file", "symlink", "other-ckpt", "folder", "unwritable", "tolerance-negative", "tolerance-nan"],
)
def test_bad_outputs_and_tolerances_are_refused_before_exporting(
    tmp_path: Path, capsys, monkeypatch, case: str
) -> None:
    import zoo.checkpoints

    def no_loading(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the options were checked")

    monkeypatch.setattr(zoo.checkpoints, "load_model", no_loading)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"stands for a checkpoint: the checks come first")
    more: list[str] = []
    if case == "same-file":  # the data loss: the checkpoint overwritten by its own export
        output, expected = ckpt, f"--output: {ckpt} is the checkpoint being exported"
    elif case == "symlink":
        output = tmp_path / "link.ckpt"
        output.symlink_to(ckpt.name)
        expected = f"--output: {output} is the checkpoint being exported"
    elif case == "other-ckpt":
        output = tmp_path / "other.ckpt"
        expected = f"--output: {output} ends in .ckpt, the suffix of checkpoints, which an export must not"
        expected += f" replace or imitate; safetensors files end in .safetensors, e.g. {tmp_path / 'other'}"
    elif case == "folder":
        output = tmp_path / "out"
        output.mkdir()
        expected = (
            f"--output: {output} is a folder; give a file name in it, such as {output / 'model.safetensors'}."
        )
    elif case == "unwritable":
        output, expected = Path("/proc/model.safetensors"), "--output: cannot write in /proc ("
    else:
        output, more = (
            tmp_path / "model.safetensors",
            ["--tolerance", case.split("-")[1].replace("negative", "-1")],
        )
        expected = "argument --tolerance: must be a finite number >= 0, got "
    code, out, err = run_main(["export", str(ckpt), "-f", "safetensors", "-o", str(output), *more], capsys)
    assert code == 2 and out == "" and "Traceback" not in err, err
    if case.startswith("tolerance"):
        first, hint = err.splitlines()  # one line, and where to read every option
        assert first == "zoo: error: " + expected + ("-1.0" if case.endswith("negative") else "nan")
        assert hint == "Run `zoo export --help` to see every option."
        with pytest.raises(zoo.ZooError, match=r"^--tolerance must be a finite number >= 0; got -1"):
            export(ckpt, "safetensors", tolerance=-1)
    else:
        assert err.startswith(f"zoo: error: {expected}") and len(err.splitlines()) == 1, err
    assert ckpt.read_bytes() == b"stands for a checkpoint: the checks come first"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.ckpt"] + {"symlink": ["link.ckpt"], "folder": ["out"]}.get(case, [])
    )
