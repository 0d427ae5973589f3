"""Loggers whose directory follows the run's ``trainer.default_root_dir``.

Lightning's loggers need a ``save_dir``; these take ``None`` to mean "the Trainer's
``default_root_dir``", which the ``zoo`` command fills in, so a recipe's loggers move with
``--trainer.default_root_dir`` and no recipe repeats the path.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import loggers


class CSVLogger(loggers.CSVLogger):
    """``metrics.csv`` and ``hparams.yaml`` in ``save_dir/name/version_N``.

    Args:
        save_dir: ``None`` for the run's ``trainer.default_root_dir``.
        name: sub-folder of ``save_dir`` (empty: none).
        **kwargs: the other arguments of ``lightning.pytorch.loggers.CSVLogger``.
    """

    def __init__(self, save_dir: str | None = None, name: str = "", **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir or ".", name=name, **kwargs)


class WandbLogger(loggers.WandbLogger):
    """Weights & Biases; runs offline with ``WANDB_MODE=offline`` (or ``offline: true``).

    Args:
        save_dir: ``None`` for the run's ``trainer.default_root_dir`` (the ``wandb/`` run files go there).
        project: the W&B project.
        **kwargs: the other arguments of ``lightning.pytorch.loggers.WandbLogger``.
    """

    def __init__(self, save_dir: str | None = None, project: str = "lightning-zoo", **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir or ".", project=project, **kwargs)


FOLLOWS_ROOT_DIR = (CSVLogger, WandbLogger)
