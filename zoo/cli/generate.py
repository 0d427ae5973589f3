"""``zoo generate``: sample text from a language-model checkpoint (no data needed: the vocabulary
is stored in the checkpoint)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.cli.args import checkpoint_parser, positive_float, positive_int, torch_device
from zoo.errors import ZooError

EXAMPLES = """\
examples:
  zoo generate pretrained:gpt_chars --prompt "def "
  zoo generate runs/gpt_chars/version_0/checkpoints/last.ckpt
  zoo generate best.ckpt --prompt "def main(" --max-new-tokens 300 --temperature 0.8 --top-k 20 --seed 1
"""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = checkpoint_parser(
        "zoo generate",
        "Continue a prompt with a language model trained by `zoo train` (e.g. -c gpt_chars).",
        EXAMPLES,
        "a language model (zoo.models.GPT or a subclass): a .ckpt file, a .safetensors file of "
        "zoo export, or pretrained:NAME (zoo models --pretrained)",
    )
    parser.add_argument("--prompt", default=None, help="text to continue (default: a newline)")
    parser.add_argument(
        "-n", "--max-new-tokens", type=positive_int, default=200, help="characters to add (default: 200)"
    )
    parser.add_argument(
        "--temperature",
        type=positive_float,
        default=1.0,
        help="a finite number > 0; lower is more conservative, higher more varied (default: 1.0)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=None, help="sample among the k likeliest tokens (1: greedy)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the sampling: same seed, same text (default: 0)"
    )
    parser.add_argument(
        "--device", default="cpu", help="auto (a GPU when there is one), cpu, cuda or cuda:N (default: cpu)"
    )
    args = parser.parse_args(argv)
    if args.prompt == "":
        raise ZooError(
            "generate: --prompt must not be empty; give text to continue, or leave --prompt out to "
            "start from a newline."
        )
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    from zoo.pretrained import PREFIX

    path = args.checkpoint if args.checkpoint.startswith(PREFIX) else Path(args.checkpoint)
    if isinstance(path, Path) and not path.is_file():
        raise ZooError(f"generate: no such checkpoint file: {path}")

    device = torch_device(args.device)  # before the checkpoint is read

    import zoo.models  # noqa: F401  (registers the classes a checkpoint may name)
    from zoo.checkpoints import load_model

    try:
        model = load_model(path, map_location=device)
    except (RuntimeError, KeyError, OSError) as err:  # what load_model does not word itself
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ZooError(f"generate: cannot load {path} on {device} ({first}).") from None
    if not hasattr(model, "generate") or getattr(model, "vocab", None) is None:
        raise ZooError(
            f"generate: {path} holds a {type(model).__name__}, not a language model with a vocabulary; "
            "train one with e.g. `zoo train -c gpt_chars`."
        )
    model.eval()
    prompt = args.prompt
    if prompt is None:
        prompt = "\n" if "\n" in model.vocab else model.vocab[0]
    try:
        text = model.generate(
            prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            seed=args.seed,
        )
    except ZooError as err:
        raise ZooError(f"generate: --prompt: {err}") from None
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
