"""The name -> factory registries."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.errors import UnknownNameError, ZooError
from zoo.registry import ACTIVATIONS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS, Registry


@pytest.fixture
def shapes() -> Registry:
    reg = Registry("shape")

    @reg.register()
    def square(side=1):
        return side * side

    @reg.register("rect")
    def rectangle(width=1, height=2):
        return (width, height)

    reg.register("circle", obj=lambda radius=1: ("circle", radius))
    return reg


def test_register_by_function_name_alias_and_obj(shapes: Registry) -> None:
    assert shapes.list() == ["circle", "rect", "square"]
    assert shapes.create("square", side=3) == 9
    assert shapes.create("rect", width=4) == (4, 2)
    assert shapes.create("circle") == ("circle", 1)
    assert "square" in shapes and "SQUARE" in shapes
    assert "rectangle" not in shapes
    assert 3 not in shapes


def test_register_uses_lower_cased_name() -> None:
    reg = Registry("thing")

    @reg.register()
    def MixedCase():
        return 1

    assert reg.list() == ["mixedcase"]
    assert reg.get("MixedCase") is MixedCase


def test_duplicate_name_raises_value_error(shapes: Registry) -> None:
    with pytest.raises(ValueError, match="shape named 'square' is already registered"):
        shapes.register("square", obj=lambda: 0)
    with pytest.raises(ValueError, match="already registered"):
        shapes.register("Rect", obj=lambda: 0)  # case-insensitive
    # the original entry survives
    assert shapes.create("square", side=2) == 4


def test_list_include_exclude_fnmatch() -> None:
    reg = Registry("model")
    for name in ["mlp", "mlp_small", "mlp_large", "cnn", "cnn_small", "vit"]:
        reg.register(name, obj=lambda: None)
    assert reg.list() == ["cnn", "cnn_small", "mlp", "mlp_large", "mlp_small", "vit"]
    assert reg.list("mlp*") == ["mlp", "mlp_large", "mlp_small"]
    assert reg.list(["mlp*", "vit"]) == ["mlp", "mlp_large", "mlp_small", "vit"]
    assert reg.list(exclude="*_small") == ["cnn", "mlp", "mlp_large", "vit"]
    assert reg.list("mlp*", exclude=["*_small", "*_large"]) == ["mlp"]
    assert reg.list("?nn") == ["cnn"]
    assert reg.list("nothing*") == []


def test_unknown_name_lists_close_matches_and_valid_names(shapes: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        shapes.get("squar")
    msg = str(info.value)
    assert "Unknown shape 'squar'" in msg
    assert "Did you mean 'square'?" in msg
    assert "Valid shape names: circle, rect, square." in msg
    # it is both a ZooError (user-facing) and a KeyError, and str() is not quoted
    assert isinstance(info.value, ZooError)
    assert isinstance(info.value, KeyError)
    assert msg.startswith("Unknown")


def test_unknown_name_without_close_match(shapes: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        shapes.create("zzzzzz")
    msg = str(info.value)
    assert "Did you mean" not in msg
    assert "Valid shape names: circle, rect, square." in msg


def test_unknown_message_names_option(shapes: Registry) -> None:
    msg = shapes.unknown_message("cirle", option="model.shape")
    assert "Unknown shape 'cirle' for model.shape." in msg
    assert "'circle'" in msg


def test_create_drops_none_kwargs(shapes: Registry) -> None:
    assert shapes.create("rect", width=None, height=None) == (1, 2)
    assert shapes.create("rect", width=5, height=None) == (5, 2)
    assert shapes.create("square", side=None) == 1


def test_populate_imports_modules_lazily() -> None:
    reg = Registry("x", populate=["json"])
    assert reg._populate == ["json"]
    assert reg.list() == []
    assert reg._populate == []


def test_zoo_list_and_create_model() -> None:
    assert "mlp" in zoo.list_models()
    assert zoo.list_models("ml*") == ["mlp"]
    assert "mlp" not in zoo.list_models(exclude="mlp")
    model = zoo.create_model(
        "mlp", task="multiclass", num_classes=3, input_shape=[4], hidden_sizes=[8], dropout=None
    )
    assert isinstance(model, zoo.MLP)
    assert model(torch.randn(5, 4)).shape == (5, 3)
    with pytest.raises(UnknownNameError, match="Did you mean 'mlp'"):
        zoo.create_model("mpl")


def test_builtin_registries_contain_expected_names() -> None:
    assert {"mlp"} <= set(MODELS.list())
    assert set(LOSSES.list()) == {"mse", "l1", "huber", "cross_entropy", "bce", "contrastive"}
    assert set(OPTIMIZERS.list()) == {"sgd", "adam", "adamw", "adafactor", "rmsprop", "adagrad"}
    assert set(SCHEDULERS.list()) == {
        "warmup_cosine",
        "cosine",
        "onecycle",
        "step",
        "exponential",
        "plateau",
        "none",
    }
    assert set(ACTIVATIONS.list()) == {
        "relu",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
        "mish",
        "tanh",
        "sigmoid",
        "softplus",
        "identity",
        "softmax",
    }


def test_builtin_entries_are_the_torch_classes() -> None:
    assert OPTIMIZERS.get("adamw") is torch.optim.AdamW
    assert OPTIMIZERS.get("SGD") is torch.optim.SGD
    assert LOSSES.get("mse") is torch.nn.MSELoss
    assert SCHEDULERS.get("step") is torch.optim.lr_scheduler.StepLR
    assert ACTIVATIONS.get("gelu") is torch.nn.GELU


def test_bad_registry_names_are_refused(shapes: Registry) -> None:
    for bad in ("", "a.b", "has space", 3):
        with pytest.raises(ValueError, match=r"name is a letter, then letters, digits, _ or - \(no dots"):
            shapes.register(bad, lambda: 0)


def test_an_installed_packages_entry_point_adds_its_models_to_the_shell(
    tmp_path, monkeypatch, capsys
) -> None:
    """A name registered in the user's package never reached `zoo train --model NAME` (nothing
    imported the package); an entry point in the `lightning_zoo` group does."""
    import zoo.registry
    from tests.test_cli import run_main

    site = tmp_path / "site"
    (site / "theirpkg_zoo").mkdir(parents=True)
    (site / "theirpkg_zoo" / "__init__.py").write_text(
        "import zoo\nfrom zoo.models import MLP\n\n@zoo.register_model('their_mlp')\nclass TheirMLP(MLP):\n"
        "    pass\n"
    )
    info = site / "theirpkg_zoo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: theirpkg-zoo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lightning_zoo]\nmodels = theirpkg_zoo\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(zoo.registry, "_plugins_loaded", False)
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # the plugin's name goes with the test
    monkeypatch.delitem(__import__("sys").modules, "theirpkg_zoo", raising=False)
    assert "their_mlp" in zoo.list_models()
    code, out, err = run_main(["train", "-c", "mlp_digits", "--model", "their_mlp", "--print_config"], capsys)
    assert code == 0, err
    assert "class_path: theirpkg_zoo.TheirMLP" in out


def test_plugin_modules_are_those_of_the_classes_plugins_register(tmp_path, monkeypatch) -> None:
    """What an installed plugin registers (a class, a preset of a class defined elsewhere) makes
    its class's module one a checkpoint may name; what the zoo or the user registers does not."""
    import importlib.metadata
    import sys

    import zoo.registry

    site = tmp_path / "site"
    site.mkdir()
    (site / "theirpkg_models.py").write_text("from zoo.models import MLP\n\n\nclass Wide(MLP):\n    pass\n")
    (site / "theirpkg_plugin.py").write_text(
        "import zoo\nfrom zoo.models import MLP\nfrom zoo.registry import register_preset\n"
        "from theirpkg_models import Wide\n\n\n@zoo.register_model('their_mlp_plugin')\n"
        "class TheirMLP(MLP):\n    pass\n\n\n"
        "register_preset('their_wide_plugin', Wide, 'wide', hidden_sizes=[512])\n"
    )
    monkeypatch.syspath_prepend(str(site))
    point = importlib.metadata.EntryPoint(name="m", value="theirpkg_plugin", group=zoo.registry.PLUGIN_GROUP)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kw: [point] if kw.get("group") == zoo.registry.PLUGIN_GROUP else real(**kw),
    )
    monkeypatch.setattr(zoo.registry, "_plugins_loaded", False)
    monkeypatch.setattr(zoo.registry, "_plugin_entries", [])
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    try:
        MODELS.register("user_mlp_not_plugin", type("UserMLP", (), {"__module__": "users_module"}))
        assert zoo.registry.plugin_modules() == {"theirpkg_plugin", "theirpkg_models"}
        assert "their_mlp_plugin" in MODELS and "their_wide_plugin" in MODELS
    finally:
        sys.modules.pop("theirpkg_plugin", None)
        sys.modules.pop("theirpkg_models", None)
