"""``zoo models [PATTERN] [--verbose] [--data]``: the names ``--model`` (and ``--data``) take."""

from __future__ import annotations

import argparse
from typing import Any

from zoo.cli.args import command_parser

EXAMPLES = """\
examples:
  zoo models                 # every model name
  zoo models 'resnet*' -v    # with class path, preset arguments and parameter count
  zoo models --data          # the data names: zoo train -c mlp_digits --data wine
  zoo models --pretrained    # the trained models that ship: zoo predict pretrained:mlp_digits ...
  zoo models --options       # the names of activations, losses, optimizers and schedules

A name works wherever a class path does on the command line: --model resnet20 is
--model zoo.models.ResNet with the preset's arguments (later flags override them).
"""

#: what each model family is sized for in --verbose's parameter count
REFERENCE: dict[str, tuple[str, dict[str, Any]]] = {
    "MLP": ("64 features, 10 classes", {"input_shape": [64], "num_classes": 10}),
    "ConvNet": ("3x32x32 images, 10 classes", {"input_shape": [3, 32, 32], "num_classes": 10}),
    "ResNet": ("3x32x32 images, 10 classes", {"input_shape": [3, 32, 32], "num_classes": 10}),
    "FastCifarNet": ("3x32x32 images, 10 classes", {"input_shape": [3, 32, 32], "num_classes": 10}),
    "ViT": ("3x32x32 images, 10 classes", {"input_shape": [3, 32, 32], "num_classes": 10}),
    "SequenceClassifier": (
        "16 tokens of 10, 10 classes",
        {"input_shape": [16], "num_classes": 10, "vocab_size": 10},
    ),
    "GPT": ("97 characters, block 256", {"input_shape": [256], "num_classes": 97}),
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = command_parser(
        "zoo models", "List the registered model names (or, with --data, the data names).", EXAMPLES
    )
    parser.add_argument("pattern", nargs="?", default=None, help="only names matching this pattern (fnmatch)")
    parser.add_argument("--verbose", "-v", action="store_true", help="class path, arguments, parameters")
    parser.add_argument("--data", action="store_true", help="list the data names instead")
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="list the trained models that ship (load with pretrained:NAME)",
    )
    parser.add_argument(
        "--options",
        action="store_true",
        help="list the short names of activations, losses, optimizers and schedules, with their flags",
    )
    return parser.parse_args(argv)


#: what --options lists: (what, the flag that takes it, the registry's name in zoo.registry)
OPTIONS = (
    ("activations", "--model.activation", "ACTIVATIONS"),
    ("losses", "--model.loss", "LOSSES"),
    ("optimizers", "--model.optimizer", "OPTIMIZERS"),
    ("schedules", "--model.lr_scheduler", "SCHEDULERS"),
)


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.pretrained:
        from zoo.pretrained import manifest

        for name, entry in manifest().items():
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(entry["test_metrics"].items()))
            size = f"{entry['bytes'] / 2**10:,.0f} KiB" + (" to download" if "url" in entry else "")
            print(f"pretrained:{name:<21} {entry['model']} on {entry['data']}, {size}")
            print(f"{'':<32} {metrics}  ({entry['command']})")
        return
    if args.options:
        import zoo.registry

        for what, flag, registry_name in OPTIONS:
            names = getattr(zoo.registry, registry_name).list(args.pattern)
            print(f"{what} ({flag}):\n  {', '.join(names)}")
        return
    from zoo.registry import DATA, MODELS, named_config

    registry = DATA if args.data else MODELS
    names = registry.list(args.pattern)
    if not args.verbose:
        print("\n".join(names))
        return
    for name in names:
        class_path, defaults = named_config(registry, name)
        arguments = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        line = f"{name:<22} {class_path}({arguments})"
        if not args.data:
            line += f"  {_parameters(registry.get(name), class_path)}"
        doc = " ".join((registry.get(name).__doc__ or "").split()).split(". ")[0].rstrip(".")
        print(line + (f"\n{'':<23}{doc}" if doc else ""))


def _parameters(factory: Any, class_path: str) -> str:
    reference = REFERENCE.get(class_path.rpartition(".")[2])
    if reference is None:
        return ""
    what, kwargs = reference
    count = sum(p.numel() for p in factory(**kwargs).parameters())
    return f"{count:,} parameters ({what})"
