"""Training throughput of resnet_cifar10's model: the zoo against hand-written PyTorch loops.

    python benchmarks/resnet_cifar10.py [--images 5000] [--epochs 3] [--device cpu|cuda] [--compile]

Synthetic CIFAR-shaped data (uint8 3x32x32 images, 10 classes), ResNet-20 in ``channels_last``,
SGD with Nesterov momentum, random crop (padding 4) + horizontal flip, batch 128; bf16 autocast
on CUDA, float32 on CPU (``--precision`` overrides). Prints training images per second for:

- hand loop, uint8 store: the images stay one uint8 tensor; each batch is sliced, moved to the
  device, cropped, flipped and normalized there (the zoo's data path, written out by hand);
- hand loop, torchvision per-sample: a DataLoader with torchvision's RandomCrop/RandomHorizontalFlip/
  Normalize per image in worker processes (the common way);
- zoo: ``ZooTrainer.fit`` on an ``ImageDataModule`` with the ``ResNet`` LightningModule;

then the ratio of the zoo's time to the hand-written uint8 loop's. The first epoch of each is a
warm-up and is not timed. ``--compile``: ``torch.compile`` the network in all three
(``--model.compile true`` for the zoo).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import peak_memory_mib, record, reset_peak_memory, sync, training_only_trainer, warm_clock

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def make_net(compile: bool = False) -> torch.nn.Module:
    from zoo.nn import ResNet

    net = ResNet(3, 10, widths=[16, 32, 64], blocks_per_stage=3).to(memory_format=torch.channels_last)
    if compile:
        net.compile()
    return net


def make_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def synthetic(images: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (images, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, images)


def hand_uint8(x, y, epochs, batch_size, device, dtype, compile) -> float:
    """Images per second of a plain loop over the uint8 store with per-batch augmentation."""
    torch.manual_seed(0)
    net = make_net(compile).to(device)
    opt = make_optimizer(net.parameters())
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    n = len(y)
    steps = n // batch_size
    start = 0.0
    for epoch in range(epochs + 1):
        if epoch == 1:
            sync(device)
            start = time.perf_counter()
        order = torch.randperm(n)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            xb, yb = x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
            padded = F.pad(xb, (4, 4, 4, 4))
            dy = torch.randint(0, 9, (len(xb),), device=device)
            dx = torch.randint(0, 9, (len(xb),), device=device)
            rows = (dy[:, None] + torch.arange(32, device=device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(32, device=device))[:, None, None, :]
            image = torch.arange(len(xb), device=device)[:, None, None, None]
            channel = torch.arange(3, device=device)[None, :, None, None]
            xb = padded[image, channel, rows, cols]
            flip = torch.rand(len(xb), device=device) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            xb = ((xb.float() - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(device)
    return epochs * steps * batch_size / (time.perf_counter() - start)


def hand_torchvision(x, y, epochs, batch_size, device, dtype, workers, compile) -> float:
    """Images per second of a plain loop over a DataLoader with per-sample torchvision transforms."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.RandomCrop(32, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )

    class Images(Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, i: int):
            return transform(torch.from_numpy(x[i])), int(y[i])

    loader = DataLoader(
        Images(),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device == "cuda",
    )
    torch.manual_seed(0)
    net = make_net(compile).to(device)
    opt = make_optimizer(net.parameters())
    start = 0.0
    for epoch in range(epochs + 1):
        if epoch == 1:
            sync(device)
            start = time.perf_counter()
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(device)
    return epochs * len(loader) * batch_size / (time.perf_counter() - start)


def zoo_fit(x, y, epochs, batch_size, device, precision, compile) -> float:
    """Images per second of ``ZooTrainer.fit`` (the first epoch timed apart by a callback)."""
    import lightning.pytorch as pl

    from zoo.data import ArraySplit, ImageDataModule, Loaded
    from zoo.models import ResNet

    class Synthetic(ImageDataModule):
        mean, std = MEAN, STD

        def load(self) -> Loaded:
            return Loaded(ArraySplit(x, y), task="multiclass")

    pl.seed_everything(0, verbose=False)
    data = Synthetic(
        batch_size=batch_size, val_size=10, test_size=10, crop_padding=4, hflip=True, stratify=False
    )
    model = ResNet(
        task=data.task,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        widths=[16, 32, 64],
        blocks_per_stage=3,
        channels_last=True,
        optimizer=make_optimizer,
        compile=compile,
    )
    clock = warm_clock(device)
    trainer = training_only_trainer(
        max_epochs=epochs + 1, accelerator=device, devices=1, precision=precision, callbacks=[clock]
    )
    trainer.fit(model, data)
    sync(device)
    return epochs * data.split_sizes()["train"] / (time.perf_counter() - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the torchvision loop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["bf16-mixed", "32"], default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network in every loop")
    args = parser.parse_args()
    precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    card = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    x, y = synthetic(args.images)
    print(
        f"ResNet-20, {args.images} synthetic 3x32x32 images, batch {args.batch_size}, "
        f"{args.epochs} timed epochs, {precision}, channels_last, compile {args.compile}, {card}"
    )
    hand = hand_uint8(x, y, args.epochs, args.batch_size, args.device, dtype, args.compile)
    print(f"hand-written loop, uint8 store + per-batch augmentation : {hand:9.0f} images/s")
    per_sample = hand_torchvision(
        x, y, args.epochs, args.batch_size, args.device, dtype, args.workers, args.compile
    )
    print(f"hand-written loop, torchvision per-sample transforms   : {per_sample:9.0f} images/s")
    reset_peak_memory(args.device)
    zoo = zoo_fit(x, y, args.epochs, args.batch_size, args.device, precision, args.compile)
    print(f"zoo (ZooTrainer.fit, ImageDataModule, ResNet)          : {zoo:9.0f} images/s")
    print(f"time ratio zoo / hand-written (uint8 store)            : {hand / zoo:9.2f}")
    record(
        "resnet_cifar10",
        device=args.device,
        compile=args.compile,
        precision=precision,
        images=args.images,
        epochs=args.epochs,
        hand_images_per_s=hand,
        torchvision_images_per_s=per_sample,
        zoo_images_per_s=zoo,
        ratio_zoo_hand_time=hand / zoo,
        zoo_peak_memory_mib=peak_memory_mib(args.device),
    )


if __name__ == "__main__":
    main()
