"""Convolutional image models: a VGG-style ConvNet, the CIFAR ResNet and a speed-record style net.

Each takes ``(N, C, H, W)`` images (flat ``(N, C*H*W)`` rows are reshaped to ``input_shape``),
and with ``channels_last=True`` keeps its weights and inputs in ``torch.channels_last`` memory
format, which is faster for convolutions on GPUs with tensor cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.models.base import ZooModule, check_base_arguments, check_sizes, is_integer, require_number
from zoo.nn import conv as zconv
from zoo.nn.conv import HEADS, NORMS2D, Head, Norm2d
from zoo.nn.layers import INITS, Init, check_elementwise
from zoo.registry import ACTIVATIONS, register_model, register_preset


class _ConvModel(ZooModule):
    """Shared checks and the channels_last handling of the conv models."""

    def _check_options(
        self,
        activation: str,
        norm: str = "batch",
        dropout: float = 0.0,
        init: str = "default",
        widths: Sequence[int] = (1,),
        blocks_per_stage: int = 1,
    ) -> int:
        """Validate the common options; returns the number of input channels."""
        check_sizes(widths, "model.widths", "a non-empty list of positive ints, e.g. [32, 64]", empty=False)
        if not is_integer(blocks_per_stage) or blocks_per_stage < 1:
            raise ZooError(f"model.blocks_per_stage must be an integer >= 1; got {blocks_per_stage!r}.")
        if self.input_shape is None or len(self.input_shape) != 3:
            raise ZooError(
                "model.input_shape must be 3-D (channels, height, width) for a conv model, "
                f"e.g. [3, 32, 32]; got {list(self.input_shape) if self.input_shape else None}."
            )
        if activation not in ACTIVATIONS:
            raise ZooError(ACTIVATIONS.unknown_message(activation, option="model.activation"))
        check_elementwise(activation, option="model.activation")
        if norm not in NORMS2D:
            raise ZooError(f"model.norm must be one of {', '.join(NORMS2D)}; got {norm!r}.")
        require_number(dropout, "model.dropout", "in [0, 1)")
        if not 0.0 <= dropout < 1.0:
            raise ZooError(f"model.dropout must be in [0, 1); got {dropout}.")
        if init not in INITS:
            raise ZooError(f"model.init must be one of {', '.join(INITS)}; got {init!r}.")
        return int(self.input_shape[0])

    @property
    def _input_size(self) -> int:
        return int(min(self.input_shape[1], self.input_shape[2]))

    def _finish(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x.reshape(x.shape[0], *self.input_shape)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


@register_model("convnet")
class ConvNet(_ConvModel):
    """A VGG-style convolutional net: stages of conv blocks, each stage ending in 2x2 max pooling.

    Args:
        widths: channels of each stage, e.g. ``[32, 64]``.
        blocks_per_stage: conv blocks per stage.
        norm: ``none``, ``batch`` or ``group`` normalization after each conv.
        activation: any elementwise name in ``zoo.registry.ACTIVATIONS`` (not ``softmax``).
        dropout: channel dropout (Dropout2d) after each block.
        residual: add a skip connection around each conv block.
        head: ``avg`` (global average pooling, any input size) or ``flatten`` (the whole last feature
            map, so the classifier sees where each feature is: better for small images such as
            28x28, whose last map is still 7x7 after two stages).
        hidden: widths of fully connected layers (Linear -> activation -> dropout) before the output.
        head_dropout: dropout after each hidden layer.
        channels_last: keep weights and inputs in ``torch.channels_last`` memory format.
        init: weight initialization: ``default`` (PyTorch's), ``kaiming`` or ``xavier``, with the
            gain of ``activation`` (gain 1 for the output layer).
        **kwargs: the task, loss, optimizer and schedule options of :class:`ZooModule`.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64),
        blocks_per_stage: int = 1,
        norm: Norm2d = "batch",
        activation: str = "relu",
        dropout: float = 0.0,
        residual: bool = False,
        head: Head = "avg",
        hidden: Sequence[int] = (),
        head_dropout: float = 0.0,
        channels_last: bool = False,
        init: Init = "default",
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        super().__init__(**kwargs)
        in_channels = self._check_options(activation, norm, dropout, init, widths, blocks_per_stage)
        if head not in HEADS:
            raise ZooError(f"model.head must be one of {', '.join(HEADS)}; got {head!r}.")
        check_sizes(hidden, "model.hidden", "a list of positive ints")
        require_number(head_dropout, "model.head_dropout", "in [0, 1)")
        if not 0.0 <= head_dropout < 1.0:
            raise ZooError(f"model.head_dropout must be in [0, 1); got {head_dropout}.")
        self.net = zconv.ConvNet(
            in_channels,
            self.num_outputs,
            widths=list(widths),
            blocks_per_stage=blocks_per_stage,
            norm=norm,
            activation=activation,
            dropout=dropout,
            residual=residual,
            input_size=(int(self.input_shape[1]), int(self.input_shape[2])),
            head=head,
            hidden=list(hidden),
            head_dropout=head_dropout,
            init=init,
        )
        self._finish(channels_last)


@register_model("resnet")
class ResNet(_ConvModel):
    """The CIFAR ResNet: a stem conv and stages of basic residual blocks (``6n + 2`` layers).

    Args:
        widths: channels of each stage; every stage after the first halves the resolution.
        blocks_per_stage: basic blocks (two convs each) per stage: 1 gives ResNet-8, 3 ResNet-20.
        norm: ``none``, ``batch`` or ``group``.
        activation: any elementwise name in ``zoo.registry.ACTIVATIONS`` (not ``softmax``).
        channels_last: keep weights and inputs in ``torch.channels_last`` memory format.
        init: weight initialization: ``default`` (PyTorch's), ``kaiming`` or ``xavier``, with the
            gain of ``activation`` (gain 1 for the output layer).
        **kwargs: the task, loss, optimizer and schedule options of :class:`ZooModule`.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 2,
        norm: Norm2d = "batch",
        activation: str = "relu",
        channels_last: bool = False,
        init: Init = "default",
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        super().__init__(**kwargs)
        in_channels = self._check_options(
            activation, norm, init=init, widths=widths, blocks_per_stage=blocks_per_stage
        )
        self.net = zconv.ResNet(
            in_channels,
            self.num_outputs,
            widths=list(widths),
            blocks_per_stage=blocks_per_stage,
            norm=norm,
            activation=activation,
            init=init,
        )
        self._finish(channels_last)


@register_model("fast_cifar")
class FastCifarNet(_ConvModel):
    """A wide, shallow net in the style of the CIFAR-10 speed-record nets (hlb-CIFAR10, airbench).

    Args:
        widths: the stem's channels, then one conv + max-pool group per further width.
        activation: any elementwise name in ``zoo.registry.ACTIVATIONS`` (not ``softmax``).
        norm: ``none``, ``batch`` or ``group``.
        logit_scale: the logits are multiplied by this (1/9 as in those nets).
        channels_last: keep weights and inputs in ``torch.channels_last`` memory format.
        init: weight initialization: ``default`` (PyTorch's), ``kaiming`` or ``xavier``, with the
            gain of ``activation`` (gain 1 for the output layer).
        **kwargs: the task, loss, optimizer and schedule options of :class:`ZooModule`.
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 256, 256, 256),
        activation: str = "gelu",
        norm: Norm2d = "batch",
        logit_scale: float = 1 / 9,
        channels_last: bool = False,
        init: Init = "default",
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        super().__init__(**kwargs)
        in_channels = self._check_options(activation, norm, init=init, widths=widths)
        require_number(logit_scale, "model.logit_scale", "> 0")
        if not 0 < logit_scale < float("inf"):
            raise ZooError(f"model.logit_scale must be a finite number > 0; got {logit_scale}.")
        self.net = zconv.FastCifarNet(
            in_channels,
            self.num_outputs,
            widths=list(widths),
            activation=activation,
            norm=norm,
            logit_scale=logit_scale,
            input_size=self._input_size,
            init=init,
        )
        self._finish(channels_last)


resnet8 = register_preset(
    "resnet8",
    ResNet,
    "ResNet-8: widths (16, 32, 64), one basic block per stage.",
    widths=(16, 32, 64),
    blocks_per_stage=1,
)
resnet20 = register_preset(
    "resnet20",
    ResNet,
    "ResNet-20: widths (16, 32, 64), three basic blocks per stage.",
    widths=(16, 32, 64),
    blocks_per_stage=3,
)
