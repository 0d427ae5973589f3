"""Export a trained model for serving: ONNX, torch.export (``.pt2``), TorchScript, or safetensors
weights with their config.

Every export is checked before it is reported: the exported file is loaded back (onnxruntime,
``torch.export.load``, ``torch.jit.load``, :func:`zoo.load`) and run on a batch of a size other
than the one it was traced with, and its outputs must match the checkpoint's model within
``tolerance``. The file is written to a temporary name and renamed into place only then, so a
failed export leaves nothing.

The exported ONNX, pt2 and TorchScript graphs take the model's own input (scaled features,
normalized images, token ids) and return its raw outputs (logits, or standardized values for
regression); the checkpoint's preprocessing facts travel in the file (ONNX metadata ``zoo``, the
``zoo.json`` extra file of ``.pt2`` and TorchScript files, the safetensors header's ``zoo`` entry)
so that a server can apply them.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.files import check_writable, staged
from zoo.inference import PREPROCESSING_KEY, jsonable

if TYPE_CHECKING:
    from zoo.models.base import ZooModule

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "safetensors": ".safetensors"}
#: the key of the zoo's JSON config in exported files' metadata
META_KEY = "zoo"
#: batch sizes of the traced example and of the parity check (different: the batch axis is dynamic)
TRACE_BATCH, CHECK_BATCH = 2, 5


class _Forward(nn.Module):
    """The model's forward alone, as a plain module (exporters need no Trainer attached)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def example_input(model: ZooModule, batch: int, seed: int = 0) -> torch.Tensor:
    """A batch of the model's input: token ids for models with a vocabulary, else floats."""
    if not model.input_shape:
        raise ZooError(
            f"export: {type(model).__name__} does not record its input shape; it cannot be traced."
        )
    generator = torch.Generator().manual_seed(seed)
    if model.num_tokens:
        return torch.randint(0, model.num_tokens, (batch, *model.input_shape), generator=generator)
    return torch.randn(batch, *model.input_shape, generator=generator)


def config_of(model: ZooModule) -> dict[str, Any]:
    """What rebuilds the model without pickle: its class, hyper-parameters and preprocessing."""
    import lightning

    from zoo import __version__

    cls = type(model)
    return {
        "format": "lightning-zoo export 1",
        "class_path": f"{cls.__module__}.{cls.__qualname__}",
        "hyper_parameters": jsonable(dict(model.hparams)),
        "preprocessing": jsonable(getattr(model, "preprocessing", None)),
        "versions": {"zoo": __version__, "torch": torch.__version__, "lightning": lightning.__version__},
    }


def export(
    checkpoint: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None, tolerance: float = 1e-4
) -> tuple[Path, float]:
    """Export ``checkpoint`` as ``fmt`` (``onnx``, ``pt2``, ``torchscript`` or ``safetensors``) to
    ``output`` (default: beside the checkpoint, with the format's suffix). Returns the path and the
    largest absolute difference between the exported model's outputs and the checkpoint's.

    Bad options (a ``tolerance`` that is not a finite number >= 0, an ``output`` that is the
    checkpoint, ends in ``.ckpt``, is a folder or cannot be written) and bad checkpoints are
    refused with :class:`ZooError` before the model is traced."""
    from zoo.checkpoints import load_model
    from zoo.pretrained import PREFIX, resolve

    if fmt not in FORMATS:
        raise ZooError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ZooError(f"--tolerance must be a finite number >= 0; got {tolerance!r}.")
    source = Path(resolve(checkpoint))  # pretrained:NAME -> its file
    if output is not None:
        target = Path(output)
    elif str(checkpoint).startswith(PREFIX):  # in the working folder, not in the installed package
        target = Path(str(checkpoint)[len(PREFIX) :] + FORMATS[fmt])
    else:
        target = source.with_suffix(FORMATS[fmt])
    check_output(target, source, fmt)
    model = load_model(checkpoint, map_location="cpu")
    write, run = {
        "onnx": (_write_onnx, _run_onnx),
        "pt2": (_write_pt2, _run_pt2),
        "torchscript": (_write_torchscript, _run_torchscript),
    }.get(fmt, (_write_safetensors, _run_safetensors))
    x = example_input(model, CHECK_BATCH, seed=1)
    with torch.no_grad():
        expected = model(x).float()
    with staged(target, suffix=FORMATS[fmt]) as tmp:
        write(model, tmp)
        got = run(tmp, x)
        if got.shape != expected.shape:
            raise ZooError(
                f"export: the {fmt} model returns shape {list(got.shape)}, not {list(expected.shape)}."
            )
        difference = float((got.float() - expected).abs().max()) if expected.numel() else 0.0
        if not difference <= tolerance:
            raise ZooError(
                f"export: the {fmt} model's outputs differ from the checkpoint's by up to {difference:.3g} "
                f"(tolerance {tolerance:g}); nothing was written."
            )
    return target, difference


def check_output(target: Path, checkpoint: Path, fmt: str) -> None:
    """Refuse, before any work, an export ``target`` that cannot or must not be written: the
    checkpoint itself (by any path), a ``.ckpt`` name, a folder, or a place that takes no files."""
    suffix = FORMATS[fmt]
    if target.exists() and checkpoint.exists() and os.path.samefile(target, checkpoint):
        other = checkpoint.with_suffix(suffix)
        other = other.with_name(f"{checkpoint.stem}-{fmt}{suffix}") if other == checkpoint else other
        raise ZooError(
            f"--output: {target} is the checkpoint being exported; writing there would destroy it. "
            f"Give another path, e.g. {other}."
        )
    if target.suffix.lower() == ".ckpt":
        raise ZooError(
            f"--output: {target} ends in .ckpt, the suffix of checkpoints, which an export must not "
            f"replace or imitate; {fmt} files end in {suffix}, e.g. {target.with_suffix(suffix)}."
        )
    check_writable(target, "--output", target / (checkpoint.stem + suffix))


# ---------------------------------------------------------------------------- formats


def _write_onnx(model: ZooModule, path: Path) -> None:
    try:
        import onnx
    except ImportError:
        raise ZooError("export: ONNX needs the onnx packages: pip install 'lightning-zoo[export]'.") from None
    x = example_input(model, TRACE_BATCH)
    batch = torch.export.Dim("batch")
    with tempfile.TemporaryDirectory() as folder:  # the exporter may put the weights in a side file
        raw = Path(folder) / "model.onnx"
        torch.onnx.export(
            _Forward(model).eval(),
            (x,),
            str(raw),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=["input"],
            output_names=["output"],
            verbose=False,
        )
        graph = onnx.load(str(raw))  # with its weights, into one file below
    onnx.helper.set_model_props(graph, {META_KEY: json.dumps(config_of(model))})
    onnx.save(graph, str(path))


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def _write_pt2(model: ZooModule, path: Path) -> None:
    x = example_input(model, TRACE_BATCH)
    program = torch.export.export(
        _Forward(model).eval(), (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(path), extra_files={"zoo.json": json.dumps(config_of(model))})


def _run_pt2(path: Path, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.export.load(str(path)).module()(x)


def _write_torchscript(model: ZooModule, path: Path) -> None:
    # torch deprecates TorchScript for torch.export (--format pt2); it stays for C++ and mobile
    # runtimes that read it. Its deprecation and tracer warnings are not the user's to act on.
    import warnings

    x = example_input(model, TRACE_BATCH)
    # LightningModule.trainer raises outside a Trainer; Lightning's own to_torchscript flags this
    model._jit_is_scripting = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(_Forward(model).eval(), x, check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={"zoo.json": json.dumps(config_of(model))})
    finally:
        model._jit_is_scripting = False


def _run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(x)


def _write_safetensors(model: ZooModule, path: Path) -> None:
    try:
        from safetensors.torch import save_model
    except ImportError:
        raise ZooError("export: safetensors is needed: pip install 'lightning-zoo[export]'.") from None
    save_model(model, str(path), metadata={META_KEY: json.dumps(config_of(model))})


def _run_safetensors(path: Path, x: torch.Tensor) -> torch.Tensor:
    model = load_safetensors(path)
    with torch.no_grad():
        return model(x)


def read_config(path: str | os.PathLike, option: str = "checkpoint") -> dict[str, Any]:
    """The config a ``.safetensors`` file of ``zoo export`` carries in its header (``class_path``,
    ``hyper_parameters``, ``preprocessing``, ``versions``), read without loading the weights.
    Any other file is one error naming ``option``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        config = json.loads(meta[META_KEY])
        config["class_path"], config["hyper_parameters"]  # noqa: B018  (both must be there)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise ZooError(
            f"{option}: {path} is not a safetensors file written by `zoo export` ({type(err).__name__}: "
            f"{str(err)[:120]})."
        ) from None
    return config


def load_safetensors(path: str | os.PathLike, map_location: Any = "cpu") -> ZooModule:
    """Rebuild a model exported with ``--format safetensors``: its class (which must be one the zoo
    trusts, see :func:`zoo.checkpoints.is_trusted`) from the config in the file's header, then its
    weights. Nothing is unpickled."""
    try:
        from safetensors.torch import load_model
    except ImportError:
        raise ZooError(
            "loading safetensors files needs safetensors: pip install 'lightning-zoo[export]'."
        ) from None

    from zoo.checkpoints import check_named_classes
    from zoo.models.base import CLASS_KEY, ZooModule, _stored_subclass

    path = Path(path)
    config = read_config(path)
    class_path, hparams = config["class_path"], config["hyper_parameters"]
    shell = {
        "hyper_parameters": hparams,
        CLASS_KEY: class_path,
        PREPROCESSING_KEY: config.get("preprocessing"),
    }
    check_named_classes({"hyper_parameters": {**hparams, "_class_path": class_path}}, path, "checkpoint")
    # Lightning rebuilds the class from the hyper-parameters (also those of LightningCLI's instantiator)
    import lightning

    buffer = io.BytesIO()
    torch.save({**shell, "state_dict": {}, "pytorch-lightning_version": lightning.__version__}, buffer)
    buffer.seek(0)
    target = _stored_subclass(ZooModule, shell)
    model = _quietly(lambda: target.load_from_checkpoint(buffer, map_location="cpu", strict=False))
    if f"{type(model).__module__}.{type(model).__qualname__}" != class_path:
        raise ZooError(f"checkpoint: {path} holds a {class_path}, which is not imported; import it first.")
    try:
        load_model(model, str(path), strict=True)
    except RuntimeError as err:
        raise ZooError(
            f"checkpoint: {path} does not hold the weights of a {class_path} ({str(err)[:160]})."
        ) from None
    model.to(map_location).eval()
    return model


def _quietly(build: Callable[[], Any]) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build()
