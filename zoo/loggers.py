"""Loggers whose directory follows the run's ``trainer.default_root_dir``.

Lightning's loggers need a ``save_dir``; these take ``None`` to mean "the Trainer's
``default_root_dir``", which the ``zoo`` command fills in, so a recipe's loggers move with
``--trainer.default_root_dir`` and no recipe repeats the path.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch import loggers
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from zoo.files import atomic_write, disk_error


class CSVLogger(loggers.CSVLogger):
    """``metrics.csv`` and ``hparams.yaml`` in ``save_dir/name/version_N``.

    Unlike Lightning's, it writes each row as it is logged, so the metrics on disk never lag
    behind the checkpoints of a run that is killed, and a resumed run (:meth:`continue_after`)
    appends to the rows of the run it continues instead of deleting them.

    Args:
        save_dir: ``None`` for the run's ``trainer.default_root_dir``.
        name: sub-folder of ``save_dir`` (empty: none).
        **kwargs: the other arguments of ``lightning.pytorch.loggers.CSVLogger``.
    """

    def __init__(self, save_dir: str | None = None, name: str = "", **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir or ".", name=name, **kwargs)
        self._continue_after: tuple[int, int] | None = None

    def continue_after(self, epoch: int, step: int) -> None:
        """Continue the run in this logger's directory from a checkpoint of ``(epoch, step)``: the
        rows logged up to it are kept, later ones (logged before the run stopped) dropped."""
        self._continue_after = (epoch, step)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and self._continue_after is not None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, *self._continue_after)
        return super().experiment

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics(metrics, step)
        self.save()  # Lightning otherwise writes every 100 steps: rows would die with a killed run

    def save(self) -> None:
        """Lightning's, with a full disk (or a read-only one) as one :class:`~zoo.files.DiskError`
        naming the run's folder."""
        try:
            super().save()
        except OSError as err:
            found = disk_error(err, Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE)
            if found is None:
                raise
            raise found from None

    def _get_next_version(self) -> int:
        return _next_free_version(self.root_dir, super()._get_next_version)


class _ContinuingWriter(ExperimentWriter):
    """Keeps the ``metrics.csv`` rows of a run up to ``(epoch, step)`` and appends after them."""

    def __init__(self, log_dir: str, epoch: int, step: int) -> None:
        self._keep_through = (epoch, step)
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields, rows = list(reader.fieldnames or []), list(reader)
        epoch, step = self._keep_through

        def kept(row: dict[str, str]) -> bool:
            row_step = int(float(row.get("step") or 0))
            if not row.get("epoch"):  # a callback's row (learning rates): logged as step row_step began
                return row_step < step
            row_epoch = int(float(row["epoch"]))
            return row_epoch < epoch or (row_epoch == epoch and row_step <= step)

        def write(handle: Any) -> None:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(row for row in rows if kept(row))

        before = path.stat()
        atomic_write(path, write)
        # rows of the run before it stopped, so their time: the run's last sign of life, which
        # zoo.runs.wall_time reads for a run killed without a word (RunRecord asks it next)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.metrics_keys = fields


class WandbLogger(loggers.WandbLogger):
    """Weights & Biases; runs offline with ``WANDB_MODE=offline`` (or ``offline: true``).

    Args:
        save_dir: ``None`` for the run's ``trainer.default_root_dir`` (the ``wandb/`` run files go there).
        project: the W&B project.
        **kwargs: the other arguments of ``lightning.pytorch.loggers.WandbLogger``.
    """

    def __init__(self, save_dir: str | None = None, project: str = "lightning-zoo", **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir or ".", project=project, **kwargs)
        # what was there before this logger's run began, so that discard() removes only what it made
        self._had_wandb_dir = (Path(save_dir or ".") / "wandb").exists()
        self._started_run = False

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            import wandb

            self._started_run = wandb.run is None  # Lightning otherwise takes over the run in progress
        return super().experiment

    def discard(self) -> None:
        """Undo the W&B run this logger started (a run refused before it trained): finish it without
        W&B's closing lines ("You can sync this run...") and remove its folder,
        ``wandb/offline-run-*`` (or ``wandb/run-*``), with W&B's links to it and the ``wandb/``
        folder when this run made it. Other runs' folders stay; a run it did not start is left alone."""
        run = self._experiment
        if run is None or not self._started_run:
            return
        self._experiment = None
        files = getattr(run, "dir", None)  # the run's files/ folder
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run.finish(exit_code=1)
        folder = Path(files).parent if files else None
        if folder is None or not folder.name.startswith(("offline-run-", "run-")):
            return
        shutil.rmtree(folder, ignore_errors=True)
        wandb_dir = folder.parent
        for name in ("latest-run", "debug.log", "debug-internal.log"):
            link = wandb_dir / name
            if link.is_symlink() and not link.exists():  # it pointed into the folder just removed
                link.unlink(missing_ok=True)
        made_here = (
            not self._had_wandb_dir and wandb_dir.absolute() == Path(self.save_dir or ".", "wandb").absolute()
        )
        if made_here:
            with contextlib.suppress(OSError):  # not empty: another run's folders are in it
                wandb_dir.rmdir()


class TensorBoardLogger(loggers.TensorBoardLogger):
    """TensorBoard event files in the run directory itself (beside ``metrics.csv``), not in
    ``lightning_logs/``: ``tensorboard --logdir runs`` shows every run. Needs the ``tensorboard``
    package (``pip install "lightning-zoo[tensorboard]"``).

    Args:
        save_dir: ``None`` for the run's ``trainer.default_root_dir``.
        name: sub-folder of ``save_dir`` (empty: none, as for the CSV logger).
        **kwargs: the other arguments of ``lightning.pytorch.loggers.TensorBoardLogger``.
    """

    def __init__(self, save_dir: str | None = None, name: str = "", **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir or ".", name=name, **kwargs)

    def _get_next_version(self) -> int:
        return _next_free_version(self.root_dir, super()._get_next_version)


#: the zoo's loggers that write into the run directory ``save_dir/version_N`` (their versions agree)
RUN_DIRECTORY_LOGGERS = ("zoo.loggers.CSVLogger", "zoo.loggers.TensorBoardLogger")


def next_version(root: str | Path) -> int:
    """The ``N`` of the next ``version_N`` folder under ``root`` (0 when there is none): past every
    ``version_N`` name there, folder or not (a stray file or a dangling link of that name is no place
    for a run: Lightning counted folders only and then failed to make it, ``FileExistsError``)."""
    root = Path(root)
    taken = [
        int(p.name.split("_", 1)[1])
        for p in (root.iterdir() if root.is_dir() else [])
        if p.name.startswith("version_") and p.name.split("_", 1)[1].isdigit()
    ]
    return max(taken, default=-1) + 1


def _next_free_version(root: str, lightnings: Any) -> int:
    """:func:`next_version` of a local ``root``; Lightning's own count for a remote one (``s3://``)."""
    return lightnings() if "://" in str(root) else next_version(root)


FOLLOWS_ROOT_DIR = (CSVLogger, WandbLogger, TensorBoardLogger)
