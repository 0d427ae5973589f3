"""``zoo generate``: sampling from a language-model checkpoint with the vocabulary it stores."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.conftest import quiet_trainer
from tests.test_cli import run_main
from zoo.data.loader import TensorLoader
from zoo.models import GPT, MLP

VOCAB = "\nabcde "


def _trained_checkpoint(path: Path, model: pl.LightningModule, x: torch.Tensor, y: torch.Tensor) -> Path:
    trainer = quiet_trainer(max_steps=3)
    trainer.fit(model, train_dataloaders=TensorLoader(x, y, batch_size=4))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def gpt_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = GPT(vocab=VOCAB, input_shape=[8], n_layer=1, n_head=2, n_embd=16)
    ids = torch.randint(0, len(VOCAB), (16, 9))
    return _trained_checkpoint(tmp_path_factory.mktemp("gpt") / "lm.ckpt", model, ids[:, :-1], ids[:, 1:])


def test_generate_continues_the_prompt_reproducibly(gpt_checkpoint: Path, capsys):
    args = ["generate", str(gpt_checkpoint), "--prompt", "abc", "-n", "30", "--seed", "3"]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    text = out[:-1] if out.endswith("\n") else out
    assert text.startswith("abc") and len(text) == 33 and set(text) <= set(VOCAB)
    assert run_main(args, capsys)[1] == out  # same seed, same text
    others = {run_main([*args[:-1], str(seed)], capsys)[1] for seed in range(4, 8)}
    assert others - {out}, "different seeds never changed the sample"
    # top-k 1 is greedy decoding, which no seed changes
    greedy = {run_main([*args[:-2], "--top-k", "1", "--seed", str(s)], capsys)[1] for s in (1, 2)}
    assert len(greedy) == 1
    # ... and is the argmax chain of the model's own logits (context cropped to the block of 8)
    model = GPT.load_from_checkpoint(gpt_checkpoint, weights_only=True).eval()
    ids = model.encode("abc")
    for _ in range(30):
        with torch.no_grad():
            ids = torch.cat([ids, model(ids[None, -8:])[0, -1].argmax()[None]])
    text = model.decode(ids)
    assert greedy == {
        text if text.endswith("\n") else text + "\n"
    }  # the command ends the output with one newline


def test_generate_matches_the_model_api(gpt_checkpoint: Path, capsys):
    model = GPT.load_from_checkpoint(gpt_checkpoint, weights_only=True)
    expected = model.generate("ab", max_new_tokens=12, temperature=0.7, top_k=3, seed=9)
    args = ["generate", str(gpt_checkpoint), "--prompt", "ab", "-n", "12", "--temperature", "0.7"]
    code, out, _ = run_main([*args, "--top-k", "3", "--seed", "9"], capsys)
    assert code == 0 and out == expected + "\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prompt", "xyz"], "generate: --prompt: characters not in the model's vocabulary"),
        (["--temperature", "0"], "argument --temperature: must be > 0"),
        (["-n", "0"], "argument -n/--max-new-tokens: must be an integer >= 1"),
        (["--prompt="], "zoo: error: generate: --prompt must not be empty; give text to continue, or leave"),
        (["--temperature", "inf"], "argument --temperature: must be a finite number > 0, got inf"),
        (["--device", "tpu"], "zoo: error: --device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N."),
        pytest.param(
            ["--device", "cuda"],
            "zoo: error: --device: cuda was asked for, but this machine has no usable GPU; use --device cpu.",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
    ids=["prompt", "temperature", "tokens", "empty-prompt", "inf-temperature", "tpu", "cuda-without-gpu"],
)
def test_generate_bad_options(gpt_checkpoint: Path, capsys, extra: list[str], message: str):
    code, out, err = run_main(["generate", str(gpt_checkpoint), *extra], capsys)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_generate_needs_a_language_model_checkpoint(tmp_path: Path, capsys):
    code, _, err = run_main(["generate", str(tmp_path / "missing.ckpt")], capsys)
    assert code == 2 and f"no such checkpoint file: {tmp_path / 'missing.ckpt'}" in err
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    code, _, err = run_main(["generate", str(tmp_path / "junk.ckpt")], capsys)
    assert code == 2 and f"checkpoint: {tmp_path / 'junk.ckpt'} is not a readable PyTorch checkpoint" in err
    mlp = MLP(num_classes=3, input_shape=[4], hidden_sizes=[8])
    path = _trained_checkpoint(tmp_path / "mlp.ckpt", mlp, torch.randn(8, 4), torch.randint(0, 3, (8,)))
    code, _, err = run_main(["generate", str(path)], capsys)
    assert code == 2 and "holds a MLP, not a language model" in err
