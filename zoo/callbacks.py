"""The callbacks of the zoo's pipeline: early stopping and best/last checkpointing on ``val/loss``,
and the learning rates in the logs.

Lightning provides these; the functions here fix the zoo's defaults in one place, for the CLI
and for Python users building their own Trainer. :class:`BestAndLastCheckpoint` keeps
``last.ckpt`` current, which Lightning's ``ModelCheckpoint`` does not; :class:`LearningRates`
logs every ``log_every_n_steps`` and at every epoch, where Lightning's monitor does one or the other.
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    BatchSizeFinder,
    EarlyStopping,
    LearningRateFinder,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    WeightAveraging,
)
from lightning.pytorch.trainer.states import TrainerFn

from zoo.files import atomic_write
from zoo.inference import class_labels, class_probabilities, label_indices

EARLY_STOPPING_DEFAULTS = {"monitor": "val/loss", "mode": "auto", "patience": 10}
CHECKPOINT_DEFAULTS = {
    "monitor": "val/loss",
    "mode": "auto",
    "save_top_k": 1,
    "save_last": True,
    "filename": "best-{epoch:03d}",
}


class LearningRates(LearningRateMonitor):
    """The learning rate of every parameter group (``lr-AdamW``, ``lr-AdamW/pg2``, ...) in the logs
    every ``log_every_n_steps`` and at the start of every epoch.

    Lightning's ``LearningRateMonitor`` logs per step or per epoch: per step alone leaves a short
    run (digits: 20 batches an epoch, a log every 50 steps) with a point or two; per epoch alone
    misses a warmup inside the first epoch. Needs a logger (the zoo adds it only when there is one).
    """

    def __init__(self, log_momentum: bool = False, log_weight_decay: bool = False) -> None:
        super().__init__(
            logging_interval="step", log_momentum=log_momentum, log_weight_decay=log_weight_decay
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        stats = self._extract_stats(trainer, "any")
        for logger in trainer.loggers:
            logger.log_metrics(stats, step=trainer.fit_loop.epoch_loop._batches_that_stepped)


class StopEarly(EarlyStopping):
    """Lightning's ``EarlyStopping`` that judges only after a validation has run in this fit.

    Lightning also checks at the end of a training epoch, and ``max_steps`` can end the first
    epoch before any validation (``zoo train -c gpt_chars --trainer.max_steps 100``: 250 batches
    an epoch): the monitored ``val/loss`` does not exist yet and Lightning's strict check stops
    the finished run with a traceback. Here there is nothing to judge then; once a validation has
    run, a monitored name it does not log is still Lightning's error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's arguments; ``mode`` may also be ``auto`` (min for losses and errors, max for
        accuracy, F1, AUROC, R2), and a mode that contradicts a known metric is refused."""
        _resolve_mode(args[0] if args else kwargs.get("monitor"), kwargs, "early_stopping")
        super().__init__(*args, **kwargs)
        self._validated = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True
        super().on_validation_end(trainer, pl_module)

    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        if self._validated:
            super()._run_early_stopping_check(trainer)


def early_stopping(**overrides: object) -> StopEarly:
    """Stop when ``val/loss`` has not improved for ``patience`` (10) validation runs."""
    return StopEarly(**{**EARLY_STOPPING_DEFAULTS, **overrides})


def _resolve_mode(monitor: str | None, kwargs: dict[str, Any], option: str) -> None:
    """``kwargs["mode"]`` as :func:`zoo.runs.monitor_mode` resolves it (``auto`` when not given)."""
    from zoo.runs import monitor_mode

    if monitor is None:  # nothing monitored (a checkpoint of the last epoch): Lightning's default
        if kwargs.get("mode") == "auto":
            kwargs["mode"] = "min"
        return
    kwargs["mode"] = monitor_mode(monitor, kwargs.get("mode", "auto"), option)


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is rewritten at every save point.

    Lightning (2.6) writes ``last.ckpt`` only when a top-k checkpoint is written at the same
    step, so with ``save_top_k=1`` a run killed after the best epoch resumes from that epoch,
    not from the last one. Here, at each point where a checkpoint may be saved (the end of every
    training epoch or validation, and every ``every_n_train_steps`` steps when set), ``last.ckpt``
    is written whether or not the monitored value improved. Lightning's writes are atomic, so a
    kill during a write leaves the previous file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's arguments; ``mode`` may also be ``auto`` (as for :class:`StopEarly`)."""
        _resolve_mode(args[2] if len(args) > 2 else kwargs.get("monitor"), kwargs, "checkpoint")
        super().__init__(*args, **kwargs)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning restores the best score, the top-k files and ``last.ckpt``'s path only when the
        stored ``dirpath`` string equals this run's; a run resumed from another working folder, or
        with an absolute instead of a relative root, names the same folder differently, and would
        then forget its best score and write ``last-v1.ckpt``. Paths into the same folder are
        rewritten to this run's spelling first."""
        stored = state_dict.get("dirpath")
        if stored and self.dirpath and stored != self.dirpath and _same_folder(stored, self.dirpath):

            def here(path: Any) -> Any:
                if not isinstance(path, str) or not path:
                    return path
                return os.path.join(
                    self.dirpath, os.path.relpath(os.path.normpath(path), os.path.normpath(stored))
                )

            state_dict = dict(state_dict, dirpath=self.dirpath)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = here(state_dict[key])
            if isinstance(state_dict.get("best_k_models"), dict):
                state_dict["best_k_models"] = {here(k): v for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """Lightning's save, through a file beside ``filepath`` renamed into place: Lightning stages a
        checkpoint in the temporary folder and moves it, which across file systems is a copy, and a
        disk that filled during it kept a truncated ``best-epoch=000.ckpt``; now a full disk is one
        error naming the folder (:class:`zoo.files.DiskError`) and leaves the earlier file. Strategies
        that write checkpoints their own way (FSDP's sharded ones) and remote paths keep Lightning's."""
        from lightning.pytorch.strategies import Strategy

        from zoo.files import staged

        own_way = type(trainer.strategy).save_checkpoint is not Strategy.save_checkpoint
        if not trainer.is_global_zero or own_way or "://" in str(filepath):
            super()._save_checkpoint(trainer, filepath)
            return
        with staged(filepath, make_folder=True) as tmp:
            trainer.save_checkpoint(tmp, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        for logger in trainer.loggers:
            logger.after_save_checkpoint(proxy(self))

    def _keep_last_current(self, trainer: pl.Trainer) -> None:
        # skipped when something was already saved at this step (then last.ckpt was written too)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)
        every = self._every_n_train_steps
        if every >= 1 and trainer.global_step % every == 0:
            self._keep_last_current(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._keep_last_current(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._keep_last_current(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """On SIGTERM (a scheduler preempting the job), keep ``last.ckpt`` current, so the run goes
        on from this step rather than the last save point. Lightning stops at a step's end then,
        on every rank at once (rank 0 tells the others), so the state is whole. Not on Ctrl-C,
        which can land inside an optimizer step or on one rank only, nor on errors (a
        non-finite loss has spoiled the weights)."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            self._keep_last_current(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning (2.6) writes last.ckpt here even under fast_dev_run, which otherwise saves
        # nothing: into ROOT/checkpoints, since the run has no logger folder then
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)


class SWA(WeightAveraging):
    """Stochastic weight averaging (Izmailov et al., 2018): the equal average of the weights at the
    end of every epoch from ``start`` on, optionally at a constant learning rate ``lr`` from then.

    Built on Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging`, as the EMA fragment
    is: once averaging has begun, validation, early stopping, the checkpoints (``state_dict``: the
    average; the weights being trained are kept beside it for resuming) and
    :meth:`~zoo.trainer.ZooTrainer.train`'s test all see the average. Before it begins they see the
    weights themselves (Lightning's class would validate its copy of the initial weights). Each
    epoch's weights join the average after its last step, before its validation, so the epoch's
    ``val/loss`` is the average's. Batch-norm statistics are averaged with the weights
    (``use_buffers``), not recomputed.

    Lightning's ``StochasticWeightAveraging`` puts the average into the model only after
    ``max_epochs`` (never, when early stopping ends the run first) and keeps it out of every
    checkpoint, so the best checkpoint and the test were the raw weights.

    Args:
        start: the first epoch averaged: a fraction of ``max_epochs`` (``0.75``: the last quarter)
            or an epoch number counted from 0 (an int).
        lr: if given, every parameter group's learning rate from ``start`` on (the schedule's
            value is replaced at every step); ``None`` leaves the schedule alone.
        **kwargs: passed to :class:`torch.optim.swa_utils.AveragedModel` through
            ``WeightAveraging`` (e.g. ``use_buffers=False``).
    """

    def __init__(self, start: float | int = 0.75, lr: float | None = None, **kwargs: Any) -> None:
        from zoo.errors import ZooError

        if isinstance(start, bool) or not (
            (isinstance(start, int) and start >= 0) or (isinstance(start, float) and 0.0 <= start < 1.0)
        ):
            raise ZooError(
                f"SWA start: {start!r} is neither an epoch number >= 0 (an int) nor a fraction of the "
                "epochs in [0, 1) (a float such as 0.75)."
            )
        if lr is not None and not lr > 0:
            raise ZooError(f"SWA lr: {lr!r} is not a learning rate > 0 (or null to keep the schedule).")
        super().__init__(**kwargs)
        self.start = start
        self.lr = lr
        self._latest_update_epoch = -1

    def first_epoch(self, trainer: pl.Trainer) -> int:
        """The first epoch (from 0) whose weights join the average."""
        from zoo.errors import ZooError

        if isinstance(self.start, int):
            return self.start
        if trainer.max_epochs is None or trainer.max_epochs < 0:
            raise ZooError(
                f"SWA start: a fraction ({self.start}) needs trainer.max_epochs; with no epoch limit, "
                "give the first averaged epoch as an int."
            )
        return int(self.start * trainer.max_epochs)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return False  # updated by on_train_batch_end below, at each epoch's last step

    def _averaging(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def _hold_rate(self, trainer: pl.Trainer) -> None:
        if self.lr is not None and trainer.current_epoch >= self.first_epoch(trainer):
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hold_rate(trainer)  # before the logged rate of the epoch's start is read

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._hold_rate(trainer)  # the schedule stepped after the last optimizer step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        epoch = trainer.current_epoch
        if trainer.is_last_batch and epoch >= self.first_epoch(trainer) and epoch > self._latest_update_epoch:
            assert self._average_model is not None
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the epoch's weights joined the average at its last step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_train_end(trainer, pl_module)
        elif not trainer.interrupted:
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(
                f"SWA: the run ended after epoch {trainer.current_epoch} (counted from 1), before averaging "
                f"was to begin at epoch {self.first_epoch(trainer) + 1}: nothing was averaged (early "
                "stopping? give an earlier start or a larger --early_stopping.patience)."
            )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._averaging():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
        # else: saved before averaging began; the weights are the model's and the average is empty

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)


def _same_folder(stored: str, current: str) -> bool:
    """Whether a stored checkpoint folder is this run's: the same folder, or a relative path (from
    wherever the earlier run was started) that ends this run's absolute one."""
    try:
        if os.path.samefile(stored, current):
            return True
    except OSError:
        pass
    if os.path.isabs(stored):
        return False
    return os.path.abspath(current).endswith(os.sep + os.path.normpath(stored))


def best_and_last_checkpoint(**overrides: object) -> BestAndLastCheckpoint:
    """Keep the checkpoint with the lowest ``val/loss`` (``best-epoch=NNN.ckpt``) and a
    ``last.ckpt`` that is current at every save point (see :class:`BestAndLastCheckpoint`)."""
    return BestAndLastCheckpoint(**{**CHECKPOINT_DEFAULTS, **overrides})


class PredictionsCSV(BasePredictionWriter):
    """Writes what ``Trainer.predict`` returns to a CSV file, batch by batch (constant memory):
    ``row`` (the example's index in the prediction set), ``prediction`` (the class label as
    trained, or the value in the target's units) and, for classifiers, one ``prob_<label>`` column
    per class; per-token outputs get their labels joined by spaces. The file is written under a
    temporary name and renamed when prediction ends.

    Under several processes each rank writes the rows it saw into ``.<name>.rank<R>.partial``
    beside the file; when all are done, rank 0 merges them in row order into the one file (each
    row once: the repeats a padding sampler adds are dropped) and removes them, so the result is
    the file one process would have written.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        self._handle: Any = None
        self._rows = 0
        self._quiet: Any = None

    def _hush(self, on: bool) -> None:
        """Rows are numbered from the sampler's indices where Lightning finds them, else from the
        zoo's evaluation shards (round-robin, in order), whose loaders do not report them: hush
        Lightning's warning about that while predicting, not for the rest of the process."""
        if on and self._quiet is None:
            self._quiet = warnings.catch_warnings()
            self._quiet.__enter__()
            warnings.filterwarnings("ignore", message=r".*Couldn't infer the batch indices")
        elif not on and self._quiet is not None:
            quiet, self._quiet = self._quiet, None
            quiet.__exit__(None, None, None)

    def _part(self, trainer: pl.Trainer, rank: int | None = None) -> Path:
        rank = trainer.global_rank if rank is None else rank
        name = self.path.name if trainer.world_size == 1 else f"{self.path.name}.rank{rank}"
        return self.path.with_name(f".{name}.partial")

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hush(True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self._part(trainer)
        self._handle = self._tmp.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        facts = getattr(pl_module, "preprocessing", None) or {}
        data = getattr(trainer, "datamodule", None)
        if not facts and hasattr(data, "preprocessing"):
            facts = data.preprocessing()
        self._task = pl_module.task
        self._classes = class_labels(pl_module, facts)
        self._header = False
        self._rows = 0
        self._rank, self._world = trainer.global_rank, trainer.world_size

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any = None,
        *args: Any,
    ) -> None:
        scores = prediction.detach().float().cpu()
        if self._task == "binary" and scores.ndim == 2 and scores.shape[-1] == 1:
            scores = scores.squeeze(-1)
        per_example = scores.ndim == (1 if self._task != "multiclass" else 2)
        if not self._header:
            header = ["row", "prediction"]
            if per_example and self._task != "regression":
                header += [f"prob_{label}" for label in self._classes]
            self._writer.writerow(header)
            self._header = True
        classifier = self._task != "regression"
        index = label_indices(scores, self._task) if classifier else None
        probs = class_probabilities(scores, self._task) if per_example and classifier else None
        known = batch_indices is not None and len(batch_indices) == len(scores)
        rows = list(batch_indices) if known else None
        for i in range(len(scores)):
            if classifier:
                label = " ".join(str(self._classes[k]) for k in index[i].reshape(-1).tolist())
            else:
                label = " ".join(f"{v:.7g}" for v in scores[i].reshape(-1).tolist())
            row = [rows[i] if rows is not None else self._rank + self._rows * self._world, label]
            if probs is not None:
                row += [f"{p:.6g}" for p in probs[i].tolist()]
            self._writer.writerow(row)
            self._rows += 1

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hush(False)
        self._handle.close()
        if trainer.world_size == 1:
            os.replace(self._tmp, self.path)
            rows = self._rows
        else:
            trainer.strategy.barrier("predictions_written")  # every rank's part is complete
            rows = self._merge_parts(trainer) if trainer.is_global_zero else 0
        if trainer.is_global_zero:
            print(f"predictions ({rows} rows): {self.path}")

    def _merge_parts(self, trainer: pl.Trainer) -> int:
        """Merge the ranks' parts into ``path`` in row order, each row once; returns the count.

        The rows are sorted in memory (a rank's rows need not be in order: a padding sampler
        repeats the first rows at the end of the last shards)."""
        parts = [self._part(trainer, rank) for rank in range(trainer.world_size)]
        header: list[str] | None = None
        rows: dict[int, list[str]] = {}
        for part in parts:
            with part.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader, None) or header  # none: a rank that saw no rows
                for row in reader:
                    rows.setdefault(int(row[0]), row)

        def write(out: Any) -> None:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows(([header] if header else []) + [rows[k] for k in sorted(rows)])

        atomic_write(self.path, write)
        for part in parts:
            part.unlink()
        return len(rows)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._hush(False)
        if self._handle is not None and not self._handle.closed:
            self._handle.close()
            self._tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Interruption:
    """How the last run of this process was interrupted: ``signal`` (``SIGINT``: Ctrl-C, or
    ``SIGTERM``: a scheduler's stop), where, and the run directory (``None`` without one)."""

    signal: str
    epoch: int
    step: int
    run_dir: Path | None
    speaks: bool = True  # rank 0 alone says so under several processes

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the signal ended: 128 + its number (130, 143)."""
        return 128 + {"SIGINT": 2, "SIGTERM": 15}[self.signal]

    def message(self) -> str:
        # counted as the per-epoch lines above it count (from 1); ``epoch`` is Lightning's (from 0)
        where = f"in epoch {self.epoch + 1}, at step {self.step}"
        if self.run_dir is None:
            return f"interrupted by {self.signal} {where}."
        last = self.run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            return (
                f"interrupted by {self.signal} {where}, before its first checkpoint; the run is in "
                f"{self.run_dir}. Run the command again to start over."
            )
        return (
            f"interrupted by {self.signal} {where}; the run is in {self.run_dir}. To go on from its last "
            f"checkpoint, run the same command with --ckpt_path last (or --ckpt_path {last})."
        )


#: set by :class:`RunRecord` when a run of this process is interrupted (read by ``zoo.cli.main``)
INTERRUPTED: Interruption | None = None


class RunRecord(pl.Callback):
    """Keeps ``run.json`` in the run directory: what ran, when, on which host and process, and how
    it ended (``running``, then ``finished``, ``interrupted`` (Ctrl-C, SIGTERM) or ``failed``, with the
    error's first line). ``zoo runs`` lists runs from it (see :mod:`zoo.runs`). The CLI adds it to
    ``fit`` and ``train``, and :meth:`zoo.trainer.ZooTrainer.train` to its own runs, wherever there is
    a logger (hence a run directory). A resumed run keeps the first start time and counts the wall
    time of each part.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._started = 0.0
        self._record: dict[str, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.path is not None:
            return
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if not trainer.is_global_zero or log_dir is None or not trainer.loggers:
            return
        import socket
        import time
        from datetime import datetime

        from zoo.model_card import _command, _data_name, _hardware, versions
        from zoo.runs import read_json_object, wall_time

        self.path = Path(log_dir) / "run.json"
        earlier = read_json_object(self.path)
        now = datetime.now().astimezone().isoformat(timespec="milliseconds")
        self._started = time.perf_counter()
        self._record = {
            "status": "running",
            "started": earlier.get("started") or now,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": _command(),
            "model": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "parameters": sum(p.numel() for p in pl_module.parameters()),
            "data": _data_name(getattr(trainer, "datamodule", None)),
            "monitor": getattr(trainer.checkpoint_callback, "monitor", None),
            "hardware": _hardware(trainer),
            "versions": versions(),
            "earlier_wall_s": float(wall_time(earlier, self.path.parent) or 0.0),
        }
        if earlier:
            self._record["resumed"] = int(earlier.get("resumed", 0)) + 1
        self._write()

    def _write(self, **changes: Any) -> None:
        if self.path is None:
            return
        import time
        from datetime import datetime

        from zoo.files import write_json_atomic

        self._record.update(changes)
        if self._record["status"] != "running":
            self._record["ended"] = datetime.now().astimezone().isoformat(timespec="milliseconds")
        wall = self._record["earlier_wall_s"] + time.perf_counter() - self._started
        self._record["wall_s"] = round(wall, 3)
        record = {k: v for k, v in self._record.items() if k != "earlier_wall_s"}
        write_json_atomic(self.path, record, in_place_when_full=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(status="finished")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write()  # the test of zoo train: its time counts

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self._write(status="interrupted")
            global INTERRUPTED
            INTERRUPTED = Interruption(
                "SIGTERM" if isinstance(exception, SIGTERMException) else "SIGINT",
                trainer.current_epoch,
                trainer.global_step,
                None if self.path is None else self.path.parent,
                trainer.is_global_zero,
            )
            return
        if type(exception).__name__ == "TrialPruned":  # a sweep's pruner stopped it (optuna)
            self._write(status="pruned", error=str(exception))
            return
        lines = str(exception).strip().splitlines()
        error = f"{type(exception).__name__}: {lines[0]}" if lines else type(exception).__name__
        self._write(status="failed", error=error)


class EpochLines(ProgressBar):
    """The progress report for a log file or a pipe: one line per training epoch, e.g.
    ``epoch 3/60  step 60  train/acc 0.9811  train/loss 0.5512  val/acc 0.9704  val/loss 0.5921  (0.4 s)``.

    Lightning's bar redraws itself on every refresh, which a pipe or a log file keeps in full
    (13 KB for two epochs of digits). :class:`~zoo.trainer.ZooTrainer` uses this bar instead when
    its standard output is not a terminal and no other progress bar was given.
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_started = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        # a fit resumed from a checkpoint written at a validation inside an epoch finishes that
        # epoch without calling on_train_epoch_start: its time counts from here, not from 0.0
        # (the resumed line said "(529.1 s)", the machine's uptime)
        self._epoch_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        self._report(trainer)
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        # printed when the next epoch starts or training ends: the module logs the epoch's training
        # metrics in its own on_train_epoch_end, which Lightning calls after the callbacks'
        self._pending = (
            trainer.current_epoch,
            trainer.global_step,
            time.perf_counter() - self._epoch_started,
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer)

    _pending: tuple[int, int, float] | None = None

    def _report(self, trainer: pl.Trainer) -> None:
        pending, self._pending = self._pending, None
        if pending is None or not self._enabled or not trainer.is_global_zero:
            return
        epoch, step, seconds = pending
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {epoch + 1}{total}", f"step {step}"]
        # the epoch's values (train/loss: the epoch mean, not the last log step's window)
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(("train/", "val/")) and value.numel() == 1:
                parts.append(f"{key} {float(value):.4g}")
        print("  ".join(parts) + f"  ({seconds:.1f} s)", flush=True)


class BatchSizeSearch(BatchSizeFinder):
    """Lightning's ``BatchSizeFinder`` (the largest batch that fits in memory, doubling from
    ``init_val``), capped by the training set: a batch never holds more than the distinct training
    examples of one process. Lightning's own finder stops only at ``max_val`` (8192) or memory, so on
    a CPU, or on a GPU with a small table, it settles on batches several times the data (8192 for
    digits' 1,257 training rows). Sets the DataModule's ``batch_size``; use it as a callback
    (``--trainer.callbacks+=zoo.callbacks.BatchSizeSearch``) or through ``zoo tune-batch-size``.
    """

    def scale_batch_size(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cap = batch_size_cap(trainer)
        self._max_val = min(self._max_val, cap)
        early_exit, self._early_exit = self._early_exit, False  # Lightning would leave before the cap
        try:
            super().scale_batch_size(trainer, pl_module)
        finally:
            self._early_exit = early_exit
        # Lightning's power search stops at max_val but returns the size it doubled to (2048 for a cap
        # of 1,257): bring it back under the cap
        if self.optimal_batch_size is not None and self.optimal_batch_size > cap:
            from lightning.pytorch.utilities.parsing import lightning_setattr

            self.optimal_batch_size = cap
            lightning_setattr(pl_module, self._batch_arg_name, cap)
        if early_exit:
            from lightning.pytorch.utilities.exceptions import _TunerExitException

            raise _TunerExitException()


def batch_size_cap(trainer: pl.Trainer) -> int:
    """The distinct training examples of one process (8192, Lightning's limit, when unknown)."""
    examples = getattr(trainer.datamodule, "num_train_examples", None)
    return max(1, -(-int(examples) // trainer.world_size)) if examples else 8192


def steepest_descent_lr(
    results: dict[str, list[float]], skip_begin: int = 10, skip_end: int = 1
) -> float | None:
    """The learning rate where a range test's (smoothed) loss falls fastest per *decade* of rate:
    the gradient is taken against ``log(lr)``, the scale the rates were tried on.

    Lightning 2.6's ``_LRFinder.suggestion`` takes it against the rate itself, which, on rates spaced
    exponentially, weighs every step at the small end thousands of times more and points at the
    start of the fall (2.2e-4 for mlp_digits, whose loss falls fastest near 3e-3, the recipe's rate).
    ``None`` with fewer than three usable points.
    """
    import numpy as np

    lrs = np.asarray(results.get("lr", []), dtype=float)
    losses = np.asarray(results.get("loss", []), dtype=float)
    keep = slice(skip_begin, len(lrs) - skip_end if skip_end else None)
    lrs, losses = lrs[keep], losses[keep]
    finite = np.isfinite(losses) & (lrs > 0)
    lrs, losses = lrs[finite], losses[finite]
    if len(lrs) < 3:
        return None
    slope = np.gradient(losses, np.log(lrs))
    return float(lrs[int(np.argmin(slope))])


class LearningRateSearch(LearningRateFinder):
    """Lightning's ``LearningRateFinder`` as a zoo callback: runs the range test when fitting starts,
    then trains at :func:`steepest_descent_lr`'s rate, set through the model's ``lr`` (which rescales
    the injected optimizer's parameter groups and the schedule's base rates). The arguments are
    Lightning's (``min_lr``, ``max_lr``, ``num_training_steps``, ``mode``, ...).
    ``--trainer.callbacks+=zoo.callbacks.LearningRateSearch`` from the shell.
    """

    #: the rate the search suggested (``None`` before it ran, or when it could not tell)
    suggested_lr: float | None = None

    def lr_find(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lightning.pytorch.tuner.lr_finder import _lr_find
        from lightning.pytorch.utilities.seed import isolate_rng

        with isolate_rng():
            self.optimal_lr = _lr_find(
                trainer,
                pl_module,
                min_lr=self._min_lr,
                max_lr=self._max_lr,
                num_training=self._num_training_steps,
                mode=self._mode,
                early_stop_threshold=self._early_stop_threshold,
                update_attr=False,
            )
        if self.optimal_lr is not None:
            self.suggested_lr = steepest_descent_lr(self.optimal_lr.results)
        if self.suggested_lr is not None:
            pl_module.lr = self.suggested_lr
        if self._early_exit:
            from lightning.pytorch.utilities.exceptions import _TunerExitException

            raise _TunerExitException()
