"""A Trainer with the zoo's whole pipeline as one method: :meth:`ZooTrainer.train`."""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TypeVar

import lightning.pytorch as pl
from lightning.pytorch.callbacks import (
    LearningRateMonitor,
    ProgressBar,
    StochasticWeightAveraging,
    WeightAveraging,
)
from lightning.pytorch.trainer.connectors import signal_connector
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_prefixed_message

import zoo.callbacks
from zoo.callbacks import EpochLines, LearningRates, RunRecord
from zoo.errors import ZooError
from zoo.files import write_json_atomic
from zoo.model_card import write_model_card

METRICS_FILE = "test_metrics.json"


def _no_adverts(record: logging.LogRecord) -> bool:
    """Lightning 2.6 prints two "💡 Tip" lines per Trainer that advertise its cloud services; a zoo
    run's output keeps to what the run does."""
    return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_adverts)
# Lightning 2.6 builds torch's deprecated LeafSpec in every run; the FutureWarning is about
# Lightning's code, and nothing a zoo user does changes it
warnings.filterwarnings(
    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
)


def _drop_a_failing_nvml_check() -> None:
    """Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking whether CUDA is there does
    not initialize CUDA. Where NVML cannot be loaded (no NVIDIA driver: a CPU machine with torch's
    default CUDA wheels) torch then tries ``dlopen("libnvidia-ml.so.1")`` on every ask, uncached, and
    falls back to the runtime's count anyway: about 80 us in every optimizer step (torch's
    graph-capture check asks), a few percent of a small model's step. Without NVML the setting
    changes no answer, so it is dropped."""
    import ctypes

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


_drop_a_failing_nvml_check()


def check_run_root(root: str | Path | None, writable: bool = True) -> None:
    """Raise :class:`ZooError` unless ``root`` is, or can become, a folder (this process can write,
    when ``writable``)."""
    if root is None:
        return
    path = Path(root)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise ZooError(f"trainer.default_root_dir: {path} {where}; name a folder for the runs.")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == path else f", so {path} cannot be made in it"
        raise ZooError(
            f"trainer.default_root_dir: {existing} is not writable by this user{made}; name a folder you "
            "can write."
        )


_Method = TypeVar("_Method", bound=Any)


def _ctrl_c_as_itself(method: _Method) -> _Method:
    """Lightning answers a Ctrl-C during ``fit``/``validate``/``test``/``predict`` with
    ``sys.exit(1)`` and leaves SIGINT ignored for the rest of the process (Lightning issue 11924):
    code after ``fit`` cannot tell it from a failure, and in a notebook the next "interrupt kernel"
    does nothing. After Lightning's own shutdown (callbacks' ``on_exception``, loggers finalized),
    the zoo's Trainer restores the SIGINT handler it found and raises ``KeyboardInterrupt`` again."""

    @functools.wraps(method)
    def wrapper(self: pl.Trainer, *args: Any, **kwargs: Any) -> Any:
        try:
            handler = signal.getsignal(signal.SIGINT)
        except ValueError:  # pragma: no cover - not the main thread
            handler = None
        try:
            return method(self, *args, **kwargs)
        except SystemExit as exit:
            if exit.code != 1 or not isinstance(exit.__context__, KeyboardInterrupt):
                raise
            if handler is not None:
                signal.signal(signal.SIGINT, handler)
            raise exit.__context__ from None  # the Ctrl-C itself, with its traceback

    return wrapper  # type: ignore[return-value]


class _AgreedSigterm(_SignalConnector):
    """SIGTERM under several processes, decided together at the start of a training step.

    Lightning 2.6's handler calls ``dist.broadcast`` inside the signal handler, on every rank that
    gets the signal, while each step's own broadcast of rank 0's flag runs in the loop; which of them
    pair up depends on where each rank was when the signal came, and Lightning also raises at the end
    of a step or an epoch on each rank's own flag. A two-process run sent SIGTERM could finish with
    exit 143 or hang until killed (seen under load in the zoo's test). Here the handler only records
    the signal (and passes it on to the ranks it launched, as Lightning does); at the start of every
    training step all ranks take the maximum of their flags in one ``all_reduce`` (the collective
    Lightning's per-step broadcast was, so no extra one), and if any rank got the signal all of them
    stop there together, after the same finished step, and ``last.ckpt`` is written from that step.
    One process keeps Lightning's behaviour (it stops after the step in progress)."""

    def __init__(self, trainer: pl.Trainer) -> None:
        super().__init__(trainer)
        self.pending = False

    def register_signal_handlers(self) -> None:
        self.pending = False
        super().register_signal_handlers()

    def _sigterm_notifier_fn(self, signum: Any, frame: Any) -> None:
        if not _several_processes(self.trainer):
            super()._sigterm_notifier_fn(signum, frame)
            return
        message = rank_prefixed_message(f"Received SIGTERM: {signum}", self.trainer.local_rank)
        signal_connector.log.info(message)
        if not self.pending and self.trainer.strategy.launcher is not None:
            self.trainer.strategy.launcher.kill(signum)
        self.pending = True  # no collective here: the next step's start decides, on every rank at once

    def agree(self) -> None:
        """Every rank, at the start of each training step: stop together if any rank got SIGTERM."""
        import torch

        flag = torch.tensor([int(self.pending)], device=self.trainer.strategy.root_device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item():
            self.received_sigterm = True
            raise SIGTERMException()


def _several_processes(trainer: pl.Trainer) -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and trainer.world_size > 1


class ZooTrainer(pl.Trainer):
    """``lightning.pytorch.Trainer`` plus :meth:`train`; every Trainer argument works unchanged.

    Two defaults differ from Lightning's, so that a run started from Python lands where ``zoo
    train`` puts its runs and holds the same files: ``default_root_dir`` is ``runs`` (not the
    working directory) and the default logger is :class:`zoo.loggers.CSVLogger` in it (not
    ``lightning_logs/``): ``ZooTrainer(default_root_dir="runs/wine").train(model, data)`` writes
    ``runs/wine/version_N/`` with ``metrics.csv``, ``checkpoints/``, ``test_metrics.json``, the
    model card, ``curves.png`` and ``run.json``.
    """

    def __init__(
        self,
        *,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        **kwargs: Any,
    ) -> None:
        """Lightning's arguments, with the ``limit_*_batches`` typed ``int | float`` where
        Lightning has ``float | int``: from the shell or a YAML file, ``1`` then means one batch, as
        it does in Python, and ``1.0`` the whole set (with Lightning's order the command line's
        ``1`` was read as ``1.0``, so asking for one batch ran every batch).

        Args:
            limit_train_batches: how much of the training set to use each epoch: a number of
                batches (int) or a fraction (float); default all.
            limit_val_batches: the same for each validation.
            limit_test_batches: the same for testing.
            limit_predict_batches: the same for prediction.
        """
        limits = {
            "limit_train_batches": limit_train_batches,
            "limit_val_batches": limit_val_batches,
            "limit_test_batches": limit_test_batches,
            "limit_predict_batches": limit_predict_batches,
        }
        kwargs.update(limits)
        kwargs.setdefault("default_root_dir", "runs")
        # whether it can be written is checked when fitting: evaluating writes nothing there
        check_run_root(kwargs["default_root_dir"], writable=False)
        if kwargs.get("logger", True) is True:
            from zoo.loggers import CSVLogger

            kwargs["logger"] = CSVLogger(save_dir=str(kwargs["default_root_dir"]))
        callbacks = kwargs.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if (
            kwargs.get("enable_progress_bar") is not False
            and not _terminal()
            and not any(isinstance(cb, ProgressBar) for cb in callbacks)
        ):
            kwargs["callbacks"] = [*callbacks, EpochLines()]  # a pipe or a log: one line per epoch
        super().__init__(**kwargs)
        self._signal_connector = _AgreedSigterm(self)
        # the training loop's per-step check under several processes (Lightning broadcast rank 0's flag)
        self.fit_loop.epoch_loop._broadcast_sigterm_tensor = self._signal_connector.agree

    _fit = _ctrl_c_as_itself(pl.Trainer.fit)

    @functools.wraps(pl.Trainer.fit)
    def fit(self, *args: Any, **kwargs: Any) -> None:
        check_run_root(self.default_root_dir)  # before any folder or file of the run
        return self._fit(*args, **kwargs)

    validate = _ctrl_c_as_itself(pl.Trainer.validate)
    test = _ctrl_c_as_itself(pl.Trainer.test)
    predict = _ctrl_c_as_itself(pl.Trainer.predict)

    def train(
        self,
        model: pl.LightningModule,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
    ) -> dict[str, Any]:
        """Fit, then reload the best checkpoint, test it and write ``test_metrics.json``, the
        model card (``README.md``: see :mod:`zoo.model_card`) and the learning curves
        (``curves.png``: see :mod:`zoo.curves`) into the run directory.

        Args:
            model: the module to train.
            datamodule: provides the train, val and test splits.
            ckpt_path: resume fitting from this checkpoint.

        Returns:
            The test metrics, plus ``best_checkpoint`` (its path, or ``None`` when no checkpoint
            callback kept one and the final weights were tested).
        """
        started = time.perf_counter()
        if not isinstance(model, pl.LightningModule):
            raise TypeError(f"ZooTrainer.train: model must be a LightningModule; got {type(model).__name__}.")
        if datamodule is not None and not isinstance(datamodule, pl.LightningDataModule):
            raise TypeError(
                f"ZooTrainer.train: datamodule must be a LightningDataModule (it gives the train, val and "
                f"test splits); got {type(datamodule).__name__}. For loaders of your own, use "
                "fit(model, train_loader, val_loader) and test(model, test_loader)."
            )
        if self.loggers and not any(isinstance(cb, RunRecord) for cb in self.callbacks):
            self.callbacks.append(RunRecord())  # run.json: what ran and how it ended (zoo runs)
        if self.loggers and not any(isinstance(cb, LearningRateMonitor) for cb in self.callbacks):
            self.callbacks.append(LearningRates())  # the lr columns of metrics.csv, as zoo train has
        if any(isinstance(cb, StochasticWeightAveraging) for cb in self.callbacks):
            rank_zero_warn(
                "Lightning's StochasticWeightAveraging puts the average into the model only after max_epochs "
                "(never when early stopping ends the run) and keeps it out of the checkpoints, so the best "
                "checkpoint and the test are the raw weights; zoo.callbacks.SWA (-c trainer/swa) validates, "
                "saves and tests the average."
            )
        zoo.callbacks.INTERRUPTED = None  # of an earlier run in this process
        self.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if self.interrupted:
            return {}
        callback = self.checkpoint_callback
        best = callback.best_model_path if callback is not None and callback.best_model_path else None
        # weight averaging (EMA, SWA-style) validated and saved the averaged weights; its callback would
        # load the raw ones back from the checkpoint ("current_model_state") for the test: test what
        # was validated and what zoo.load and zoo predict read
        self.callbacks = [cb for cb in self.callbacks if not isinstance(cb, WeightAveraging)]
        with warnings.catch_warnings():
            # Lightning's advice to pass the callbacks that wrote the checkpoint: the averaging ones
            # were left out on purpose (above)
            warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")
            results = self.test(
                model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True
            )
        metrics: dict[str, Any] = {k: _number(v) for k, v in (results[0] if results else {}).items()}
        metrics["best_checkpoint"] = best
        log_dir = self.log_dir  # a collective under DDP: every rank must ask, not rank 0 alone
        if self.is_global_zero and log_dir is not None:
            write_json_atomic(Path(log_dir) / METRICS_FILE, metrics)
            write_model_card(self, model, datamodule, metrics, time.perf_counter() - started, Path(log_dir))
            draw_curves(Path(log_dir))
        return metrics


def _terminal() -> bool:
    """Whether standard output is a terminal (where a redrawn progress bar makes sense)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def draw_curves(run_dir: Path) -> None:
    """``curves.png`` of the run (see :mod:`zoo.curves`), when it logged to ``metrics.csv``. The
    run is over and its results saved: a plotting failure is a warning, never the run's error."""
    from zoo.curves import CURVES_PNG, METRICS_CSV, plot_runs

    if not (run_dir / METRICS_CSV).is_file():
        return
    try:
        plot_runs([run_dir], run_dir / CURVES_PNG)
    except Exception as err:  # noqa: BLE001
        warnings.warn(f"could not draw {run_dir / CURVES_PNG}: {err}", stacklevel=2)


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value
