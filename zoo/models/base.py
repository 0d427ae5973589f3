"""The task-aware LightningModule every zoo architecture builds on.

A subclass only builds its network in ``__init__`` and writes ``forward``; the base owns the
task (multiclass / binary / regression), the loss, the metrics, the optimizer with its parameter
groups and the learning-rate schedule.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import inspect
import math
import numbers
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torchmetrics
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import GradClipAlgorithmType, rank_zero_warn
from torch import nn

from zoo.checkpoints import (
    check_model_class,
    check_named_classes,
    check_zoo_model,
    loading_errors,
    read_checkpoint,
)
from zoo.distributed import derive_seed, gather_objects, rng_state, set_rng_state
from zoo.errors import NonFiniteLossError, ZooError
from zoo.inference import PREPROCESSING_KEY, Predictor
from zoo.losses import BCEWithLogits, ContrastiveLoss, create_loss, l1_penalty
from zoo.optim import param_groups, scheduler_interval, training_horizon
from zoo.registry import LOSSES, OPTIMIZERS, SCHEDULERS, public_class_path

Task = Literal["multiclass", "binary", "regression"]
TASKS = ("multiclass", "binary", "regression")

# which task each named loss is meant for
_LOSS_TASKS = {
    "cross_entropy": {"multiclass"},
    "bce": {"binary"},
    "mse": {"regression"},
    "l1": {"regression"},
    "huber": {"regression"},
    "contrastive": {"multiclass", "binary"},  # pairs of the same or another class
}

_PLAIN = (str, int, float, bool, type(None))

#: how to unset a loss option from the shell (a recipe may set it: mlp_digits smooths labels)
_UNSET = {
    "label_smoothing": "--model.label_smoothing 0",
    "pos_weight": "--model.pos_weight null",
    "class_weights": "--model.class_weights null",
}

CLASS_KEY = "zoo_class_path"  # in every checkpoint a ZooModule saves: "package.module.ClassName"
RNG_KEY = "zoo_rng_states"  # one entry per rank: see ZooModule.on_save_checkpoint
UNSTORED_KEY = "zoo_unstored"  # the arguments given as objects and not stored (ZooModule.on_save_checkpoint)
OPTIMIZER_KEY = "zoo_optimizer_class"  # the class of the optimizer whose state the checkpoint holds


#: the values of ZooModule's ``freeze``
FREEZE = (None, "none", "backbone")


def is_number(value: Any) -> bool:
    """A real number (``int``, ``float``, numpy's), not a ``bool`` nor a string of digits."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An integer (``int``, numpy's), not a ``bool``, a ``float`` nor a string of digits."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_number(value: Any, option: str, valid: str) -> None:
    """Raise :class:`ZooError` naming ``option`` unless ``value`` is a real number; the range
    (``valid``: ``"in [0, 1)"``) is the caller's to check, in its own words."""
    if not is_number(value):
        raise ZooError(f"{option} must be a number {valid}; got {value!r}.")


def check_sizes(value: Any, option: str, what: str, empty: bool = True) -> None:
    """Raise ``{option} must be {what}; got ...`` unless ``value`` is a list (or tuple) of integers
    >= 1 (a shape, layer widths), and not empty unless ``empty``."""
    sizes = not isinstance(value, (str, bytes)) and isinstance(value, (Sequence, np.ndarray))
    if not sizes or not all(is_integer(v) and v >= 1 for v in value) or not (empty or len(value)):
        shown = list(value) if sizes else value
        raise ZooError(f"{option} must be {what}; got {shown!r}.")


@functools.cache
def init_arguments(cls: type) -> tuple[str, ...]:
    """The keyword arguments ``cls(...)`` takes: those of its ``__init__`` and, where that passes
    ``**kwargs`` on, of the ``__init__`` of each base class it reaches (ZooModule's last)."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names += [p.name for p in params if p.kind in kinds and p.name != "self" and p.name not in names]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return tuple(names)


def check_arguments(cls: type, given: Any, valid: Sequence[str] | None = None) -> None:
    """Raise :class:`ZooError` for the first name in ``given`` that is not ``valid`` (default: the
    arguments ``cls(...)`` takes, :func:`init_arguments`), with the closest names of ``cls`` (a
    misspelled ``MLP(hiden_sizes=...)`` said ``ZooModule.__init__() got an unexpected keyword
    argument``)."""
    valid = init_arguments(cls) if valid is None else tuple(valid)
    names = tuple(dict.fromkeys((*init_arguments(cls), *valid)))
    for name in given:
        if name in valid:
            continue
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else f"it takes {', '.join(names)}."
        )
        raise ZooError(f"{cls.__name__} has no argument {name!r}; {hint}")


def check_base_arguments(cls: type, kwargs: dict[str, Any]) -> None:
    """What a zoo model passes on to :class:`ZooModule` (its ``**kwargs``) must be ZooModule's
    arguments: :func:`check_arguments` before the call, which names ``cls`` rather than ZooModule."""
    check_arguments(cls, kwargs, init_arguments(ZooModule))


def _is_plain(value: Any) -> bool:
    """True for values that a checkpoint can hold and reload without running code."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _stored_subclass(cls: type, checkpoint: dict[str, Any]) -> type:
    """The imported subclass of ``cls`` named by a checkpoint's ``_class_path``, else ``cls``."""
    # LightningCLI stores the class it built; ZooModule.on_save_checkpoint stores the saving class
    class_path = checkpoint.get("hyper_parameters", {}).get("_class_path") or checkpoint.get(CLASS_KEY)
    if not isinstance(class_path, str) or "." not in class_path:
        return cls
    module_name, name = class_path.rsplit(".", 1)
    found = getattr(sys.modules.get(module_name), name, None)
    return found if isinstance(found, type) and issubclass(found, cls) else cls


def _moved(value: Any, device: Any) -> Any:
    """A metric state (a tensor or a list of tensors) on ``device``."""
    return [t.to(device) for t in value] if isinstance(value, list) else value.to(device)


def _metric_states(metrics: torchmetrics.MetricCollection) -> dict[str, Any]:
    """Each metric's accumulated state (tensors, or lists of tensors) and update count."""
    return {
        name: {
            "count": metric._update_count,
            "state": {k: _moved(v, "cpu") for k, v in metric.metric_state.items()},
        }
        for name, metric in metrics.items(keep_base=True)
    }


def _set_metric_states(metrics: torchmetrics.MetricCollection, saved: dict[str, Any], device: Any) -> None:
    """Put back what :func:`_metric_states` took, as if the updates had happened in this process."""
    for name, metric in metrics.items(keep_base=True):
        if name not in saved:
            continue
        for key, value in saved[name]["state"].items():
            setattr(metric, key, _moved(value, device))
        metric._update_count = saved[name]["count"]
        metric._computed = None


def _proportional(rates: list[float], lr: float) -> list[float]:
    """``rates`` rescaled so that the first is ``lr`` and the others keep their proportion to it."""
    first = rates[0]
    return [lr * rate / first if first else lr for rate in rates]


def _rescale_rates(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give the first parameter group the rate ``lr`` and the others theirs in the same proportion."""
    rates = _proportional([group["lr"] for group in optimizer.param_groups], lr)
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
        if "initial_lr" in group:
            group["initial_lr"] = rate


@contextmanager
def _refused_arguments(option: str) -> Iterator[None]:
    """Turn the ``ValueError`` an optimizer or scheduler raises for a bad argument (torch's
    ``Invalid learning rate: -0.1``) into a :class:`ZooError` naming the option."""
    try:
        yield
    except ZooError:
        raise
    except ValueError as err:
        raise ZooError(f"{option}: {err}") from err


@contextmanager
def _run_length_hint() -> Iterator[None]:
    """torch's ``OneCycleLR`` built without its length (``total_steps``, or ``epochs`` and
    ``steps_per_epoch``) refuses in torch's words; say which schedule takes it from the run."""
    try:
        yield
    except ValueError as err:
        if isinstance(err, ZooError) or "total_steps" not in str(err):
            raise
        raise ZooError(
            f"model.lr_scheduler: {err}; or use zoo.optim.OneCycle, which takes the run's length from the "
            "Trainer (--model.lr_scheduler zoo.optim.OneCycle --model.lr_scheduler.max_lr 0.01)."
        ) from err


def _unscales_in_step(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` takes a gradient scaler's unscaling into its own step (torch marks its
    fused optimizers so; Lightning's optimizer wrapper carries the mark over)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def _loss_from_class_path(path: str, options: dict[str, Any]) -> nn.Module:
    """``torch.nn.HuberLoss`` (a string) as ``torch.nn.HuberLoss()``, or a :class:`ZooError`.
    ``options`` (``label_smoothing``, ``pos_weight``: the model's, where set) go to the class, which
    must take them."""
    import importlib
    import inspect

    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ZooError(
            f"model.loss {path!r} is not an importable torch.nn.Module class; give a loss name "
            f"({', '.join(LOSSES.list())}) or a module's class path, e.g. torch.nn.HuberLoss."
        )
    taken = inspect.signature(cls).parameters
    for option in options:
        if _LOSS_ARGUMENT.get(option, option) not in taken:
            raise ZooError(
                f"model.{option} is not an option of the loss {path}, which takes "
                f"{', '.join(taken) or 'no options'}; unset it ({_UNSET[option]})."
            )
    return cls(**_loss_arguments(options))


def _loss_class_name(cls: type) -> str:
    """``torch.nn.CrossEntropyLoss`` (as torch exports it), else the class's public path."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return public_class_path(cls)


#: the model's loss options that torch's losses name otherwise
_LOSS_ARGUMENT = {"class_weights": "weight"}


def _loss_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """The model's loss options as a loss class's arguments: ``class_weights`` as the ``weight``
    tensor of torch's ``CrossEntropyLoss``, ``pos_weight`` as the tensor ``BCEWithLogitsLoss`` takes."""
    out = {_LOSS_ARGUMENT.get(k, k): v for k, v in options.items()}
    for key in ("pos_weight", "weight"):
        if key in out:
            out[key] = torch.tensor(out[key], dtype=torch.float32)
    return out


def _check_class_weights(weights: Any, task: str, num_classes: int | None) -> None:
    """``model.class_weights``: one finite number > 0 per class of a multiclass task."""
    if task != "multiclass":
        instead = (
            "; a binary task weighs its positive class with model.pos_weight" if task == "binary" else ""
        )
        raise ZooError(
            f"model.class_weights applies to multiclass tasks (one weight per class in the cross-entropy); "
            f"this model's task is {task!r}: unset it ({_UNSET['class_weights']}){instead}."
        )
    shown = list(weights) if isinstance(weights, (list, tuple)) else weights
    numbers = isinstance(weights, (list, tuple)) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0
        for w in weights
    )
    if not numbers:
        raise ZooError(
            f"model.class_weights must be a list of numbers > 0, one per class (1 weighs a class as "
            f"usual); got {shown}."
        )
    if len(weights) != num_classes:
        raise ZooError(
            f"model.class_weights must give one weight per class, {num_classes} (model.num_classes); "
            f"got {len(weights)}: {shown}."
        )


def _named_factory(registry: Any, value: Any, option: str) -> Any:
    """A registered name given for an optimizer or schedule (``"sgd"``, ``"warmup_cosine"``, any case)
    as the class or function it names (:data:`zoo.registry.OPTIMIZERS`, ``SCHEDULERS``, as
    :func:`zoo.optim.create_optimizer` reads them), also by the class path a checkpoint stores for it
    (:func:`_stored_name`; looked up among the registered entries, nothing is imported); ``None``
    for the schedule ``none``; anything else (a class, a ``partial``) as given."""
    if not isinstance(value, str):
        return value
    if "." in value:  # a registered entry by its class path
        for name in registry.list():
            entry = registry.get(name)
            if value in (_class_path(entry), f"{entry.__module__}.{entry.__qualname__}"):
                return None if entry is SCHEDULERS.get("none") else entry
    elif value in registry:
        entry = registry.get(value)
        return None if entry is SCHEDULERS.get("none") else entry
    example = "torch.optim.SGD" if registry is OPTIMIZERS else "zoo.optim.WarmupCosineLR"
    raise ZooError(
        f"{registry.unknown_message(value, option)} Or pass the class itself ({example}), or a "
        f"functools.partial of it with its options."
    )


def _class_path(entry: Any) -> str:
    """``torch.optim.SGD``: the path a registered class or function is stored by."""
    return public_class_path(entry) if isinstance(entry, type) else f"{entry.__module__}.{entry.__qualname__}"


def _stored_name(factory: Any) -> str | None:
    """What the hyper-parameters keep for an optimizer or schedule given by registered name: its
    class path (``torch.optim.SGD``), which this class and the command line (``zoo test --ckpt_path``,
    whose parser takes no registered names) both read back; ``None`` for no schedule."""
    return None if factory is None else _class_path(factory)


#: the arguments of Lightning's ``load_from_checkpoint`` that are no hyper-parameter of the model
_LOAD_OPTIONS = ("map_location", "strict", "weights_only", "hparams_file")


def _override_call(cls: type, overrides: dict[str, Any]) -> str:
    """``MLP.load_from_checkpoint(path, dropout=3)``: the call, for its errors."""
    given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return f"{cls.__name__}.load_from_checkpoint(path, {given})"


def _override_error(cls: type, overrides: dict[str, Any], err: Exception) -> Exception:
    """What a model refuses of ``load_from_checkpoint(path, **overrides)`` as one line: the model's
    own :class:`ZooError` (which LightningCLI's instantiator wraps in jsonargparse's several lines of
    union subtypes), or the type jsonargparse expected. ``err`` itself where it is neither."""
    import re

    call = _override_call(cls, overrides)
    cause: BaseException | None = err
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ZooError):
            return ZooError(f"{call}: {cause}")
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    keys = re.findall(r'Parser key "([^"]+)":\s*\n\s*(.+)', str(err))
    if keys and keys[-1][0] in overrides:  # jsonargparse's type check (a CLI checkpoint's hparams)
        key, why = keys[-1]
        why = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", why).split(". Got value")[0].rstrip(".")
        return ZooError(f"{call}: {key} {why[:1].lower() + why[1:]}; got {overrides[key]!r}.")
    return err


class ZooModule(pl.LightningModule):
    """Shared training logic: loss, metrics, optimizer and schedule for one task.

    Args:
        task: ``multiclass``, ``binary`` or ``regression``. Set from the data by the CLI.
        num_classes: classes for ``multiclass``. Set from the data by the CLI.
        input_shape: shape of one input example, e.g. ``[64]`` or ``[1, 8, 8]``. Set from the data.
        target_stats: ``(mean, std)`` of a regression target. The network learns the standardized
            target (so the loss is in standardized units); predictions and metrics are in the
            original units. Set from the data.
        vocab: for token data, the characters of the vocabulary in id order (``vocab[i]`` is token
            ``i``). Stored in checkpoints, so a reloaded model can turn text into ids and back
            without the data. Set from the data.
        loss: ``auto`` (cross-entropy / BCE-with-logits / MSE by task), a short name
            (``cross_entropy``, ``bce``, ``mse``, ``l1``, ``huber``, ``contrastive``) or any
            ``nn.Module`` loss by ``class_path``. A loss named by short name takes its options
            through the model's own (``--model.label_smoothing 0.2``, ``pos_weight``,
            ``class_weights``); a loss given by class path takes its class's
            (``--model.loss torch.nn.HuberLoss --model.loss.delta 0.5``).
        label_smoothing: for the cross-entropy and BCE losses: ``e`` moves the targets toward the
            uniform distribution (BCE: to ``e/2`` and ``1 - e/2``).
        pos_weight: weight of the positive class for BCE (binary tasks).
        class_weights: one weight per class for cross-entropy (multiclass tasks; ``[1, 1, 5]``
            weighs the third class five times), torch's ``weight``; ``None``: all alike.
        l1_lambda: adds ``l1_lambda * sum(|W|)`` over the weights that weight decay applies to
            (:func:`~zoo.losses.l1_penalty`) to the training loss; the logged losses stay the data
            loss, so ``val/loss`` compares across penalties.
        optimizer: any ``torch.optim`` optimizer, injected (``--model.optimizer SGD
            --model.optimizer.lr 0.1``); it receives parameter groups with no weight decay on
            biases and normalization weights. From Python also a registered name (``"sgd"``,
            ``zoo.registry.OPTIMIZERS``), built with its defaults.
        lr_scheduler: any scheduler, injected; the zoo's per-step schedules get the run length
            from the Trainer, and torch's per-step ones (``OneCycleLR``, ``CyclicLR``) are
            stepped every optimizer step too. From Python also a registered name
            (``"warmup_cosine"``, ``zoo.registry.SCHEDULERS``).
        decay_bias_and_norm: apply weight decay to biases and normalization weights too.
        monitor: metric a plateau scheduler watches.
        compile: ``torch.compile`` the network (``self.net``, else ``forward``) in place when a
            Trainer sets the model up; parameter names, checkpoints and the eager ``forward``
            stay as they are. The first steps (and the first evaluation) pay the compilation.
        init_from: start from trained weights (fine-tuning): ``pretrained:NAME`` (``zoo models
            --pretrained``), a ``.ckpt`` or a ``.safetensors`` file of ``zoo export``. Loaded when a
            Trainer sets the model up, unless it restores a checkpoint (``ckpt_path``); see
            :meth:`load_weights_from`. A different number of classes gets a fresh output layer.
        freeze: ``backbone`` trains the head alone (:meth:`output_head`): every other parameter
            keeps its value and every other layer runs in eval mode (batch-norm statistics and
            dropout as at inference), a frozen feature extractor. ``None``: train everything.
    """

    #: whether the model reads int64 token ids (GPT, SequenceClassifier) rather than features
    reads_tokens: bool = False

    @property
    def num_tokens(self) -> int | None:
        """How many distinct token ids a token model reads (``None`` for feature models)."""
        if not self.reads_tokens:
            return None
        return len(self.vocab) if self.vocab else int(self.hparams["vocab_size"])

    def __init__(
        self,
        task: Task = "multiclass",
        num_classes: int | None = None,
        input_shape: Sequence[int] | None = None,
        target_stats: tuple[float, float] | None = None,
        vocab: str | None = None,
        loss: str | nn.Module = "auto",
        label_smoothing: float = 0.0,
        pos_weight: float | None = None,
        class_weights: list[float] | None = None,
        l1_lambda: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        decay_bias_and_norm: bool = False,
        monitor: str = "val/loss",
        compile: bool = False,
        init_from: str | None = None,
        freeze: str | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ZooError(f"model.task must be one of {', '.join(TASKS)}; got {task!r}.")
        if num_classes is not None and not is_integer(num_classes):
            raise ZooError(
                f"model.num_classes must be an integer (the number of classes); got {num_classes!r}."
            )
        if task == "multiclass" and (num_classes is None or num_classes < 2):
            raise ZooError(f"model.num_classes must be >= 2 for a multiclass task; got {num_classes}.")
        if task == "binary" and num_classes not in (None, 2):
            raise ZooError(
                "model.num_classes must be 2 (or None) for a binary task, which has one output (the "
                f"positive class's logit); got {num_classes}. More classes: task='multiclass'."
            )
        if input_shape is not None:
            check_sizes(
                input_shape,
                "model.input_shape",
                "one example's shape, a list of sizes >= 1 such as [64] or [1, 8, 8]",
                empty=False,
            )
        require_number(l1_lambda, "model.l1_lambda", ">= 0")
        if not 0 <= l1_lambda < math.inf:
            raise ZooError(f"model.l1_lambda must be >= 0; got {l1_lambda}.")
        require_number(label_smoothing, "model.label_smoothing", "in [0, 1)")
        if not 0 <= label_smoothing < 1:
            raise ZooError(f"model.label_smoothing must be in [0, 1); got {label_smoothing}.")
        if pos_weight is not None and not (
            is_number(pos_weight) and math.isfinite(pos_weight) and pos_weight > 0
        ):
            raise ZooError(
                f"model.pos_weight must be a number > 0 (the positive class's weight in the loss; 1 weighs "
                f"both classes alike); got {pos_weight}."
            )
        if class_weights is not None:
            _check_class_weights(class_weights, task, num_classes)
        optimizer_factory = _named_factory(OPTIMIZERS, optimizer, "model.optimizer")
        scheduler_factory = _named_factory(SCHEDULERS, lr_scheduler, "model.lr_scheduler")
        if freeze not in FREEZE:
            raise ZooError(f"model.freeze must be backbone or none (null); got {freeze!r}.")
        if not isinstance(monitor, str) or not monitor:
            raise ZooError(
                f"model.monitor must be the name of a metric validation logs, e.g. 'val/loss'; "
                f"got {monitor!r}."
            )
        if vocab is not None:
            if not isinstance(vocab, str) or not vocab:
                raise ZooError(f"model.vocab must be a non-empty string of characters; got {vocab!r}.")
            repeated = sorted({c for c in vocab if vocab.count(c) > 1})
            if repeated:
                raise ZooError(f"model.vocab lists these characters more than once: {repeated}.")
        self.save_hyperparameters()
        for key, given, factory in (
            ("optimizer", optimizer, optimizer_factory),
            ("lr_scheduler", lr_scheduler, scheduler_factory),
        ):
            if isinstance(given, str):  # a registered name: kept as its class path (see _stored_name)
                self.hparams[key] = _stored_name(factory)
        # injected callables and loss objects can't be stored as plain data; the CLI stores their
        # config instead (so they come back on load_from_checkpoint), Python users pass them again
        unplain = [k for k, v in self.hparams.items() if not _is_plain(v)]
        self.remove_ignored_hparams(unplain)
        self._given_objects = unplain  # see on_save_checkpoint
        self._stored_optimizer: str | None = None  # the optimizer a checkpoint being resumed trained with
        self._unstored: tuple[str, list[str]] = ("", [])  # (checkpoint, what it lacks): see on_fit_start

        self.task = task
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.target_stats = tuple(target_stats) if target_stats is not None and task == "regression" else None
        self.vocab = vocab
        self.optimizer = optimizer_factory
        self.lr_scheduler = scheduler_factory
        self.l1_lambda = l1_lambda
        self.decay_bias_and_norm = decay_bias_and_norm
        self.monitor = monitor
        #: compile the network at setup (the ``compile`` argument; ``nn.Module.compile`` is a method)
        self.compile_network = compile
        self.init_from = init_from
        #: what ``freeze`` keeps from learning (not ``self.freeze``: LightningModule.freeze is a method)
        self.frozen_part = None if freeze == "none" else freeze
        self._initialized = False  # init_from is loaded once, by the first Trainer that sets us up
        self._frozen: list[nn.Module] = []
        #: how raw inputs become this model's inputs and its outputs labels: set from the
        #: DataModule when training starts, from the checkpoint when loaded (see zoo.inference)
        self.preprocessing: dict[str, Any] | None = None
        self.loss_fn = self._build_loss(loss, label_smoothing, pos_weight, class_weights)
        self._loss_checked = False  # see _first_loss
        #: outputs are an embedding (a pairwise loss trained them), not class scores: its metric is
        #: the nearest-neighbour accuracy, and it predicts no classes
        self.embeds = isinstance(self.loss_fn, ContrastiveLoss)
        self.train_metrics = self._build_train_metrics()
        # train/loss every log_every_n_steps: a sum on the device, logged as the window's mean
        self._loss_window: torch.Tensor | None = None
        self._loss_window_steps = 0
        # (loss, step, epoch) of the training steps not yet checked, under defers_finite_check
        self._unchecked_losses: list[tuple[torch.Tensor, int, int]] = []
        self.val_metrics = self._build_metrics("val/")
        self.test_metrics = self._build_metrics("test/")
        if self.input_shape is not None:
            self.example_input_array = torch.zeros(2, *self.input_shape)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> ZooModule:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``, which also rebuilds the stored subclass when called
        on a base class: ``ZooModule.load_from_checkpoint(path)`` returns the user's ``TheirModel``
        (the class is recorded by the CLI and by :meth:`on_save_checkpoint`).

        Loading a file runs no new code: it is read with ``weights_only=True``, only an already
        imported subclass of ``cls`` is used, and a file whose stored configuration names classes
        outside the zoo, torch, lightning and torchmetrics (and not already imported) is refused
        with :class:`~zoo.errors.ZooError` before anything imports them.
        """
        if not isinstance(checkpoint_path, (str, os.PathLike)):
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        checkpoint = read_checkpoint(checkpoint_path, option="checkpoint")
        check_named_classes(checkpoint, checkpoint_path, option="checkpoint")
        if cls is ZooModule:  # only the file says which model to build
            check_zoo_model(checkpoint, checkpoint_path, option="checkpoint")
        else:  # ConvNet.load_from_checkpoint of an MLP's file: name the class that loads it
            check_model_class(cls, checkpoint, checkpoint_path, "checkpoint")
        target = _stored_subclass(cls, checkpoint)
        hparams = checkpoint.get("hyper_parameters")
        unstored = [name for name in checkpoint.get(UNSTORED_KEY) or [] if name not in kwargs]
        del checkpoint
        if target is not cls:
            return target.load_from_checkpoint(checkpoint_path, *args, **kwargs)
        overrides = {k: v for k, v in kwargs.items() if k not in _LOAD_OPTIONS}
        if overrides:
            # the caller's own hyper-parameter overrides: their errors are the caller's, not the file's
            try:
                check_arguments(cls, overrides, (*init_arguments(cls), *_LOAD_OPTIONS))
            except ZooError as err:
                raise ZooError(f"{_override_call(cls, overrides)}: {err}") from None
            try:
                model = super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
            except (TypeError, ValueError, argparse.ArgumentError) as err:
                problem = _override_error(cls, overrides, err)
                if problem is err:
                    raise
                raise problem from None
            model._unstored = (str(checkpoint_path), unstored)
            return model
        with loading_errors(checkpoint_path, "checkpoint", hparams):
            model = super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        model._unstored = (str(checkpoint_path), unstored)  # said if it is trained on (on_fit_start)
        return model

    def setup(self, stage: str) -> None:
        # Lightning's model summary runs ``example_input_array`` through the unwrapped module. Under a
        # sharding strategy that forward calls the wrapped blocks outside their root, which breaks
        # FSDP's lazy initialisation ("Non-root FSDP instance's `_is_root` should not have been set")
        # at the first real step, so the summary lists no shapes there.
        if isinstance(self.trainer.strategy, (FSDPStrategy, ModelParallelStrategy)):
            self.example_input_array = None
        if self.init_from and not self._initialized and self.trainer.ckpt_path is None:
            self.load_weights_from(self.init_from)
        self._initialized = True
        if self.frozen_part == "backbone" and not self._frozen:
            self.freeze_backbone()
        if self.compile_network:
            self._compile_in_place()

    # ------------------------------------------------------------------ fine-tuning

    def output_head(self) -> nn.Module | None:
        """The layers that turn features into outputs (``self.net.head``): what a new number of
        classes replaces and what ``freeze="backbone"`` trains. ``None`` where the network has no
        separate head (a GPT's output layer shares the token embedding's weight)."""
        head = getattr(getattr(self, "net", None), "head", None)
        return head if isinstance(head, nn.Module) else None

    def load_weights_from(
        self, source: str | os.PathLike, option: str = "model.init_from"
    ) -> dict[str, list[str]]:
        """Copy trained weights into this model: ``pretrained:NAME``, a ``.safetensors`` file of
        ``zoo export`` or a ``.ckpt``, read without pickle.

        Every tensor of the same name and shape is copied. Tensors of the output head whose shape
        differs (another number of classes) keep their fresh initialization; a shape that differs
        anywhere else means another architecture, and is refused naming the first such tensor, as
        is a source that shares no tensor with this model. Returns the names ``loaded``, ``fresh``
        (the model's, not in the source or of another shape) and ``unused`` (the source's), and
        says on rank 0 what stayed fresh.
        """
        from lightning.pytorch.utilities import rank_zero_info

        from zoo.pretrained import read_weights

        source_weights = read_weights(source, option=option)
        own = self.state_dict()
        head = self.output_head()
        head_names = {
            f"{name}.{key}" for name, m in self.named_modules() if m is head for key in head.state_dict()
        }
        loaded, fresh = {}, []
        for key, tensor in own.items():
            theirs = source_weights.get(key)
            if theirs is None:
                fresh.append(key)
            elif tuple(theirs.shape) != tuple(tensor.shape):
                if key not in head_names:
                    raise ZooError(
                        f"{option}: {source} does not fit this {type(self).__name__}: {key} is "
                        f"{list(theirs.shape)} there and {list(tensor.shape)} here (only the output head "
                        "may differ, for another number of classes); build the model as it was trained."
                    )
                fresh.append(key)
            else:
                loaded[key] = theirs
        if not loaded:
            raise ZooError(
                f"{option}: {source} holds none of this {type(self).__name__}'s weights (none of its "
                f"{len(source_weights)} tensors is named as one of this model's {len(own)}); is it another "
                "kind of model?"
            )
        self.load_state_dict(loaded, strict=False)
        # tied weights (a GPT's output layer is its token embedding) came with the tensor they share
        shared = {t.data_ptr() for k, t in self.state_dict().items() if k in loaded}
        fresh = [k for k in fresh if own[k].data_ptr() not in shared]
        unused = sorted(set(source_weights) - set(own))
        if fresh:
            rank_zero_info(f"{option}: {len(loaded)} tensors from {source}; fresh: {', '.join(fresh)}")
        else:
            rank_zero_info(f"{option}: all {len(loaded)} tensors from {source}")
        return {"loaded": sorted(loaded), "fresh": fresh, "unused": unused}

    def freeze_backbone(self) -> None:
        """Train the output head alone: every other parameter stops learning, and every other layer
        stays in eval mode (see :meth:`train`)."""
        head = self.output_head()
        name = type(self).__name__
        if head is None and self.shared_output_layer:
            raise ZooError(
                f"model.freeze backbone: a {name} has no separate output head to train "
                "alone (its output layer shares weights with its input); fine-tune it whole."
            )
        if head is None:
            net = getattr(self, "net", None)
            where = "no self.net.head" if isinstance(net, nn.Module) else "no self.net"
            raise ZooError(
                f"model.freeze backbone trains the model's output head alone, which output_head() returns "
                f"(self.net.head by default); this {name} has {where}: name its output layer "
                f"self.net.head, or override {name}.output_head() to return it."
            )
        in_head = {id(p) for p in head.parameters()}
        for p in self.parameters():
            if id(p) not in in_head:
                p.requires_grad_(False)
        # the layers outside the head run in eval mode; the head and the modules holding it do not
        net = getattr(self, "net", None)
        root = net if isinstance(net, nn.Module) else self
        named = dict(root.named_modules())
        path = next((n for n, m in named.items() if m is head), "").split(".")
        holders = {".".join(path[:i]) for i in range(len(path))}  # "" (the root) and the head's parents
        keep = {id(m) for m in head.modules()} | {id(named[n]) for n in holders if n in named}
        self._frozen = [m for m in root.modules() if id(m) not in keep]
        self.train(self.training)

    #: whether the output layer shares its weights with the input (a GPT's is its token embedding):
    #: then there is no separate head for ``freeze="backbone"`` to train
    shared_output_layer: bool = False

    def train(self, mode: bool = True) -> ZooModule:
        """``nn.Module.train``, except that the layers of a frozen backbone stay in eval mode."""
        super().train(mode)
        for module in getattr(self, "_frozen", ()):
            module.training = False
        return self

    def _compile_in_place(self) -> None:
        """Compile the network's ``__call__`` (``nn.Module.compile``): unlike ``torch.compile(net)``
        it keeps the module and its parameter names, so checkpoints load in eager models alike."""
        net = getattr(self, "net", None)
        target = net if isinstance(net, nn.Module) else self
        if target._compiled_call_impl is None:
            target.compile()
        # the summary's forward on a batch of two would compile a graph for that shape first
        self.example_input_array = None

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # under FSDP the gradient norm spans every rank's shard: Lightning's precision plugin refuses
        # to clip it ("not supported for FSDPPrecision"), FSDP's own clip_grad_norm_ reduces it first
        sharded = isinstance(self.trainer.strategy, FSDPStrategy)
        if sharded and gradient_clip_val and (gradient_clip_algorithm or "norm") == "norm":
            self.trainer.model.clip_grad_norm_(gradient_clip_val)
            return
        # a fused optimizer (the recipes' AdamW(fused=True)) unscales fp16 gradients inside its own
        # step, so Lightning's mixed-precision plugin refuses to clip before it, bf16 included; but
        # bf16 has no gradient scaler: its gradients are the true ones and are clipped as they are
        plugin = self.trainer.precision_plugin
        if gradient_clip_val and isinstance(plugin, MixedPrecision) and _unscales_in_step(optimizer):
            if plugin.scaler is None:
                algorithm = GradClipAlgorithmType(gradient_clip_algorithm or "norm")
                Precision.clip_gradients(plugin, optimizer, gradient_clip_val, algorithm)
                return
            raise ZooError(
                f"trainer.gradient_clip_val: {type(optimizer).__name__}(fused=True) unscales 16-bit "
                "gradients inside its step, so they cannot be clipped before it; use --trainer.precision "
                "bf16-mixed, or --model.optimizer.fused false, or no --trainer.gradient_clip_val."
            )
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"
        # objects built in Python (a loss module, an optimizer factory) are not stored; the CLI stores
        # their config: which ones a load must be given again (load_from_checkpoint warns)
        stored = checkpoint.get("hyper_parameters") or {}
        checkpoint[UNSTORED_KEY] = [name for name in self._given_objects if name not in stored]
        if self._trainer is None:
            return
        if self.trainer.optimizers:  # a resume with another optimizer would fail loading its state
            optimizer = type(self.trainer.optimizers[0])
            checkpoint[OPTIMIZER_KEY] = f"{optimizer.__module__}.{optimizer.__qualname__}"
        self._check_finite_so_far()  # never write weights a non-finite loss has spoiled
        # what an exact resume needs beyond Lightning's own state: every rank's random generators
        # (dropout) and the data's (augmentation); gathered, since rank 0 alone writes the file
        local = rng_state()
        data = getattr(self.trainer, "datamodule", None)
        if hasattr(data, "random_state"):
            local["data"] = data.random_state()
        # set from the DataModule at fit start (or from the checkpoint this model came from)
        facts = self.preprocessing
        if facts is None and hasattr(data, "preprocessing"):
            facts = data.preprocessing()
        if facts is not None:
            checkpoint[PREPROCESSING_KEY] = facts
        if self._mid_training_epoch():
            # the epoch's train metrics so far, so that the resumed epoch's row counts every batch
            local["train_metrics"] = _metric_states(self.train_metrics)
            window = None if self._loss_window is None else self._loss_window.cpu()
            local["loss_window"] = (window, self._loss_window_steps)
        checkpoint[RNG_KEY] = gather_objects(local, self.trainer.world_size)

    def _mid_training_epoch(self) -> bool:
        trainer = self.trainer
        if trainer.state.fn != TrainerFn.FITTING:
            return False
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return 0 < done < trainer.num_training_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._saved_rng = checkpoint.get(RNG_KEY)
        self._stored_optimizer = checkpoint.get(OPTIMIZER_KEY)
        #: how raw inputs become this model's inputs, and outputs labels (see :mod:`zoo.inference`)
        self.preprocessing = checkpoint.get(PREPROCESSING_KEY)

    _quiet_eval_warning: Any = None

    def _hush_eval_mode_warning(self) -> None:
        """Lightning warns of every module in eval mode as training starts; a frozen backbone's are
        meant to be. Hushed from fit start until :meth:`on_train_start` (the warning comes between),
        not for the rest of the process."""
        if self._frozen and self._quiet_eval_warning is None:
            self._quiet_eval_warning = warnings.catch_warnings()
            self._quiet_eval_warning.__enter__()
            warnings.filterwarnings(
                "ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training"
            )

    def _restore_warnings(self) -> None:
        quiet, self._quiet_eval_warning = self._quiet_eval_warning, None
        if quiet is not None:
            quiet.__exit__(None, None, None)

    def teardown(self, stage: str) -> None:
        self._restore_warnings()  # had fit stopped before training started

    def on_train_start(self) -> None:
        self._restore_warnings()
        """When resuming (``fit(ckpt_path=...)``), put back the random generators of this rank as
        they were when the checkpoint was written, so the run goes on as if never stopped."""
        self._unchecked_losses = []
        self._restore_loader_positions()
        states, self._saved_rng = getattr(self, "_saved_rng", None), None
        if not states or self.trainer.ckpt_path is None:
            return
        if len(states) != self.trainer.world_size:
            rank_zero_warn(
                f"the checkpoint holds the random states of {len(states)} processes, this run has "
                f"{self.trainer.world_size}: it resumes, but not bit for bit."
            )
            return
        state = states[self.trainer.global_rank]
        set_rng_state(state)
        data = getattr(self.trainer, "datamodule", None)
        if "data" in state and hasattr(data, "set_random_state"):
            data.set_random_state(state["data"])
        if "train_metrics" in state:
            _set_metric_states(self.train_metrics, state["train_metrics"], self.device)
        if "loss_window" in state:  # the steps since train/loss was last logged
            window, self._loss_window_steps = state["loss_window"]
            self._loss_window = None if window is None else window.to(self.device)

    def _restore_loader_positions(self) -> None:
        # Lightning hands the saved loader positions to the training loaders when it first builds
        # them; if ``trainer.estimated_stepping_batches`` was read before the checkpoint was
        # restored (per-step schedules read it in configure_optimizers), the loaders were built
        # then and the positions are never handed over (Lightning issue 20550). Hand them over
        # here: still before the first batch, and the zoo's loaders start iterating only then.
        loop = self.trainer.fit_loop
        if loop.restarting and getattr(loop, "_combined_loader_states_to_load", None):
            loop._load_combined_loader_states()

    # ------------------------------------------------------------------ construction helpers

    @property
    def num_outputs(self) -> int:
        """Width of the network's output layer for this task."""
        return self.num_classes if self.task == "multiclass" else 1

    @property
    def num_inputs(self) -> int:
        """Number of input features (the product of ``input_shape``)."""
        if self.input_shape is None:
            raise ZooError("model.input_shape is not set: pass it, or let the CLI take it from the data.")
        return math.prod(self.input_shape)

    def _build_loss(
        self,
        loss: nn.Module | str,
        label_smoothing: float,
        pos_weight: float | None,
        class_weights: Sequence[float] | None = None,
    ) -> nn.Module:
        given = (
            ("label_smoothing", label_smoothing),
            ("pos_weight", pos_weight),
            ("class_weights", class_weights),
        )
        options = {k: v for k, v in given if v}  # the ones set: 0 and None are their defaults
        if isinstance(loss, type) and issubclass(loss, nn.Module):
            path = _loss_class_name(loss)
            raise ZooError(
                f"model.loss is the class {path}: pass an instance, {path}(), or a loss name "
                f"({', '.join(LOSSES.list())})."
            )
        if not isinstance(loss, (str, nn.Module)):
            raise ZooError(
                f"model.loss must be a loss name ({', '.join(LOSSES.list())}), a class path such as "
                f"'torch.nn.HuberLoss', or a loss module such as torch.nn.HuberLoss(); got {loss!r}."
            )
        if isinstance(loss, nn.Module):
            if options:
                raise ZooError(
                    f"model.{next(iter(options))} applies to the loss the model builds; with a loss module "
                    f"given ({type(loss).__name__}), set it on that module and unset this one "
                    f"({_UNSET[next(iter(options))]})."
                )
            return loss
        if "." in loss:  # a class path given as a string: the class with its default arguments
            return _loss_from_class_path(loss, options)
        name = (
            {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}[self.task]
            if loss == "auto"
            else loss
        )
        if name not in LOSSES:
            raise ZooError(LOSSES.unknown_message(name, option="model.loss"))
        name = name.lower()
        allowed = _LOSS_TASKS.get(name)
        if allowed is not None and self.task not in allowed:
            raise ZooError(
                f"model.loss {name!r} is for {'/'.join(sorted(allowed))} tasks, not {self.task!r}."
            )
        takes = {
            "cross_entropy": ("label_smoothing", "class_weights"),
            "bce": ("label_smoothing", "pos_weight"),
        }.get(name, ())
        refused = next((option for option in options if option not in takes), None)
        if refused is not None:
            users = {
                "label_smoothing": "cross_entropy and bce",
                "pos_weight": "bce (binary tasks)",
                "class_weights": "cross_entropy (multiclass tasks)",
            }[refused]
            raise ZooError(
                f"model.{refused} applies to the {users} losses; this model's loss is {name!r} "
                f"(task {self.task!r}): unset it ({_UNSET[refused]})."
            )
        if name == "bce":
            return BCEWithLogits(pos_weight=pos_weight, label_smoothing=label_smoothing)
        return create_loss(name, **_loss_arguments(options))

    def _build_train_metrics(self) -> torchmetrics.MetricCollection:
        """The epoch's mean training loss and accuracy (or mean squared error), as running sums
        that cost a few tensor operations a step (see :mod:`zoo.metrics`)."""
        from torchmetrics import regression as R

        from zoo.metrics import NearestNeighbourAccuracy, RunningAccuracy, RunningMean

        metrics: dict[str, torchmetrics.Metric] = {"loss": RunningMean()}
        if self.task == "regression":
            metrics["mse"] = R.MeanSquaredError()
        elif self.embeds:
            metrics["nn_acc"] = NearestNeighbourAccuracy()
        else:
            metrics["acc"] = RunningAccuracy(self.task)
        return torchmetrics.MetricCollection(metrics, prefix="train/", compute_groups=False)

    def _build_metrics(self, prefix: str, full: bool = True) -> torchmetrics.MetricCollection:
        from torchmetrics import classification as C
        from torchmetrics import regression as R

        if self.embeds:
            from zoo.metrics import NearestNeighbourAccuracy

            metrics = {"nn_acc": NearestNeighbourAccuracy()}
        elif self.task == "multiclass":
            metrics = {"acc": C.MulticlassAccuracy(self.num_classes, average="micro")}
            if full:
                metrics["f1"] = C.MulticlassF1Score(self.num_classes, average="macro")
        elif self.task == "binary":
            metrics = {"acc": C.BinaryAccuracy()}
            if full:
                metrics["f1"] = C.BinaryF1Score()
                metrics["auroc"] = C.BinaryAUROC()
        else:
            metrics = {"mse": R.MeanSquaredError()}
            if full:
                metrics["mae"] = R.MeanAbsoluteError()
                metrics["r2"] = R.R2Score()
        return torchmetrics.MetricCollection(metrics, prefix=prefix)

    # ------------------------------------------------------------------ the steps

    def shape_outputs(self, outputs: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Bring raw network outputs to the targets' layout (``(N, 1)`` -> ``(N,)`` for one output;
        without ``targets``, one target per example is assumed)."""
        target_ndim = 1 if targets is None else targets.ndim
        if self.task != "multiclass" and outputs.ndim == target_ndim + 1 and outputs.shape[-1] == 1:
            return outputs.squeeze(-1)
        return outputs

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The data loss (what ``train/loss``, ``val/loss`` and ``test/loss`` report); the L1
        penalty is a training term, added in :meth:`training_step`."""
        if self.task == "binary":
            targets = targets.float()
        elif self.target_stats is not None:
            mean, std = self.target_stats
            targets = (targets - mean) / std
        if self._loss_checked:
            return self.loss_fn(outputs, targets)
        return self._first_loss(outputs, targets)

    def _first_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The first batch's loss, with a loss that cannot take this model's outputs and targets
        (``torch.nn.MSELoss`` on class ids, ``HuberLoss(delta=0)``, ``reduction="none"``) refused
        in one line naming ``model.loss``; it failed deep in the first step, leaving a run folder."""
        name = type(self.loss_fn).__name__
        shapes = (
            f"outputs of shape {list(outputs.shape)} ({str(outputs.dtype).removeprefix('torch.')}) and "
            f"targets of shape {list(targets.shape)} ({str(targets.dtype).removeprefix('torch.')})"
        )
        try:
            loss = self.loss_fn(outputs, targets)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ZooError(
                f"model.loss {name} cannot take this {self.task} model's {shapes}: {first}"
            ) from err
        if not torch.is_tensor(loss) or loss.numel() != 1:
            shape = list(loss.shape) if torch.is_tensor(loss) else type(loss).__name__
            raise ZooError(
                f"model.loss {name} returns {shape} for {shapes}, not one number; give it reduction='mean'."
            )
        self._loss_checked = True
        return loss

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """What the metrics see: class probabilities, the positive-class probability, or values
        (an embedding model's outputs as they are)."""
        if self.embeds:
            return outputs
        if self.task == "multiclass":
            return outputs.softmax(-1)
        if self.task == "binary":
            return outputs.sigmoid()
        if self.target_stats is not None:
            mean, std = self.target_stats
            return outputs * std + mean
        return outputs

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        outputs = self.shape_outputs(self(x), y)
        loss = self.compute_loss(outputs, y)
        if stage == "train":
            self._track_training(outputs.detach(), y, loss.detach())
            return loss
        self._stage_metrics(stage).update(self.predictions(outputs.detach()), y)
        # epoch values are reduced over ranks (a weighted mean), so every rank's callbacks agree
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    def _track_training(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        """Update the epoch's training metrics and, every ``log_every_n_steps``, log ``train/loss``
        as the mean since the last log. Calling ``self.log`` (about a millisecond of Lightning's
        work) only then keeps a small model's step close to a hand-written loop's."""
        metrics = self.train_metrics
        metrics["loss"].update(loss)
        if self.task == "regression":
            metrics["mse"].update(self.predictions(outputs), targets)
        else:
            metrics["nn_acc" if self.embeds else "acc"].update(outputs, targets)
        self._loss_window = loss if self._loss_window is None else self._loss_window + loss
        self._loss_window_steps += 1
        trainer = self._trainer
        if trainer is not None and trainer._logger_connector.should_update_logs:
            mean = self._loss_window / self._loss_window_steps
            self._loss_window, self._loss_window_steps = None, 0
            self.log("train/loss", mean, on_step=True, on_epoch=False, prog_bar=True)

    def _stage_metrics(self, stage: str) -> torchmetrics.MetricCollection:
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def _log_epoch_metrics(self, stage: str) -> None:
        """Log the stage's metrics over the whole epoch, once, and reset them.

        Updating every step but logging once per epoch keeps Lightning's logging (about a
        millisecond per ``self.log`` call) out of the per-step path.
        """
        metrics = self._stage_metrics(stage)
        if not any(m.update_called for m in metrics.values()):
            return
        # compute() gathers the states of every rank; sync_dist only tells Lightning so (the
        # values are already equal on all ranks, so its mean over ranks changes nothing)
        self.log_dict(metrics.compute(), prog_bar=stage != "train", sync_dist=True)
        # fresh states made outside inference mode stay updatable by a later fit (whose validation
        # runs under no_grad) after trainer.validate or trainer.test (which run under inference mode)
        with torch.inference_mode(False):
            metrics.reset()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        if self.l1_lambda:
            loss = loss + self.l1_lambda * l1_penalty(self, self.decay_bias_and_norm)
        self._stop_if_not_finite(loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_fit_start(self) -> None:
        """Under several processes, give each rank its own random stream (dropout and other
        random layers): ``seed_everything`` seeds every rank alike, so each would otherwise drop
        the same units. The weights were already made equal by the strategy (DDP broadcasts them)."""
        world = self.trainer.world_size
        if world > 1:
            torch.manual_seed(derive_seed(torch.initial_seed(), self.trainer.global_rank, world))
        path, unstored = self._unstored
        if unstored:
            given = ", ".join(f"{name}=..." for name in unstored)
            warnings.warn(
                f"this {type(self).__name__} was loaded from {path}, which does not hold its "
                f"{', '.join(unstored)} (given as Python objects, they are not stored): it trains with the "
                f"defaults; pass them again: {type(self).__name__}.load_from_checkpoint(path, {given}).",
                stacklevel=2,
            )
        data = getattr(self.trainer, "datamodule", None)
        self._check_fits_data(data)
        self._hush_eval_mode_warning()
        if hasattr(data, "preprocessing"):
            self.preprocessing = data.preprocessing()

    #: what a zoo DataModule tells a model about itself (``zoo train`` links them)
    DATA_FACTS = ("task", "num_classes", "input_shape", "vocab")

    def _check_fits_data(self, data: Any) -> None:
        """Raise :class:`ZooError` when the model was built for other data than ``data`` describes
        (built by hand from Python): 5 outputs trained on 3 classes would train silently and
        predict labels that do not exist; 2 outputs for 3 classes fail deep in the loss."""
        for name in self.DATA_FACTS:
            ours, theirs = getattr(self, name, None), getattr(data, name, None)
            if ours is None or theirs is None or callable(theirs):
                continue
            if name == "input_shape":
                ours, theirs = tuple(ours), tuple(theirs)
            if ours != theirs:
                shown = (lambda v: f"{len(v)} characters") if name == "vocab" else repr
                raise ZooError(
                    f"{type(self).__name__}.{name} is {shown(ours)}, but the data ({type(data).__name__}) "
                    f"gives {shown(theirs)}: build the model from the data's facts ({name}=data.{name}), "
                    "as zoo train does."
                )

    # ------------------------------------------------------------------ use

    def predict(self, inputs: Any, batch_size: int = 1024) -> np.ndarray:
        """Predictions for raw inputs, in the user's terms: class labels as trained (strings stay
        strings) or values in the target's units.

        ``inputs``: for tables, a mapping or DataFrame of columns (matched by name; others are
        ignored), or an array/tensor/list of rows in the training data's column order; for
        images, image file paths, a folder, or uint8 arrays ``(N, C, H, W)``. The scaling and
        normalization of the training data are applied here (``self.preprocessing``, stored in
        every zoo checkpoint); see :mod:`zoo.inference`.
        """
        return self._predictor(batch_size, lambda p: p.predict(inputs))

    def predict_proba(self, inputs: Any, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities ``(N, K)`` for raw inputs, columns in the order of the classes."""
        return self._predictor(batch_size, lambda p: p.predict_proba(inputs))

    def _predictor(self, batch_size: int, use: Any) -> np.ndarray:
        was_training = self.training
        try:
            return use(Predictor(self, batch_size=batch_size))
        finally:
            self.train(was_training)

    @property
    def defers_finite_check(self) -> bool:
        """Whether the non-finite-loss check is read back at sync points rather than every step.

        On the CPU reading a flag costs nothing, so every step is checked before its backward pass
        and no weight is ever spoiled. On an accelerator, reading it every step would make the host
        wait for the device at each step (the queue of work drains: on a GPU, the largest
        per-step cost of a small model). There each step only keeps a reference to its loss (no
        device work, no wait), and the kept losses are read back together where the loop waits
        anyway or where it must not go on with spoiled weights: every ``log_every_n_steps`` (and
        every :attr:`MAX_UNCHECKED_STEPS` at most), before validation, before a checkpoint is
        written and at the end of each epoch. The run then stops a few steps after the first
        non-finite loss, names that step, and no checkpoint holds the weights it spoiled.
        """
        return self.device.type != "cpu"

    def _stop_if_not_finite(self, loss: torch.Tensor) -> None:
        """Raise :class:`~zoo.errors.NonFiniteLossError` for a NaN or infinite training loss (on any
        rank), before the backward pass and the optimizer step could spoil the weights; or, when
        :attr:`defers_finite_check`, note the step's loss for :meth:`_check_finite_so_far`."""
        loss = loss.detach()
        trainer = self.trainer
        if not self.defers_finite_check:
            # a scalar's item() takes a microsecond on the CPU, torch.isfinite(loss).all() twenty
            value = loss.item() if loss.numel() == 1 else None
            finite = math.isfinite(value) if value is not None else bool(torch.isfinite(loss).all())
            if not finite or trainer.world_size > 1:  # ranks decide together, every step
                self._raise_if_not_finite(finite, (value, trainer.global_step, self.current_epoch))
            return
        # keep the step's loss tensor for the next sync point: no device work now (a GPU step of a
        # small model is bound by kernel launches), one batched read-back there
        unchecked = self._unchecked_losses
        unchecked.append((loss, trainer.global_step, self.current_epoch))
        if len(unchecked) >= self.MAX_UNCHECKED_STEPS or trainer._logger_connector.should_update_logs:
            self._check_finite_so_far()

    #: the most training steps whose losses wait unread under :attr:`defers_finite_check`
    MAX_UNCHECKED_STEPS = 256

    def _check_finite_so_far(self) -> None:
        """Read back the deferred check (one host-device sync) and stop if a loss was not finite."""
        unchecked = self._unchecked_losses
        if not unchecked or self._trainer is None:
            return
        self._unchecked_losses = []
        losses = [loss for loss, _, _ in unchecked]
        finite = torch.isfinite(torch.cat([loss.reshape(-1) for loss in losses])).tolist()
        end = 0
        for loss, step, epoch in unchecked:
            start, end = end, end + loss.numel()
            if not all(finite[start:end]):
                value = float(loss) if loss.numel() == 1 else None
                self._raise_if_not_finite(False, (value, step, epoch))
        self._raise_if_not_finite(True, (None, -1, -1))

    def _raise_if_not_finite(self, finite: bool, where: tuple[float | None, int, int]) -> None:
        seen_here = not finite
        if self.trainer.world_size > 1:  # every rank stops together, or the others would wait forever
            finite = not self.trainer.strategy.reduce_boolean_decision(seen_here, all=False)
        if finite:
            return
        value, step, epoch = where
        last = getattr(self.trainer.checkpoint_callback, "last_model_path", "")
        kept = f"; the last good checkpoint is {last}" if last else ""
        if seen_here:
            shown = "not finite" if value is None else value
        else:  # this rank's own losses were finite: its step is as close as it can tell
            shown, step, epoch = "not finite on another process", self.trainer.global_step, self.current_epoch
        raise NonFiniteLossError(
            f"the training loss is {shown} at step {step} (epoch {epoch}): "
            "training diverged and stopped. Lower the learning rate (--model.optimizer.lr) or clip "
            f"gradients (--trainer.gradient_clip_val 1.0){kept}."
        )

    def on_train_epoch_end(self) -> None:
        self._check_finite_so_far()
        self._log_epoch_metrics("train")

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == TrainerFn.FITTING:
            self._check_finite_so_far()  # validating spoiled weights would only waste the time

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.predictions(self.shape_outputs(self(x)))

    # ------------------------------------------------------------------ optimization

    @property
    def lr(self) -> float | None:
        """A learning rate that overrides the optimizer's (``None``: the optimizer's own). Lightning's
        learning-rate finder (``Tuner.lr_find(update_attr=True)``, :class:`~lightning.pytorch.callbacks.
        LearningRateFinder`) sets it; the optimizer lives in an injected callable, so this is where a
        found rate goes. Setting it scales every parameter group and the schedule's base rates of an
        optimizer that already exists, and :meth:`configure_optimizers` applies it to later ones."""
        return self._lr_override

    @lr.setter
    def lr(self, value: float | None) -> None:
        if value is not None and not (is_number(value) and 0 <= value < math.inf):
            # torch refuses such rates when it builds an optimizer; set here they went straight into
            # the parameter groups, and training diverged
            raise ZooError(
                f"model.lr must be a finite number >= 0 (a learning rate), or None for the optimizer's "
                f"own; got {value!r}."
            )
        self._lr_override = None if value is None else float(value)
        trainer = self._trainer
        if value is None or trainer is None:
            return
        for optimizer in trainer.optimizers:
            _rescale_rates(optimizer, float(value))
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if getattr(scheduler, "base_lrs", None):
                scheduler.base_lrs = _proportional(scheduler.base_lrs, float(value))

    _lr_override: float | None = None

    def configure_optimizers(self) -> Any:
        with _refused_arguments("model.optimizer"):
            optimizer = self.optimizer(param_groups(self, self.decay_bias_and_norm))
        stored, built = self._stored_optimizer, f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
        resuming = self._trainer is not None and getattr(self.trainer, "ckpt_path", None) is not None
        if stored and resuming and stored != built:
            raise ZooError(
                f"ckpt_path: {self.trainer.ckpt_path} holds the state of a {stored} optimizer, but this "
                f"model builds a {built}: resume with the optimizer it trained with (model.optimizer; from "
                "Python, load_from_checkpoint(path, optimizer=...)), or train anew from its weights "
                "(model.init_from)."
            )
        if self._lr_override is not None:
            _rescale_rates(optimizer, self._lr_override)
        if self.lr_scheduler is None:
            return optimizer
        with (
            training_horizon(self.trainer.estimated_stepping_batches),
            _refused_arguments("model.lr_scheduler"),
            _run_length_hint(),
        ):
            scheduler = self.lr_scheduler(optimizer)
        if scheduler is None:
            return optimizer
        config: dict[str, Any] = {"scheduler": scheduler, "interval": scheduler_interval(scheduler)}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self._check_plateau_mode(scheduler)
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _check_plateau_mode(self, scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau) -> None:
        """torch's plateau schedule waits for its metric to fall (``mode="min"``) unless told
        otherwise: on ``val/acc`` it cut the rate while accuracy rose."""
        from zoo.runs import HIGHER_IS_BETTER, LOWER_IS_BETTER

        name = str(self.monitor).rpartition("/")[2]
        want = "min" if name in LOWER_IS_BETTER else "max" if name in HIGHER_IS_BETTER else None
        if want is not None and scheduler.mode != want:
            way = "falls" if want == "min" else "rises"
            raise ZooError(
                f"model.monitor {self.monitor} improves as it {way}, but the plateau schedule's mode is "
                f"{scheduler.mode} (torch's default is min): add --model.lr_scheduler.mode {want}."
            )
