"""Speed of the zoo against a hand-written PyTorch loop, same model, data and batch size.

    python benchmarks/mlp_digits.py [--epochs 30] [--repeat 5] [--device cpu|cuda] [--compile]

Prints seconds per epoch for: the hand-written loop over whole-batch tensor slices, the same loop
over a per-sample ``DataLoader`` (the common way), and the zoo's ``ZooTrainer.fit`` on
``SklearnDataModule``, and a bare LightningModule on the same DataModule (Lightning's own share);
then the ratio zoo / hand-written. Training only (validation is off); the
first epoch of each is a warm-up and is not timed. ``--compile``: ``torch.compile`` the network in
all three (``--model.compile true`` for the zoo).

``--repeat N`` runs the three N times, interleaved, and reports the medians and the median of the
N zoo / hand ratios: on a shared or throttled machine one pair of runs can differ by 2x from the
next, and a ratio of two runs taken seconds apart is what survives that.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from common import peak_memory_mib, record, reset_peak_memory, sync, training_only_trainer, warm_clock
from torch.utils.data import DataLoader, TensorDataset


def make_model(input_size: int, classes: int) -> torch.nn.Module:
    from zoo.nn import MLP

    return MLP(input_size, [256, 128], classes, activation="gelu", norm="layer")


def hand_loop(x, y, epochs: int, batch_size: int, device: str, per_sample: bool, compile: bool) -> float:
    torch.manual_seed(0)
    model = make_model(x.shape[1], int(y.max()) + 1).to(device)
    if compile:
        model.compile()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = x.to(device), y.to(device)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True) if per_sample else None
    start = 0.0
    for epoch in range(epochs + 1):
        if epoch == 1:
            sync(device)
            start = time.perf_counter()
        if per_sample:
            batches = loader
        else:
            order = torch.randperm(len(y), device=device)
            batches = ((x[idx], y[idx]) for idx in order.split(batch_size))
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
    sync(device)
    return (time.perf_counter() - start) / epochs


def zoo_fit(epochs: int, batch_size: int, device: str, compile: bool) -> float:
    import lightning.pytorch as pl

    from zoo.data import SklearnDataModule
    from zoo.models import MLP

    pl.seed_everything(0, verbose=False)
    data = SklearnDataModule("digits", batch_size=batch_size, val_size=10, test_size=10)
    model = MLP(
        task=data.task,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        hidden_sizes=[256, 128],
        activation="gelu",
        norm="layer",
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3),
        compile=compile,
    )
    clock = warm_clock(device)
    trainer = training_only_trainer(max_epochs=epochs + 1, accelerator=device, callbacks=[clock])
    trainer.fit(model, data)
    sync(device)
    return (time.perf_counter() - clock.start) / epochs


def bare_fit(epochs: int, batch_size: int, device: str, compile: bool) -> float:
    """Lightning alone: the same network, optimizer and DataModule in a minimal LightningModule (a
    ``training_step`` that returns the loss: no metrics, no logging, no checks) and a plain Trainer.
    zoo / bare is what the zoo's module adds; bare / hand is Lightning's own loop."""
    import lightning.pytorch as pl

    from zoo.data import SklearnDataModule

    class Bare(pl.LightningModule):
        def __init__(self, input_size: int, classes: int) -> None:
            super().__init__()
            self.net = make_model(input_size, classes)
            if compile:
                self.net.compile()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=3e-3)

    warnings.filterwarnings("ignore", message=r".*but have no `validation_step`")  # validation is off
    pl.seed_everything(0, verbose=False)
    data = SklearnDataModule("digits", batch_size=batch_size, val_size=10, test_size=10)
    model = Bare(data.input_shape[0], data.num_classes)
    clock = warm_clock(device)
    trainer = pl.Trainer(
        max_epochs=epochs + 1,
        accelerator=device,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, data)
    sync(device)
    return (time.perf_counter() - clock.start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs of each; medians reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network in every loop")
    args = parser.parse_args()

    from zoo.data import SklearnDataModule

    data = SklearnDataModule("digits", val_size=10, test_size=10)
    data.setup()
    x, y = data._tensors["train"]
    print(
        f"digits: {len(y)} training rows, batch {args.batch_size}, {args.epochs} timed epochs, "
        f"device {args.device}, compile {args.compile}"
    )
    hands, per_samples, bares, zoos = [], [], [], []
    for _ in range(args.repeat):  # interleaved: a slow moment of the machine hits all three
        hands.append(hand_loop(x, y, args.epochs, args.batch_size, args.device, False, args.compile))
        per_samples.append(hand_loop(x, y, args.epochs, args.batch_size, args.device, True, args.compile))
        bares.append(bare_fit(args.epochs, args.batch_size, args.device, args.compile))
        reset_peak_memory(args.device)
        zoos.append(zoo_fit(args.epochs, args.batch_size, args.device, args.compile))
    hand, per_sample, bare, zoo = (statistics.median(t) for t in (hands, per_samples, bares, zoos))
    ratio = statistics.median(z / h for z, h in zip(zoos, hands, strict=True))
    ratio_per_sample = statistics.median(z / p for z, p in zip(zoos, per_samples, strict=True))
    runs = f" (median of {args.repeat})" if args.repeat > 1 else ""
    print(f"hand-written loop, whole-batch slices : {hand * 1e3:8.1f} ms/epoch{runs}")
    print(f"hand-written loop, per-sample loader  : {per_sample * 1e3:8.1f} ms/epoch{runs}")
    print(f"bare LightningModule, same DataModule  : {bare * 1e3:8.1f} ms/epoch{runs}")
    print(f"zoo (ZooTrainer.fit, SklearnDataModule): {zoo * 1e3:8.1f} ms/epoch{runs}")
    if args.repeat > 1:
        each = ", ".join(f"{z / h:.2f}" for z, h in zip(zoos, hands, strict=True))
        print(f"ratios zoo / hand-written, run by run  : {each}")
    print(f"ratio zoo / hand-written (whole-batch) : {ratio:8.2f}")
    print(f"ratio zoo / hand-written (per-sample)  : {ratio_per_sample:8.2f}")
    lightning_share = statistics.median(b / h for b, h in zip(bares, hands, strict=True))
    zoo_share = statistics.median(z / b for z, b in zip(zoos, bares, strict=True))
    print(f"of which Lightning's loop (bare / hand): {lightning_share:8.2f}")
    print(f"and the zoo's module (zoo / bare)      : {zoo_share:8.2f}")
    record(
        "mlp_digits",
        device=args.device,
        compile=args.compile,
        epochs=args.epochs,
        hand_ms_per_epoch=hand * 1e3,
        per_sample_ms_per_epoch=per_sample * 1e3,
        bare_lightning_ms_per_epoch=bare * 1e3,
        zoo_ms_per_epoch=zoo * 1e3,
        repeat=args.repeat,
        ratio_zoo_hand=ratio,
        zoo_peak_memory_mib=peak_memory_mib(args.device),
    )


if __name__ == "__main__":
    main()
