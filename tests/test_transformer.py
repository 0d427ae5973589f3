"""Transformer blocks, backbones and LightningModules: attention, causality, GPT, learning, checkpoints."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import DataLoader, TensorDataset

import zoo
from tests.conftest import quiet_trainer
from zoo.errors import ZooError
from zoo.models import GPT, SequenceClassifier, ViT
from zoo.models.base import ZooModule
from zoo.nn import transformer as ztf
from zoo.optim import no_weight_decay_names, param_groups

pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def _trainer(tmp_path: Path, **kwargs: Any) -> pl.Trainer:
    return quiet_trainer(default_root_dir=tmp_path, num_sanity_val_steps=0, **kwargs)


def _attention_by_hand(
    attn: ztf.SelfAttention, x: torch.Tensor, causal: bool, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V per head, from the module's own weights."""
    n, t, c = x.shape
    h = attn.heads
    d = c // h
    q, k, v = (
        (x @ w.T + b).reshape(n, t, h, d).transpose(1, 2)
        for w, b in zip(attn.qkv.weight.split(c), attn.qkv.bias.split(c), strict=True)
    )
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    if causal:
        scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, c)
    return y @ attn.proj.weight.T + attn.proj.bias


# ---------------------------------------------------------------------- blocks and attention


@pytest.mark.parametrize("causal", [False, True])
def test_block_keeps_shape(causal: bool) -> None:
    block = ztf.TransformerBlock(32, 4, mlp_ratio=2.0, causal=causal)
    assert block(torch.randn(3, 7, 32)).shape == (3, 7, 32)
    assert block.mlp.fc.out_features == 64 and block.mlp.proj.in_features == 64
    assert block.attn.qkv.out_features == 96 and block.attn.proj.out_features == 32
    no_bias = ztf.TransformerBlock(32, 4, bias=False)
    assert no_bias.attn.qkv.bias is None and no_bias.ln1.bias is None


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_by_hand(causal: bool) -> None:
    attn = ztf.SelfAttention(24, 3, causal=causal).eval()
    x = torch.randn(2, 6, 24)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), _attention_by_hand(attn, x, causal), atol=1e-5, rtol=1e-5)
        mask = torch.ones(2, 6, dtype=torch.bool)
        mask[0, 4:] = False  # padding at the end of the first sequence
        mask[1, 2] = False
        expected = _attention_by_hand(attn, x, causal, mask)
        torch.testing.assert_close(attn(x, mask), expected, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(attn(x, mask), attn(x), atol=1e-4)


def test_attention_dropout_only_in_training() -> None:
    attn = ztf.SelfAttention(16, 2, dropout=0.5)
    x = torch.randn(2, 5, 16)
    assert not torch.allclose(attn(x), attn(x))  # dropout on the attention weights
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))


def _changed_at(idx: torch.Tensor, t: int, vocab: int) -> torch.Tensor:
    other = idx.clone()
    other[:, t] = (other[:, t] + 1) % vocab
    return other


def test_causal_block_never_looks_ahead() -> None:
    block = ztf.TransformerBlock(16, 2, causal=True).eval()
    x = torch.randn(1, 8, 16)
    for t in range(8):
        y = x.clone()
        y[:, t] += torch.randn(16)  # not a constant: LayerNorm would remove it
        with torch.no_grad():
            a, b = block(x), block(y)
        torch.testing.assert_close(a[:, :t], b[:, :t])
        assert not torch.allclose(a[:, t], b[:, t])


def test_bidirectional_block_sees_later_tokens() -> None:
    block = ztf.TransformerBlock(16, 2).eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, -1] += torch.randn(16)
    with torch.no_grad():
        a, b = block(x), block(y)
    assert not torch.allclose(a[:, 0], b[:, 0])


def test_gpt_is_causal() -> None:
    net = ztf.GPT(vocab_size=11, block_size=10, n_layer=2, n_head=2, n_embd=16).eval()
    idx = torch.randint(0, 11, (2, 10))
    with torch.no_grad():
        base = net(idx)
        assert base.shape == (2, 10, 11)
        for t in range(10):
            changed = net(_changed_at(idx, t, 11))
            torch.testing.assert_close(changed[:, :t], base[:, :t])
            assert not torch.allclose(changed[:, t], base[:, t])


def test_gpt_rejects_contexts_longer_than_block_size() -> None:
    net = ztf.GPT(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=8)
    assert net(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 5)
    with pytest.raises(ZooError, match="block_size=4"):
        net(torch.zeros(1, 5, dtype=torch.long))


# ---------------------------------------------------------------------- GPT: tying, init, generate


def test_gpt_weight_tying_and_init() -> None:
    n_layer = 4
    net = ztf.GPT(vocab_size=64, block_size=8, n_layer=n_layer, n_head=4, n_embd=256)
    assert net.lm_head.weight is net.wte.weight
    assert net.lm_head.weight.data_ptr() == net.wte.weight.data_ptr()
    residual_std = 0.02 / math.sqrt(2 * n_layer)
    for block in net.blocks:
        for proj in (block.attn.proj.weight, block.mlp.proj.weight):
            assert proj.std().item() == pytest.approx(residual_std, rel=0.05)
        assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert block.mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert block.attn.qkv.weight.mean().abs().item() < 1e-3
    assert net.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert net.wpe.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_transformers_have_a_fixed_elementwise_activation_and_no_init_option() -> None:
    """docs/models_transformers.md: GELU in every block's MLP (elementwise, so no softmax over the
    features can slip in), and no ``activation`` or ``init`` option (those are the MLP's and conv nets')."""
    import inspect

    for cls in (SequenceClassifier, ViT, GPT):
        assert not {"activation", "init"} & set(inspect.signature(cls.__init__).parameters), cls
    assert isinstance(ztf.TransformerBlock(8, 2).mlp.act, torch.nn.GELU)


def test_gpt_tied_weight_is_one_decayed_parameter() -> None:
    model = GPT(vocab="abcdefgh", input_shape=[8], n_layer=2, n_head=2, n_embd=16, bias=True)
    decayed, plain = param_groups(model)
    tied = model.net.wte.weight
    assert sum(p is tied for p in decayed["params"]) == 1
    assert not any(p is tied for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert all(p.ndim == 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    assert len(decayed["params"]) == 2 * 4 + 2  # qkv, attn.proj, mlp.fc, mlp.proj per layer; wte, wpe


def test_generate() -> None:
    net = ztf.GPT(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=16)
    prompt = torch.randint(0, 7, (2, 3))
    out = net.generate(prompt, 9, generator=torch.Generator().manual_seed(1))
    assert out.shape == (2, 12) and out.dtype == torch.long
    assert torch.equal(out[:, :3], prompt)
    again = net.generate(prompt, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    samples = {tuple(net.generate(prompt, 9, temperature=3.0)[0].tolist()) for _ in range(5)}
    assert len(samples) > 1  # unseeded sampling varies
    assert net.training  # the mode is restored

    # top_k=1 is greedy decoding, done by hand here (with the context cropped to block_size)
    greedy = net.generate(prompt, 6, top_k=1)
    expected = prompt
    net.eval()
    with torch.no_grad():
        for _ in range(6):
            nxt = net(expected[:, -4:])[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], dim=1)
    assert torch.equal(greedy, expected)
    # a prompt longer than block_size is cropped, not rejected; top_k above the vocabulary is clamped
    long_prompt = torch.randint(0, 7, (1, 10))
    assert net.generate(long_prompt, 3, top_k=100).shape == (1, 13)

    for bad in (0.0, -1.0):
        with pytest.raises(ZooError, match="temperature must be > 0"):
            net.generate(prompt, 2, temperature=bad)
    with pytest.raises(ZooError, match="top_k"):
        net.generate(prompt, 2, top_k=0)


def test_encode_decode_and_text_generation() -> None:
    model = GPT(vocab="ab cd", input_shape=[6], n_layer=1, n_head=2, n_embd=16)
    assert model.num_classes == 5  # defaults to len(vocab)
    ids = model.encode("a cab")
    assert ids.tolist() == [0, 2, 3, 0, 1] and ids.dtype == torch.long
    assert model.decode(ids) == "a cab"
    with pytest.raises(ZooError, match="'x', 'z'"):
        model.encode("zax")
    text = model.generate("ab", max_new_tokens=12, seed=3)
    assert isinstance(text, str) and len(text) == 14 and text.startswith("ab") and set(text) <= set("ab cd")
    assert model.generate("ab", max_new_tokens=12, seed=3) == text
    ids_out = model.generate(torch.tensor([0, 1]), max_new_tokens=4, seed=3)
    assert ids_out.shape == (6,)
    with pytest.raises(ZooError, match="model.vocab is not set"):
        GPT(task="multiclass", num_classes=5, input_shape=[6], n_layer=1, n_head=1, n_embd=8).encode("ab")


# ---------------------------------------------------------------------- backbones and modules


@pytest.mark.parametrize("pooling", ["cls", "mean", "none"])
def test_sequence_model_shapes(pooling: str) -> None:
    model = SequenceClassifier(
        vocab_size=20, task="multiclass", num_classes=3, input_shape=[12], pooling=pooling, dim=32
    )
    x = torch.randint(0, 20, (4, 12))
    expected = (4, 12, 3) if pooling == "none" else (4, 3)
    assert model(x).shape == expected
    assert model(x[:, :5]).shape[0] == 4  # shorter sequences use the first positions
    example = model.example_input_array
    assert example.dtype == torch.long and example.shape == (2, 12)
    assert model(example).shape[0] == 2
    with pytest.raises(ZooError, match="13 tokens"):
        model(torch.zeros(1, 13, dtype=torch.long))


def test_mean_pooling_ignores_padding() -> None:
    net = ztf.SequenceTransformer(vocab_size=9, num_outputs=2, max_len=6, dim=16, pooling="mean").eval()
    idx = torch.randint(1, 9, (1, 6))
    mask = torch.tensor([[True, True, True, True, False, False]])
    other = idx.clone()
    other[:, 4:] = 0  # different padding content
    with torch.no_grad():
        torch.testing.assert_close(net(idx, mask), net(other, mask))
        torch.testing.assert_close(net(idx, mask), net(idx[:, :4]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("shape", "patch", "tokens"), [((1, 8, 8), 2, 16), ((1, 8, 8), 4, 4), ((3, 32, 32), 4, 64)]
)
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_vit_shapes(shape: tuple[int, int, int], patch: int, tokens: int, pooling: str) -> None:
    model = ViT(
        task="multiclass",
        num_classes=10,
        input_shape=list(shape),
        patch_size=patch,
        dim=32,
        depth=1,
        pooling=pooling,
    )
    assert model.net.num_tokens == tokens
    assert model.net.pos_embed.shape == (1, tokens + (pooling == "cls"), 32)
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    assert model(torch.randn(2, math.prod(shape))).shape == (2, 10)  # flat rows are reshaped


def test_vit_no_weight_decay_on_positions_and_cls() -> None:
    model = ViT(task="multiclass", num_classes=3, input_shape=[1, 8, 8], patch_size=4, dim=16, depth=1)
    assert no_weight_decay_names(model) == {"net.pos_embed", "net.cls_token"}
    decayed, plain = param_groups(model)
    for name in ("pos_embed", "cls_token"):
        p = getattr(model.net, name)
        assert p.ndim == 3 and any(q is p for q in plain["params"])
        assert not any(q is p for q in decayed["params"])
    assert any(q is model.net.patch_embed.weight for q in decayed["params"])


class _Wrapped(ViT):
    """A subclass that keeps the backbone under another name: its exemptions must follow it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backbone = self.net
        del self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def test_exemptions_follow_the_module_that_declares_them() -> None:
    model = _Wrapped(task="multiclass", num_classes=3, input_shape=[1, 8, 8], patch_size=4, dim=16, depth=1)
    assert no_weight_decay_names(model) == {"backbone.pos_embed", "backbone.cls_token"}
    for decay_bias_and_norm in (False, True):  # the flag frees biases and norms, never named exemptions
        decayed, *rest = param_groups(model, decay_bias_and_norm=decay_bias_and_norm)
        assert not any(q is model.backbone.pos_embed for q in decayed["params"])
        assert rest and any(q is model.backbone.pos_embed for q in rest[0]["params"])
    decayed, _ = param_groups(model, decay_bias_and_norm=True)
    assert any(q is model.backbone.patch_embed.bias for q in decayed["params"])


_SEQ = {"task": "multiclass", "num_classes": 3, "input_shape": [8]}
_IMG = {"task": "multiclass", "num_classes": 3, "input_shape": [1, 8, 8]}
_LM = {"task": "multiclass", "num_classes": 5, "input_shape": [8]}


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: ztf.TransformerBlock(10, 3), "model.heads must divide model.dim"),
        (lambda: ztf.TransformerBlock(16, 2, mlp_ratio=0), "model.mlp_ratio must be > 0"),
        (lambda: SequenceClassifier(vocab_size=9, heads=5, **_SEQ), "model.heads must divide model.dim"),
        (lambda: SequenceClassifier(vocab_size=9, pooling="max", **_SEQ), "model.pooling must be one of"),
        (lambda: SequenceClassifier(vocab_size=9, dropout=1.0, **_SEQ), "model.dropout must be in [0, 1)"),
        (lambda: SequenceClassifier(vocab_size=9, depth=0, **_SEQ), "model.depth must be >= 1"),
        (lambda: SequenceClassifier(vocab_size=0, **_SEQ), "model.vocab_size must be >= 1"),
        (
            lambda: SequenceClassifier(vocab_size=9, task="multiclass", num_classes=2, input_shape=[1, 8, 8]),
            "model.input_shape must be [sequence_length]",
        ),
        (
            lambda: ViT(patch_size=3, **_IMG),
            "model.patch_size must divide the image size 8x8; got 3. Valid: 1, 2, 4, 8",
        ),
        (lambda: ViT(pooling="none", **_IMG), "model.pooling must be cls or mean"),
        (lambda: ViT(pooling="max", **_IMG), "model.pooling must be cls or mean"),
        (lambda: ViT(task="multiclass", num_classes=3, input_shape=[64]), "model.input_shape must be 3-D"),
        (lambda: GPT(n_head=3, **_LM), "model.n_head must divide model.n_embd"),
        (lambda: GPT(n_layer=0, **_LM), "model.n_layer must be >= 1"),
        (lambda: GPT(vocab="abca", input_shape=[8]), "model.vocab lists these characters more than once"),
        (lambda: GPT(vocab="abc", num_classes=4, input_shape=[8]), "model.vocab has 3 characters"),
        (lambda: GPT(vocab="abc", task="regression", input_shape=[8]), "model.task must be multiclass"),
    ],
)
def test_bad_options(build: Any, fragment: str) -> None:
    with pytest.raises(ZooError) as info:
        build()
    assert fragment in str(info.value)


def _small_models() -> dict[str, ZooModule]:
    return {
        "sequence_transformer": SequenceClassifier(vocab_size=9, dim=16, depth=1, heads=2, **_SEQ),
        "vit": ViT(patch_size=4, dim=16, depth=1, heads=2, **_IMG),
        "gpt": GPT(vocab="abcde", input_shape=[8], n_layer=1, n_head=2, n_embd=16),
    }


def _example_batch(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "vit":
        return torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    if name == "gpt":
        x = torch.randint(0, 5, (6, 8))
        return x, torch.roll(x, -1, dims=1)
    return torch.randint(0, 9, (6, 8)), torch.randint(0, 3, (6,))


@pytest.mark.parametrize("name", ["sequence_transformer", "vit", "gpt"])
def test_bf16_autocast(name: str) -> None:
    model = _small_models()[name].eval()
    x, _ = _example_batch(name)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16 and out.shape == reference.shape and out.shape[0] == 6
    # bf16 keeps ~3 significant digits: within 2% of the output scale of the fp32 pass (0.3-0.5% seen)
    torch.testing.assert_close(out.float(), reference, atol=0.02 * reference.abs().max().item(), rtol=0)


def test_registry_presets() -> None:
    assert {"sequence_transformer", "vit", "vit_tiny", "vit_mini", "gpt", "gpt_char"} <= set(
        zoo.list_models()
    )
    tiny = zoo.create_model("vit_tiny", task="multiclass", num_classes=10, input_shape=[3, 32, 32])
    assert isinstance(tiny, ViT) and (tiny.hparams.dim, tiny.hparams.depth, tiny.hparams.heads) == (
        192,
        12,
        3,
    )
    assert 5.0e6 < sum(p.numel() for p in tiny.parameters()) < 6.0e6
    mini = zoo.create_model(
        "vit_mini", task="multiclass", num_classes=10, input_shape=[1, 8, 8], patch_size=2
    )
    assert mini(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    char = zoo.create_model("gpt_char", vocab="abc", input_shape=[16], n_layer=1)
    assert isinstance(char, GPT) and char.hparams.n_embd == 384 and char.hparams.n_layer == 1
    assert char.hparams.dropout == 0.2


# ---------------------------------------------------------------------- learning


def test_gpt_overfits_a_repeated_string() -> None:
    text = "hello lightning zoo! " * 20
    model = GPT(
        vocab="".join(sorted(set(text))),
        input_shape=[16],
        n_layer=2,
        n_head=2,
        n_embd=32,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3),
    )
    data = model.encode(text)
    optimizer = model.configure_optimizers()
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        starts = torch.randint(0, len(data) - 17, (16,), generator=g)
        x = torch.stack([data[i : i + 16] for i in starts])
        y = torch.stack([data[i + 1 : i + 17] for i in starts])
        loss = model.compute_loss(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and sum(losses[-10:]) / 10 < 0.3
    # the string continues itself
    assert model.generate("hello ", max_new_tokens=21, top_k=1) == "hello lightning zoo! hello "


def test_sequence_transformer_learns_to_reverse(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    train_x = torch.randint(0, 8, (4096, 6), generator=g)
    val_x = torch.randint(0, 8, (512, 6), generator=g)
    model = SequenceClassifier(
        vocab_size=8,
        task="multiclass",
        num_classes=8,
        input_shape=[6],
        pooling="none",
        dim=32,
        depth=2,
        heads=4,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3),
    )
    train = DataLoader(TensorDataset(train_x, train_x.flip(1)), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(val_x, val_x.flip(1)), batch_size=256)
    trainer = _trainer(tmp_path, max_steps=250)
    trainer.fit(model, train)
    results = trainer.validate(model, val, verbose=False)[0]
    assert {"val/loss", "val/acc", "val/f1"} <= set(results)
    assert results["val/acc"] >= 0.95  # per-token accuracy over (N*T) tokens
    model.eval()
    with torch.no_grad():
        by_hand = (model(val_x).argmax(-1) == val_x.flip(1)).float().mean().item()
    assert results["val/acc"] == pytest.approx(by_hand)
    probs = model.predict_step(val_x[:3], 0)
    assert probs.shape == (3, 6, 8)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 6))


def test_vit_learns_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    train, test = order[:1400], order[1400:]
    model = ViT(
        task="multiclass",
        num_classes=10,
        input_shape=[1, 8, 8],
        patch_size=4,
        dim=32,
        depth=2,
        heads=4,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3),
    )
    optimizer = model.configure_optimizers()
    for _ in range(8):
        for batch in train[torch.randperm(len(train), generator=g)].split(64):
            loss = model.compute_loss(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(-1) == y[test]).float().mean().item()
    assert accuracy >= 0.85


# ---------------------------------------------------------------------- LM metrics and checkpoints


def test_lm_metrics_are_token_means(tmp_path: Path) -> None:
    model = GPT(vocab="abcdef", input_shape=[8], n_layer=1, n_head=2, n_embd=16)
    with torch.no_grad():
        model.net.wte.weight.mul_(40.0)  # confident, mostly wrong predictions: batch losses differ a lot
    x = torch.randint(0, 6, (10, 8))
    y = torch.roll(x, -1, dims=1)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4 and 2 sequences
    results = _trainer(tmp_path).validate(model, loader, verbose=False)[0]
    with torch.no_grad():
        nll = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
        per_batch = [F.cross_entropy(model(a).flatten(0, 1), b.flatten()).item() for a, b in loader]
    assert set(results) == {"val/loss", "val/ppl", "val/bpc"}
    assert results["val/loss"] == pytest.approx(nll, rel=1e-5)
    assert results["val/ppl"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert results["val/bpc"] == pytest.approx(nll / math.log(2), rel=1e-5)
    mean_of_exps = sum(math.exp(v) for v in per_batch) / len(per_batch)
    assert abs(mean_of_exps - math.exp(nll)) > 1e-3 * math.exp(nll)  # the test can tell them apart
    test = _trainer(tmp_path).test(model, loader, verbose=False)[0]
    assert test["test/ppl"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert set(test) == {"test/loss", "test/ppl", "test/bpc"}


def _built_by_lightning_cli(
    class_path: str, init_args: dict[str, Any], root: Path, monkeypatch: pytest.MonkeyPatch
) -> ZooModule:
    """Build a model as ``zoo`` does (LightningCLI), so its checkpoint records the class path."""
    monkeypatch.setattr(sys, "argv", ["zoo"])  # the CLI reads only ``args``, not pytest's options
    cli = LightningCLI(
        ZooModule,
        subclass_mode_model=True,
        run=False,
        save_config_callback=None,
        seed_everything_default=0,
        args={
            "model": {"class_path": class_path, "init_args": init_args},
            "trainer": {"logger": False, "enable_progress_bar": False, "default_root_dir": str(root)},
        },
    )
    return cli.model


CLI_MODELS = {
    "sequence_transformer": (
        "zoo.models.SequenceClassifier",
        {"vocab_size": 9, "dim": 16, "depth": 1, "heads": 2, "pooling": "mean", **_SEQ},
    ),
    "vit": ("zoo.models.ViT", {"patch_size": 4, "dim": 16, "depth": 1, "heads": 2, **_IMG}),
    "gpt": (
        "zoo.models.GPT",
        {"vocab": "abcde", "input_shape": [8], "n_layer": 1, "n_head": 2, "n_embd": 16},
    ),
}


@pytest.mark.parametrize("name", list(CLI_MODELS))
def test_checkpoint_round_trip(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class_path, init_args = CLI_MODELS[name]
    model = _built_by_lightning_cli(class_path, init_args, tmp_path, monkeypatch)
    x, y = _example_batch(name)
    trainer = _trainer(tmp_path, max_steps=3)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=2))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    loaded = ZooModule.load_from_checkpoint(path, weights_only=True)
    assert type(loaded) is type(model)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    if name == "gpt":
        assert loaded.vocab == "abcde" and loaded.net.lm_head.weight is loaded.net.wte.weight
        text = loaded.generate("ab", max_new_tokens=10, seed=0)
        assert text == loaded.generate("ab", max_new_tokens=10, seed=0) == model.generate("ab", 10, seed=0)


def test_gpt_round_trip_without_the_cli(tmp_path: Path) -> None:
    model = GPT(
        vocab="xyz.", input_shape=[6], n_layer=1, n_head=2, n_embd=16, dropout=0.1, label_smoothing=0.1
    )
    x = torch.randint(0, 4, (8, 6))
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.fit(model, DataLoader(TensorDataset(x, torch.roll(x, -1, dims=1)), batch_size=4))
    trainer.save_checkpoint(tmp_path / "gpt.ckpt")
    loaded = GPT.load_from_checkpoint(tmp_path / "gpt.ckpt", weights_only=True)
    assert loaded.hparams.vocab == "xyz." and loaded.num_classes == 4 and loaded.block_size == 6
    assert loaded.loss_fn.label_smoothing == 0.1 and loaded.net.drop.p == 0.1
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    assert loaded.generate("xy.", 5, seed=7) == loaded.generate("xy.", 5, seed=7)


def test_gpt_validates_then_fits_with_exact_perplexity():
    """trainer.validate (inference mode) and then fit (no_grad validation) on one model; the
    logged perplexity is exp of the token-weighted mean loss."""
    from zoo.data.loader import TensorLoader

    torch.manual_seed(0)
    model = GPT(vocab="abcde", input_shape=[8], n_layer=1, n_head=2, n_embd=16)
    ids = torch.randint(0, 5, (10, 9))
    loader = TensorLoader(ids[:, :-1], ids[:, 1:], batch_size=4)  # batches of 4, 4, 2 sequences
    trainer = quiet_trainer(max_steps=2)
    before = trainer.validate(model, loader, verbose=False)[0]
    with torch.no_grad():
        nll = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    assert before["val/ppl"] == pytest.approx(nll.exp().item(), rel=1e-5)
    assert before["val/bpc"] == pytest.approx(nll.item() / math.log(2), rel=1e-5)
    trainer.fit(model, loader, loader)
    assert trainer.global_step == 2


def test_token_nll_states_suit_mps_and_stay_exact_over_many_batches():
    from zoo.models.transformer import TokenNLL

    metric = TokenNLL("ppl")
    # MPS has no float64: no state may be float64 (moving one there raises)
    assert {name: getattr(metric, name).dtype for name in ("total", "tokens")} == {
        "total": torch.float32,
        "tokens": torch.long,
    }
    gen = torch.Generator().manual_seed(0)
    nlls = 1.0 + 4.0 * torch.rand(5000, generator=gen, dtype=torch.float64)
    counts = torch.randint(1000, 20000, (5000,), generator=gen)
    for nll, count in zip(nlls, counts.tolist(), strict=True):
        metric.update(nll.float(), count)
    assert metric.tokens.item() == counts.sum().item()  # exact beyond float32's 2**24
    exact = (nlls * counts).sum() / counts.sum()
    assert metric.compute().item() == pytest.approx(exact.exp().item(), rel=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_block_equals_the_pre_norm_formula(causal: bool) -> None:
    torch.manual_seed(0)
    block = ztf.TransformerBlock(24, 3, mlp_ratio=2.0, causal=causal).eval()
    for ln in (block.ln1, block.ln2):  # non-trivial affine terms, so a missing norm shows
        torch.nn.init.uniform_(ln.weight, 0.5, 1.5)
        torch.nn.init.uniform_(ln.bias, -0.5, 0.5)
    x = torch.randn(2, 5, 24)

    def layer_norm(t: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
        mean, var = t.mean(-1, keepdim=True), t.var(-1, unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias

    with torch.no_grad():
        h = x + _attention_by_hand(block.attn, layer_norm(x, block.ln1), causal)
        fc, proj = block.mlp.fc, block.mlp.proj
        mlp = torch.nn.functional.gelu(layer_norm(h, block.ln2) @ fc.weight.T + fc.bias) @ proj.weight.T
        torch.testing.assert_close(block(x), h + mlp + proj.bias, atol=1e-5, rtol=1e-5)
