"""Convolutional building blocks and image backbones: plain ``nn.Module``, usable without Lightning.

Every network here takes ``(N, C, H, W)`` images, works in ``channels_last`` memory format too
(only ``flatten`` is used, never ``.view``). All but a ConvNet with ``head="flatten"`` end in
global pooling, so any input size of at least 1x1 gives one output row per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.nn.layers import check_elementwise, init_weights, make_activation

Norm2d = Literal["none", "batch", "group"]
NORMS2D = ("none", "batch", "group")
Pool = Literal["none", "max", "avg"]
POOLS = ("none", "max", "avg")
Head = Literal["avg", "flatten"]
HEADS = ("avg", "flatten")


def make_norm2d(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """Normalization for ``(N, C, H, W)`` activations: ``none``, ``batch`` or ``group``.

    ``group`` is a GroupNorm with the largest number of groups ``<= min(groups, channels)`` that
    divides ``channels`` (so 8 groups for 64 channels, 6 for 6 channels, 4 for 12 with groups=8).
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        g = max(1, min(groups, channels))
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    if kind == "none":
        return nn.Identity()
    raise ZooError(f"Unknown norm {kind!r}. Valid 2-D norms: {', '.join(NORMS2D)}.")


def make_pool2d(kind: str) -> nn.Module:
    """A 2x2, stride-2 pooling layer: ``none`` (identity), ``max`` or ``avg``."""
    if kind == "max":
        return nn.MaxPool2d(2)
    if kind == "avg":
        return nn.AvgPool2d(2)
    if kind == "none":
        return nn.Identity()
    raise ZooError(f"Unknown pool {kind!r}. Valid pools: {', '.join(POOLS)}.")


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Module:
    """Identity when the shapes match, else a bias-free 1x1 conv projection (with ``stride``) + norm."""
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        make_norm2d(norm, out_channels),
    )


class ConvBlock(nn.Module):
    """One convolution with its normalization, activation, optional skip, pooling and dropout.

    The exact order is::

        y = act(norm(conv(x)))          # conv: padding=kernel_size // 2, bias only if norm == "none"
        y = y + skip(x)                 # only with residual=True
        y = dropout2d(pool(y))          # pool: 2x2 stride 2 ("none" = identity); dropout only if > 0

    With ``residual=True`` the skip path is the identity when ``in_channels == out_channels`` and
    ``stride == 1``, else a bias-free 1x1 conv projection (with the same ``stride``) followed by
    the same kind of norm. The skip is added before pooling.

    ``activation`` must act on each value alone (:func:`zoo.nn.layers.check_elementwise`): softmax
    over the last dimension of ``(N, C, H, W)`` would normalize over the image's width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: Norm2d = "batch",
        activation: str = "relu",
        pool: Pool = "none",
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        check_elementwise(activation)
        self.activation = activation
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=norm == "none",
        )
        self.norm = make_norm2d(norm, out_channels)
        self.act = make_activation(activation)
        self.pool = make_pool2d(pool)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.skip: nn.Module | None = _shortcut(in_channels, out_channels, stride, norm) if residual else None

    def reset_weights(self, init: str = "default") -> None:
        """Re-initialize with ``init`` (:func:`zoo.nn.init_weights`): the conv gets the gain of the
        block's activation, the skip projection (added after the activation) the linear gain 1."""
        init_weights(self.conv, init, self.activation)
        if self.skip is not None:
            init_weights(self.skip, init, "identity")

    def main(self, x: torch.Tensor) -> torch.Tensor:
        """The path without skip, pooling and dropout: ``act(norm(conv(x)))``."""
        return self.act(self.norm(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.main(x)
        if self.skip is not None:
            y = y + self.skip(x)
        return self.drop(self.pool(y))


class BasicBlock(nn.Module):
    """The classic ResNet basic block: ``act(bn(conv(act(bn(conv(x))))) + skip(x))``.

    Built from two :class:`ConvBlock` (the second without activation); the first conv carries
    ``stride``; the skip is the identity or a 1x1 conv projection + norm as in :class:`ConvBlock`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: Norm2d = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.block1 = ConvBlock(in_channels, out_channels, stride=stride, norm=norm, activation=activation)
        self.block2 = ConvBlock(out_channels, out_channels, norm=norm, activation="identity")
        self.skip = _shortcut(in_channels, out_channels, stride, norm)
        self.act = make_activation(activation)

    def reset_weights(self, init: str = "default") -> None:
        """Re-initialize with ``init`` (:func:`zoo.nn.init_weights`): every conv gets the gain of the
        activation (the second conv and a projection skip reach it after the sum, as in torchvision)."""
        activation = self.block1.activation
        self.block1.reset_weights(init)
        init_weights(self.block2.conv, init, activation)
        init_weights(self.skip, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.block2(self.block1(x)) + self.skip(x))


def _pair(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``None``, an int (a square side) or ``(H, W)`` as ``(H, W)``."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = (int(v) for v in size)
    return (h, w)


def _init_head(head: nn.Module, init: str, activation: str) -> None:
    """Re-initialize a head's Linear layers: each hidden one with the gain of ``activation``, the
    last (the outputs, which no activation follows) with the linear gain 1."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        init_weights(layer, init, activation)
    init_weights(linears[-1], init, "identity")


def _check_widths(widths: Sequence[int], blocks_per_stage: int = 1) -> list[int]:
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ZooError(f"widths must be a non-empty list of positive ints; got {widths}.")
    if blocks_per_stage < 1:
        raise ZooError(f"blocks_per_stage must be >= 1; got {blocks_per_stage}.")
    return widths


class ConvNet(nn.Module):
    """A VGG-style net: stages of ``blocks_per_stage`` ConvBlocks, the last of each with 2x2 max pool.

    The head turns the last feature map into outputs:

    - ``head="avg"``: ``AdaptiveAvgPool2d(1) -> flatten``: any input size, but the spatial layout
      is averaged away (fine for deep nets whose last map is 1-4 pixels);
    - ``head="flatten"``: the whole ``C x H' x W'`` map flattened, so the classifier sees where each
      feature is (the classic LeNet/VGG head; it needs ``input_size``);

    then one ``Linear -> activation -> Dropout(head_dropout)`` per width in ``hidden`` and a last
    ``Linear`` to ``num_outputs``.

    Pass ``input_size`` (``(H, W)``, or one int for a square input) to skip the pooling of stages
    whose feature map is already below 2 pixels; without it every stage pools, so the input must be
    at least ``2 ** len(widths)`` pixels.

    ``init`` (``default``: PyTorch's, ``kaiming``, ``xavier``) re-initializes every conv and every
    hidden Linear with the gain of ``activation``, skip projections and the output layer with gain 1
    (:func:`zoo.nn.init_weights`).

    Example:
        >>> net = ConvNet(1, 10, widths=(16, 32, 64, 128), input_size=8)
        >>> net(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> net = ConvNet(1, 10, widths=(32, 64), head="flatten", hidden=(128,), input_size=28)
        >>> net.head[1].in_features  # 64 channels x 7 x 7
        3136
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        widths: Sequence[int] = (32, 64),
        blocks_per_stage: int = 1,
        norm: Norm2d = "batch",
        activation: str = "relu",
        dropout: float = 0.0,
        residual: bool = False,
        input_size: int | Sequence[int] | None = None,
        head: Head = "avg",
        hidden: Sequence[int] = (),
        head_dropout: float = 0.0,
        init: str = "default",
    ) -> None:
        super().__init__()
        widths = _check_widths(widths, blocks_per_stage)
        hidden = [int(h) for h in hidden]
        if head not in HEADS:
            raise ZooError(f"Unknown head {head!r}. Valid heads: {', '.join(HEADS)}.")
        if any(h < 1 for h in hidden):
            raise ZooError(f"hidden must be a list of positive ints; got {hidden}.")
        if not 0.0 <= head_dropout < 1.0:
            raise ZooError(f"head_dropout must be in [0, 1); got {head_dropout}.")
        if head == "flatten" and input_size is None:
            raise ZooError("head='flatten' needs input_size (the input's height and width).")
        hw = _pair(input_size)
        blocks: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            for b in range(blocks_per_stage):
                last = b == blocks_per_stage - 1
                pool = "max" if last and (hw is None or min(hw) >= 2) else "none"
                blocks.append(
                    ConvBlock(
                        prev,
                        w,
                        norm=norm,
                        activation=activation,
                        pool=pool,
                        dropout=dropout,
                        residual=residual,
                    )
                )
                prev = w
            if hw is not None and min(hw) >= 2:
                hw = (hw[0] // 2, hw[1] // 2)
        self.features = nn.Sequential(*blocks)
        layers: list[nn.Module] = []
        if head == "avg":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            assert hw is not None
            layers.append(nn.Flatten())
            prev *= hw[0] * hw[1]
        for h in hidden:
            layers += [nn.Linear(prev, h), make_activation(activation)]
            if head_dropout > 0:
                layers.append(nn.Dropout(head_dropout))
            prev = h
        layers.append(nn.Linear(prev, num_outputs))
        self.head = nn.Sequential(*layers)
        for block in blocks:
            block.reset_weights(init)
        _init_head(self.head, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ResNet(nn.Module):
    """The classic CIFAR ResNet (He et al. 2016, section 4.2): ``6 * blocks_per_stage + 2`` layers.

    A 3x3 stem ConvBlock to ``widths[0]``, then one stage of ``blocks_per_stage``
    :class:`BasicBlock` per width; the first block of every stage after the first has stride 2
    and a 1x1 projection skip. Head: ``AdaptiveAvgPool2d(1) -> flatten -> Linear``.
    With the defaults (16, 32, 64) and 3 blocks per stage this is ResNet-20.

    ``init`` (``default``: PyTorch's, ``kaiming``, ``xavier``) re-initializes every conv with the
    gain of ``activation`` and the output layer with gain 1 (:meth:`BasicBlock.reset_weights`).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 2,
        norm: Norm2d = "batch",
        activation: str = "relu",
        init: str = "default",
    ) -> None:
        super().__init__()
        widths = _check_widths(widths, blocks_per_stage)
        self.stem = ConvBlock(in_channels, widths[0], norm=norm, activation=activation)
        blocks: list[nn.Module] = []
        prev = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if i > 0 and b == 0 else 1
                blocks.append(BasicBlock(prev, w, stride=stride, norm=norm, activation=activation))
                prev = w
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(prev, num_outputs))
        self.stem.reset_weights(init)
        for block in blocks:
            block.reset_weights(init)
        _init_head(self.head, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class FastCifarNet(nn.Module):
    """A small, wide net in the spirit of the public CIFAR-10 speed-record nets (hlb-CIFAR10, airbench).

    ``widths[0]`` is a stem ConvBlock (no pooling); each further width is a ConvBlock with 2x2 max
    pooling. Those nets order each group ``conv -> maxpool -> batchnorm -> activation``; a ConvBlock
    does ``conv -> batchnorm -> activation -> maxpool`` (the same function for a monotone activation
    such as ReLU and a positive norm scale; close to it for GELU). Head: global max pool -> flatten
    -> Linear, and the logits are multiplied by ``logit_scale`` (default 1/9, the fixed
    temperature those nets use).
    With ``input_size`` given, groups whose feature map is below 2 pixels skip the pooling.
    ``init`` (``default``: PyTorch's, ``kaiming``, ``xavier``) re-initializes every conv with the
    gain of ``activation`` and the output layer with gain 1 (:func:`zoo.nn.init_weights`).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        widths: Sequence[int] = (64, 256, 256, 256),
        activation: str = "gelu",
        norm: Norm2d = "batch",
        logit_scale: float = 1 / 9,
        input_size: int | None = None,
        init: str = "default",
    ) -> None:
        super().__init__()
        widths = _check_widths(widths)
        blocks: list[nn.Module] = [ConvBlock(in_channels, widths[0], norm=norm, activation=activation)]
        size = input_size
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            pool = "max" if size is None or size >= 2 else "none"
            blocks.append(ConvBlock(a, b, norm=norm, activation=activation, pool=pool))
            if size is not None and size >= 2:
                size //= 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_outputs))
        for block in blocks:
            block.reset_weights(init)
        _init_head(self.head, init, activation)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.logit_scale
