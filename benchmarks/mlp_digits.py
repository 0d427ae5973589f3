"""Speed of the zoo against a hand-written PyTorch loop, same model, data and batch order size.

    python benchmarks/mlp_digits.py [--epochs 30] [--device cpu|cuda]

Prints seconds per epoch for: the hand-written loop over whole-batch tensor slices, the same loop
over a per-sample ``DataLoader`` (the common way), and the zoo's ``ZooTrainer.fit`` on
``SklearnDataModule``; then the ratio zoo / hand-written. Training only (validation is off).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import training_only_trainer
from torch.utils.data import DataLoader, TensorDataset


def make_model(input_size: int, classes: int) -> torch.nn.Module:
    from zoo.nn import MLP

    return MLP(input_size, [256, 128], classes, activation="gelu", norm="layer")


def hand_loop(x, y, epochs: int, batch_size: int, device: str, per_sample: bool) -> float:
    torch.manual_seed(0)
    model = make_model(x.shape[1], int(y.max()) + 1).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = x.to(device), y.to(device)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True) if per_sample else None
    start = time.perf_counter()
    for _ in range(epochs):
        if per_sample:
            batches = loader
        else:
            order = torch.randperm(len(y), device=device)
            batches = ((x[idx], y[idx]) for idx in order.split(batch_size))
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def zoo_fit(epochs: int, batch_size: int, device: str) -> float:
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
    )
    trainer = training_only_trainer(max_epochs=epochs, accelerator=device)
    start = time.perf_counter()
    trainer.fit(model, data)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from zoo.data import SklearnDataModule

    data = SklearnDataModule("digits", val_size=10, test_size=10)
    data.setup()
    x, y = data._tensors["train"]
    print(
        f"digits: {len(y)} training rows, batch {args.batch_size}, {args.epochs} epochs, device {args.device}"
    )
    hand = hand_loop(x, y, args.epochs, args.batch_size, args.device, per_sample=False)
    per_sample = hand_loop(x, y, args.epochs, args.batch_size, args.device, per_sample=True)
    zoo = zoo_fit(args.epochs, args.batch_size, args.device)
    print(f"hand-written loop, whole-batch slices : {hand * 1e3:8.1f} ms/epoch")
    print(f"hand-written loop, per-sample loader  : {per_sample * 1e3:8.1f} ms/epoch")
    print(f"zoo (ZooTrainer.fit, SklearnDataModule): {zoo * 1e3:8.1f} ms/epoch")
    print(f"ratio zoo / hand-written (whole-batch) : {zoo / hand:8.2f}")
    print(f"ratio zoo / hand-written (per-sample)  : {zoo / per_sample:8.2f}")


if __name__ == "__main__":
    main()
