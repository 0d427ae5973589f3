"""`zoo sweep`: Optuna over a recipe, on digits with the debug trainer."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.test_cli import run_main

optuna = pytest.importorskip("optuna")

from zoo.errors import ZooError  # noqa: E402
from zoo.runs import collect  # noqa: E402
from zoo.sweep import read_space, run_sweep, sampler_seed  # noqa: E402

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


def _optuna_warnings(caplog) -> list[str]:
    """Optuna's own "Trial 0 failed ..." lines (with their tracebacks), which no sweep should print."""
    return [
        r.getMessage() for r in caplog.records if r.name.startswith("optuna") and r.levelno >= logging.WARNING
    ]


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
    assert "continuing study 'sweep' with 3 finished trials; 2 to go for --trials 5" in out
    study = optuna.load_study(study_name="sweep", storage=storage)
    assert len(study.trials) == 5
    # the resumed sampler proposes new points: restarting its seed would replay trials 0 and 1
    params = [t.params for t in study.trials]
    assert params[3] not in params[:3] and params[4] not in params[:3]


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
        (
            "data.init_args.batch_size: {int: [16, 128], step: -16}\n",
            "batch_size: step must be an integer > 0",
        ),
        ("data.init_args.batch_size: {int: [16, 128], step: 0}\n", "batch_size: step must be an integer > 0"),
        (
            "data.init_args.batch_size: {int: [16, 128], step: 8.5}\n",
            "batch_size: step must be an integer > 0",
        ),
        ("data.init_args.batch_size: {int: [16, 128], step: 200}\n", "give a step <= high - low"),
        ("model.init_args.dropout: {uniform: [0.0, 0.5], step: 0.0}\n", "dropout: step must be a number > 0"),
        ("model.init_args.dropout: {loguniform: [0.1, 0.5], step: 0.1}\n", "loguniform takes none"),
        ("model.init_args.dropout: {uniform: [0.0, 0.5], stepp: 0.1}\n", "unknown 'stepp'"),
        ("model.init_args.dropout: {uniform: [0, 0.5], choice: [0.1]}\n", "names uniform and choice"),
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


def test_a_uniform_range_takes_a_step(tmp_path: Path) -> None:
    (parameter,) = read_space(_space(tmp_path, "model.init_args.dropout: {uniform: [0.0, 0.3], step: 0.1}\n"))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    values = {round(parameter.suggest(study.ask()), 9) for _ in range(20)}
    assert values <= {0.0, 0.1, 0.2, 0.3} and len(values) > 1


@pytest.mark.parametrize(
    ("options", "space", "message"),
    [
        (["--jobs", "0"], SPACE, "--jobs must be >= 1; got 0."),
        (["--seed", "-1"], SPACE, "--seed must be an integer in [0, 2**32 - 1]; got -1."),
        (["--storage", "notaurl"], SPACE, "--storage 'notaurl' is not a database URL"),
        (
            ["--metric", "val/nope"],
            SPACE,
            "--metric 'val/nope' is not logged by this run's validation; it logs val/acc, val/f1, val/loss.",
        ),
        (
            [],
            "model.init_args.dropout: {choice: [0.1, b]}\n",
            "space.yaml: model.init_args.dropout: the choice 'b' is not a value it takes "
            "(--model.dropout: 'b' is not a number).",
        ),
        (
            ["--metric", "val/acc", "--direction", "minimize"],
            SPACE,
            "--direction is minimize, but val/acc improves as it rises: set --direction maximize (or leave "
            "it out, which reads it from the metric's name).",
        ),
        (["--metric", "val/nope", "--direction", "maximize"], SPACE, "--metric 'val/nope' is not logged"),
    ],
    ids=[
        "jobs",
        "seed",
        "storage",
        "metric",
        "choice of another type",
        "direction against the metric",
        "direction of a metric the zoo does not know",
    ],
)
def test_bad_options_are_one_error_before_any_folder(
    tmp_path: Path, capsys, options: list[str], space: str, message: str
) -> None:
    root = tmp_path / "sweeps" / "bad"
    argv = ["sweep", *SHORT, "--space", str(_space(tmp_path, space)), "--trials", "2", "--root", str(root)]
    code, _, err = run_main([*argv, *options], capsys)
    assert code == 2 and message in err and "Traceback" not in err, err[-3000:]
    assert err.count("zoo: error:") == 1
    assert not (tmp_path / "sweeps").exists()  # nothing made, not even the empty root


def test_a_sweep_root_under_a_file_is_one_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("")
    argv = [
        "sweep",
        *SHORT,
        "--space",
        str(_space(tmp_path)),
        "--trials",
        "1",
        "--root",
        str(tmp_path / "file" / "r"),
    ]
    code, _, err = run_main(argv, capsys)
    assert (
        code == 2
        and f"--root: {tmp_path / 'file' / 'r'} lies under the file" in err
        and "Traceback" not in err
    )


def test_a_metric_known_only_in_the_first_trial_refuses_the_sweep_and_leaves_nothing(
    tmp_path: Path, capsys, monkeypatch, caplog
) -> None:
    """When the check before the trials cannot run (it returns None), the first trial finds the metric
    missing: one message, the trial marked failed, its folder and the root removed."""
    import zoo.sweep

    monkeypatch.setattr(zoo.sweep, "validation_metrics", lambda argv: None)
    root, storage = tmp_path / "sweeps" / "late", f"sqlite:///{tmp_path / 'late.db'}"
    argv = ["sweep", *SHORT, "--space", str(_space(tmp_path)), "--trials", "2", "--root", str(root)]
    code, _, err = run_main([*argv, "--metric", "val/nope", "--storage", storage], capsys)
    assert code == 2 and "Traceback" not in err and "failed" not in err, err[-3000:]
    assert "zoo: error: --metric 'val/nope' is not logged by this run's validation; it logs val/acc" in err
    assert not _optuna_warnings(caplog)
    assert not (tmp_path / "sweeps").exists()
    study = optuna.load_study(study_name="late", storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL"]


def test_a_value_a_trial_gets_and_its_model_refuses_ends_the_sweep_in_one_error(
    tmp_path: Path, monkeypatch
) -> None:
    """The check before the trials tries the ends of a range on the parser, not every value on the model:
    a dropout of 1.2 from [0.5, 1.5] is the model's to refuse, in the trial, which leaves nothing."""
    import zoo.sweep

    monkeypatch.setattr(zoo.sweep, "check_before_trials", lambda *args: None)  # tested above; 3 s
    space = _space(tmp_path, "model.init_args.dropout: {uniform: [0.5, 1.5]}\n")
    key = "model.init_args.dropout"
    with pytest.raises(ZooError) as refused:
        run_sweep(SHORT, space, 2, tmp_path / "sweeps" / "refused", enqueue=[{key: 1.2}])
    assert str(refused.value) == (
        f"model.dropout must be in [0, 1); got 1.2 (trial 0 of --space {space}: model.init_args.dropout=1.2)."
    )
    assert not (tmp_path / "sweeps").exists()


def _interrupt(where: str, monkeypatch) -> None:
    """A KeyboardInterrupt in the first trial: as its CLI is built, as a real SIGINT that the parser
    setup swallows and turns into another error (jsonargparse's NSKeyError), or during training; or
    SIGTERM during training (Lightning's SIGTERMException)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import zoo.sweep

    real_run = zoo.sweep.run

    def run(argv: list[str], subcommand: bool = True):  # trials build their CLI without a subcommand
        if not subcommand and where == "trial start":
            raise KeyboardInterrupt
        if not subcommand and where == "parser setup":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                pass  # swallowed, as a library may do
            raise KeyError('No action for key "early_stopping.monitor" to set its default.')
        return real_run(argv, subcommand)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            raise SIGTERMException if where == "SIGTERM in training" else KeyboardInterrupt

    monkeypatch.setattr(zoo.sweep, "run", run)
    if where.endswith("training"):
        monkeypatch.setattr(zoo.sweep.Pruning, "on_validation_end", on_validation_end)


@pytest.mark.parametrize("where", ["trial start", "parser setup", "training", "SIGTERM in training"])
def test_an_interrupted_trial_is_marked_failed_and_the_sweep_ends_in_one_line(
    tmp_path: Path, capsys, monkeypatch, caplog, where: str
) -> None:
    import zoo.sweep

    monkeypatch.setattr(zoo.sweep, "check_before_trials", lambda *args: None)  # tested above; 3 s
    _interrupt(where, monkeypatch)
    root, storage = tmp_path / "stopped", f"sqlite:///{tmp_path / 'stopped.db'}"
    argv = ["sweep", *SHORT, "--space", str(_space(tmp_path)), "--trials", "2", "--root", str(root)]
    code, _, err = run_main([*argv, "--storage", storage], capsys)
    # the same line and exit status wherever the interruption came: 128 + the signal's number
    name = "SIGTERM" if where.startswith("SIGTERM") else "SIGINT"
    assert code == 128 + getattr(signal, name) and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"zoo: interrupted by {name} in trial 0, which is marked failed in the study; rerun the same "
        "command to continue it (0 of 2 trials finished)."
    )
    assert err.count("zoo: interrupted") == 1 and not _optuna_warnings(caplog)
    study = optuna.load_study(study_name="stopped", storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL"]  # not left running
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Lightning left it ignored
    if where.endswith("training"):  # the run stays, as an interrupted run; the table shows it failed
        assert collect(root)[0].status == "interrupted"
        zoo.sweep.write_results(study, SHORT, root, "val/loss")
        with (root / "trials.csv").open(newline="") as handle:
            assert [row["state"] for row in csv.DictReader(handle)] == ["fail"]


def test_each_process_and_each_resumption_of_a_study_samples_its_own_points() -> None:
    """A new study's first process keeps --seed; a worker, or a rerun that continues a study of N
    trials, seeds its sampler from (seed, N, worker): the same seed would propose the same points."""
    assert sampler_seed(7, 0, 0) == 7
    seeds = [sampler_seed(0, earlier, worker) for earlier, worker in [(0, 0), (0, 1), (0, 2), (3, 0), (5, 0)]]
    firsts = {
        optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed)).ask().suggest_float("x", 0, 1)
        for seed in seeds
    }
    assert len(firsts) == len(seeds)
    assert sampler_seed(0, 3, 0) == sampler_seed(0, 3, 0)  # reproducible


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


@pytest.mark.slow  # 14 s of processes; the suite's time budget (`nox -s slow` runs it)
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
    # each process seeds its sampler apart: the same seed would propose the same first points in both
    points = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(set(points)) == len(points)


def test_a_sweep_needs_a_recipe(tmp_path: Path, capsys) -> None:
    code, _, err = run_main(["sweep", "--space", str(_space(tmp_path)), "--trials", "1"], capsys)
    assert code == 2 and "zoo sweep needs a recipe: -c RECIPE" in err


def test_trials_left_running_by_a_dead_process_are_marked_failed_on_resume(tmp_path: Path) -> None:
    """A trial whose process was SIGKILLed (out of memory, a lost node) stayed `running` in the
    study forever; on resume its run.json (pid, host) tells it is over. A live one is left alone."""
    import socket

    from optuna.trial import TrialState

    from zoo.sweep import _fail_dead_trials

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    for name, pid in (("dead", 2**22 + 12345), ("alive", os.getpid()), ("no_record", None)):
        trial = study.ask()
        run_dir = tmp_path / name
        run_dir.mkdir()
        if pid is not None:
            (run_dir / "run.json").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
        trial.set_user_attr("run_dir", str(run_dir))
    assert _fail_dead_trials(study) == 1
    states = {t.user_attrs["run_dir"].rsplit("/", 1)[1]: t.state for t in study.get_trials()}
    assert states == {"dead": TrialState.FAIL, "alive": TrialState.RUNNING, "no_record": TrialState.RUNNING}
