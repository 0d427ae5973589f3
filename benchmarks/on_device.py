"""Data kept on the training device (``data.on_device``): the same batches, and what it saves.

    python benchmarks/on_device.py [--device cuda] [--epochs 10]

1. For a table (digits), images (digits as 1x8x8 uint8) and character text, the batches of two
   epochs of every loader with the data on the device equal those sliced on the host and copied
   (the check fails with a non-zero exit otherwise).
2. ``ZooTrainer.fit`` of the MLP on digits with ``on_device`` true and false: ms per epoch (after a
   warm-up epoch) and the ratio; and the final training loss of both, which must agree.

On a CPU there is nothing to move (both are the host path); run it on a GPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import record, sync, training_only_trainer, warm_clock


def attach(data, device: str):
    """``data`` as a Trainer on ``device`` would see it (the loaders ask it for the device)."""
    from types import SimpleNamespace

    data.trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=0, world_size=1, training=True
    )
    return data


def same_batches(make, device: str) -> int:
    host, kept = attach(make(False), device), attach(make(True), device)
    assert not host.keeps_data_on_device()
    compared = 0
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        a_loader, b_loader = getattr(host, name)(), getattr(kept, name)()
        for epoch in range(2):
            a_loader.sampler.set_epoch(epoch)
            b_loader.sampler.set_epoch(epoch)
            for a, b in zip(a_loader, b_loader, strict=True):
                for x, y in zip(a, b, strict=True):
                    assert y.device.type == torch.device(device).type, y.device
                    assert torch.equal(x.to(device), y), name
                    compared += 1
    return compared


def fit(on_device: bool, device: str, epochs: int) -> tuple[float, float]:
    import lightning.pytorch as pl

    from zoo.data import SklearnDataModule
    from zoo.models import MLP

    pl.seed_everything(0, verbose=False)
    data = SklearnDataModule("digits", batch_size=64, val_size=10, test_size=10, on_device=on_device)
    model = MLP(
        task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[256, 128]
    )
    clock = warm_clock(device)
    trainer = training_only_trainer(max_epochs=epochs + 1, accelerator=device, devices=1, callbacks=[clock])
    trainer.fit(model, data)
    sync(device)
    seconds = (time.perf_counter() - clock.start) / epochs
    return seconds, float(trainer.callback_metrics["train/loss"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    from zoo.data import CharTextDataModule, SklearnDataModule

    makers = {
        "table": lambda on: SklearnDataModule("digits", batch_size=100, on_device=on),
        "images": lambda on: SklearnDataModule("digits", batch_size=100, as_images=True, on_device=on),
        "chars": lambda on: CharTextDataModule(
            block_size=32, batch_size=16, train_batches_per_epoch=20, max_chars=100_000, on_device=on
        ),
    }
    for kind, make in makers.items():
        print(f"{kind}: {same_batches(make, args.device)} tensors equal on {args.device} and on the host")
    host, host_loss = fit(False, args.device, args.epochs)
    kept, kept_loss = fit(True, args.device, args.epochs)
    print(f"MLP on digits, data on the host  : {host * 1e3:8.1f} ms/epoch, train/loss {host_loss:.6f}")
    print(f"MLP on digits, data on the device: {kept * 1e3:8.1f} ms/epoch, train/loss {kept_loss:.6f}")
    print(f"time ratio on device / on host   : {kept / host:8.2f}")
    assert abs(host_loss - kept_loss) <= 1e-4 * max(1.0, abs(host_loss)), (host_loss, kept_loss)
    record(
        "on_device",
        device=args.device,
        host_ms_per_epoch=host * 1e3,
        device_ms_per_epoch=kept * 1e3,
        ratio_device_host=kept / host,
        host_train_loss=host_loss,
        device_train_loss=kept_loss,
    )


if __name__ == "__main__":
    main()
