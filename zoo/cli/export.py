"""``zoo export CKPT --format onnx|pt2|torchscript|safetensors [--output PATH]``."""

from __future__ import annotations

import argparse

from zoo.cli.args import checkpoint_parser, non_negative_float

EXAMPLES = """\
examples:
  zoo export runs/mlp_digits/version_0/checkpoints/last.ckpt --format onnx
  zoo export best.ckpt --format pt2             # torch.export: torch.export.load("best.pt2")
  zoo export best.ckpt --format torchscript --output model.pt   # deprecated by torch; for C++ runtimes
  zoo export best.ckpt --format safetensors     # weights + config; zoo.load("best.safetensors")

Each export is loaded back and run on a batch before it is kept: its outputs must match the
checkpoint's model within --tolerance (the largest difference is printed). ONNX, pt2 and
TorchScript take the model's own input (scaled features, normalized images, token ids) and return its raw
outputs; the preprocessing facts that turn raw data into that input travel in the file's metadata
(key "zoo"). ONNX needs `pip install 'lightning-zoo[export]'`.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    from zoo.export import FORMATS

    parser = checkpoint_parser(
        "zoo export",
        "Export a trained model for serving, checked against its checkpoint.",
        EXAMPLES,
        "a .ckpt file written by `zoo train` (or by a Trainer on a zoo model)",
    )
    parser.add_argument("--format", "-f", required=True, choices=list(FORMATS), help="the file format")
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        help="the file to write (default: beside the checkpoint, with the format's suffix: "
        ".onnx, .pt2, .pt or .safetensors); never the checkpoint itself or another .ckpt",
    )
    parser.add_argument(
        "--tolerance",
        type=non_negative_float,
        default=1e-4,
        help="largest allowed output difference, a number >= 0 (default: 1e-4)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    from zoo.export import export

    path, difference = export(args.checkpoint, args.format, args.output, args.tolerance)
    print(f"wrote {path} ({args.format}); largest output difference against the checkpoint: {difference:.3g}")
