"""Transformer models: a sequence classifier / tagger, a Vision Transformer and a GPT language model.

The networks live in :mod:`zoo.nn.transformer`; these modules add the task, loss, metrics and
optimizer of :class:`ZooModule`. Sequence models take ``(N, T)`` int64 token ids and read the
sequence length (``T`` at most) from ``input_shape = [T]``, which the data sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
import torchmetrics

from zoo.errors import ZooError
from zoo.models.base import ZooModule, check_base_arguments, is_integer, require_number
from zoo.nn import transformer as ztf
from zoo.nn.transformer import Pooling
from zoo.registry import register_model, register_preset


def _sequence_length(input_shape: Sequence[int] | None) -> int:
    """The ``T`` of ``input_shape = [T]``, or a ZooError saying what is expected."""
    if input_shape is None or len(input_shape) != 1:
        raise ZooError(
            "model.input_shape must be [sequence_length] for a sequence model, e.g. [128]; "
            f"got {list(input_shape) if input_shape is not None else None}."
        )
    return int(input_shape[0])


def _check_types(counts: dict[str, Any], numbers: dict[str, tuple[Any, str]]) -> None:
    """The arguments' types, each named (``dim="64"`` failed deep in torch): ``counts`` must be
    integers (``None`` where not set), ``numbers`` numbers; the networks check the ranges, which
    the messages state (``"in [0, 1)"``)."""
    for name, value in counts.items():
        if value is not None and not is_integer(value):
            raise ZooError(f"model.{name} must be an integer >= 1; got {value!r}.")
    for name, (value, valid) in numbers.items():
        require_number(value, f"model.{name}", valid)


def _token_ids_example(length: int) -> torch.Tensor:
    """A batch of two all-zero token sequences, for Lightning's model summary and tracing."""
    return torch.zeros(2, length, dtype=torch.long)


class TokenNLL(torchmetrics.Metric):
    """The token-weighted mean negative log-likelihood (nats) of an epoch, reported as perplexity
    (``ppl``: ``exp`` of the mean) or bits per token (``bpc``: the mean / ln 2)."""

    def __init__(self, report: Literal["ppl", "bpc"]) -> None:
        super().__init__()
        self.report = report
        # float32 and int64 states: Apple's MPS has no float64. The token count is exact; the sum
        # of per-batch NLL sums keeps ~1e-6 relative error over thousands of batches (tested)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float32), dist_reduce_fx="sum")
        self.add_state("tokens", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, nll: torch.Tensor, tokens: int) -> None:
        # new tensors rather than in-place sums: states reset under inference mode (trainer.validate)
        # stay usable in a later fit, whose validation runs under no_grad
        self.total = self.total + nll.detach().float() * tokens
        self.tokens = self.tokens + tokens

    def compute(self) -> torch.Tensor:
        nll = self.total / self.tokens.float()
        return nll.exp() if self.report == "ppl" else nll / math.log(2)


@register_model("sequence_transformer")
class SequenceClassifier(ZooModule):
    """A bidirectional Transformer over token ids: one label per sequence, or one per token.

    Inputs are ``(N, T)`` int64 token ids. With pooling ``cls`` or ``mean`` the output is one row
    per sequence and the targets are ``(N,)``; with ``none`` the output is ``(N, T, classes)``,
    the targets are ``(N, T)``, and the loss and metrics count every token as one example.

    Args:
        vocab_size: number of distinct token ids (default: the size of ``vocab``, which the data sets).
        dim: model width.
        depth: number of Transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each block's MLP as a multiple of ``dim``.
        dropout: on embeddings, attention weights and residual branches.
        pooling: ``cls`` (a learned [CLS] token), ``mean`` or ``none`` (per-token outputs).
        **kwargs: the task, loss, optimizer and schedule options of :class:`ZooModule`; the
            sequence length comes from ``input_shape = [T]``.
    """

    reads_tokens = True

    def __init__(
        self,
        vocab_size: int | None = None,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pooling: Pooling = "cls",
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        _check_types(
            {"vocab_size": vocab_size, "dim": dim, "depth": depth, "heads": heads},
            {"mlp_ratio": (mlp_ratio, "> 0"), "dropout": (dropout, "in [0, 1)")},
        )
        super().__init__(**kwargs)
        max_len = _sequence_length(self.input_shape)
        if vocab_size is None:
            if self.vocab is None:
                raise ZooError(
                    "model.vocab_size is not set: pass the number of distinct token ids, "
                    "or let the data set model.vocab."
                )
            vocab_size = len(self.vocab)
        self.net = ztf.SequenceTransformer(
            vocab_size,
            self.num_outputs,
            max_len,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            pooling=pooling,
        )
        self.example_input_array = _token_ids_example(max_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def shape_outputs(self, outputs: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token outputs ``(N, T, C)`` become ``(N*T, C)`` rows to match flattened targets;
        without targets (prediction) they keep their ``(N, T, ...)`` layout."""
        if outputs.ndim == 3:
            if targets is None:
                return outputs if self.task == "multiclass" else outputs.squeeze(-1)
            outputs = outputs.flatten(0, 1)
        return super().shape_outputs(outputs, targets)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        if self.net.pooling == "none":
            y = y.flatten()  # (N, T) -> (N*T,): every token is one example for loss and metrics
        return super()._step((x, y), stage)


@register_model("vit")
class ViT(ZooModule):
    """A Vision Transformer image classifier on ``(N, C, H, W)`` images (flat rows are reshaped).

    Args:
        patch_size: side of the square patches; must divide the image's height and width
            (e.g. 2 or 4 for 8x8 digits, 4 for 32x32 CIFAR images).
        dim: model width.
        depth: number of Transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each block's MLP as a multiple of ``dim``.
        dropout: on embeddings, attention weights and residual branches.
        pooling: ``cls`` (a learned [CLS] token) or ``mean`` (average of the patch tokens).
        **kwargs: the task, loss, optimizer and schedule options of :class:`ZooModule`; the image
            shape comes from ``input_shape = [C, H, W]``.
    """

    def __init__(
        self,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pooling: Literal["cls", "mean"] = "cls",
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        _check_types(
            {"patch_size": patch_size, "dim": dim, "depth": depth, "heads": heads},
            {"mlp_ratio": (mlp_ratio, "> 0"), "dropout": (dropout, "in [0, 1)")},
        )
        super().__init__(**kwargs)
        if self.input_shape is None or len(self.input_shape) != 3:
            raise ZooError(
                "model.input_shape must be 3-D (channels, height, width) for a ViT, e.g. [3, 32, 32]; "
                f"got {list(self.input_shape) if self.input_shape else None}."
            )
        channels, height, width = (int(s) for s in self.input_shape)
        self.net = ztf.VisionTransformer(
            channels,
            self.num_outputs,
            (height, width),
            patch_size=patch_size,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            pooling=pooling,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x.reshape(x.shape[0], *self.input_shape)
        return self.net(x)


@register_model("gpt")
class GPT(ZooModule):
    """A GPT language model (nanoGPT's layout): predicts every next token of ``(N, T)`` token ids.

    The data gives batches ``(x, y)`` of ``(N, T)`` int64 ids with ``y`` = ``x`` shifted by one,
    ``task="multiclass"``, ``num_classes`` = the vocabulary size and ``input_shape = [block_size]``.
    The loss is the per-token cross-entropy. Logged: ``train/loss`` every step; ``val/loss``,
    ``val/ppl`` (perplexity, ``exp`` of the epoch's mean per-token loss) and ``val/bpc`` (bits per
    token, the mean loss / ln 2: bits per character for a character model), and the same under
    ``test/``. ``ppl`` and ``bpc`` use the plain negative log-likelihood, also when
    ``label_smoothing`` is set.

    Weight decay follows nanoGPT: every matrix is decayed, the embeddings included (the token
    embedding is also the output layer, and appears once in the optimizer); biases and LayerNorm
    weights are not.

    Args:
        n_layer: number of Transformer blocks.
        n_head: attention heads; must divide ``n_embd``.
        n_embd: model width.
        dropout: on embeddings, attention weights and residual branches.
        bias: biases in the Linear and LayerNorm layers.
        **kwargs: the loss, optimizer and schedule options of :class:`ZooModule`, and ``vocab``:
            the vocabulary's characters in id order, stored in the checkpoint so that a reloaded
            model can :meth:`encode`, :meth:`decode` and :meth:`generate` text without the data
            (``num_classes`` then defaults to ``len(vocab)``).
    """

    reads_tokens = True
    shared_output_layer = True  # the output layer is the token embedding: no head to train alone

    def __init__(
        self,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        bias: bool = False,
        **kwargs: Any,
    ) -> None:
        check_base_arguments(type(self), kwargs)
        _check_types(
            {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd},
            {"dropout": (dropout, "in [0, 1)")},
        )
        vocab = kwargs.get("vocab")
        if isinstance(vocab, str) and kwargs.get("num_classes") is None:
            kwargs["num_classes"] = len(vocab)
        super().__init__(**kwargs)
        if self.task != "multiclass":
            raise ZooError(f"model.task must be multiclass for a language model; got {self.task!r}.")
        if vocab is not None and len(vocab) != self.num_classes:
            raise ZooError(
                f"model.vocab has {len(vocab)} characters but model.num_classes is {self.num_classes}; "
                "they must match (one class per token)."
            )
        block_size = _sequence_length(self.input_shape)
        self._ids = {char: i for i, char in enumerate(vocab or "")}
        self.net = ztf.GPT(
            self.num_classes,
            block_size,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            dropout=dropout,
            bias=bias,
        )
        self.example_input_array = _token_ids_example(block_size)
        # perplexity and bits per token from the epoch's mean per-token loss (not a mean of
        # per-batch values); Lightning computes and resets them at each epoch's end
        self.lm_metrics = torch.nn.ModuleDict(
            {f"{stage}_{kind}": TokenNLL(kind) for stage in ("val", "test") for kind in ("ppl", "bpc")}
        )

    @property
    def block_size(self) -> int:
        """The longest context the model sees."""
        return self.net.block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # ------------------------------------------------------------------ steps and metrics

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x).flatten(0, 1)  # (N*T, V)
        targets = y.flatten()
        loss = self.compute_loss(logits, targets)
        tokens = targets.numel()
        if stage == "train":
            self._track_training(logits.detach(), targets, loss.detach())
            return loss
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=tokens,
            sync_dist=True,
        )
        nll = F.cross_entropy(logits.detach().float(), targets)
        for kind in ("ppl", "bpc"):
            metric = self.lm_metrics[f"{stage}_{kind}"]
            metric.update(nll, tokens)
            self.log(f"{stage}/{kind}", metric, on_step=False, on_epoch=True, prog_bar=kind == "ppl")
        return loss

    # ------------------------------------------------------------------ text

    def encode(self, text: str) -> torch.Tensor:
        """The token ids of ``text``: a 1-D int64 tensor."""
        if self.vocab is None:
            raise ZooError(
                "this model has no vocabulary (model.vocab is not set), so it cannot encode text; "
                "pass token ids instead."
            )
        unknown = sorted(set(text) - self._ids.keys())
        if unknown:
            raise ZooError(
                f"characters not in the model's vocabulary (model.vocab): {', '.join(map(repr, unknown))}."
            )
        return torch.tensor([self._ids[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of a 1-D sequence of token ids."""
        if self.vocab is None:
            raise ZooError("this model has no vocabulary (model.vocab is not set), so it cannot decode ids.")
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < len(self.vocab)]
        if bad:
            raise ZooError(f"token ids outside the vocabulary of {len(self.vocab)}: {bad[:5]}.")
        return "".join(self.vocab[i] for i in ids)

    def generate(
        self,
        prompt: str | torch.Tensor,
        max_new_tokens: int = 100,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str | torch.Tensor:
        """Continue ``prompt`` by ``max_new_tokens`` sampled tokens.

        Args:
            prompt: text (needs ``vocab``), or token ids ``(T,)`` or ``(N, T)``.
            max_new_tokens: how many tokens to add.
            temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
            top_k: sample only among the ``top_k`` most likely tokens (1 = greedy).
            seed: seeds the sampling, so the same seed gives the same text.

        Returns:
            The prompt and its continuation: text for a text prompt, else ids shaped like the prompt.
        """
        ids = self.encode(prompt) if isinstance(prompt, str) else prompt
        ids = ids.to(device=self.device, dtype=torch.long)
        one = ids.ndim == 1
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        out = self.net.generate(ids[None] if one else ids, max_new_tokens, temperature, top_k, generator)
        if isinstance(prompt, str):
            return self.decode(out[0])
        return out[0] if one else out


# ---------------------------------------------------------------------- presets


vit_tiny = register_preset(
    "vit_tiny",
    ViT,
    "ViT-Tiny's shape (DeiT-Ti): dim 192, depth 12, 3 heads, MLP ratio 4 (about 5.4M parameters). Pass "
    "``patch_size`` to suit the images (the default 4 gives 64 tokens on 32x32 CIFAR).",
    dim=192,
    depth=12,
    heads=3,
    mlp_ratio=4.0,
)
vit_mini = register_preset(
    "vit_mini",
    ViT,
    "A CPU-sized ViT for small images: dim 128, depth 6, 4 heads, MLP ratio 2 (about 0.8M parameters).",
    dim=128,
    depth=6,
    heads=4,
    mlp_ratio=2.0,
)
gpt_char = register_preset(
    "gpt_char",
    GPT,
    'nanoGPT\'s Shakespeare-char "baby GPT": 6 layers, 6 heads, width 384, dropout 0.2, no biases (about '
    "10.7M parameters; nanoGPT trains it with block_size 256).",
    n_layer=6,
    n_head=6,
    n_embd=384,
    dropout=0.2,
    bias=False,
)
