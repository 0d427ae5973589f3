"""Optimizers and learning-rate schedules, by name or by ``class_path``.

Optimizers come straight from ``torch.optim``; the zoo adds parameter groups that keep weight
decay off biases and normalization weights, and a few schedules torch lacks (linear warmup +
cosine decay). Schedules that need the run's length (``total_steps``) take it from the Trainer
when they are built inside ``configure_optimizers`` (see :func:`training_horizon`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from numbers import Integral
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    CyclicLR,
    LambdaLR,
    OneCycleLR,
    SequentialLR,
)

from zoo.errors import ZooError
from zoo.registry import OPTIMIZERS, SCHEDULERS

# ----------------------------------------------------------------------------- optimizers

for _name, _cls in {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adafactor": torch.optim.Adafactor,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}.items():
    OPTIMIZERS.register(_name, _cls)


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names of the parameters that modules of ``model`` exempt from weight decay.

    Any submodule may define ``no_weight_decay()`` returning names relative to itself (timm's
    convention); they are prefixed with that submodule's path here, so a wrapper that stores a
    backbone under any attribute keeps its exemptions without restating them.
    """
    names: set[str] = set()
    for path, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            names |= {f"{path}.{name}" if path else name for name in module.no_weight_decay()}
    return names


def is_decayed(name: str, p: torch.Tensor, named_exempt: set[str], decay_bias_and_norm: bool = False) -> bool:
    """Whether weight decay (and the L1 penalty) applies to parameter ``name``: weight matrices and
    kernels do; biases, normalization weights and other ``ndim <= 1`` parameters don't, unless
    ``decay_bias_and_norm``; names a module exempts (:func:`no_weight_decay_names`) never do."""
    if name in named_exempt:
        return False
    return decay_bias_and_norm or not (p.ndim <= 1 or name.endswith(".bias"))


def param_groups(model: nn.Module, decay_bias_and_norm: bool = False) -> list[dict[str, Any]]:
    """Split trainable parameters into ``[decayed, not decayed]`` groups (see :func:`is_decayed`).

    The first group carries no ``weight_decay`` key, so it takes the optimizer's own value. The
    groups are named ``decay`` and ``no_decay`` (the logged learning rates read ``lr-AdamW/decay``).
    """
    exempt = no_weight_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if is_decayed(name, p, exempt, decay_bias_and_norm) else no_decay).append(p)
    groups: list[dict[str, Any]] = [{"params": decay, "name": "decay"}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "name": "no_decay"})
    return groups


def create_optimizer(
    model: nn.Module, name: str = "adamw", decay_bias_and_norm: bool = False, **kwargs: Any
) -> Optimizer:
    """An optimizer for ``model`` by name, e.g. ``create_optimizer(model, "sgd", lr=0.1, momentum=0.9)``.

    Weight decay (if any) is applied to weight matrices and kernels only, unless
    ``decay_bias_and_norm=True``. ``None``-valued kwargs are dropped.
    """
    cls = OPTIMIZERS.get(name)
    return cls(param_groups(model, decay_bias_and_norm), **{k: v for k, v in kwargs.items() if v is not None})


# ----------------------------------------------------------------------------- run length

#: the steps of the run being set up; math.inf for a run without a set length
_HORIZON: contextvars.ContextVar[float | None] = contextvars.ContextVar("zoo_training_horizon", default=None)


@contextlib.contextmanager
def training_horizon(total_steps: int) -> Iterator[None]:
    """Within this block, schedules built with ``total_steps=None`` run for ``total_steps`` steps.

    ``ZooModule.configure_optimizers`` wraps the scheduler's construction in it, with
    ``trainer.estimated_stepping_batches``.
    """
    # an unbounded run (max_epochs=-1, no max_steps) estimates inf: kept, to say so
    token = _HORIZON.set(int(total_steps) if math.isfinite(total_steps) else math.inf)
    try:
        yield
    finally:
        _HORIZON.reset(token)


def _resolve_total_steps(total_steps: int | None, who: str) -> int:
    given = total_steps is not None and not (isinstance(total_steps, float) and math.isinf(total_steps))
    if given and (isinstance(total_steps, bool) or not isinstance(total_steps, Integral) or total_steps < 1):
        raise ZooError(
            f"{who}: total_steps must be an integer >= 1 (the run's optimizer steps), or None to take it "
            f"from the Trainer; got {total_steps!r}."
        )
    if total_steps is None:
        total_steps = _HORIZON.get()
        if total_steps == math.inf:
            raise ZooError(
                f"{who} spans the whole run, and this run has no set length (trainer.max_epochs -1 and no "
                "trainer.max_steps): set one of them, or the schedule's own "
                "--model.lr_scheduler.total_steps, or use no schedule (--model.lr_scheduler null)."
            )
        if total_steps is not None and total_steps <= 0:  # the Trainer's own estimate
            raise ZooError(
                f"{who} takes its length from the Trainer, which plans no training steps "
                f"(estimated_stepping_batches {total_steps}): trainer.limit_train_batches 0 trains none, and "
                "data of unknown length needs trainer.max_steps; give it batches to train on, or no schedule "
                "(--model.lr_scheduler null)."
            )
    if total_steps is None or total_steps <= 0 or total_steps == math.inf:
        raise ZooError(
            f"{who} needs total_steps: pass it explicitly, or build the schedule inside a Trainer run "
            "(with trainer.max_epochs or trainer.max_steps set) so it is taken from the Trainer."
        )
    return int(total_steps)


# ----------------------------------------------------------------------------- schedules


def _check_floor(value: float, name: str, upper: float | None = None) -> None:
    """A schedule's final rate: below 0 the optimizer would climb the loss; a ratio above 1 would
    make the "decay" a rise."""
    if not (math.isfinite(value) and value >= 0 and (upper is None or value <= upper)):
        valid = f"in [0, {upper:g}]" if upper is not None else ">= 0"
        raise ZooError(f"model.lr_scheduler.{name} must be {valid}; got {value}.")


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """The lr multiplier at ``step``: linear from 0 to 1 over ``warmup_steps``, then a half-cosine
    from 1 down to ``min_lr_ratio`` at ``total_steps`` (and flat after)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@SCHEDULERS.register("warmup_cosine")
class WarmupCosineLR(LambdaLR):
    """Linear warmup then cosine decay to ``min_lr_ratio * base_lr``, stepped every optimizer step.

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps: steps of linear warmup (the first step runs at ``base_lr / warmup_steps``),
            or a fraction of ``total_steps`` when given as a float below 1 (``0.05``).
        total_steps: length of the whole schedule; ``None`` takes it from the Trainer.
        min_lr_ratio: final lr as a fraction of each group's base lr.
    """

    interval = "step"

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int | float = 0,
        total_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_steps = _resolve_total_steps(total_steps, "warmup_cosine")
        if isinstance(warmup_steps, float) and 0 < warmup_steps < 1:
            warmup_steps = max(1, round(warmup_steps * self.total_steps))
        elif warmup_steps != int(warmup_steps):
            raise ZooError(
                "model.lr_scheduler.warmup_steps must be a step count or a fraction below 1; "
                f"got {warmup_steps}."
            )
        warmup_steps = int(warmup_steps)
        if not 0 <= warmup_steps <= self.total_steps:
            whence = "given" if total_steps is not None else "the Trainer's epochs x batches an epoch"
            raise ZooError(
                f"model.lr_scheduler.warmup_steps must be in [0, {self.total_steps}], the run's optimizer "
                f"steps ({whence}); got {warmup_steps}. A fraction below 1 (0.05) scales with the run."
            )
        _check_floor(min_lr_ratio, "min_lr_ratio", upper=1.0)
        self.warmup_steps = warmup_steps
        fn = functools.partial(
            warmup_cosine_factor,
            warmup_steps=warmup_steps,
            total_steps=self.total_steps,
            min_lr_ratio=min_lr_ratio,
        )
        super().__init__(optimizer, fn, last_epoch=last_epoch)


@SCHEDULERS.register("cosine")
class CosineAnnealing(CosineAnnealingLR):
    """torch's cosine annealing to ``min_lr`` over the whole run, stepped every optimizer step; the
    rate stays at ``min_lr`` after ``total_steps`` (torch's own cosine is periodic: it would rise
    again).

    Args:
        total_steps: ``T_max``; ``None`` takes it from the Trainer.
        min_lr: ``eta_min``.
    """

    interval = "step"

    def __init__(
        self, optimizer: Optimizer, total_steps: int | None = None, min_lr: float = 0.0, last_epoch: int = -1
    ) -> None:
        _check_floor(min_lr, "min_lr")
        super().__init__(
            optimizer,
            T_max=_resolve_total_steps(total_steps, "cosine"),
            eta_min=min_lr,
            last_epoch=last_epoch,
        )

    def get_lr(self) -> list[Any]:
        if self.last_epoch >= self.T_max:  # the half-cosine is over: hold its floor
            return [self.eta_min for _ in self.optimizer.param_groups]
        return super().get_lr()

    def _get_closed_form_lr(self) -> list[Any]:  # step(epoch): the same, held past T_max
        if self.last_epoch >= self.T_max:
            return [self.eta_min for _ in self.base_lrs]
        return super()._get_closed_form_lr()


@SCHEDULERS.register("onecycle")
class OneCycle(OneCycleLR):
    """torch's one-cycle policy with ``total_steps`` taken from the Trainer when not given.

    ``max_lr`` defaults to each group's current lr (the optimizer's ``lr``); set
    ``cycle_momentum=False`` for optimizers without momentum (Adagrad, ...).
    """

    interval = "step"

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | None = None,
        total_steps: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        cycle_momentum: bool = True,
    ) -> None:
        if max_lr is None:
            max_lr = [group["lr"] for group in optimizer.param_groups]
        super().__init__(
            optimizer,
            max_lr=max_lr,
            total_steps=_resolve_total_steps(total_steps, "onecycle"),
            pct_start=pct_start,
            anneal_strategy=anneal_strategy,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            three_phase=three_phase,
            cycle_momentum=cycle_momentum,
        )


SCHEDULERS.register("step", torch.optim.lr_scheduler.StepLR)
SCHEDULERS.register("exponential", torch.optim.lr_scheduler.ExponentialLR)
SCHEDULERS.register("plateau", torch.optim.lr_scheduler.ReduceLROnPlateau)


@SCHEDULERS.register("none")
def _no_schedule(optimizer: Optimizer) -> None:
    """A constant learning rate: no scheduler at all."""
    return None


def create_scheduler(optimizer: Optimizer, name: str = "none", **kwargs: Any) -> Any:
    """A learning-rate scheduler by name: ``warmup_cosine``, ``cosine``, ``onecycle``, ``step``,
    ``exponential``, ``plateau`` or ``none`` (returns ``None``). ``None``-valued kwargs are dropped."""
    return SCHEDULERS.get(name)(optimizer, **{k: v for k, v in kwargs.items() if v is not None})


#: torch's schedules that are meant to be stepped after every optimizer step (their documentation:
#: "called after a batch has been used for training"); stepped per epoch, a one-cycle run of
#: ``total_steps`` never completes its cycle and the rate is flat within each epoch
PER_STEP_SCHEDULERS: tuple[type, ...] = (OneCycleLR, CyclicLR)


def scheduler_interval(scheduler: Any) -> str:
    """How often Lightning steps ``scheduler``: its own ``interval`` where it has one (``"step"``
    for the zoo's per-step schedules), ``"step"`` for torch's per-step schedules
    (:data:`PER_STEP_SCHEDULERS`) and for a ``SequentialLR`` or ``ChainedScheduler`` made only of
    per-step ones, ``"epoch"`` for every other (torch's ``StepLR``, ``ReduceLROnPlateau``, ...)."""
    interval = getattr(scheduler, "interval", None)
    if interval in ("step", "epoch"):
        return interval
    if isinstance(scheduler, PER_STEP_SCHEDULERS):
        return "step"
    if isinstance(scheduler, (SequentialLR, ChainedScheduler)):
        parts = scheduler._schedulers
        if parts and all(scheduler_interval(part) == "step" for part in parts):
            return "step"
    return "epoch"
