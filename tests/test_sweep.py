"""`zoo sweep`: Optuna over a recipe, on digits with the debug trainer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.test_cli import run_main

optuna = pytest.importorskip("optuna")

from zoo.errors import ZooError  # noqa: E402
from zoo.runs import collect  # noqa: E402
from zoo.sweep import read_space, run_sweep  # noqa: E402

SHORT = ["-c", "mlp_digits", "-c", "trainer/debug", "--trainer.max_epochs", "3"]
SPACE = """\
model.init_args.dropout: {uniform: [0.0, 0.3]}
model.init_args.optimizer.init_args.lr: {loguniform: [1.0e-4, 1.0e-2]}
model.init_args.hidden_sizes: {choice: [[32], [64, 32]]}
"""


def _space(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_sweep_writes_its_table_and_a_best_recipe_that_trains(tmp_path: Path, capsys) -> None:
    root, storage = tmp_path / "sweep", f"sqlite:///{tmp_path / 'sweep.db'}"
    argv = ["sweep", *SHORT, "--space", str(_space(tmp_path)), "--trials", "3", "--root", str(root)]
    code, out, err = run_main([*argv, "--storage", storage, "--metric", "val/acc"], capsys)
    assert code == 0, err[-3000:]
    with (root / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    states = [r["state"] for r in rows]
    assert len(states) == 3 and set(states) <= {"complete", "pruned"} and states[:2] == ["complete"] * 2
    best_value = max(float(r["val/acc"]) for r in rows if r["state"] == "complete")
    best_yaml = yaml.safe_load((root / "best.yaml").read_text())
    best_row = next(r for r in rows if float(r["val/acc"]) == best_value)
    assert best_yaml["model"]["init_args"]["dropout"] == pytest.approx(
        float(best_row["model.init_args.dropout"])
    )
    assert best_yaml["trainer"]["default_root_dir"] == str(root / "best")
    assert (root / "best_test_metrics.json").is_file() and "test of the best trial: test/acc" in out
    # every trial is an ordinary run directory
    assert [r.status for r in collect(root)] == ["finished" if s == "complete" else s for s in states]
    # the best recipe reproduces the best trial: the same seed, config and so the same validation
    code, out, err = run_main(
        ["train", "-c", str(root / "best.yaml"), "--trainer.enable_progress_bar", "false"], capsys
    )
    assert code == 0, err[-3000:]
    with (root / "best" / "version_0" / "metrics.csv").open(newline="") as handle:
        again = max(float(r["val/acc"]) for r in csv.DictReader(handle) if r.get("val/acc"))
    assert again == pytest.approx(best_value, abs=1e-6)
    # the same command with the same storage continues the study: two more trials, not five
    code, out, err = run_main([*argv[:-4], "--trials", "5", "--root", str(root), "--storage", storage,
                               "--metric", "val/acc"], capsys)  # fmt: skip
    assert code == 0, err[-3000:]
    study = optuna.load_study(study_name="sweep", storage=storage)
    assert len(study.trials) == 5


def test_a_trailing_trial_is_pruned(tmp_path: Path) -> None:
    space = _space(tmp_path, "model.init_args.optimizer.init_args.lr: {loguniform: [1.0e-9, 1.0e-2]}\n")
    key = "model.init_args.optimizer.init_args.lr"
    good = [{key: 3e-3}, {key: 2e-3}, {key: 4e-3}]
    study = run_sweep(
        [*SHORT, "--trainer.max_epochs", "4"], space, 4, tmp_path / "pruned", enqueue=[*good, {key: 1e-9}]
    )
    states = [t.state.name for t in study.trials]
    assert states[:3] == ["COMPLETE"] * 3 and states[3] == "PRUNED"
    assert [r.status for r in collect(tmp_path / "pruned")][3] == "pruned"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model.init_args.dropoutt: {uniform: [0, 0.5]}\n",
            "'model.init_args.dropoutt' is not a key of this run's config",
        ),
        ("model.init_args.dropout: {gaussian: [0, 1]}\n", "needs one of uniform, loguniform, int, choice"),
        ("model.init_args.dropout: {uniform: [0.5, 0.1]}\n", "uniform needs low < high"),
        ("data.init_args.batch_size: {int: [16, 128.5]}\n", "int needs integer bounds"),
        ("[1, 2]\n", "must map config keys to distributions"),
    ],
)
def test_a_bad_space_file_is_one_error_before_any_trial(
    tmp_path: Path, capsys, text: str, message: str
) -> None:
    root = tmp_path / "bad"
    argv = ["sweep", *SHORT, "--space", str(_space(tmp_path, text)), "--trials", "2", "--root", str(root)]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not root.exists()  # nothing ran


def test_the_objective_is_never_a_test_metric(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="must be a validation metric"):
        run_sweep(SHORT, _space(tmp_path), 1, tmp_path / "x", metric="test/acc")
    assert read_space(_space(tmp_path))[2].choices == ([32], [64, 32])


def test_the_shipped_space_names_keys_of_its_recipe() -> None:
    from zoo.sweep import check_keys, printed_config

    parameters = read_space("mlp_digits")  # recipes/sweeps/mlp_digits.yaml, by name
    assert {p.key for p in parameters} == {
        "model.init_args.hidden_sizes",
        "model.init_args.dropout",
        "model.init_args.optimizer.init_args.lr",
    }
    from zoo.recipes import resolve_config_args

    check_keys(parameters, printed_config(resolve_config_args(["-c", "mlp_digits"])))
    with pytest.raises(ZooError, match=r"is not a file nor a shipped space \(mlp_digits\)"):
        read_space("no_such_space")


def test_jobs_run_trials_in_parallel_processes_on_one_study(tmp_path: Path, capsys) -> None:
    root = tmp_path / "parallel"
    argv = [
        "sweep",
        *SHORT,
        "--space",
        str(_space(tmp_path)),
        "--trials",
        "4",
        "--jobs",
        "2",
        "--root",
        str(root),
    ]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err[-3000:]
    study = optuna.load_study(study_name="parallel", storage=f"sqlite:///{(root / 'study.db').resolve()}")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= 4  # each process stops once four have finished (one may overshoot)
    with (root / "trials.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(study.trials)
    runs = collect(root)
    assert len(runs) == len(study.trials)  # a run directory per trial, whichever process ran it
    # (which process ran which trial depends on timing: the worker starts a few seconds late and
    # these trials take a second each; it joins the same study and ends cleanly)
    statuses = {json.loads((run.path / "run.json").read_text())["status"] for run in runs}
    assert statuses <= {"finished", "pruned"}


def test_a_sweep_needs_a_recipe(tmp_path: Path, capsys) -> None:
    code, _, err = run_main(["sweep", "--space", str(_space(tmp_path)), "--trials", "1"], capsys)
    assert code == 2 and "zoo sweep needs a recipe: -c RECIPE" in err
