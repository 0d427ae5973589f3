"""Trained weights of the zoo's recipes: ``zoo.load("pretrained:convnet_fashion")``.

``zoo/weights/manifest.json`` lists each trained model by its recipe's name: its safetensors file
(weights, the model's config and its preprocessing facts in the header: loading runs no pickle),
the file's sha256 and size, the recipe and command that produced it, the versions used and the
test metrics it reached. Small models ship inside the package; a larger one has a ``url`` instead,
and is downloaded once into the user's cache (:func:`cache_dir`). Either way the sha256 is checked
before the file is read, and a file that does not match is refused by name.

``pretrained:NAME`` works wherever a checkpoint path does: ``zoo.load``, ``zoo predict``, ``zoo
export``, ``zoo generate``, ``zoo test --ckpt_path`` and ``--model.init_from`` (fine-tuning);
``zoo.create_model(NAME, pretrained=True)`` builds the model with its weights, and ``zoo models
--pretrained`` lists them. ``nox -s weights`` rebuilds every shipped file from its recipe
(:func:`build`), refusing one that misses the recipe's floor.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

PREFIX = "pretrained:"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"

#: the recipes whose trained weights ship inside the package (`nox -s weights` rebuilds them)
SHIPPED = (
    "mlp_digits",
    "mlp_breast_cancer",
    "mlp_diabetes",
    "convnet_fashion",
    "resnet_fashion",
    "transformer_sequence",
    "gpt_chars",
)


def manifest() -> dict[str, dict[str, Any]]:
    """The trained models by name, shipped and downloadable (empty when there are none)."""
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$ZOO_CACHE/weights``, else
    ``$XDG_CACHE_HOME/lightning-zoo/weights`` (``~/.cache/lightning-zoo/weights``)."""
    if os.environ.get("ZOO_CACHE"):
        return Path(os.environ["ZOO_CACHE"]) / "weights"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lightning-zoo" / "weights"


def entry(name: str) -> dict[str, Any]:
    """The manifest entry of ``name`` (with or without the ``pretrained:`` prefix)."""
    name = name.removeprefix(PREFIX)
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ZooError(f"no pretrained model named {name!r}; there are: {known} (zoo models --pretrained).")
    return entries[name]


def weights_path(name: str) -> Path:
    """The verified file of the trained model ``name``: the shipped one, or the cached download
    (fetched first if it is not there yet)."""
    name = name.removeprefix(PREFIX)
    info = entry(name)
    if "url" in info:
        path = cache_dir() / info["file"]
        if not path.is_file():
            _download(name, info, path)
    else:
        path = WEIGHTS_DIR / info["file"]
        if not path.is_file():
            raise ZooError(f"pretrained:{name}: {path} is missing from this installation of lightning-zoo.")
    found = sha256(path)
    if found != info["sha256"]:
        again = "delete it to download it again" if "url" in info else "reinstall lightning-zoo"
        raise ZooError(
            f"pretrained:{name}: {path} does not match its recorded sha256 ({found[:12]}... against "
            f"{info['sha256'][:12]}...): the file is damaged or was changed; {again}."
        )
    return path


def _download(name: str, info: dict[str, Any], path: Path) -> None:
    """Fetch ``info["url"]`` into ``path`` through a temporary file that is checked before it is
    moved into place: an interrupted or wrong download leaves nothing in the cache."""
    from urllib.error import URLError

    from torch.hub import download_url_to_file

    from zoo.files import staged

    path.parent.mkdir(parents=True, exist_ok=True)
    with staged(path, suffix=".part") as tmp:
        try:
            download_url_to_file(info["url"], str(tmp), progress=False)
        except (URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            size = f"{info['bytes'] / 2**20:.1f} MiB"
            raise ZooError(
                f"pretrained:{name} is not in the package ({size}) and could not be downloaded from "
                f"{info['url']} ({reason}). Offline, fetch that file elsewhere and put it at {path} "
                f"(sha256 {info['sha256']})."
            ) from None
        found = sha256(tmp)
        if found != info["sha256"]:
            raise ZooError(
                f"pretrained:{name}: the file downloaded from {info['url']} does not match its recorded "
                f"sha256 ({found[:12]}... against {info['sha256'][:12]}...); nothing was kept."
            )


def resolve(path: str | os.PathLike) -> str | os.PathLike:
    """``pretrained:NAME`` as its verified weights file; any other path unchanged."""
    if isinstance(path, str) and path.startswith(PREFIX):
        return str(weights_path(path))
    return path


def is_weights_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names weights without training state: ``pretrained:NAME`` or a
    ``.safetensors`` file of ``zoo export`` (as opposed to a Lightning ``.ckpt``)."""
    text = str(path)
    return text.startswith(PREFIX) or text.endswith(".safetensors")


def read_weights(source: str | os.PathLike, option: str = "model.init_from") -> dict[str, Any]:
    """The tensors of ``source`` by parameter name (``net.blocks.0.linear.weight``, ...), read
    without pickle: ``pretrained:NAME``, a ``.safetensors`` file of ``zoo export``, or a Lightning
    ``.ckpt`` (read with ``weights_only=True``). Errors name ``option``."""
    path = Path(resolve(source))
    if not path.is_file():
        raise ZooError(
            f"{option}: {source} does not exist; give a .ckpt file, a .safetensors file of `zoo export`, "
            "or pretrained:NAME (zoo models --pretrained lists them)."
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ZooError(f"{option}: {source} is not a readable safetensors file ({err}).") from None
    from zoo.checkpoints import read_checkpoint

    return dict(read_checkpoint(path, option=option)["state_dict"])


def read_config(source: str | os.PathLike, option: str = "checkpoint") -> dict[str, Any]:
    """The config in the header of ``pretrained:NAME`` or of a ``.safetensors`` file of ``zoo
    export`` (see :func:`zoo.export.read_config`)."""
    from zoo.export import read_config as read_header

    return read_header(resolve(source), option=option)


def create(name: str, **overrides: Any) -> Any:
    """The trained model ``name`` (``zoo.create_model(name, pretrained=True)``), in eval mode.

    With ``overrides`` (e.g. ``num_classes=5``, ``dropout=0.2``) the model is built from its stored
    config with those changed and then given every trained weight that still fits, like timm's
    ``pretrained=True, num_classes=...``: a new number of classes gets a fresh output layer. The
    preprocessing of its inputs (feature names and scaling, image size and normalization,
    vocabulary) is kept; the class labels only while the task and number of outputs are the same
    (see :func:`kept_preprocessing`).
    """
    from zoo.inference import load

    model = load(PREFIX + name.removeprefix(PREFIX))
    if not overrides:
        return model
    hparams = {**dict(model.hparams), **overrides}
    fresh = type(model)(**hparams)
    fresh.load_weights_from(PREFIX + name.removeprefix(PREFIX), option=f"create_model({name!r})")
    fresh.preprocessing = kept_preprocessing(model, fresh)
    return fresh.eval()


def kept_preprocessing(trained: Any, rebuilt: Any) -> dict[str, Any] | None:
    """The preprocessing facts of ``trained`` that still hold for ``rebuilt``, the same model built
    again with other hyper-parameters: every fact about the inputs, and the class labels only
    while its task and number of outputs are the trained model's (a new head's outputs are
    indices)."""
    import copy

    facts = copy.deepcopy(getattr(trained, "preprocessing", None))
    if not facts:
        return facts
    if rebuilt.task != trained.task or rebuilt.num_outputs != trained.num_outputs:
        facts.pop("classes", None)
        if "task" in facts:
            facts["task"] = rebuilt.task
    return facts


def evaluate(name: str, *flags: str) -> dict[str, float]:
    """The test metrics of the trained model ``name`` on its recipe's test split, measured now
    (``zoo test -c NAME --ckpt_path pretrained:NAME``); ``flags`` add to the recipe (e.g. a
    ``--data.data_dir``)."""
    from zoo.cli.lightning import run
    from zoo.recipes import find_recipe

    with tempfile.TemporaryDirectory(prefix="zoo-evaluate-") as root:
        cli = run(
            [
                "-c",
                str(find_recipe(entry(name)["recipe"]).path),
                "--trainer.default_root_dir",
                root,
                "--trainer.logger",
                "false",
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.enable_model_summary",
                "false",
                "--model.init_from",
                PREFIX + name,
                *flags,
            ],
            subcommand=False,
        )
        (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def build(
    name: str,
    root: str | os.PathLike = "runs/weights",
    url_base: str | None = None,
    out: str | os.PathLike = "dist/weights",
) -> dict[str, Any]:
    """Train the recipe ``name`` with ``zoo train``, check its test metrics against the recipe's
    floor, export its best checkpoint as safetensors and record it in the manifest (a maintainers'
    step: ``nox -s weights``). A run below its floor is refused and nothing is written.

    The file goes into the package's weights folder; with ``url_base`` (a model too large to ship)
    it goes into ``out`` as ``NAME-SHA8.safetensors`` to be uploaded there, and its entry gets the
    ``url`` it will be downloaded from.
    """
    from zoo.cli import main as zoo_main

    args = ["-c", name, "--trainer.default_root_dir", str(Path(root) / name)]
    zoo_main(["train", *args, "--trainer.enable_progress_bar", "false"])
    runs = sorted(Path(root, name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return record(name, runs[-1], url_base=url_base, out=out)


def record(
    name: str,
    run_dir: str | os.PathLike,
    url_base: str | None = None,
    out: str | os.PathLike = "dist/weights",
) -> dict[str, Any]:
    """Record the finished ``zoo train -c NAME`` run in ``run_dir`` as the trained model ``name``
    (what :func:`build` does after training; ``python -m zoo.pretrained NAME --from-run DIR`` for
    a run made elsewhere, e.g. on a GPU): its test metrics are held to the recipe's floor, its best
    checkpoint exported as safetensors (see :func:`build` for where) and entered in the manifest."""

    from zoo.export import export
    from zoo.files import write_json_atomic
    from zoo.recipes import find_recipe

    recipe = find_recipe(name)
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    best = Path(metrics.pop("best_checkpoint"))
    if not best.is_file():  # a run copied from where it was made: its own checkpoints folder
        best = run_dir / "checkpoints" / best.name
    metrics = {k: round(v, 6) for k, v in metrics.items() if isinstance(v, float)}
    if not recipe.meets_floor(metrics):
        metric, op, value = recipe.floor  # type: ignore[misc]
        raise ZooError(
            f"weights: {name} reached {metric} {metrics.get(metric)}, not {op} {value} (its recipe's floor); "
            f"nothing was recorded (the run: {run_dir})."
        )
    folder = WEIGHTS_DIR if url_base is None else Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.safetensors"
    export(best, "safetensors", target)
    digest = sha256(target)
    if url_base is not None:  # named by its content, as torchvision's and timm's hosted files are
        target = target.rename(folder / f"{name}-{digest[:8]}.safetensors")
    from zoo.inference import load
    from zoo.model_card import versions
    from zoo.runs import read_json_object

    model = load(target)
    made = read_json_object(run_dir / "run.json")
    here = {key: versions()[key] for key in ("torch", "lightning", "python")}
    entries = manifest()
    entries[name] = {
        "file": target.name,
        **({} if url_base is None else {"url": f"{url_base.rstrip('/')}/{target.name}"}),
        "sha256": digest,
        "bytes": target.stat().st_size,
        "recipe": name,
        "command": recipe.command,
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": _data_name(run_dir),
        "test_metrics": metrics,
        # where and with what the run was made (its run.json; a run from before it said: here, now)
        "versions": {key: made.get("versions", {}).get(key, now) for key, now in here.items()},
        **({"hardware": made["hardware"]} if "hardware" in made else {}),
    }
    write_json_atomic(MANIFEST, dict(sorted(entries.items())))
    return entries[name]


def _data_name(run_dir: Path) -> str:
    """The data a run trained on, as its config names it: the dataset or problem argument, else the
    DataModule's class name (``FashionMNIST``)."""
    import yaml

    data = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    args = data.get("init_args") or {}
    return str(
        args.get("dataset")
        or args.get("problem")
        or data["class_path"].rsplit(".", 1)[1].removesuffix("DataModule")
    )


def table() -> str:
    """The trained models as a Markdown table (the README's and the docs' list)."""
    rows = [
        "| name | model | data | parameters | size | test metrics |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for name, info in manifest().items():
        metrics = ", ".join(
            f"{k.removeprefix('test/')} {v:.4f}" for k, v in sorted(info["test_metrics"].items())
        )
        where = "" if "url" not in info else " (download)"
        rows.append(
            f"| `pretrained:{name}` | {info['model']} | {info['data']} | {info['parameters']:,} | "
            f"{info['bytes'] / 2**10:,.0f} KiB{where} | {metrics} |"
        )
    return "\n".join(rows)


#: the lines between which the README lists the trained models (`nox -s weights` rewrites them)
TABLE_START, TABLE_END = "<!-- pretrained:start -->", "<!-- pretrained:end -->"


def refresh_table(path: str | os.PathLike) -> None:
    """Rewrite the trained models' table in the Markdown file ``path`` (between its markers)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ZooError(
            f"weights: {path} has no {TABLE_START} ... {TABLE_END} lines to put the table between."
        )
    from zoo.files import atomic_write

    rewritten = text[: start + len(TABLE_START)] + "\n" + table() + "\n" + text[end:]
    atomic_write(path, lambda handle: handle.write(rewritten))


def main(argv: list[str] | None = None) -> None:
    """``python -m zoo.pretrained [NAME ...] [--url-base URL --out DIR]`` (``nox -s weights``): retrain
    the named recipes (default: every shipped one) from a source checkout, record their weights, then
    refresh the README's table. With ``--url-base``, the files go into ``--out`` to be uploaded to
    that address, and their entries are downloads. With ``--from-run DIR``, a run made elsewhere
    (on a GPU, by ``benchmarks/gpu.sh``) is recorded instead of training one here."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zoo.pretrained", description=main.__doc__)
    parser.add_argument("names", nargs="*", help=f"recipes to rebuild (default: {', '.join(SHIPPED)})")
    parser.add_argument("--url-base", help="where the files will be downloaded from (larger models)")
    parser.add_argument("--out", default="dist/weights", help="where --url-base files are written")
    parser.add_argument(
        "--from-run", metavar="DIR", help="record this finished run of the one NAME instead of training"
    )
    args = parser.parse_args(argv)
    from zoo.recipes import list_recipes

    names = args.names or list(SHIPPED)
    if args.from_run and len(args.names) != 1:
        parser.error("--from-run records one run: name its recipe, e.g. resnet_fashion --from-run DIR")
    known = SHIPPED if args.url_base is None else [r.name for r in list_recipes() if not r.is_fragment]
    unknown = [n for n in names if n not in known]
    if unknown:
        what = (
            "shipped recipes (add one to SHIPPED, or give --url-base)" if args.url_base is None else "recipes"
        )
        parser.error(f"{', '.join(unknown)} not among the {what}: {', '.join(known)}")
    for name in names:
        if args.from_run:
            info = record(name, args.from_run, url_base=args.url_base, out=args.out)
        else:
            info = build(name, url_base=args.url_base, out=args.out)
        where = info.get("url", "the package")
        print(f"weights: {name}: {info['test_metrics']} ({info['bytes'] / 2**10:,.0f} KiB, {where})")
    refresh_table(Path(__file__).resolve().parents[1] / "README.md")


if __name__ == "__main__":
    main()
