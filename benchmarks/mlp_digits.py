"""Speed of the zoo against a hand-written PyTorch loop, same model, data and batch size.

    python benchmarks/mlp_digits.py [--epochs 30] [--device cpu|cuda] [--compile]

Prints seconds per epoch for: the hand-written loop over whole-batch tensor slices, the same loop
over a per-sample ``DataLoader`` (the common way), and the zoo's ``ZooTrainer.fit`` on
``SklearnDataModule``; then the ratio zoo / hand-written. Training only (validation is off); the
first epoch of each is a warm-up and is not timed. ``--compile``: ``torch.compile`` the network in
all three (``--model.compile true`` for the zoo).
"""

from __future__ import annotations

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=64)
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
    hand = hand_loop(x, y, args.epochs, args.batch_size, args.device, False, args.compile)
    per_sample = hand_loop(x, y, args.epochs, args.batch_size, args.device, True, args.compile)
    reset_peak_memory(args.device)
    zoo = zoo_fit(args.epochs, args.batch_size, args.device, args.compile)
    print(f"hand-written loop, whole-batch slices : {hand * 1e3:8.1f} ms/epoch")
    print(f"hand-written loop, per-sample loader  : {per_sample * 1e3:8.1f} ms/epoch")
    print(f"zoo (ZooTrainer.fit, SklearnDataModule): {zoo * 1e3:8.1f} ms/epoch")
    print(f"ratio zoo / hand-written (whole-batch) : {zoo / hand:8.2f}")
    print(f"ratio zoo / hand-written (per-sample)  : {zoo / per_sample:8.2f}")
    record(
        "mlp_digits",
        device=args.device,
        compile=args.compile,
        epochs=args.epochs,
        hand_ms_per_epoch=hand * 1e3,
        per_sample_ms_per_epoch=per_sample * 1e3,
        zoo_ms_per_epoch=zoo * 1e3,
        ratio_zoo_hand=zoo / hand,
        zoo_peak_memory_mib=peak_memory_mib(args.device),
    )


if __name__ == "__main__":
    main()
