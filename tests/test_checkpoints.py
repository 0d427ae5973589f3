"""Hostile checkpoints: no door of the zoo imports a module or builds a class that a file names
unless it is on the allow-list, and every bad file is one clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from tests.conftest import quiet_trainer
from tests.test_cli import run_main
from zoo.checkpoints import is_trusted, named_classes
from zoo.data import SklearnDataModule
from zoo.errors import ZooError
from zoo.models import MLP, ZooModule

PAYLOAD = "zoo_test_payload_module"


@pytest.fixture
def payload(tmp_path: Path, monkeypatch) -> Path:
    """A module on sys.path that leaves a marker file when anything imports it."""
    marker = tmp_path / "imported.marker"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / f"{PAYLOAD}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('code ran')\n"
        "import torch\nclass Boom(torch.nn.Module):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return marker


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint as `zoo train` writes it: hyper-parameters with LightningCLI's class path."""
    folder = tmp_path_factory.mktemp("ckpt")
    data = SklearnDataModule("digits", batch_size=256)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[16])
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, datamodule=data)
    path = folder / "good.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"] |= {
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "_class_path": "zoo.models.MLP",
    }
    torch.save(checkpoint, path)
    return path


def _hostile(good: Path, folder: Path, form: str = "nested class_path") -> Path:
    """The good checkpoint naming a class of the payload module: a nested class path, a loss given
    as a class-path string (which the model imports), or the model class that ZooModule writes."""
    checkpoint = torch.load(good, weights_only=True)
    if form == "nested class_path":
        checkpoint["hyper_parameters"]["loss"] = {"class_path": f"{PAYLOAD}.Boom", "init_args": {}}
    elif form in ("loss string", "optimizer string", "lr_scheduler string"):
        checkpoint["hyper_parameters"][form.split()[0]] = f"{PAYLOAD}.Boom"
    else:  # a subclass trained from Python: no LightningCLI _class_path, the zoo's own key
        del checkpoint["hyper_parameters"]["_class_path"], checkpoint["hyper_parameters"]["_instantiator"]
        checkpoint["zoo_class_path"] = f"{PAYLOAD}.TheirMLP"
    path = folder / "hostile.ckpt"
    torch.save(checkpoint, path)
    return path


def test_the_allow_list() -> None:
    assert named_classes({"a": {"class_path": "x.Y", "init_args": {"b": [{"_class_path": "z.W"}]}}}) == [
        "x.Y",
        "z.W",
    ]
    assert is_trusted("zoo.models.MLP") and is_trusted("torch.optim.AdamW") and is_trusted("pathlib.Path")
    assert not is_trusted(f"{PAYLOAD}.Boom") and not is_trusted("Boom")
    # a class made in a function is its (imported) module's: a model class is checked too now
    assert is_trusted(f"{__name__}.test_fit.<locals>.Model") and not is_trusted(f"{PAYLOAD}.f.<locals>.M")


def test_a_good_checkpoint_loads_through_every_door(good_checkpoint: Path, capsys) -> None:
    assert type(ZooModule.load_from_checkpoint(good_checkpoint)) is MLP
    assert type(MLP.load_from_checkpoint(good_checkpoint)) is MLP


@pytest.mark.parametrize(
    "form", ["nested class_path", "loss string", "optimizer string", "lr_scheduler string", "model class"]
)
@pytest.mark.parametrize("door", ["ZooModule.load_from_checkpoint", "MLP.load_from_checkpoint", "zoo.load"])
def test_load_from_checkpoint_refuses_a_class_the_file_names(
    good_checkpoint, tmp_path, payload, door, form
) -> None:
    """A loss named as a string was imported (its module's code ran) before any check; a model
    class from an unimported package was replaced by the bare base ("weights do not fit")."""
    import zoo

    hostile = _hostile(good_checkpoint, tmp_path, form)
    load = {"zoo.load": zoo.load, "MLP.load_from_checkpoint": MLP.load_from_checkpoint}.get(
        door, ZooModule.load_from_checkpoint
    )
    name = "TheirMLP" if form == "model class" else "Boom"
    with pytest.raises(
        ZooError, match=rf"checkpoint: {hostile} names classes outside .*\({PAYLOAD}\.{name}\)"
    ):
        load(hostile)
    assert not payload.exists(), "the file's module was imported"


def test_predict_imports_the_module_the_user_names(good_checkpoint, tmp_path, payload, capsys) -> None:
    """`--import MODULE` is the user's consent: the checkpoint's class of that module is built."""
    hostile = _hostile(good_checkpoint, tmp_path, "loss string")
    np.save(tmp_path / "rows.npy", np.zeros((3, 64)))
    argv = ["predict", str(hostile), "--input", str(tmp_path / "rows.npy")]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and f"zoo predict, export and generate: --import {PAYLOAD}; zoo fit" in err
    try:
        code, out, err = run_main([*argv, "--import", PAYLOAD], capsys)
    finally:  # imported modules are trusted: the other tests need it unimported
        sys.modules.pop(PAYLOAD, None)
    assert code == 0, err
    assert out.splitlines()[0].startswith("prediction,prob_0") and len(out.splitlines()) == 4
    assert payload.exists()
    code, _, err = run_main([*argv, "--import", "no_such_module_xyz"], capsys)
    assert (code, err.splitlines()[-1]) == (
        2,
        "zoo: error: --import no_such_module_xyz: cannot import it (ModuleNotFoundError: No module named "
        "'no_such_module_xyz').",
    )


@pytest.mark.parametrize("command", ["test", "fit", "generate", "predict", "export"])
def test_commands_refuse_a_class_the_file_names(good_checkpoint, tmp_path, payload, capsys, command) -> None:
    hostile = _hostile(good_checkpoint, tmp_path)
    root = tmp_path / "runs"
    if command == "generate":
        argv = ["generate", str(hostile)]
        option = "checkpoint"
    elif command in ("predict", "export"):  # zoo predict CKPT --input ..., zoo export CKPT --format ...
        (tmp_path / "rows.npy").write_bytes(b"")
        more = ["--input", str(tmp_path / "rows.npy")] if command == "predict" else ["--format", "onnx"]
        argv = [command, str(hostile), *more]
        option = "checkpoint"
    else:
        argv = [
            command,
            "-c",
            "mlp_digits",
            "--trainer.default_root_dir",
            str(root),
            "--ckpt_path",
            str(hostile),
        ]
        option = "--ckpt_path"
    code, _, err = run_main(argv, capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"zoo: error: {option}: {hostile} names classes outside"
    ), err
    assert "Traceback" not in err
    assert not payload.exists(), "the file's module was imported"
    assert not root.exists()


@pytest.mark.parametrize("kind", ["pickled-code", "truncated", "not-a-checkpoint"])
def test_generate_and_loading_refuse_bad_files(good_checkpoint, tmp_path, capsys, kind) -> None:
    path = tmp_path / "bad.ckpt"
    if kind == "pickled-code":
        torch.save({"state_dict": {}, "hook": quiet_trainer}, path)  # a function: pickled code
        expected = "holds more than tensors and plain values"
    elif kind == "truncated":
        path.write_bytes(good_checkpoint.read_bytes()[:5000])
        expected = "is not a readable PyTorch checkpoint"
    else:
        torch.save({"weights": torch.zeros(2)}, path)
        expected = "is a PyTorch file but not a Lightning checkpoint"
    with pytest.raises(ZooError, match=f"checkpoint: {path} {expected}"):
        ZooModule.load_from_checkpoint(path)
    code, _, err = run_main(["generate", str(path)], capsys)
    assert code == 2 and err.startswith(f"zoo: error: checkpoint: {path} {expected}"), err


class _PlainModule(pl.LightningModule):
    """A LightningModule of no zoo class."""

    def __init__(self, h: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(h, 2)


def _bad_checkpoint(good: Path, path: Path, kind: str) -> str:
    """Write a checkpoint of ``kind`` at ``path``; returns what the error says after its path."""
    checkpoint = torch.load(good, weights_only=True)
    hparams, weights = checkpoint["hyper_parameters"], checkpoint["state_dict"]
    if kind in ("no-such-class", "stdlib-function"):
        name = "zoo.models.NoSuchModel" if kind == "no-such-class" else "os.system"
        hparams["_class_path"] = checkpoint["zoo_class_path"] = name
        expected = f" names {name} as its model class, but " + (
            "zoo.models has no NoSuchModel;" if kind == "no-such-class" else "that is a builtin function"
        )
    elif kind == "missing-weights":
        del weights["net.head.weight"], weights["net.head.bias"]
        expected = "'s weights do not fit its model (missing net.head.weight, net.head.bias)."
    elif kind == "wrong-shape":
        weights["net.head.weight"] = torch.zeros(3, 3)
        expected = (
            "'s weights do not fit its model (size mismatch for net.head.weight: [3, 3] in the file, "
            "[10, 16] in the model)."
        )
    elif kind == "bad-hyperparameter":
        hparams["hidden_sizes"] = "abc"
        expected = " has a hyper-parameter its model refuses: hidden_sizes='abc' (expected a Sequence)."
    elif kind == "no-hyperparameters":
        del checkpoint["hyper_parameters"]
        expected = " was not written by a zoo model (it holds no hyper-parameters to build its zoo.models"
    elif kind == "plain-lightning":
        trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
        trainer.strategy.connect(_PlainModule())
        trainer.save_checkpoint(path)
        return " was not written by a zoo model (it names no zoo class); give a checkpoint of `zoo train`"
    elif kind == "empty":
        path.write_bytes(b"")
        return " is empty (0 bytes), not a checkpoint"
    elif kind == "random-bytes":
        path.write_bytes(
            torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator()).numpy()
        )
        return (
            " is not a readable PyTorch checkpoint: it is neither a zip archive (what torch.save writes) nor"
        )
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:5000])
        return " is not a readable PyTorch checkpoint: a zip archive as torch.save writes, but damaged or cut"
    elif kind == "safetensors-named-ckpt":
        from safetensors.torch import save_file

        save_file(dict(weights), path)
        return (
            " is a safetensors file, not a PyTorch checkpoint; the zoo reads safetensors files by their "
            f"suffix: rename it to {path.stem}.safetensors."
        )
    torch.save(checkpoint, path)
    return expected


@pytest.mark.parametrize("command", ["export", "generate", "predict"])
@pytest.mark.parametrize(
    "kind",
    [
        "no-such-class",
        "stdlib-function",
        "missing-weights",
        "wrong-shape",
        "bad-hyperparameter",
        "no-hyperparameters",
        "plain-lightning",
        "empty",
        "random-bytes",
        "truncated",
        "safetensors-named-ckpt",
    ],
)
def test_bad_checkpoints_are_one_clear_error(
    good_checkpoint, tmp_path, capsys, kind: str, command: str
) -> None:
    path = tmp_path / "bad.ckpt"
    expected = _bad_checkpoint(good_checkpoint, path, kind)
    more = {
        "export": ["-f", "safetensors", "-o", str(tmp_path / "out.safetensors")],
        "generate": [],
        "predict": ["--input", str(tmp_path / "rows.npy")],
    }[command]
    np.save(tmp_path / "rows.npy", np.zeros((2, 64), dtype=np.float32))
    code, out, err = run_main([command, str(path), *more], capsys)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert err.startswith(f"zoo: error: checkpoint: {path}{expected}"), err
    assert len(err.splitlines()) == 1 and "torch.save(" not in err and "weights_only" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ckpt", "rows.npy"]  # nothing written


def test_a_checkpoint_in_torchs_older_format_loads(good_checkpoint, tmp_path) -> None:
    path = tmp_path / "old.ckpt"
    torch.save(torch.load(good_checkpoint, weights_only=True), path, _use_new_zipfile_serialization=False)
    assert type(ZooModule.load_from_checkpoint(path)) is MLP


def test_a_model_built_in_python_says_what_its_checkpoint_lacks_and_refuses_another_optimizers_state(
    tmp_path,
) -> None:
    """Its loss module and optimizer factory are not stored: loaded back, the defaults stood in
    silently, and resuming loaded SGD's state into AdamW (KeyError: 'step' deep in torch)."""
    import functools

    data = SklearnDataModule("digits", batch_size=256)

    def trainer(epochs: int):
        return quiet_trainer(
            max_epochs=epochs, limit_train_batches=2, limit_val_batches=1, default_root_dir=tmp_path
        )

    model = MLP(
        task=data.task, num_classes=10, input_shape=data.input_shape, hidden_sizes=[8],
        loss=torch.nn.CrossEntropyLoss(), optimizer=functools.partial(torch.optim.SGD, lr=0.1),
    )  # fmt: skip
    first = trainer(1)
    first.fit(model, datamodule=data)
    first.save_checkpoint(tmp_path / "sgd.ckpt")
    back = MLP.load_from_checkpoint(tmp_path / "sgd.ckpt")  # for inference: nothing to say
    with pytest.raises(ZooError) as info:
        trainer(2).fit(back, datamodule=data, ckpt_path=tmp_path / "sgd.ckpt")
    assert str(info.value).startswith(
        f"ckpt_path: {tmp_path / 'sgd.ckpt'} holds the state of a torch.optim.sgd.SGD optimizer, but this "
        "model builds a torch.optim.adamw.AdamW: resume with the optimizer it trained with"
    )
    with pytest.warns(UserWarning, match=r"does not hold its loss, optimizer \(given as Python objects"):
        trainer(1).fit(MLP.load_from_checkpoint(tmp_path / "sgd.ckpt"), datamodule=data)
    sgd = functools.partial(torch.optim.SGD, lr=0.1)
    again = MLP.load_from_checkpoint(tmp_path / "sgd.ckpt", optimizer=sgd, loss=torch.nn.CrossEntropyLoss())
    trainer(2).fit(again, datamodule=data, ckpt_path=tmp_path / "sgd.ckpt")  # resumes
    assert again.trainer.global_step == 4


def test_load_from_checkpoint_points_safetensors_and_pretrained_names_to_zoo_load(tmp_path) -> None:
    """A `.safetensors` file was told to be renamed to the name it had; `pretrained:NAME` did "not
    exist"."""
    import shutil

    from zoo.pretrained import weights_path

    exported = tmp_path / "x.safetensors"
    shutil.copyfile(weights_path("mlp_digits"), exported)
    with pytest.raises(ZooError) as info:
        MLP.load_from_checkpoint(exported)
    assert str(info.value) == (
        f"checkpoint: {exported} is a safetensors file (of `zoo export`), not a PyTorch checkpoint; "
        f"load it with zoo.load({str(exported)!r})."
    )
    with pytest.raises(ZooError) as info:
        MLP.load_from_checkpoint("pretrained:mlp_digits")
    assert str(info.value) == (
        "checkpoint: pretrained:mlp_digits is a trained model of the zoo (a safetensors file), not a "
        "PyTorch checkpoint; load it with zoo.load('pretrained:mlp_digits') or "
        "zoo.create_model('mlp_digits', pretrained=True)."
    )
    with pytest.raises(ZooError, match="^no pretrained model named 'nope'; there are: "):
        ZooModule.load_from_checkpoint("pretrained:nope")


PLUGIN = "zoo_test_plugin_module"


def test_a_checkpoint_of_an_installed_plugins_model_loads_and_other_classes_stay_refused(
    good_checkpoint, tmp_path, payload, monkeypatch, capsys
) -> None:
    """A model registered by an installed `lightning_zoo` entry point trained, but `zoo predict`,
    `zoo export` and `zoo.load` refused its checkpoint (a class outside the zoo: `--import`)."""
    import importlib.metadata

    import zoo
    import zoo.registry

    (tmp_path / "site" / f"{PLUGIN}.py").write_text(
        "import zoo\nfrom zoo.models import MLP\n\n\n@zoo.register_model('zoo_test_plugin_mlp')\n"
        "class PluginMLP(MLP):\n    pass\n"
    )
    real = importlib.metadata.entry_points
    point = importlib.metadata.EntryPoint(name="models", value=PLUGIN, group=zoo.registry.PLUGIN_GROUP)
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kw: [point] if kw.get("group") == zoo.registry.PLUGIN_GROUP else real(**kw),
    )
    monkeypatch.setattr(zoo.registry, "_plugins_loaded", False)
    monkeypatch.setattr(zoo.registry, "_plugin_entries", [], raising=False)
    monkeypatch.setattr(zoo.registry.MODELS, "_entries", dict(zoo.registry.MODELS._entries))
    checkpoint = torch.load(good_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = checkpoint["zoo_class_path"] = f"{PLUGIN}.PluginMLP"
    torch.save(checkpoint, tmp_path / "plugin.ckpt")
    hostile = _hostile(good_checkpoint, tmp_path)  # a class of a module no plugin registers
    np.save(tmp_path / "rows.npy", np.zeros((3, 64)))
    try:
        assert PLUGIN not in sys.modules
        assert type(zoo.load(tmp_path / "plugin.ckpt")).__qualname__ == "PluginMLP"
        code, out, err = run_main(
            ["predict", str(tmp_path / "plugin.ckpt"), "--input", str(tmp_path / "rows.npy")], capsys
        )
        assert code == 0 and len(out.splitlines()) == 4, err
        with pytest.raises(ZooError, match=rf"names classes outside .*\({PAYLOAD}\.Boom\)"):
            zoo.load(hostile)
        assert not payload.exists(), "the file's module was imported"
    finally:
        sys.modules.pop(PLUGIN, None)


class SubMLP(MLP):
    """An MLP subclass, as a user trains one."""


def test_loading_a_checkpoint_with_another_model_class_names_the_class_that_loads_it(
    good_checkpoint, tmp_path
) -> None:
    """It said the class was "not an imported model class, or not a trusted instantiator"."""
    from zoo.models import ConvNet

    checkpoint = torch.load(good_checkpoint, weights_only=True)
    stored = f"{__name__}.SubMLP"
    checkpoint["hyper_parameters"]["_class_path"] = checkpoint["zoo_class_path"] = stored
    path = tmp_path / "sub.ckpt"
    torch.save(checkpoint, path)
    assert type(MLP.load_from_checkpoint(path)) is SubMLP
    with pytest.raises(ZooError) as info:
        ConvNet.load_from_checkpoint(path)
    assert str(info.value) == (
        f"checkpoint: {path} holds a {stored}, which is not a ConvNet; load it with "
        "SubMLP.load_from_checkpoint(path), or with zoo.load(path), which builds the class the file names."
    )
    # the check for files that name their class only with zoo_class_path (a model trained in Python)
    from zoo.checkpoints import check_model_class

    with pytest.raises(
        ZooError, match=r"holds a zoo.models.mlp.MLP, which is not a ConvNet; load it with MLP\."
    ):
        check_model_class(ConvNet, {"zoo_class_path": "zoo.models.mlp.MLP"}, path)
    check_model_class(SubMLP, {"zoo_class_path": "zoo.models.mlp.MLP"}, path)  # a base: Lightning's use
    check_model_class(ZooModule, {"zoo_class_path": stored}, path)
    # and load_from_checkpoint asks it for such a file (it said "ZooModule.__init__() got an
    # unexpected keyword argument 'hidden_sizes'")
    del checkpoint["hyper_parameters"]["_class_path"], checkpoint["hyper_parameters"]["_instantiator"]
    torch.save(checkpoint, path)
    with pytest.raises(ZooError, match=rf"holds a {stored}, which is not a ConvNet; load it with SubMLP\."):
        ConvNet.load_from_checkpoint(path)
