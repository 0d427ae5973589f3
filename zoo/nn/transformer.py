"""Transformer blocks and backbones: plain ``nn.Module``, usable without Lightning.

Every block is pre-norm (``x + attn(ln(x))``, then ``x + mlp(ln(x))``) and attends through
``torch.nn.functional.scaled_dot_product_attention``, which picks a fused kernel when it can.
Three backbones share the block:

- :class:`SequenceTransformer`: token ids ``(N, T)`` -> one output row per sequence (``cls`` or
  ``mean`` pooling) or per token (``none``); attention is bidirectional.
- :class:`VisionTransformer`: images ``(N, C, H, W)`` cut into square patches -> one row per image.
- :class:`GPT`: a causal language model in the style of nanoGPT, token ids ``(N, T)`` -> next-token
  logits ``(N, T, V)``, with :meth:`GPT.generate` for sampling.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError

Pooling = Literal["cls", "mean", "none"]
POOLINGS = ("cls", "mean", "none")


def check_heads(
    dim: int, heads: int, dim_option: str = "model.dim", heads_option: str = "model.heads"
) -> None:
    """Raise a :class:`ZooError` unless ``heads`` splits ``dim`` into equal, whole head sizes."""
    if dim < 1:
        raise ZooError(f"{dim_option} must be >= 1; got {dim}.")
    if heads < 1 or dim % heads:
        valid = [h for h in range(1, dim + 1) if dim % h == 0]
        raise ZooError(
            f"{heads_option} must divide {dim_option}: got {dim_option.split('.')[-1]}={dim}, "
            f"{heads_option.split('.')[-1]}={heads}; valid for {dim}: {', '.join(map(str, valid))}."
        )


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ZooError(f"model.dropout must be in [0, 1); got {dropout}.")


class SelfAttention(nn.Module):
    """Multi-head self-attention: one Linear makes q, k and v; ``proj`` mixes the heads back.

    Args:
        dim: model width; split into ``heads`` heads of ``dim // heads`` features each.
        heads: number of attention heads.
        dropout: dropout on the attention weights (only in training).
        causal: position ``t`` attends only to positions ``<= t``.
        bias: biases in the two Linear layers.
    """

    def __init__(
        self, dim: int, heads: int, dropout: float = 0.0, causal: bool = False, bias: bool = True
    ) -> None:
        super().__init__()
        check_heads(dim, heads)
        self.heads = heads
        self.dropout = dropout
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(N, T, dim)``. ``mask``: optional boolean ``(N, T)`` key mask, ``True`` where a
        token may be attended to (``False`` at padding); every query must keep at least one key."""
        n, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        # (N, T, C) -> (N, heads, T, head_size)
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        attn_mask = None
        if mask is not None:
            attn_mask = mask.bool()[:, None, None, :]  # broadcast over heads and queries
            if self.causal:
                attn_mask = attn_mask & torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and attn_mask is None,
        )
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class FeedForward(nn.Module):
    """The position-wise MLP of a block: ``Linear -> GELU -> Linear`` (``fc``, then ``proj``)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class TransformerBlock(nn.Module):
    """A pre-norm Transformer block::

        x = x + dropout(attn(ln1(x)))
        x = x + dropout(mlp(ln2(x)))

    Args:
        dim: model width.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        dropout: dropout on the attention weights and on both residual branches.
        causal: causal (left-to-right) attention.
        bias: biases in the Linear and LayerNorm layers.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if mlp_ratio <= 0:
            raise ZooError(f"model.mlp_ratio must be > 0; got {mlp_ratio}.")
        _check_dropout(dropout)
        self.ln1 = nn.LayerNorm(dim, bias=bias)
        self.attn = SelfAttention(dim, heads, dropout=dropout, causal=causal, bias=bias)
        self.ln2 = nn.LayerNorm(dim, bias=bias)
        self.mlp = FeedForward(dim, max(1, round(dim * mlp_ratio)), bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.mlp(self.ln2(x)))


def _init_linear_and_embedding(module: nn.Module) -> None:
    """GPT-2 / ViT style init: weights ~ N(0, 0.02), biases zero (LayerNorm keeps ones/zeros)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class _Encoder(nn.Module):
    """The trunk shared by the bidirectional backbones: an optional [CLS] token, learned
    positions, the blocks, a final LayerNorm, pooling and the linear head.

    Subclasses turn their input into ``(N, T, dim)`` token vectors and call :meth:`encode`.
    """

    def __init__(
        self,
        num_tokens: int,
        num_outputs: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ZooError(f"model.pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}.")
        if depth < 1:
            raise ZooError(f"model.depth must be >= 1; got {depth}.")
        check_heads(dim, heads)
        _check_dropout(dropout)
        self.pooling = pooling
        self.num_tokens = num_tokens
        extra = 1 if pooling == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if extra else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + extra, dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_outputs)
        self.apply(_init_linear_and_embedding)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        """Parameter names kept out of weight decay: the learned positions and the [CLS] token
        (timm's convention: they are embeddings, not weights that shrinkage should pull to 0)."""
        return {"pos_embed"} | ({"cls_token"} if self.cls_token is not None else set())

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, T, dim)`` token vectors -> ``(N, num_outputs)``, or ``(N, T, num_outputs)`` with
        pooling ``none``. ``mask``: optional boolean ``(N, T)``, ``False`` at padding tokens."""
        n, t, _ = tokens.shape
        if t > self.num_tokens:
            raise ZooError(
                f"the input has {t} tokens, more than the {self.num_tokens} this model was built for."
            )
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1)
            if mask is not None:
                mask = torch.cat([mask.new_ones(n, 1, dtype=torch.bool), mask.bool()], dim=1)
        x = self.drop(tokens + self.pos_embed[:, : tokens.shape[1]])
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.pooling == "cls":
            x = x[:, 0]
        elif self.pooling == "mean":
            if mask is None:
                x = x.mean(dim=1)
            else:
                weights = mask.to(x.dtype).unsqueeze(-1)
                x = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self.head(x)


class SequenceTransformer(_Encoder):
    """A bidirectional Transformer encoder over token ids: classification or per-token labelling.

    Args:
        vocab_size: number of distinct token ids.
        num_outputs: width of the head (classes, or 1).
        max_len: the longest sequence it accepts (shorter ones use the first positions).
        dim, depth, heads, mlp_ratio, dropout: width, number of blocks and their options.
        pooling: ``cls`` (a learned [CLS] token is prepended; its output is used), ``mean``
            (average over tokens) or ``none`` (one output row per token: ``(N, T, num_outputs)``).

    Example:
        >>> net = SequenceTransformer(vocab_size=10, num_outputs=3, max_len=12, pooling="none")
        >>> net(torch.zeros(2, 12, dtype=torch.long)).shape
        torch.Size([2, 12, 3])
    """

    def __init__(
        self,
        vocab_size: int,
        num_outputs: int,
        max_len: int,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pooling: Pooling = "cls",
    ) -> None:
        if vocab_size < 1:
            raise ZooError(f"model.vocab_size must be >= 1; got {vocab_size}.")
        if max_len < 1:
            raise ZooError(f"the sequence length (model.input_shape) must be >= 1; got {max_len}.")
        super().__init__(max_len, num_outputs, dim, depth, heads, mlp_ratio, dropout, pooling)
        self.tok_embed = nn.Embedding(vocab_size, dim)
        _init_linear_and_embedding(self.tok_embed)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``idx``: ``(N, T)`` int64 token ids; ``mask``: optional ``(N, T)``, ``False`` at padding."""
        return self.encode(self.tok_embed(idx), mask)


class VisionTransformer(_Encoder):
    """ViT (Dosovitskiy et al. 2021): square patches, linearly embedded, through a Transformer encoder.

    The patch embedding is a Conv2d with ``kernel_size = stride = patch_size``; a 3x32x32 image
    with patch 4 becomes 64 tokens, a 1x8x8 digit with patch 2 becomes 16.

    Args:
        in_channels: image channels.
        num_outputs: width of the head.
        image_size: ``(height, width)`` (or one int for square images); both must be divisible
            by ``patch_size``, since the learned positions fix the number of patches.
        patch_size: side of the square patches.
        dim, depth, heads, mlp_ratio, dropout: width, number of blocks and their options.
        pooling: ``cls`` or ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        image_size: int | tuple[int, int],
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pooling: Literal["cls", "mean"] = "cls",
    ) -> None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if patch_size < 1 or h % patch_size or w % patch_size:
            valid = [p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]
            raise ZooError(
                f"model.patch_size must divide the image size {h}x{w}; got {patch_size}. "
                f"Valid: {', '.join(map(str, valid))}."
            )
        if pooling not in ("cls", "mean"):
            raise ZooError(f"model.pooling must be cls or mean for an image classifier; got {pooling!r}.")
        super().__init__(
            (h // patch_size) * (w // patch_size), num_outputs, dim, depth, heads, mlp_ratio, dropout, pooling
        )
        self.image_size = (h, w)
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, C, H, W)`` images of exactly ``image_size``."""
        if tuple(x.shape[-2:]) != self.image_size:
            raise ZooError(
                f"this ViT was built for {self.image_size[0]}x{self.image_size[1]} images; "
                f"got {x.shape[-2]}x{x.shape[-1]}."
            )
        return self.encode(self.patch_embed(x).flatten(2).transpose(1, 2))  # (N, patches, dim)


class GPT(nn.Module):
    """A decoder-only causal language model (GPT-2 layout, as in nanoGPT).

    Token + learned position embeddings, ``n_layer`` causal :class:`TransformerBlock`, a final
    LayerNorm and ``lm_head``, whose weight is tied to the token embedding. Weights start at
    N(0, 0.02); the residual output projections (``attn.proj`` and ``mlp.proj``) at
    N(0, 0.02 / sqrt(2 * n_layer)), so the residual stream's variance does not grow with depth.

    Args:
        vocab_size: number of token ids.
        block_size: the longest context (positions learned).
        n_layer, n_head, n_embd: depth, heads, width.
        dropout: on embeddings, attention weights and residual branches.
        bias: biases in the Linear and LayerNorm layers (GPT-2 has them; without is a bit faster).
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ZooError(f"the vocabulary size (model.num_classes) must be >= 1; got {vocab_size}.")
        if block_size < 1:
            raise ZooError(f"the block size (model.input_shape) must be >= 1; got {block_size}.")
        if n_layer < 1:
            raise ZooError(f"model.n_layer must be >= 1; got {n_layer}.")
        check_heads(n_embd, n_head, "model.n_embd", "model.n_head")
        _check_dropout(dropout)
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(n_embd, n_head, 4.0, dropout, causal=True, bias=bias) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf 2017)

        self.apply(_init_linear_and_embedding)
        residual_std = 0.02 / math.sqrt(2 * n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx``: ``(N, T)`` token ids with ``T <= block_size`` -> logits ``(N, T, vocab_size)``."""
        t = idx.shape[1]
        if t > self.block_size:
            raise ZooError(f"the input has {t} tokens, more than block_size={self.block_size}.")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend ``idx`` ``(N, T)`` by ``max_new_tokens`` sampled tokens; returns ``(N, T + new)``.

        Each step feeds the last ``block_size`` tokens, divides the last position's logits by
        ``temperature``, keeps the ``top_k`` most likely tokens (all when ``None``) and samples
        with ``torch.multinomial`` from ``generator`` (seed it for reproducible text). ``top_k=1``
        is greedy decoding. Runs in eval mode (no dropout) and restores the previous mode.
        """
        if temperature <= 0:
            raise ZooError(f"temperature must be > 0; got {temperature}. For greedy decoding use top_k=1.")
        if top_k is not None and top_k < 1:
            raise ZooError(f"top_k must be >= 1 (or None for no limit); got {top_k}.")
        if max_new_tokens < 0:
            raise ZooError(f"max_new_tokens must be >= 0; got {max_new_tokens}.")
        if idx.ndim != 2 or idx.shape[1] < 1:
            raise ZooError(f"generate needs token ids of shape (N, T) with T >= 1; got {tuple(idx.shape)}.")
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                logits = self(idx[:, -self.block_size :])[:, -1, :].float() / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)
                next_id = torch.multinomial(probs, num_samples=1, generator=generator)
                idx = torch.cat([idx, next_id], dim=1)
        finally:
            self.train(was_training)
        return idx
