"""Hyperparameter sweeps with Optuna (``zoo sweep``): a seeded TPE sampler, a median pruner fed each
epoch's validation metric, every trial an ordinary run directory, and the best configuration
written back as a recipe.

A space file maps dotted config keys (as ``zoo train --print_config`` shows them) to distributions::

    model.init_args.dropout: {uniform: [0.0, 0.5]}
    model.init_args.optimizer.init_args.lr: {loguniform: [1.0e-4, 1.0e-2]}
    model.init_args.hidden_sizes: {choice: [[64], [128, 64]]}
    data.init_args.batch_size: {int: [16, 128], step: 16}

The objective is the best value of a validation metric over a trial's epochs (never a test
metric). With a storage (``sqlite:///sweep.db``, or any database URL Optuna takes) the study is
resumable, and ``--trials`` is the number of finished trials the study should reach: rerunning
the command after an interruption runs only what is missing.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml

from zoo.cli.lightning import as_flag, run
from zoo.errors import ZooError
from zoo.runs import lower_is_better

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"


@dataclass(frozen=True)
class Parameter:
    """One dimension of the search space: a dotted config key and its distribution."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high)
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1)
        # choices may be lists (hidden sizes): Optuna stores plain values, so index them
        index = trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices])
        return json.loads(index)


def read_space(path: str | Path) -> list[Parameter]:
    """The parameters of a space file, or one :class:`ZooError` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        from zoo.recipes import recipes_dir

        shipped = recipes_dir() / "sweeps" / f"{path.name}.yaml"
        if path.suffix or not shipped.is_file():
            names = sorted(p.stem for p in (recipes_dir() / "sweeps").glob("*.yaml"))
            raise ZooError(
                f"--space: {path} is not a file nor a shipped space ({', '.join(names)}); give a YAML "
                "file of 'key: {distribution: [...]}'."
            )
        path = shipped
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ZooError(f"--space: {path} is not valid YAML ({err}).") from None
    if not isinstance(spec, dict) or not spec:
        example = "'model.init_args.dropout: {uniform: [0.0, 0.5]}'"
        raise ZooError(f"--space: {path} must map config keys to distributions, e.g. {example}.")
    parameters = []
    for key, value in spec.items():
        where = f"--space: {path}: {key}"
        if not isinstance(value, dict) or not any(k in value for k in DISTRIBUTIONS):
            raise ZooError(f"{where} needs one of {', '.join(DISTRIBUTIONS)}, e.g. {{uniform: [0.0, 0.5]}}.")
        kind = next(k for k in DISTRIBUTIONS if k in value)
        bounds = value[kind]
        if kind == "choice":
            if not isinstance(bounds, list) or not bounds:
                raise ZooError(f"{where}: choice needs a non-empty list of values.")
            parameters.append(Parameter(str(key), kind, choices=tuple(bounds)))
            continue
        if not (
            isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)
        ):
            raise ZooError(f"{where}: {kind} needs [low, high] numbers; got {bounds!r}.")
        low, high = bounds
        if not low < high or (kind == "loguniform" and low <= 0):
            positive = " and low > 0" if kind == "loguniform" else ""
            raise ZooError(f"{where}: {kind} needs low < high{positive}; got {bounds!r}.")
        step = value.get("step")
        if kind == "int" and not all(isinstance(b, int) for b in (low, high, step or 1)):
            raise ZooError(f"{where}: int needs integer bounds and step; got {bounds!r}, step {step!r}.")
        parameters.append(Parameter(str(key), kind, low, high, step))
    return parameters


def check_keys(parameters: list[Parameter], config: dict[str, Any]) -> None:
    """Every key of the space names a value of the run's config (before any trial runs)."""
    for parameter in parameters:
        node: Any = config
        parts = parameter.key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                here = ".".join(parts[:depth]) or "the config"
                valid = ", ".join(sorted(node)) if isinstance(node, dict) else "none (a value, not a section)"
                raise ZooError(
                    f"--space: {parameter.key!r} is not a key of this run's config: {here} has {valid}. "
                    "`zoo train -c RECIPE --print_config` shows every key."
                )
            node = node[part]


class Pruning(pl.Callback):
    """Reports each validation epoch's ``metric`` to the Optuna trial, keeps the best value, and stops
    the trial when the pruner says so (it shows as pruned in the study and in ``zoo runs``)."""

    def __init__(self, trial: Any, metric: str, direction: str) -> None:
        self.trial, self.metric, self.direction = trial, metric, direction
        self.best: float | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import optuna

        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            raise ZooError(
                f"--metric {self.metric!r} was not logged; validation logs "
                f"{', '.join(sorted(k for k in trainer.callback_metrics if k.startswith('val/')))}."
            )
        value = float(value)
        better = self.best is None or (
            value > self.best if self.direction == "maximize" else value < self.best
        )
        if better:
            self.best = value
        self.trial.report(value, trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {trainer.current_epoch}: {self.metric} {value:.4g}")


def _is_choice(text: Any) -> bool:
    """Whether a stored parameter is a choice, which Optuna holds as the JSON of the value."""
    if not isinstance(text, str):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def printed_config(argv: list[str]) -> dict[str, Any]:
    """The merged config of ``zoo train ARGV`` as ``--print_config`` prints it."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            run(["train", *argv, "--print_config"])
        except SystemExit as done:  # --print_config ends the parse
            if done.code not in (0, None):
                raise
    return yaml.safe_load(out.getvalue())


def run_sweep(
    argv: list[str],
    space: str | Path,
    trials: int,
    root: str | Path,
    metric: str = "val/loss",
    direction: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    enqueue: list[dict[str, Any]] | None = None,
    jobs: int = 1,
    worker: bool = False,
) -> Any:
    """Run (or continue) a study of ``trials`` finished trials of ``zoo train ARGV`` and return it.

    Every trial trains in ``ROOT/trial_NNN/version_0`` (config.yaml, metrics, checkpoints, run.json)
    without a test; at the end the best trial is tested once (``ROOT/best_test_metrics.json``),
    its config is written as the recipe ``ROOT/best.yaml`` (runs under ``ROOT/best``), and the trials
    table as ``ROOT/trials.csv``.

    ``jobs`` > 1 runs trials in that many processes on this machine, sharing the study through its
    storage (a SQLite file in ROOT when none is given): this process starts ``jobs - 1`` workers
    (``zoo sweep ... --worker``), works beside them until the study has ``trials`` finished trials,
    waits for them and writes the results. A worker only runs trials.
    """
    import optuna

    from zoo.recipes import resolve_config_args

    argv = resolve_config_args(argv)  # recipe names as paths, as zoo train takes them
    parameters = read_space(space)
    if trials < 1:
        raise ZooError(f"--trials must be >= 1; got {trials}.")
    direction = direction or ("minimize" if lower_is_better(metric) else "maximize")
    if direction not in ("minimize", "maximize"):
        raise ZooError(f"--direction must be minimize or maximize; got {direction!r}.")
    if not metric.startswith("val/"):
        raise ZooError(
            f"--metric must be a validation metric (val/...), never a test metric; got {metric!r}."
        )
    check_keys(parameters, printed_config(argv))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if jobs < 1:
        raise ZooError(f"--jobs must be >= 1; got {jobs}.")
    if jobs > 1 and storage is None:  # the processes share the study through a database
        storage = f"sqlite:///{(root / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name or root.name,
        storage=storage,
        load_if_exists=True,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    for params in enqueue or []:
        study.enqueue_trial(params)

    def objective(trial: Any) -> float:
        values = {p.key: p.suggest(trial) for p in parameters}
        trial_root = root / f"trial_{trial.number:03d}"
        flags = [as_flag(key, value) for key, value in values.items()]
        cli = run([*argv, *flags, "--trainer.default_root_dir", str(trial_root)], subcommand=False)
        pruning = Pruning(trial, metric, direction)
        cli.trainer.callbacks.append(pruning)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        trial.set_user_attr("run_dir", str(cli.trainer.log_dir))
        best = getattr(cli.trainer.checkpoint_callback, "best_model_path", "") or ""
        trial.set_user_attr("best_checkpoint", best)
        if pruning.best is None:
            raise ZooError(f"trial {trial.number} ran no validation, so {metric} is unknown.")
        return pruning.best

    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    enough = MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    options = [*argv, "--space", str(space), "--trials", str(trials), "--root", str(root), "--metric", metric]
    options += [
        "--direction",
        direction,
        "--seed",
        str(seed),
        "--storage",
        str(storage),
        "--study",
        study.study_name,
    ]
    workers = [] if worker else _start_workers(jobs - 1, options)
    try:
        if sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) < trials:
            study.optimize(objective, callbacks=[enough], catch=())
    finally:
        failed = [w.args for w in workers if w.wait() != 0]
    if worker:
        return study
    if failed:
        raise ZooError(f"{len(failed)} of the sweep's worker processes failed; see their output above.")
    if storage is not None:  # the workers' trials too
        study = optuna.load_study(study_name=study.study_name, storage=storage)
    write_results(study, argv, root, metric)
    return study


def _start_workers(count: int, options: list[str]) -> list[Any]:
    """``count`` processes running trials of the same study (``zoo sweep OPTIONS --worker``)."""
    import os
    import subprocess
    import sys

    if count <= 0:
        return []
    threads = max(1, (os.cpu_count() or 1) // (count + 1))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "zoo", "sweep", *options, "--worker"]
    return [subprocess.Popen(command, env=env) for _ in range(count)]


def write_results(study: Any, argv: list[str], root: Path, metric: str) -> None:
    """``trials.csv``, the table printed, ``best.yaml`` and the best trial's one test."""
    from zoo.files import atomic_write, write_json_atomic

    rows = []
    for trial in study.trials:
        row = {"trial": trial.number, "state": trial.state.name.lower(), metric: trial.value}
        row.update({key: value for key, value in trial.params.items()})
        row["run_dir"] = trial.user_attrs.get("run_dir", "")
        rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def write(handle: Any) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(root / TRIALS_FILE, write)
    columns_shown = columns[:-1]  # run_dir: in the file only

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)

    shown = [[cell(row.get(c)) for c in columns_shown] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in shown)) for i, c in enumerate(columns_shown)]
    for line in [columns_shown, *shown]:
        print("  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip())
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not done:
        print("no trial finished; nothing to write")
        return
    best = study.best_trial
    # the run's config with the best values, as `zoo train --print_config` states it: the same on
    # every machine of a sweep, whichever ran the trial
    values = {key: json.loads(text) for key, text in best.params.items() if _is_choice(text)}
    values |= {key: value for key, value in best.params.items() if key not in values}
    config = printed_config([*argv, *(as_flag(key, value) for key, value in values.items())])
    config.setdefault("trainer", {})["default_root_dir"] = str(root / "best")
    header = (
        f"# zoo train -c {root / BEST_FILE}\n"
        f"# The best of {len(done)} trials of a sweep (trial {best.number}, {metric} {best.value:.4g}): "
        f"{', '.join(f'{k}={v}' for k, v in best.params.items())}.\n"
    )
    atomic_write(
        root / BEST_FILE, lambda handle: handle.write(header + yaml.safe_dump(config, sort_keys=False))
    )
    checkpoint = best.user_attrs.get("best_checkpoint")
    if checkpoint and not Path(checkpoint).is_file():
        print(f"the best trial's checkpoint {checkpoint} is not on this machine: its test is left out")
        checkpoint = None
    print(f"\nbest: trial {best.number}, {metric} {best.value:.4g}; recipe {root / BEST_FILE}")
    if checkpoint:
        cli = run(["test", "-c", str(root / BEST_FILE), "--ckpt_path", checkpoint])
        results = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
        write_json_atomic(
            root / "best_test_metrics.json", {"trial": best.number, "checkpoint": checkpoint, **results}
        )
        print("test of the best trial: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(results.items())))
