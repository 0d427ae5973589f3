"""The ``zoo`` command: help, recipes, bad input, and users' own subclasses."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import QUIET, read_metrics
from zoo.cli import main
from zoo.errors import ZooError
from zoo.recipes import list_recipes


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``zoo ARGV`` in-process: (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_and_recipes_list_do_not_import_torch():
    code = (
        "import sys; from zoo.cli import main; main(['--help']); main(['recipes', 'list']); "
        "main(['train', '-c', 'mlp_digits', '--help']); "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'heavy import'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "zoo train -c mlp_digits" in proc.stdout
    for recipe in list_recipes():
        assert recipe.name in proc.stdout
        assert recipe.description in proc.stdout


def test_only_the_console_command_sets_the_cyclic_collector_aside(capsys):
    """As its own process, ``zoo`` collects nothing while it imports torch and Lightning, then
    freezes what they left and collects as usual (seconds of a short run); called in-process
    (tests, notebooks) it leaves the collector as it found it, whether the command succeeds or not."""
    frozen = gc.get_freeze_count()
    for argv, expected in ((["recipes", "list"], 0), (["no-such-command"], 2)):
        assert run_main(argv, capsys)[0] == expected
        assert gc.isenabled() and gc.get_freeze_count() == frozen
    code = (
        "import gc, sys; sys.argv = ['zoo', 'recipes', 'list']; from zoo.cli import main; main(); "
        "print(gc.isenabled(), gc.get_freeze_count())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    enabled, count = proc.stdout.split()[-2:]
    assert proc.returncode == 0 and enabled == "True" and int(count) > 1000


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """``zoo runs | head -3``: once the reader has gone, the next write fails; the command ends as
    a tool that SIGPIPE ended does (exit 141, nothing on stderr), not with a traceback."""
    read, write = os.pipe()
    with os.fdopen(write, "w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zoo", "recipes", "list"], stdout=stdout, stderr=subprocess.PIPE, text=True
        )
    os.close(read)  # before the command has written a line
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, "")


@pytest.mark.parametrize("command", ["train", "fit", "validate", "test"])
def test_pipeline_help_is_short_and_every_option_stays_one_flag_away(command: str, capsys) -> None:
    code, out, _ = run_main([command, "--help"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"usage: zoo {command} -c RECIPE [-c MORE ...] [--KEY VALUE ...]"
    assert len(lines) < 60
    for flag in ("--model.help MLP", "--data.help SklearnDataModule", "--help-all", "--trainer.max_epochs"):
        assert flag in out
    if command == "train":  # a class's options, with real choices rather than every nn.Module in torch
        code, out, _ = run_main([command, "--model.help", "MLP"], capsys)
        assert code == 0 and len(out.splitlines()) < 200
        assert "zoo.losses.ContrastiveLoss" in out
        assert "more: any subclass by class path" in " ".join(out.split())
    if command == "train":  # the long form: LightningCLI's own help, every option
        code, out, _ = run_main([command, "--help-all"], capsys)
        assert code == 0 and len(out.splitlines()) > 500
        assert "num_sanity_val_steps" in out and "--model.help" in out


def test_ctrl_c_outside_a_run_is_one_line_and_exit_130(capsys, monkeypatch) -> None:
    import zoo.cli.recipes

    def interrupted(argv: list[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.cli.recipes, "main", interrupted)
    assert run_main(["recipes", "list"], capsys)[::2] == (130, "zoo: interrupted.\n")


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        (
            "model:\n  init_args:\n    dropout: [1, 2\n",
            "not valid YAML (expected ',' or ']', but got '<stream end>' at line 4, column 1).",
        ),
        (
            "- a\n- b\n",
            "a config is a mapping of sections (model:, data:, trainer: ...); this file holds a list.",
        ),
        ("", "a config is a mapping of sections (model:, data:, trainer: ...); this file holds nothing."),
    ],
    ids=["syntax", "list", "empty"],
)
def test_a_config_file_that_is_no_config_is_named_in_one_line(tmp_path: Path, capsys, text: str, wanted: str):
    # jsonargparse said `in "<unicode string>", line 3` or `Unexpected config: - a`, naming no file
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    code, _, err = run_main(["fit", "-c", "mlp_digits", "-c", str(path), "--print_config"], capsys)
    assert code == 2 and err.strip() == f"zoo: error: -c/--config {path}: {wanted}", err


def test_a_zoo_error_in_a_dataloader_worker_is_one_line(capsys, monkeypatch) -> None:
    """torch re-raises a worker's exception with the worker's whole traceback as its text; a bad
    image read by a streaming loader with workers printed that after `zoo: error:`."""
    from torch._utils import ExceptionWrapper

    import zoo.cli.recipes

    def unreadable_image(argv: list[str]) -> None:
        try:
            raise ZooError("data: cannot read the image cat/0.png (image file is truncated).")
        except ZooError:
            ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0").reraise()

    monkeypatch.setattr(zoo.cli.recipes, "main", unreadable_image)
    code, _, err = run_main(["recipes", "list"], capsys)
    assert (code, err) == (
        2,
        "zoo: error: data: cannot read the image cat/0.png (image file is truncated).\n",
    )


def test_limit_batches_from_the_shell_mean_what_they_mean_in_python(tmp_path: Path, capsys) -> None:
    """``--trainer.limit_train_batches 1`` is one batch, as ``Trainer(limit_train_batches=1)`` is;
    Lightning types it ``float | int``, so the command line's ``1`` was read as 1.0: every batch."""
    argv = ["fit", "-c", "mlp_digits", *QUIET, "--trainer.max_epochs", "2", "--trainer.default_root_dir"]
    limits = ["--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0.5"]
    code, _, err = run_main([*argv, str(tmp_path), *limits], capsys)
    assert code == 0, err
    (last,) = tmp_path.rglob("last.ckpt")
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2  # one batch in each of the two epochs


def test_recipes_show_and_copy(capsys, tmp_path: Path, monkeypatch):
    code, out, _ = run_main(["recipes", "show", "mlp_digits"], capsys)
    assert code == 0 and "zoo.models.MLP" in out
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_main(["recipes", "copy", "mlp_digits", "mine.yaml"], capsys)
    original = next(r.path for r in list_recipes() if r.name == "mlp_digits").read_text().splitlines()
    assert original[2].startswith("# measured: ")
    original = original[:2] + original[3:]  # the copy leaves the original's measured result out
    copy = (tmp_path / "mine.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(original, copy, strict=True) if a != b]
    # the copy's runs go to runs/mine, apart from the original's; nothing else changes
    assert code == 0 and changed == [
        ("# zoo train -c mlp_digits", "# zoo train -c mine.yaml"),
        ("  default_root_dir: runs/mlp_digits", "  default_root_dir: runs/mine"),
    ]
    config = _printed_config(["-c", str(tmp_path / "mine.yaml")], capsys)
    assert config["trainer"]["default_root_dir"] == "runs/mine"
    code, _, err = run_main(["recipes", "copy", "mlp_digits", "mine.yaml"], capsys)
    assert code == 2 and "exists already" in err
    for command in ("show", "copy"):  # the recipe's name alone: no -c option, no file to speak of
        code, _, err = run_main(
            ["recipes", command, "mlp_digitz", "x.yaml"][: 3 + (command == "copy")], capsys
        )
        assert code == 2 and err.startswith(
            "zoo: error: no shipped recipe 'mlp_digitz'. Did you mean 'mlp_digits'"
        )


def test_models_lists_registry(capsys):
    from zoo.registry import list_models

    code, out, _ = run_main(["models"], capsys)
    assert code == 0 and out.split() == list_models()
    code, out, _ = run_main(["models", "resnet*", "--verbose"], capsys)
    from zoo.models import ResNet

    built = ResNet(input_shape=[3, 32, 32], num_classes=10, widths=(16, 32, 64), blocks_per_stage=3)
    line = next(ln for ln in out.splitlines() if ln.startswith("resnet20 "))
    assert "zoo.models.ResNet(widths=[16, 32, 64], blocks_per_stage=3)" in line
    assert f"{sum(p.numel() for p in built.parameters()):,} parameters (3x32x32 images, 10 classes)" in line
    code, out, _ = run_main(["models", "--data"], capsys)
    assert {"digits", "wine", "fashion_mnist", "chars", "csv"} <= set(out.split())
    # the learner's other names, each with the flag that takes it (they were in no listing)
    from zoo.registry import ACTIVATIONS, LOSSES, OPTIMIZERS, SCHEDULERS

    code, out, _ = run_main(["models", "--options"], capsys)
    lines = out.splitlines()
    for flag, registry in (
        ("--model.activation", ACTIVATIONS),
        ("--model.loss", LOSSES),
        ("--model.optimizer", OPTIMIZERS),
        ("--model.lr_scheduler", SCHEDULERS),
    ):
        heading = next(i for i, line in enumerate(lines) if f"({flag}):" in line)
        assert lines[heading + 1].strip().split(", ") == registry.list()


def _printed_config(argv: list[str], capsys) -> dict:
    import yaml

    code, out, err = run_main(["train", *argv, "--print_config"], capsys)
    assert code == 0, err
    return yaml.safe_load(out)


def test_names_work_where_class_paths_do(capsys, tmp_path: Path) -> None:
    """``--model resnet8`` / ``--data wine``: the class path and the preset's arguments, which later
    flags override; a class path, a class name and a name outside the registry pass unchanged."""
    from zoo.cli.lightning import resolve_names

    argv = ["-c", "convnet_digits", "--model", "resnet8", "--model.blocks_per_stage", "2"]
    config = _printed_config(argv, capsys)
    assert config["model"]["class_path"] == "zoo.models.ResNet"
    assert config["model"]["init_args"]["widths"] == [16, 32, 64]
    assert config["model"]["init_args"]["blocks_per_stage"] == 2  # the later flag wins
    config = _printed_config(["-c", "mlp_digits", "--data=wine", "--model=gpt_char"], capsys)
    assert config["data"]["class_path"] == "zoo.data.SklearnDataModule"
    assert config["data"]["init_args"]["dataset"] == "wine"
    assert config["model"]["init_args"]["n_embd"] == 384 and config["model"]["init_args"]["dropout"] == 0.2
    config = _printed_config(["-c", "mlp_digits", "--data.class_path", "digits_images"], capsys)
    assert config["data"]["init_args"]["as_images"] is True
    # in a config file too; its own init_args override the preset's
    mine = tmp_path / "named.yaml"
    mine.write_text("model:\n  class_path: resnet8\n  init_args:\n    blocks_per_stage: 2\ndata: wine\n")
    config = _printed_config(["-c", "mlp_digits", "-c", str(mine)], capsys)
    assert config["model"]["class_path"] == "zoo.models.ResNet"
    assert config["model"]["init_args"]["widths"] == [16, 32, 64]
    assert config["model"]["init_args"]["blocks_per_stage"] == 2
    assert config["data"]["init_args"]["dataset"] == "wine"
    unchanged = ["--model", "zoo.models.MLP", "--data", "SklearnDataModule", "--data", "my_pkg.Data"]
    unchanged += ["--model.dropout", "mlp", "--model.optimizer", "SGD", "--model.lr_scheduler=null"]
    assert resolve_names(unchanged) == unchanged
    with pytest.raises(ZooError, match="Unknown model 'MLPX' for --model"):  # neither a name nor a class
        resolve_names(["--model", "MLPX"])


def test_a_bare_class_name_two_classes_have_is_torchs_or_refused(tmp_path: Path) -> None:
    """``ReduceLROnPlateau`` is torch's and Lightning's (a subclass of it): the bare name means
    torch's, where jsonargparse would refuse it as ambiguous; a name torch has not, that two other
    classes have, is refused in one line naming their class paths."""
    from torch.optim.lr_scheduler import LRScheduler

    from zoo.cli.lightning import resolve_names

    torchs = "torch.optim.lr_scheduler.ReduceLROnPlateau"
    assert resolve_names(
        ["--model.lr_scheduler", "ReduceLROnPlateau", "--model.lr_scheduler.patience", "0"]
    ) == [
        "--model.lr_scheduler",
        torchs,
        "--model.lr_scheduler.patience",
        "0",
    ]
    assert resolve_names(["--model.lr_scheduler.class_path=ReduceLROnPlateau"]) == [
        f"--model.lr_scheduler.class_path={torchs}"
    ]
    import yaml

    mine = tmp_path / "plateau.yaml"  # in a config file too
    mine.write_text("model:\n  init_args:\n    lr_scheduler:\n      class_path: ReduceLROnPlateau\n")
    copy = resolve_names(["-c", str(mine)])[1]
    assert (
        yaml.safe_load(Path(copy).read_text())["model"]["init_args"]["lr_scheduler"]["class_path"] == torchs
    )
    twins = [type("TwinLR", (LRScheduler,), {"__module__": module}) for module in ("pkg_a", "pkg_b")]
    with pytest.raises(ZooError) as refused:
        resolve_names(["--model.lr_scheduler", "TwinLR"])
    assert str(refused.value) == (
        "model.lr_scheduler: 'TwinLR' names 2 classes: pkg_a.TwinLR, pkg_b.TwinLR; "
        "give the class path of the one you mean."
    )
    del twins
    gc.collect()  # the twins leave the subclasses of LRScheduler


BAD_INPUTS = {
    "unknown recipe": (
        ["-c", "mlp_digitz"],
        ["'mlp_digitz'", "Did you mean 'mlp_digits'", "zoo recipes list"],
    ),
    "misspelled option": (
        ["-c", "mlp_digits", "--model.dropuot", "0.3"],
        [
            "--model.dropuot is not accepted: zoo.models.MLP has no option 'dropuot'.",
            "Did you mean --model.dropout?",
        ],
    ),
    "misspelled trainer option": (
        ["-c", "mlp_digits", "--trainer.max_epohcs", "3"],
        ["unrecognized arguments: --trainer.max_epohcs 3. Did you mean --trainer.max_epochs"],
    ),
    "unknown optimizer": (
        ["-c", "mlp_digits", "--model.optimizer", "Adamm"],
        [
            "model.optimizer: unknown optimizer 'Adamm'. Did you mean 'Adam'",
            "AdamW, Adamax",
            "or a class path",
        ],
    ),
    "unknown scheduler": (
        ["-c", "mlp_digits", "--model.lr_scheduler", "WarmupCosin"],
        ["model.lr_scheduler: unknown learning-rate scheduler 'WarmupCosin'. Did you mean 'WarmupCosineLR'?"],
    ),
    "unknown model name": (
        ["-c", "mlp_digits", "--model", "resnet21"],
        ["Unknown model 'resnet21' for --model. Did you mean 'resnet20'", "Or a class path", "`zoo models`"],
    ),
    "unknown data name": (
        ["-c", "mlp_digits", "--data", "digit"],
        ["Unknown data 'digit' for --data. Did you mean 'digits'", "`zoo models --data` lists the names"],
    ),
    "negative data seed": (
        ["-c", "mlp_digits", "--data.seed", "-1"],
        ["zoo: error: data.seed must be an integer in [0, 2**32 - 1]; got -1."],
    ),
    "a Trainer setting Lightning refuses": (
        ["-c", "mlp_digits", "--trainer.limit_train_batches", "0.001"],
        ["zoo: error: trainer: You requested to check 0.001 of the `train_dataloader` but 0.001 * 20 < 1."],
    ),
    "optimizer refuses a value": (
        ["-c", "mlp_digits", "--model.optimizer.lr", "-0.1"],
        ["zoo: error: model.optimizer: Invalid learning rate: -0.1"],
    ),
    "unknown model": (["-c", "mlp_digits", "--model.class_path", "zoo.models.NoSuch"], ["NoSuch"]),
    "unknown loss": (
        ["-c", "mlp_digits", "--model.loss", "hubber"],
        ["model.loss", "'huber'", "cross_entropy"],
    ),
    "loss for another task": (
        ["-c", "mlp_digits", "--model.loss", "mse"],
        ["model.loss 'mse'", "regression"],
    ),
    "unknown activation": (
        ["-c", "mlp_digits", "--model.activation", "relux"],
        ["model.activation", "'relu'"],
    ),
    "unknown norm": (
        ["-c", "mlp_digits", "--model.norm", "group"],
        ["zoo: error: --model.norm: 'group' is not one of none, batch, layer\n"],
    ),
    "misspelled norm": (
        ["-c", "mlp_digits", "--model.norm", "btach"],
        ["zoo: error: --model.norm: 'btach' is not one of none, batch, layer (did you mean batch?)\n"],
    ),
    "a word for a number": (
        ["-c", "mlp_digits", "--model.dropout", "abc"],
        ["zoo: error: --model.dropout: 'abc' is not a number\n"],
    ),
    "a word for an optimizer's number": (
        ["-c", "mlp_digits", "--model.optimizer.lr", "abc"],
        ["zoo: error: --model.optimizer.lr: 'abc' is not a number\n"],
    ),
    "a fraction for a count": (
        ["-c", "mlp_digits", "--data.batch_size", "1.5"],
        ["zoo: error: --data.batch_size: '1.5' is not an integer\n"],
    ),
    "a word for a list": (
        ["-c", "mlp_digits", "--model.hidden_sizes", "abc"],
        ["zoo: error: --model.hidden_sizes: 'abc' is not a list ([a, b])\n"],
    ),
    "a misspelled precision": (
        ["-c", "mlp_digits", "--trainer.precision", "bf16-mix"],
        [
            "zoo: error: --trainer.precision: 'bf16-mix' is not an integer or one of transformer-engine,",
            "(did you mean bf16-mixed",
        ],
    ),
    "unknown init": (
        ["-c", "mlp_digits", "--model.init", "he"],
        ["zoo: error: --model.init: 'he' is not one of default, kaiming, xavier\n"],
    ),
    "unknown scheduler mode": (
        ["-c", "mlp_digits", "--model.lr_scheduler", "ReduceLROnPlateau", "--model.lr_scheduler.mode", "mx"],
        ["zoo: error: --model.lr_scheduler.mode: 'mx' is not one of min, max (did you mean max?)\n"],
    ),
    "optimizer option it does not take": (
        ["-c", "mlp_digits", "--model.optimizer", "Adam", "--model.optimizer.momentum", "0.9"],
        [
            "zoo: error: --model.optimizer.momentum: torch.optim.Adam takes no option 'momentum'; it takes "
            "lr, betas, eps, weight_decay, amsgrad, foreach, maximize, capturable, differentiable, fused, "
            "decoupled_weight_decay\n"
        ],
    ),
    "misspelled optimizer option": (
        ["-c", "mlp_digits", "--model.optimizer.weight_decy", "0.1"],
        [
            "zoo: error: --model.optimizer.weight_decy: torch.optim.AdamW takes no option 'weight_decy'; it "
            "takes lr, betas, eps, weight_decay, amsgrad, maximize, foreach, capturable, differentiable, "
            "fused (did you mean --model.optimizer.weight_decay?)\n"
        ],
    ),
    "scheduler option it does not take": (
        ["-c", "mlp_digits", "--model.lr_scheduler", "StepLR", "--model.lr_scheduler.foo", "1"],
        [
            "zoo: error: --model.lr_scheduler.foo: torch.optim.lr_scheduler.StepLR takes no option 'foo'; it "
            "takes step_size, gamma, last_epoch\n"
        ],
    ),
    "misspelled option of a scheduler two classes name": (
        [
            "-c",
            "mlp_digits",
            "--model.lr_scheduler",
            "ReduceLROnPlateau",
            "--model.lr_scheduler.patiense",
            "0",
        ],
        [
            "zoo: error: --model.lr_scheduler.patiense: torch.optim.lr_scheduler.ReduceLROnPlateau takes no "
            "option 'patiense'; it takes mode, factor, patience, threshold, threshold_mode, cooldown, "
            "min_lr, eps (did you mean --model.lr_scheduler.patience?)\n"
        ],
    ),
    "plateau monitor that validation does not log": (
        [
            *["-c", "mlp_digits", "-c", "trainer/debug", "--trainer.limit_train_batches", "1"],
            *["--trainer.max_epochs", "1", "--model.lr_scheduler", "ReduceLROnPlateau"],
            *["--model.monitor", "val/los"],
        ],
        [
            "zoo: error: --model.monitor 'val/los' is not logged by validation; it logs val/acc, val/f1, "
            "val/loss (did you mean val/loss?)\n"
        ],
    ),
    "unknown dataset": (
        ["-c", "mlp_digits", "--data.dataset", "mnist"],
        ["zoo: error: --data.dataset: 'mnist' is not one of digits, iris, wine, breast_cancer, diabetes\n"],
    ),
    "fractions over 1": (
        ["-c", "mlp_digits", "--data.val_size", "0.6", "--data.test_size", "0.5"],
        ["data.val_size + data.test_size", "less than 1"],
    ),
    "empty split": (["-c", "mlp_digits", "--data.val_size", "0"], ["data.val_size", "fraction in (0, 1)"]),
    "split too large": (
        ["-c", "mlp_digits", "--data.test_size", "5000"],
        ["data.test_size=5000", "leaves none"],
    ),
    "splits that leave no training rows": (
        ["-c", "mlp_digits", "--data.val_size", "0.9", "--data.test_size", "0.0999"],
        [
            "data.val_size=0.9 (1617 of the 1797 examples) and data.test_size=0.0999 (180)",
            "leave none to train on",
        ],
    ),
    "fraction above 1": (["-c", "mlp_digits", "--data.val_size", "1.5"], ["data.val_size", "(0, 1)", "1.5"]),
    "split that is no number": (
        ["-c", "gpt_chars", "--data.test_size", "abc"],
        ["zoo: error: data.test_size: must be a fraction in (0, 1) or a count >= 1; got 'abc'"],
    ),
    "batch of zero": (["-c", "mlp_digits", "--data.batch_size", "0"], ["data.batch_size must be >= 1"]),
    "dropout of 1.5": (["-c", "mlp_digits", "--model.dropout", "1.5"], ["model.dropout must be in [0, 1)"]),
    "zero-width layer": (["-c", "mlp_digits", "--model.hidden_sizes", "[0]"], ["model.hidden_sizes", ">= 1"]),
    "negative L1 penalty": (
        ["-c", "mlp_digits", "--model.l1_lambda", "-1"],
        ["model.l1_lambda must be >= 0"],
    ),
    "trainer value Lightning refuses": (
        ["-c", "mlp_digits", "--trainer.max_epochs", "-5"],
        ["trainer:", "max_epochs", "non-negative"],
    ),
    "unknown precision": (
        ["-c", "mlp_digits", "--trainer.precision", "12"],
        ["zoo: error: --trainer.precision: '12' is not one of 64, 32, 16, ", "bf16-mixed"],
    ),
    "fsdp on a cpu": (
        ["-c", "gpt_chars", "-c", "trainer/fsdp", "--trainer.accelerator", "cpu"],
        ["trainer:", "fsdp", "requires a GPU accelerator"],
    ),
    "text block of zero": (
        ["-c", "gpt_chars", "--data.block_size", "0"],
        ["data.block_size must be an integer >= 1"],
    ),
    "missing text file": (
        ["-c", "gpt_chars", "--data.path", "no/such.txt"],
        ["data.path: no such file or folder"],
    ),
    "missing image folder": (
        [
            "--model",
            "zoo.models.ConvNet",
            "--data",
            "zoo.data.ImageFolderDataModule",
            "--data.root",
            "no/such",
        ],
        ["data.root: no such folder: no/such"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_one_clear_message(case, capsys, tmp_path: Path):
    argv, fragments = BAD_INPUTS[case]
    root = tmp_path / "runs"
    code, out, err = run_main(["train", *argv, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 2
    assert err.count("zoo: error:") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not root.exists(), list(root.rglob("*"))  # nor the folder the run would have been in


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


CSV_ARGS = ["--model", "zoo.models.MLP", "--data", "zoo.data.CSVDataModule", "--trainer.max_epochs", "1"]


def test_csv_missing_target_column(capsys, tmp_path: Path):
    csv = write_csv(tmp_path / "d.csv", ["a,b,label"] + [f"{i},{i % 3},{i % 2}" for i in range(40)])
    code, _, err = run_main(
        [
            "train",
            *CSV_ARGS,
            "--data.path",
            str(csv),
            "--data.target",
            "class",
            "--trainer.default_root_dir",
            str(tmp_path / "runs"),
        ],
        capsys,
    )
    assert code == 2 and "Traceback" not in err
    assert "data.target 'class' is not a column" in err and "a, b, label" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (None, "data.path: no such file: "),
        (["a,b,label"], "needs a header row and at least one data row"),
        (
            ["a,b,label", "1,2,0", "nan,3,1", "4,5,0", "6,7,1"],
            "has a missing value ('nan') on line 3; fill it in, or set data.missing to drop",
        ),
        (["a,b,label", "1,2,0", "inf,3,1", "4,5,0", "6,7,1"], "has 'inf' on line 3; features must be finite"),
        (
            ["a,b,label", "1,2,0", "3,4,", "5,6,1"],
            "line 3 has no target ('label' is ''); rows without a target",
        ),
        (
            ["a,b,label"] + [f"{i},id{i},{i % 2}" for i in range(101)],
            "has 101 distinct text values, more than data.max_categories=100",
        ),
    ],
    ids=["missing", "empty", "nan-feature", "inf-feature", "no-target", "id-column"],
)
def test_bad_csv_files_are_one_clear_error(capsys, tmp_path: Path, rows, message):
    csv = tmp_path / "d.csv"
    if rows is not None:
        write_csv(csv, rows)
    root = tmp_path / "runs"
    argv = ["train", *CSV_ARGS, "--data.path", str(csv), "--data.target", "label"]
    code, _, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 2 and "Traceback" not in err and err.count("zoo: error:") == 1, err
    assert message in err, err
    assert not root.exists()


def test_csv_labels_out_of_range_for_binary(capsys, tmp_path: Path):
    csv = write_csv(tmp_path / "d.csv", ["a,b,label"] + [f"{i},{i % 5},{i % 3}" for i in range(60)])
    code, _, err = run_main(
        [
            "train",
            *CSV_ARGS,
            "--data.path",
            str(csv),
            "--data.target",
            "label",
            "--data.task",
            "binary",
            "--trainer.default_root_dir",
            str(tmp_path / "runs"),
        ],
        capsys,
    )
    assert code == 2 and "Traceback" not in err
    assert "task 'binary' needs labels 0 and 1" in err
    assert not (tmp_path / "runs").exists()


def test_bad_input_exits_nonzero_without_traceback_in_a_subprocess(zoo, tmp_path: Path):
    proc = zoo("train", "-c", "mlp_digits", "--model.loss", "hubber", check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Unknown loss 'hubber' for model.loss" in proc.stderr
    assert not (tmp_path / "runs").exists()


DEBUG_RUN = ["train", "-c", "mlp_digits", "-c", "trainer/debug", "--trainer.max_epochs", "1"]


def test_a_run_without_a_logger_writes_no_config_and_can_run_again_in_its_folder(tmp_path: Path, capsys):
    """``--trainer.logger false``: no run directory, so no config.yaml in the root folder either (the
    second run there stopped with Lightning's ``expected .../config.yaml to NOT exist`` traceback)."""
    root = tmp_path / "runs"
    argv = [*DEBUG_RUN, "--trainer.logger", "false", "--trainer.default_root_dir", str(root)]
    for _ in range(2):
        code, out, err = run_main(argv, capsys)
        assert code == 0 and "Traceback" not in err, err
        assert f"Run directory:   {root}\n  test metrics:" in out  # and no config line
    assert not list(root.rglob("config.yaml")) and not list(root.glob("version_*"))
    assert len(list(root.glob("checkpoints/last*.ckpt"))) == 2  # last.ckpt and last-v1.ckpt


def test_a_logger_version_that_names_an_existing_run_is_refused_before_touching_it(tmp_path: Path, capsys):
    run_dir = tmp_path / "runs" / "fixed"
    run_dir.mkdir(parents=True)
    kept = {"config.yaml": "model: {}\n", "metrics.csv": "epoch,step,val/loss\n0,5,1.0\n", "run.json": "{}"}
    for name, text in kept.items():
        (run_dir / name).write_text(text)
    root = ["--trainer.default_root_dir", str(tmp_path / "runs")]
    code, _, err = run_main([*DEBUG_RUN, *root, "--trainer.logger.version", "fixed"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"zoo: error: --trainer.logger.version: {run_dir} already holds a run (config.yaml); name a new "
        "version, leave it out for the next free one, or continue that run with --ckpt_path."
    ), err
    assert {p.name: p.read_text() for p in run_dir.iterdir()} == kept  # its metrics and status untouched


def test_a_refused_wandb_run_leaves_no_wandb_folder_and_no_wandb_lines(tmp_path: Path, capsys, monkeypatch):
    """Row 3b with ``-c logger/wandb``: the W&B run is finished quietly (no "You can sync this run"
    after the error line) and its offline-run folder removed; another run's folder stays."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "false")  # W&B's closing lines would show
    # W&B's service outlives the run in this process, and its address (WANDB_SERVICE) would make a
    # later test's `zoo` subprocess log through it, unflushed when that process ends
    root = tmp_path / "runs"
    argv = [*DEBUG_RUN, "-c", "logger/wandb", "--model.optimizer.lr", "-0.1", "--trainer.default_root_dir"]
    try:
        _refused_wandb_runs(argv, root, capsys)
    finally:
        wandb.teardown()


def _refused_wandb_runs(argv: list[str], root: Path, capsys) -> None:
    code, _, err = run_main([*argv, str(root)], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1] == "zoo: error: model.optimizer: Invalid learning rate: -0.1", err
    assert err.count("zoo: error:") == 1 and "wandb sync" not in err
    assert not root.exists(), list(root.rglob("*"))  # nor wandb/ in it
    other = root / "wandb" / "offline-run-20250101_000000-other0"  # another run's, in the same root
    other.mkdir(parents=True)
    (other / "run-other0.wandb").write_bytes(b"other")
    code, _, err = run_main([*argv, str(root)], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "wandb",
        "wandb/offline-run-20250101_000000-other0",
        "wandb/offline-run-20250101_000000-other0/run-other0.wandb",
    ]


@pytest.mark.parametrize(
    ("argv0", "command"),
    [("/venv/bin/zoo", "zoo"), ("/site-packages/zoo/__main__.py", "python -m zoo")],
    ids=["zoo", "python -m zoo"],
)
def test_the_parsers_hint_names_the_command_as_typed(argv0: str, command: str, capsys, monkeypatch):
    """The second line of a parser error named sys.argv[0]: `__main__.py train --help` under
    ``python -m zoo``."""
    monkeypatch.setattr(sys, "argv", [argv0])
    code, _, err = run_main(["train", "-c", "mlp_digits", "--model.dropuot", "0.3"], capsys)
    assert code == 2 and err.splitlines()[-1] == f"Run `{command} train --help` to see every option.", err


def test_csv_data_trains_end_to_end(tmp_path: Path, capsys):
    # two well separated blobs with text labels
    gen = torch.Generator().manual_seed(0)
    rows = ["x1,x2,x3,species"]
    for i in range(120):
        label = ("setosa", "virginica")[i % 2]
        center = 3.0 if label == "virginica" else -3.0
        values = (torch.randn(3, generator=gen) + center).tolist()
        rows.append(",".join(f"{v:.4f}" for v in values) + f",{label}")
    csv = write_csv(tmp_path / "blobs.csv", rows)
    argv = ["train", "--model", "zoo.models.MLP", "--data", "zoo.data.CSVDataModule", "--data.path", str(csv)]
    argv += ["--data.target", "species", "--trainer.max_epochs", "5", *QUIET]
    code, _, err = run_main([*argv, "--trainer.default_root_dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    metrics = read_metrics(tmp_path / "runs")
    assert metrics["test/acc"] >= 0.95


USER_PACKAGE = '''
import torch
from zoo.models import MLP


class TheirModel(MLP):
    """A user's subclass that overrides forward: a learned temperature on the logits."""

    def __init__(self, init_temperature: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.log_temperature = torch.nn.Parameter(torch.tensor(float(init_temperature)).log())

    def forward(self, x):
        return super().forward(x) / self.log_temperature.exp()
'''


def test_users_subclass_trains_and_reloads(zoo, tmp_path: Path, monkeypatch):
    pkg = tmp_path / "their_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(USER_PACKAGE))
    root = tmp_path / "runs"
    zoo(
        "train",
        "-c",
        "mlp_digits",
        "-c",
        "trainer/debug",
        "--model.class_path",
        "their_pkg.TheirModel",
        "--model.init_args.init_temperature",
        "3.0",
        "--model.optimizer",
        "SGD",
        "--model.optimizer.lr",
        "0.05",
        "--model.optimizer.momentum",
        "0.9",
        "--trainer.default_root_dir",
        str(root),
        env={"PYTHONPATH": str(tmp_path)},
    )
    best = Path(read_metrics(root)["best_checkpoint"])
    monkeypatch.syspath_prepend(str(tmp_path))
    from their_pkg import TheirModel  # noqa: E402

    from zoo.models import ZooModule

    model = TheirModel.load_from_checkpoint(best, weights_only=True)
    assert type(model).__name__ == "TheirModel"
    assert model.hparams.init_temperature == 3.0
    # the injected optimizer and loss come back with it
    optimizer = model.optimizer(model.parameters())
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["momentum"] == 0.9
    assert isinstance(model.loss_fn, torch.nn.CrossEntropyLoss) and model.loss_fn.label_smoothing == 0.1
    # the base class rebuilds the user's subclass from the stored class path, with the same weights
    generic = ZooModule.load_from_checkpoint(best, weights_only=True)
    assert type(generic).__name__ == "TheirModel"
    x = torch.randn(4, 64)
    model.eval(), generic.eval()
    torch.testing.assert_close(model(x), generic(x))
    assert not torch.allclose(model.log_temperature.exp(), torch.tensor(3.0))  # it was trained


def test_unknown_command_lists_the_valid_ones(capsys):
    code, out, err = run_main(["trian", "-c", "mlp_digits"], capsys)
    assert code == 2 and out == ""
    assert err == (
        "zoo: error: unknown command 'trian'; valid commands: train, fit, validate, test, predict, "
        "generate, export, sweep, tune-lr, tune-batch-size, runs, plot, recipes, models.\n"
    )


def test_print_config_refuses_a_split_size_out_of_range(capsys) -> None:
    # checked as the value is parsed, so a dry run (--print_config) does not show a config that fails
    argv = ["train", "-c", "mlp_digits", "--print_config", "--data.val_size"]
    code, out, err = run_main([*argv, "1.5"], capsys)
    assert code == 2 and "val_size:" not in out
    assert err.splitlines()[0] == (
        "zoo: error: data.val_size: must be a fraction in (0, 1) or a count >= 1; got '1.5'"
    )
    code, out, _ = run_main([*argv, "200"], capsys)
    assert code == 0 and "val_size: 200\n" in out  # a count stays an int


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("huber", "HuberLoss(delta=1.0)"),
        ("torch.nn.SmoothL1Loss", "SmoothL1Loss(beta=1.0)"),
        ('{"class_path": "torch.nn.HuberLoss", "init_args": {"delta": 0.5}}', "HuberLoss(delta=0.5)"),
    ],
)
def test_loss_by_name_class_path_string_or_dict(loss: str, expected: str, monkeypatch, tmp_path: Path):
    """``str`` comes first in the type of ``model.loss`` (so jsonargparse never enumerates every
    nn.Module subclass at start-up), and class paths still work, as a string or with init_args."""
    from zoo.cli.lightning import ZooCLI
    from zoo.recipes import find_recipe

    monkeypatch.setattr(sys, "argv", ["zoo"])
    recipe = str(find_recipe("mlp_diabetes").path)
    cli = ZooCLI(
        run=False, args=["-c", recipe, "--model.loss", loss, "--trainer.default_root_dir", str(tmp_path)]
    )
    fn = cli.model.loss_fn
    assert f"{type(fn).__name__}(delta={getattr(fn, 'delta', None)})" == expected or (
        f"{type(fn).__name__}(beta={getattr(fn, 'beta', None)})" == expected
    )


def test_loss_class_path_that_is_no_module_is_one_clear_error(capsys):
    code, _, err = run_main(["train", "-c", "mlp_diabetes", "--model.loss", "os.path"], capsys)
    assert code == 2 and err.count("zoo: error:") == 1 and "Traceback" not in err, err
    assert "model.loss 'os.path' is not an importable torch.nn.Module class" in err


@pytest.mark.parametrize("command", ["test", "validate"])
def test_evaluating_without_a_checkpoint_says_the_weights_are_untrained(
    command: str, tmp_path: Path, capsys
) -> None:
    limit = f"--trainer.limit_{'test' if command == 'test' else 'val'}_batches"
    argv = [command, "-c", "mlp_digits", limit, "1", *QUIET, "--trainer.default_root_dir", str(tmp_path)]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert f"zoo {command}: no --ckpt_path, so the model's untrained weights are evaluated" in err
    code, _, err = run_main([*argv, "--ckpt_path", "pretrained:mlp_digits"], capsys)
    assert code == 0 and "untrained" not in err


def test_a_model_class_that_drops_the_recipes_options_says_so(monkeypatch, capsys) -> None:
    """`-c mlp_digits --model.class_path their.Model` where the class takes no optimizer, dropout,
    ...: jsonargparse drops them silently (test accuracy 0.14 where 0.85 was expected)."""
    from jsonargparse import Namespace

    import zoo.cli
    from zoo.cli.lightning import _note_unused_model_options
    from zoo.recipes import find_recipe

    def config(class_path: str) -> Namespace:
        return Namespace(model=Namespace(class_path=class_path), config=[find_recipe("mlp_digits").path])

    monkeypatch.setattr(
        zoo.cli, "INVOKED", ["zoo", "train", "--model.width", "8", "--model.init_args.dropout", "0"]
    )
    _note_unused_model_options(config(f"{__name__}.FixedWidth"))
    assert capsys.readouterr().err == (
        f"zoo: note: {__name__}.FixedWidth takes no hidden_sizes, activation, norm, dropout, "
        "label_smoothing, optimizer, lr_scheduler: the values set for them are not used.\n"
    )
    _note_unused_model_options(config("zoo.models.MLP"))  # **kwargs: jsonargparse checks those itself
    assert capsys.readouterr().err == ""


def _mlp_class() -> type:
    from zoo.models import MLP

    return MLP


class FixedWidth(_mlp_class()):  # type: ignore[misc]
    """A user's model that takes its own options only."""

    def __init__(
        self, task: str = "multiclass", num_classes: int | None = None, input_shape=None, width: int = 16
    ):
        super().__init__(task=task, num_classes=num_classes, input_shape=input_shape, hidden_sizes=[width])


# ---------------------------------------------------------------- what a command needs, in one line


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (
            ["train"],
            "zoo: error: zoo train needs a model and data: a recipe (-c RECIPE, e.g. -c mlp_digits; `zoo "
            "recipes list`) or --model NAME|CLASS and --data NAME|CLASS (`zoo models`, `zoo models "
            "--data`).\n"
            "Run `zoo train --help` to see every option.\n",
        ),
        (
            ["test", "--ckpt_path", "model.ckpt"],
            "zoo: error: zoo test needs a model and data: a recipe (-c RECIPE, e.g. -c mlp_digits; `zoo "
            "recipes list`) or --model NAME|CLASS and --data NAME|CLASS (`zoo models`, `zoo models --data`); "
            "a checkpoint goes with it: zoo test -c RECIPE --ckpt_path CKPT.\n"
            "Run `zoo test --help` to see every option.\n",
        ),
        (
            ["test", "runs/m/version_0/checkpoints/last.ckpt"],
            "zoo: error: zoo test takes its checkpoint with --ckpt_path, and the data with a recipe: zoo "
            "test -c RECIPE --ckpt_path runs/m/version_0/checkpoints/last.ckpt.\n",
        ),
        (
            ["predict", "--input", "imgs/"],
            "zoo: error: zoo predict needs the checkpoint first: zoo predict CKPT --input imgs/ (CKPT: a "
            ".ckpt file such as runs/mlp_digits/version_0/checkpoints/last.ckpt, or pretrained:NAME); over a "
            "recipe's test split: zoo predict -c RECIPE --ckpt_path CKPT.\n",
        ),
        (
            ["predict", "model.ckpt", "--inptu", "x.csv"],
            "zoo: error: zoo predict has no option --inptu. Did you mean --input or --import? Usage: zoo "
            "predict CKPT --input PATH [--output FILE] (`zoo predict --help`).\n",
        ),
        (  # a prefix of an option is refused as a misspelling, not expanded
            ["predict", "model.ckpt", "--inp", "x.csv"],
            "zoo: error: zoo predict has no option --inp. Did you mean --input or --import? Usage: zoo "
            "predict CKPT --input PATH [--output FILE] (`zoo predict --help`).\n",
        ),
    ],
    ids=[
        "train alone",
        "test without a recipe",
        "test CKPT",
        "predict without CKPT",
        "predict typo",
        "prefix",
    ],
)
def test_a_command_missing_its_parts_says_what_it_takes(argv: list[str], wanted: str, capsys) -> None:
    """`zoo train` alone named `train.data, train.model` and `zoo --help`; `zoo test CKPT` and
    `zoo predict --input imgs/` were "unrecognized arguments"; `--inptu` read as a missing --input."""
    code, out, err = run_main(argv, capsys)
    assert (code, out, err) == (2, "", wanted)


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("trainer:\n  bogus_key: 1\n", "trainer.bogus_key is not an option of zoo train."),
        ("trainer:\n  max_epoch: 1\n", "trainer.max_epoch is not an option of zoo train. Did you mean "),
        (
            "modle:\n  dropout: 0.1\n",
            "modle.dropout is not an option of zoo train. Did you mean model.dropout?",
        ),
        (
            "model:\n  dropuot: 0.1\n",
            "--model.dropuot is not accepted: zoo.models.MLP has no option 'dropuot'. Did you mean "
            "--model.dropout? `--model.help MLP` lists its options.",
        ),
    ],
    ids=["unknown trainer key", "misspelled trainer key", "misspelled section", "misspelled model key"],
)
def test_an_unknown_key_of_a_config_file_names_the_file(tmp_path: Path, capsys, text: str, wanted: str):
    """It was `Subcommand 'train' does not accept option 'trainer.bogus_key'` and `zoo --help`."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(text)
    root = tmp_path / "runs"
    code, _, err = run_main(
        ["train", "-c", "mlp_digits", "-c", str(mine), "--trainer.default_root_dir", str(root)], capsys
    )
    lines = err.splitlines()
    assert code == 2 and lines[-1] == "Run `zoo train --help` to see every option.", err
    assert lines[-2].startswith(f"zoo: error: -c {mine}: {wanted}"), err
    if "max_epoch:" in text:
        assert lines[-2].endswith(
            "Did you mean trainer.max_epochs or trainer.min_epochs or trainer.max_steps?"
        )
    assert not root.exists()


def test_an_abbreviated_option_is_refused_as_misspelled(tmp_path: Path, capsys) -> None:
    """`--trainer.max_epoch 3` ran with max_epochs=3 (jsonargparse expanded the prefix) while
    `--model.drop 0.3` was refused: both are refused now."""
    root = ["--trainer.default_root_dir", str(tmp_path / "runs")]
    code, _, err = run_main(["train", "-c", "mlp_digits", "--trainer.max_epoch", "3", *root], capsys)
    assert code == 2 and err.splitlines()[-2] == (
        "zoo: error: unrecognized arguments: --trainer.max_epoch 3. Did you mean --trainer.max_epochs or "
        "--trainer.min_epochs or --trainer.max_steps?"
    ), err
    assert not (tmp_path / "runs").exists()


def test_a_model_class_with_a_required_argument_the_config_lacks_names_it(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """jsonargparse printed the class's whole `Namespace(...)` on one line, and `zoo --help`."""
    (tmp_path / "needs_foo.py").write_text(
        "from zoo.models import MLP\n\n\nclass Model(MLP):\n"
        "    def __init__(self, foo: int, **kwargs):\n        super().__init__(**kwargs)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["train", "-c", "mlp_digits", "--model.class_path", "needs_foo.Model"]
    code, _, err = run_main([*argv, "--trainer.default_root_dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and err.splitlines()[-2:] == [
        "zoo: error: model.init_args.foo is required: needs_foo.Model takes foo without a default, and "
        "neither the -c files nor the flags give it; add --model.foo VALUE (or set it under model: "
        "init_args: in a -c file).",
        "Run `zoo train --help` to see every option.",
    ], err
    assert "Namespace(" not in err


def test_an_accelerator_this_machine_lacks_names_what_it_has(tmp_path: Path, capsys) -> None:
    """`--trainer.accelerator tpu` ended in `ModuleNotFoundError: Requirement 'torch_xla>=1.13' not met`."""
    import importlib.util

    from zoo.cli.lightning import _accelerators_here

    if importlib.util.find_spec("torch_xla") is not None:
        pytest.skip("torch_xla is installed")
    root = tmp_path / "runs"
    argv = [
        "train",
        "-c",
        "mlp_digits",
        "--trainer.accelerator",
        "tpu",
        "--trainer.default_root_dir",
        str(root),
    ]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        "zoo: error: --trainer.accelerator tpu: this machine has no TPU (torch_xla is not installed); it has "
        f"{_accelerators_here()}: use --trainer.accelerator auto (or leave it out)."
    ), err
    assert not root.exists()


TINY_FIT = [
    "fit", "-c", "mlp_digits", "-c", "trainer/debug", "--trainer.max_epochs", "1",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
]  # fmt: skip


def test_fit_and_predict_say_where_their_output_went(tmp_path: Path, capsys) -> None:
    """`zoo fit` never named its run directory or checkpoints, `zoo predict CKPT -o FILE` printed
    nothing; `zoo train` and `zoo predict -c` did."""
    import numpy as np

    root = tmp_path / "runs"
    code, out, err = run_main([*TINY_FIT, "--trainer.default_root_dir", str(root)], capsys)
    run = root / "version_0"
    assert code == 0, err[-3000:]
    assert out.endswith(
        f"\nRun directory:   {run}\n  config:        {run / 'config.yaml'}\n"
        f"  best ckpt:     {run / 'checkpoints' / 'best-epoch=000.ckpt'}\n"
        f"  last ckpt:     {run / 'checkpoints' / 'last.ckpt'}\n"
    ), out
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((3, 64), dtype=np.float32))
    output = tmp_path / "predicted.npy"
    argv = ["predict", str(run / "checkpoints" / "last.ckpt"), "--input", str(rows), "-o", str(output)]
    code, out, err = run_main(argv, capsys)
    assert (code, out, err) == (0, "", f"predictions (3 rows): {output}\n")
    assert np.load(output).shape == (3,)


def test_fit_without_checkpointing_runs_and_train_says_why_it_cannot(tmp_path: Path, capsys) -> None:
    """`--trainer.enable_checkpointing false` ended in Lightning's `found ModelCheckpoint in callbacks
    list`, a callback the user never added: zoo fit drops the zoo's own; zoo train needs it."""
    root = tmp_path / "runs"
    off = ["--trainer.enable_checkpointing", "false", "--trainer.default_root_dir", str(root)]
    code, _, err = run_main(["train", "-c", "mlp_digits", "-c", "trainer/debug", *off], capsys)
    assert code == 2 and err.splitlines()[-1] == (
        "zoo: error: --trainer.enable_checkpointing false: zoo train reloads the best checkpoint to test it, "
        "so it needs checkpointing; to train without writing checkpoints use zoo fit (no test): zoo fit ... "
        "--trainer.enable_checkpointing false."
    ), err
    assert not root.exists()
    code, out, err = run_main([*TINY_FIT, *off], capsys)
    run = root / "version_0"
    assert code == 0, err[-3000:]
    assert out.endswith("\n  no checkpoints (--trainer.enable_checkpointing false)\n"), out
    assert (run / "metrics.csv").is_file() and not list(root.rglob("*.ckpt"))


SWA = [
    "--trainer.callbacks+=lightning.pytorch.callbacks.StochasticWeightAveraging",
    "--trainer.callbacks.swa_lrs",
    "0.001",
]


def test_a_runs_config_with_a_value_jsonargparse_cannot_write_runs_again(tmp_path: Path, capsys) -> None:
    """StochasticWeightAveraging's `device` (a torch.device) was saved as `device: Unable to serialize
    instance cpu`, and rerunning the config.yaml ended in `RuntimeError: Invalid device string` with a
    half-written run directory: the value is left out (and said so), also from an older config."""
    root = tmp_path / "runs"
    code, _, err = run_main([*TINY_FIT, *SWA, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 0, err[-3000:]
    saved = root / "version_0" / "config.yaml"
    assert (
        f"zoo: note: {saved} leaves out trainer.callbacks[0].init_args.device: jsonargparse cannot write its "
        "value (a rerun of the file gives it its default).\n"
    ) in err
    text = saved.read_text()
    assert "Unable to serialize" not in text and "swa_lrs: 0.001" in text
    older = tmp_path / "older.yaml"  # as saved before: read with the value left out
    older.write_text(
        text.replace(
            "      avg_fn: null\n", "      avg_fn: null\n      device: Unable to serialize instance cpu\n"
        )
    )
    assert "device: Unable" in older.read_text()
    code, out, err = run_main(["fit", "-c", str(older)], capsys)
    assert code == 0, err[-3000:]
    assert (
        f"zoo: note: -c {older}: trainer.callbacks[0].init_args.device holds a value that could not be saved "
        "('Unable to serialize instance ...'); left out, so its default applies.\n"
    ) in err
    assert f"Run directory:   {root / 'version_1'}" in out


def test_a_run_that_fails_before_training_leaves_no_run_directory(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """A failure that is no user error (a traceback) before the first training step removed nothing:
    the run directory kept a config.yaml, hparams.yaml and a run.json of a run that never trained."""
    (tmp_path / "fails_early.py").write_text(
        "import lightning.pytorch as pl\n\n\nclass Boom(pl.Callback):\n"
        "    def on_fit_start(self, trainer, pl_module):\n        raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / "runs"
    argv = [*TINY_FIT, "--trainer.callbacks+=fails_early.Boom", "--trainer.default_root_dir", str(root)]
    with pytest.raises(RuntimeError, match="boom"):
        main(argv)
    assert not root.exists(), list(root.rglob("*"))


def test_the_argparse_commands_refuse_abbreviated_options_too(tmp_path: Path, capsys) -> None:
    """`zoo runs --sor test/acc` was read as --sort; the pipeline commands refuse prefixes already."""
    code, _, err = run_main(["runs", str(tmp_path), "--sor", "test/acc"], capsys)
    assert code == 2 and err.startswith("zoo: error: unrecognized arguments: --sor test/acc"), err


def test_optimizers_and_schedules_by_their_short_names_from_the_shell(capsys) -> None:
    """`--model.optimizer sgd` was "unknown optimizer 'sgd'" while MLP(optimizer="sgd") and
    zoo.create_optimizer(model, "sgd") take it; the flags after it still set its options."""
    import yaml

    argv = ["train", "-c", "mlp_digits", "--model.optimizer", "sgd", "--model.optimizer.lr", "0.1"]
    code, out, err = run_main([*argv, "--model.lr_scheduler=plateau", "--print_config"], capsys)
    assert code == 0, err
    model = yaml.safe_load(out)["model"]["init_args"]
    assert model["optimizer"] == {
        "class_path": "torch.optim.SGD",
        "init_args": model["optimizer"]["init_args"],
    }
    assert model["optimizer"]["init_args"]["lr"] == 0.1
    assert model["lr_scheduler"]["class_path"] == "torch.optim.lr_scheduler.ReduceLROnPlateau"
    code, out, err = run_main(
        ["train", "-c", "mlp_digits", "--model.lr_scheduler", "none", "--print_config"], capsys
    )
    assert code == 0 and yaml.safe_load(out)["model"]["init_args"]["lr_scheduler"] is None
    code, _, err = run_main(["train", "-c", "mlp_digits", "--model.optimizer", "sgdd"], capsys)
    assert code == 2 and "unknown optimizer 'sgdd'. Did you mean 'sgd'?" in err


def test_early_stopping_and_checkpoint_on_different_metrics_is_noted(tmp_path: Path, capsys) -> None:
    """--early_stopping.monitor val/acc alone left the tested checkpoint on val/loss, silently."""
    argv = ["train", "-c", "mlp_digits", "-c", "trainer/debug", "--trainer.default_root_dir", str(tmp_path)]
    code, _, err = run_main([*argv, "--early_stopping.monitor", "val/acc"], capsys)
    note = (
        "zoo: note: early stopping watches val/acc, the best checkpoint (which is tested) val/loss; "
        "to keep the checkpoint early stopping judges by, add --checkpoint.monitor val/acc."
    )
    assert code == 0 and note in err, err
    from jsonargparse import Namespace

    from zoo.cli.lightning import _note_split_monitors

    _note_split_monitors(
        Namespace(early_stopping=Namespace(monitor="val/acc"), checkpoint=Namespace(monitor="val/acc"))
    )
    _note_split_monitors(
        Namespace(early_stopping=Namespace(monitor="val/loss"), checkpoint=Namespace(monitor=None))
    )
    assert "zoo: note:" not in capsys.readouterr().err
