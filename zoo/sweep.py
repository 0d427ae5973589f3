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

import contextlib
import csv
import io
import json
import math
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml

from zoo.cli.lightning import as_flag, run
from zoo.data.base import check_seed
from zoo.errors import ZooError
from zoo.runs import known_mode, lower_is_better

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
#: the distributions that take a ``step``
STEPPED = ("int", "uniform")
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT, or another ``KeyboardInterrupt``) or SIGTERM during training ended the sweep; the
    message says what became of the trial it stopped (marked failed in the study) and how to continue.
    ``zoo sweep`` prints it as ``zoo: interrupted by SIGINT ...`` and exits as the signal would (130, 143)."""

    def __init__(self, message: str, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the signal ended: 128 + its number."""
        return 128 + int(getattr(signal, self.signal_name))


@dataclass(frozen=True)
class Parameter:
    """One dimension of the search space: a dotted config key and its distribution."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step)
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1)
        # choices may be lists (hidden sizes): Optuna stores plain values, so index them
        index = trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices])
        return json.loads(index)

    def extremes(self) -> list[Any]:
        """The values a trial may get that stand for all of them when the option checks its type: every
        choice, or the ends of a range (as the sampler gives them: floats for uniform and loguniform)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            step = self.step or 1
            return [self.low, self.low + (self.high - self.low) // step * step]
        return [float(self.low), float(self.high)]


def space_path(space: str | Path) -> Path:
    """The file of ``--space``: a path, or the name of a shipped space (``recipes/sweeps/NAME.yaml``)."""
    path = Path(space)
    if path.is_file():
        return path
    from zoo.recipes import recipes_dir

    shipped = recipes_dir() / "sweeps" / f"{path.name}.yaml"
    if path.suffix or not shipped.is_file():
        names = sorted(p.stem for p in (recipes_dir() / "sweeps").glob("*.yaml"))
        raise ZooError(
            f"--space: {path} is not a file nor a shipped space ({', '.join(names)}); give a YAML "
            "file of 'key: {distribution: [...]}'."
        )
    return shipped


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_space(path: str | Path) -> list[Parameter]:
    """The parameters of a space file, or one :class:`ZooError` naming what is wrong."""
    path = space_path(path)
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
        kinds = [k for k in DISTRIBUTIONS if k in value]
        if len(kinds) > 1:
            raise ZooError(f"{where} names {' and '.join(kinds)}; give one distribution per key.")
        kind = kinds[0]
        unknown = [str(k) for k in value if k not in (kind, "step")]
        if unknown:
            raise ZooError(
                f"{where}: unknown {', '.join(map(repr, unknown))}; an entry takes its distribution and, "
                f"for {' and '.join(STEPPED)}, a step."
            )
        bounds = value[kind]
        if kind == "choice":
            if not isinstance(bounds, list) or not bounds:
                raise ZooError(f"{where}: choice needs a non-empty list of values.")
            if "step" in value:
                raise ZooError(f"{where}: step is for {' and '.join(STEPPED)} ranges; choice takes none.")
            parameters.append(Parameter(str(key), kind, choices=tuple(bounds)))
            continue
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)):
            raise ZooError(f"{where}: {kind} needs [low, high] finite numbers; got {bounds!r}.")
        low, high = bounds
        if not low < high or (kind == "loguniform" and low <= 0):
            positive = " and low > 0" if kind == "loguniform" else ""
            raise ZooError(f"{where}: {kind} needs low < high{positive}; got {bounds!r}.")
        if kind == "int" and not all(isinstance(b, int) for b in bounds):
            raise ZooError(f"{where}: int needs integer bounds; got {bounds!r}.")
        step = value.get("step")
        if "step" in value:
            if kind not in STEPPED:
                stepped = " and ".join(STEPPED)
                raise ZooError(
                    f"{where}: step is for {stepped} ranges; {kind} takes none (got step {step!r})."
                )
            whole = kind == "int"
            if not _is_number(step) or (whole and not isinstance(step, int)) or not step > 0:
                raise ZooError(
                    f"{where}: step must be {'an integer' if whole else 'a number'} > 0; got {step!r}."
                )
            if step > high - low:
                raise ZooError(
                    f"{where}: step {step!r} is larger than high - low ({high - low!r}), which leaves the "
                    "range its low end alone; give a step <= high - low."
                )
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
        if value is None:  # checked before the trials, unless that check could not run
            raise ZooError(_not_logged(self.metric, trainer.callback_metrics))
        value = float(value)
        better = self.best is None or (
            value > self.best if self.direction == "maximize" else value < self.best
        )
        if better:
            self.best = value
        self.trial.report(value, trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {trainer.current_epoch}: {self.metric} {value:.4g}")


def _not_logged(metric: str, logged: Any) -> str:
    valid = sorted(k for k in logged if k.startswith("val/"))
    return (
        f"--metric {metric!r} is not logged by this run's validation; it logs "
        f"{', '.join(valid) or 'no val/ metric'}."
    )


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
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            run(["train", *argv, "--print_config"])
        except SystemExit as done:  # --print_config ends the parse
            if done.code not in (0, None):
                raise
    return yaml.safe_load(out.getvalue())


def _refusal(argv: list[str]) -> str | None:
    """Why ``zoo train ARGV`` refuses its options (jsonargparse's message, or a :class:`ZooError`'s),
    or None when they parse."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            printed_config(argv)
    except ZooError as refused:
        return str(refused)
    except SystemExit:
        return _complaint(err.getvalue())
    return None


def _complaint(text: str) -> str:
    """The parser's ``zoo: error: ...`` lines as one line, without the pointer to ``--help`` nor the
    nesting of subclass options (``Parser key "model": - Problem with given class_path ...``)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Run `")]
    message = " ".join(lines).removeprefix("zoo: error: ")
    message = re.split(r'Parser key "[^"]+": (?:- )?', message)[-1].strip() or message
    return re.sub(r"<class '(\w+)'>", r"\1", message) or "refused"


def _rounds(parameters: list[Parameter]) -> list[dict[str, Any]]:
    """Assignments of the space's values that between them hold every choice and every range's ends."""
    values = {p.key: p.extremes() for p in parameters}
    count = max(len(v) for v in values.values())
    return [{key: v[min(i, len(v) - 1)] for key, v in values.items()} for i in range(count)]


def check_values(parameters: list[Parameter], argv: list[str], path: Path, values: dict[str, Any]) -> None:
    """``zoo train ARGV`` takes the space's ``values`` (one per key), or one :class:`ZooError` names the
    space file, the key, the value and what the option takes."""
    if _refusal([*argv, *(as_flag(k, v) for k, v in values.items())]) is None:
        return
    for parameter in parameters:
        value = values[parameter.key]
        why = _refusal([*argv, as_flag(parameter.key, value)])
        if why is not None:
            what = "the choice" if parameter.kind == "choice" else f"the {parameter.kind} range's end"
            raise ZooError(
                f"--space: {path}: {parameter.key}: {what} {value!r} is not a value it takes ({why})."
            )
    raise ZooError(
        f"--space: {path}: the values {values} are refused together: {_refusal(argv) or 'refused'}"
    )


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's info lines (devices, batch limits) left out of the check run's output."""
    import logging

    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _Refused(Exception):
    """The parser refused the options (its message)."""


def validation_metrics(argv: list[str]) -> set[str] | None:
    """The metrics that one validation batch of ``zoo train ARGV`` logs, run on one device in a
    temporary folder (nothing is left behind); None when that check run itself fails for a reason of
    its own (the trials then check the metric as they run). Options the parser refuses are
    :class:`_Refused`, values the run refuses a :class:`ZooError`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zoo-sweep-check-") as folder, _quiet_lightning():
        check = [
            *argv,
            "--trainer.logger=false",
            f"--trainer.default_root_dir={folder}",
            "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.devices=1",
            "--trainer.num_nodes=1",
            "--trainer.strategy=auto",
        ]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                cli = run(check, subcommand=False)
        except SystemExit:
            raise _Refused(_complaint(err.getvalue())) from None
        except ZooError:
            raise
        except Exception:  # noqa: BLE001 - a fault of the check run (its flags): the trials will tell
            return None
        sys.stderr.write(err.getvalue())
        try:
            cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        except ZooError:
            raise
        except Exception:  # noqa: BLE001
            return None
        return set(cli.trainer.callback_metrics)


def check_before_trials(parameters: list[Parameter], argv: list[str], path: Path, metric: str) -> None:
    """Before any folder is made: the space's keys are options of the run, every choice and each range's
    ends are values they take, and validation logs ``metric``. Costs one parse of the options per further
    choice, and one validation batch."""
    rounds = _rounds(parameters)
    try:
        logged = validation_metrics([*argv, *(as_flag(k, v) for k, v in rounds[0].items())])
    except _Refused as refused:  # say which key or value, if one is at fault
        check_keys(parameters, printed_config(argv))
        check_values(parameters, argv, path, rounds[0])
        raise ZooError(str(refused)) from None
    except ZooError as err:  # a value the model or data refuses, e.g. a dropout of 1.5
        for parameter in parameters:
            if re.search(rf"\b{re.escape(parameter.key.rpartition('.')[2])}\b", str(err)):
                value = rounds[0][parameter.key]
                what = "the choice" if parameter.kind == "choice" else f"the {parameter.kind} range's end"
                raise ZooError(
                    f"--space: {path}: {parameter.key}: {what} {value!r} is refused: {err}"
                ) from None
        raise
    for values in rounds[1:]:
        check_values(parameters, argv, path, values)
    if logged is not None and metric not in logged:
        raise ZooError(_not_logged(metric, logged))


def sampler_seed(seed: int, earlier: int, worker: int = 0) -> int:
    """The TPE sampler's seed of a process that joins a study holding ``earlier`` trials: ``seed`` for
    the first process of a new study, else one drawn from (seed, earlier, worker). A resumed study or a
    parallel worker restarting the same seed would propose the points of the first trials again."""
    if earlier == 0 and worker == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, earlier, worker]).generate_state(1)[0])


class _Interrupts:
    """Notes a Ctrl-C (SIGINT) while the sweep runs, even one that a library swallows on its way out
    (jsonargparse turned one into ``NSKeyError``), and lets a critical step finish undisturbed."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        with contextlib.suppress(ValueError):  # not the main thread: Python's own handling stays
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._handle)
                self._previous = previous
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:  # Lightning's interrupt handling leaves SIGINT ignored
            signal.signal(signal.SIGINT, self._previous)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """SIGINT ignored for the block (recording a trial's end)."""
        try:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def caused(self, err: BaseException) -> str | None:
        """The signal (``SIGINT``, ``SIGTERM``) whose interruption ``err`` is or came of, else None.
        Lightning answers Ctrl-C with ``sys.exit(1)``, and SIGTERM in training with its
        ``SIGTERMException``."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        seen: set[int] = set()
        cause: BaseException | None = err
        while cause is not None and id(cause) not in seen:
            if isinstance(cause, KeyboardInterrupt):
                return "SIGINT"
            if isinstance(cause, SIGTERMException):
                return "SIGTERM"
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        return "SIGINT" if self.seen else None


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _fail_dead_trials(study: Any) -> int:
    """Mark failed the trials left ``running`` by a process that no longer runs (killed by SIGKILL,
    out of memory, a lost machine: nothing told the study), as their ``run.json`` tells; a trial
    of a live worker, or of another host, stays as it is. Returns how many were marked."""
    from optuna.trial import TrialState

    from zoo.runs import process_alive, read_json_object

    marked = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = trial.user_attrs.get("run_dir")
        record = read_json_object(Path(run_dir) / "run.json") if run_dir else {}
        if record.get("pid") is not None and not process_alive(record):
            study.tell(trial.number, state=TrialState.FAIL)
            marked += 1
    return marked


def _remove_if_empty(folders: list[Path]) -> None:
    """The folders a refused sweep made, nearest first, where nothing else came into them."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


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
    worker: int = 0,
) -> Any:
    """Run (or continue) a study of ``trials`` finished trials of ``zoo train ARGV`` and return it.

    Every trial trains in ``ROOT/trial_NNN/version_0`` (config.yaml, metrics, checkpoints, run.json)
    without a test; at the end the best trial is tested once (``ROOT/best_test_metrics.json``),
    its config is written as the recipe ``ROOT/best.yaml`` (runs under ``ROOT/best``), and the trials
    table as ``ROOT/trials.csv``.

    Bad input is one :class:`ZooError` before any folder is made: the options, the space file (its keys,
    every choice and each range's ends are tried on the run's options) and the metric (one validation
    batch of the run must log it). A trial refused all the same (a value its model refuses) ends the
    sweep with that error, marked failed in the study, its run directory removed.

    ``jobs`` > 1 runs trials in that many processes on this machine, sharing the study through its
    storage (a SQLite file in ROOT when none is given): this process starts ``jobs - 1`` workers
    (``zoo sweep ... --worker I``), works beside them until the study has ``trials`` finished trials,
    waits for them and writes the results. A worker only runs trials.

    A ``KeyboardInterrupt`` (Ctrl-C) marks the trial it stops failed in the study and ends the sweep
    with :class:`SweepInterrupted`; rerunning with the same storage continues the study.
    """
    interrupts = _Interrupts()
    state: dict[str, Any] = {"doing": "before the first trial; nothing was written"}
    with interrupts:
        try:
            return _sweep(
                interrupts,
                state,
                argv=argv,
                space=space,
                trials=trials,
                root=root,
                metric=metric,
                direction=direction,
                storage=storage,
                study_name=study_name,
                seed=seed,
                enqueue=enqueue,
                jobs=jobs,
                worker=worker,
            )
        except SweepInterrupted:
            raise
        except BaseException as err:
            name = interrupts.caused(err)
            if name is None:
                raise
            raise SweepInterrupted(f"interrupted by {name} {state['doing']}.", name) from None


def _sweep(
    interrupts: _Interrupts,
    state: dict[str, Any],
    *,
    argv: list[str],
    space: str | Path,
    trials: int,
    root: str | Path,
    metric: str,
    direction: str | None,
    storage: str | None,
    study_name: str | None,
    seed: int,
    enqueue: list[dict[str, Any]] | None,
    jobs: int,
    worker: int,
) -> Any:
    import optuna
    from optuna.trial import TrialState

    from zoo.recipes import resolve_config_args

    argv = resolve_config_args(argv)  # recipe names as paths, as zoo train takes them
    path = space_path(space)
    parameters = read_space(path)
    if trials < 1:
        raise ZooError(f"--trials must be >= 1; got {trials}.")
    if jobs < 1:
        raise ZooError(f"--jobs must be >= 1; got {jobs}.")
    check_seed(seed, "--seed")
    direction = direction or ("minimize" if lower_is_better(metric) else "maximize")
    if direction not in ("minimize", "maximize"):
        raise ZooError(f"--direction must be minimize or maximize; got {direction!r}.")
    known = {"min": "minimize", "max": "maximize"}.get(known_mode(metric) or "")
    if known is not None and direction != known:  # the sweep would pick its worst trial as its best
        way = "falls" if known == "minimize" else "rises"
        raise ZooError(
            f"--direction is {direction}, but {metric} improves as it {way}: set --direction {known} "
            "(or leave it out, which reads it from the metric's name)."
        )
    if not metric.startswith("val/"):
        raise ZooError(
            f"--metric must be a validation metric (val/...), never a test metric; got {metric!r}."
        )
    root = Path(root)
    existing = next(folder for folder in [root.absolute(), *root.absolute().parents] if folder.exists())
    if not existing.is_dir():
        where = "is a file" if existing == root.absolute() else f"lies under the file {existing}"
        raise ZooError(f"--root: {root} {where}; name a folder for the sweep's trials.")
    if storage is not None:
        from sqlalchemy.engine import make_url

        try:
            make_url(storage)
        except Exception as err:  # noqa: BLE001 - SQLAlchemy's ArgumentError, ValueError
            raise ZooError(
                f"--storage {storage!r} is not a database URL ({err}); give one such as "
                "sqlite:///sweep.db or postgresql://user@host/optuna."
            ) from None
    if not worker:  # the process that started the workers checked all of it
        check_before_trials(parameters, argv, path, metric)
    made = [folder for folder in [root.absolute(), *root.absolute().parents] if not folder.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"--root: cannot make the folder {root} ({err.strerror}).") from None
    state["doing"] = "before the first trial"
    if jobs > 1 and storage is None:  # the processes share the study through a database
        storage = f"sqlite:///{(root / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=study_name or root.name,
            storage=storage,
            load_if_exists=True,
            direction=direction,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        )
    except Exception as err:  # noqa: BLE001 - a storage URL Optuna (SQLAlchemy) cannot open
        _remove_if_empty(made)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ZooError(
            f"--storage {storage!r} cannot be opened ({first}); give a database URL such as "
            "sqlite:///sweep.db or postgresql://user@host/optuna."
        ) from None
    dead = 0 if worker else _fail_dead_trials(study)
    earlier = study.get_trials(deepcopy=False)
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, len(earlier), worker))
    done = _finished(study)
    if earlier and not worker:
        failed = sum(t.state == TrialState.FAIL for t in earlier)
        running = sum(t.state == TrialState.RUNNING for t in earlier)
        extra = (f", {failed} failed" if failed else "") + (f", {running} marked running" if running else "")
        extra += f" ({dead} of them left running by a process that ended)" if dead else ""
        print(
            f"zoo sweep: continuing study {study.study_name!r} with {done} finished trials{extra}; "
            f"{max(0, trials - done)} to go for --trials {trials}."
        )
    for params in enqueue or []:
        study.enqueue_trial(params)

    def objective(trial: Any, current: dict[str, Any]) -> float:
        values = {p.key: p.suggest(trial) for p in parameters}
        trial_root = root / f"trial_{trial.number:03d}"
        flags = [as_flag(key, value) for key, value in values.items()]
        cli = run([*argv, *flags, "--trainer.default_root_dir", str(trial_root)], subcommand=False)
        current["cli"] = cli
        trial.set_user_attr("run_dir", str(cli.trainer.log_dir))  # also of a pruned or failed trial
        pruning = Pruning(trial, metric, direction)
        cli.trainer.callbacks.append(pruning)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        best = getattr(cli.trainer.checkpoint_callback, "best_model_path", "") or ""
        trial.set_user_attr("best_checkpoint", best)
        if pruning.best is None:
            raise ZooError(f"trial {trial.number} ran no validation, so {metric} is unknown.")
        return pruning.best

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
        while _finished(study) < trials:
            state["doing"] = f"between trials ({_finished(study)} of {trials} finished)"
            trial = study.ask()
            state["doing"] = f"in trial {trial.number}"
            current: dict[str, Any] = {}
            try:
                value = objective(trial, current)
            except optuna.TrialPruned:
                with interrupts.held():
                    study.tell(trial, state=TrialState.PRUNED)
                continue
            except BaseException as err:
                with interrupts.held():
                    study.tell(trial, state=TrialState.FAIL)
                name = interrupts.caused(err)
                if name is not None:
                    message = _interrupted_trial(name, trial.number, study, trials, storage)
                    raise SweepInterrupted(message, name) from None
                if isinstance(err, ZooError) and not err.keep_run:  # the sweep is refused
                    if "cli" in current:
                        current["cli"].discard_run_dir()  # its run goes too
                    else:  # a sampled value refused by the model or data
                        values = ", ".join(f"{k}={v!r}" for k, v in trial.params.items())
                        text = str(err).rstrip(".")
                        raise ZooError(
                            f"{text} (trial {trial.number} of --space {path}: {values})."
                        ) from None
                raise
            with interrupts.held():
                study.tell(trial, value)
    except BaseException:
        _remove_if_empty(made)  # a sweep refused at its first trial leaves no empty root
        if not interrupts.seen:  # a Ctrl-C in the terminal reached the workers already
            for process in workers:  # the sweep ends: so do they (each marks its trial failed)
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
        raise
    finally:
        failed_workers = [w.args for w in workers if w.wait() != 0]
    if worker:
        return study
    if failed_workers:
        raise ZooError(
            f"{len(failed_workers)} of the sweep's worker processes failed; see their output above."
        )
    if storage is not None:  # the workers' trials too
        study = optuna.load_study(study_name=study.study_name, storage=storage)
    state["doing"] = (
        "while writing the results; the study is complete: rerun the same command to write them"
        if storage is not None
        else "while writing the results; the study was in memory (no --storage) and is lost"
    )
    write_results(study, argv, root, metric)
    return study


def _interrupted_trial(name: str, number: int, study: Any, trials: int, storage: str | None) -> str:
    done = _finished(study)
    if storage is None:
        return (
            f"interrupted by {name} in trial {number}, which is marked failed; the study was in memory (no "
            f"--storage), so a rerun starts it again ({done} of {trials} trials had finished)."
        )
    return (
        f"interrupted by {name} in trial {number}, which is marked failed in the study; rerun the same "
        f"command to continue it ({done} of {trials} trials finished)."
    )


def _start_workers(count: int, options: list[str]) -> list[Any]:
    """``count`` processes running trials of the same study (``zoo sweep OPTIONS --worker I``)."""
    import os
    import subprocess

    if count <= 0:
        return []
    threads = max(1, (os.cpu_count() or 1) // (count + 1))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "zoo", "sweep", *options]
    return [subprocess.Popen([*command, "--worker", str(i)], env=env) for i in range(1, count + 1)]


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
