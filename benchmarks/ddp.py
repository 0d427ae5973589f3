"""Data-parallel throughput: the zoo on Lightning's DDP against a hand-written DDP loop, on 1 and N
processes, same model, data, batch and shard sizes, measured in one run.

    python benchmarks/ddp.py [--processes 1 2] [--epochs 4] [--device cpu|cuda]

Each configuration starts its processes the way Lightning's own launcher and torchrun do (one
process per rank, ``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` in the
environment). Both sides train an MLP (256 -> 1024 -> 1024 -> 10, GELU, layer norm) with SGD on
synthetic data held in memory, ``--batch-size`` rows per process and step; both shard the
training set as ``DistributedSampler`` does. The first epoch is a warm-up; the rest are timed on
rank 0 between barriers. Prints examples/s for each, the zoo / hand ratio, and the speed-up of N
processes over one. On CPU the processes share the machine's cores (``torch`` threads per
process = cores / N), so the cores bound the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import torch
from common import record, training_only_trainer

FEATURES, CLASSES, HIDDEN = 256, 10, [1024, 1024]


def synthetic_data(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, FEATURES, generator=generator)
    y = (x[:, :CLASSES] + 0.5 * torch.randn(rows, CLASSES, generator=generator)).argmax(1)
    return x, y


def make_net() -> torch.nn.Module:
    from zoo.nn import MLP

    return MLP(FEATURES, HIDDEN, CLASSES, activation="gelu", norm="layer")


# ----------------------------------------------------------------------------- the workers


def hand_worker(args: argparse.Namespace, rank: int, world: int) -> float | None:
    """A hand-written DDP loop; returns examples/s on rank 0."""
    import torch.distributed as dist

    from zoo.data.loader import ShardSampler

    device = torch.device(args.device, rank) if args.device == "cuda" else torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = make_net().to(device)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rank] if args.device == "cuda" else None
        )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = (t.to(device) for t in synthetic_data(args.rows))
    sampler = ShardSampler(len(y), shuffle=True, rank=rank, world_size=world)

    def epoch(k: int) -> None:
        index = sampler.indices(k).to(device)
        for idx in index.split(args.batch_size):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()

    epoch(0)
    _sync(args, world)
    start = time.perf_counter()
    for k in range(1, args.epochs):
        epoch(k)
    _sync(args, world)
    seconds = time.perf_counter() - start
    if world > 1:
        dist.destroy_process_group()
    return (args.epochs - 1) * len(y) / seconds if rank == 0 else None


def _sync(args: argparse.Namespace, world: int) -> None:
    if args.device == "cuda":
        torch.cuda.synchronize()
    if world > 1:
        torch.distributed.barrier()


def zoo_worker(args: argparse.Namespace, rank: int, world: int) -> float | None:
    """``ZooTrainer.fit`` on an ``ArrayDataModule`` under Lightning's DDP; examples/s on rank 0."""
    from functools import partial

    import lightning.pytorch as pl

    from zoo.data import ArrayDataModule
    from zoo.models import MLP

    class EpochClock(pl.Callback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            _sync(args, world)
            self.stamps.append(time.perf_counter())

    x, y = synthetic_data(args.rows + 2)  # + one validation and one test row, never used
    data = ArrayDataModule(
        x.numpy(),
        y.numpy(),
        batch_size=args.batch_size,
        val_size=1,
        test_size=1,
        stratify=False,
        standardize=False,
    )
    pl.seed_everything(0, verbose=False)
    model = MLP(
        task="multiclass",
        num_classes=CLASSES,
        input_shape=[FEATURES],
        hidden_sizes=HIDDEN,
        activation="gelu",
        norm="layer",
        optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9),
    )
    clock = EpochClock()
    trainer = training_only_trainer(
        accelerator=args.device,
        devices=world,
        strategy="ddp" if world > 1 else "auto",
        max_epochs=args.epochs,
        callbacks=[clock],
    )
    trainer.fit(model, data)
    seconds = clock.stamps[-1] - clock.stamps[0]
    return (args.epochs - 1) * args.rows / seconds if rank == 0 else None


# ----------------------------------------------------------------------------- the launcher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: argparse.Namespace, kind: str, world: int) -> float:
    """Start ``world`` worker processes of ``kind`` and return rank 0's examples/s."""
    cores = os.cpu_count() or 1
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(world),
        "NODE_RANK": "0",
        "OMP_NUM_THREADS": str(max(1, cores // world)),
    }
    command = [sys.executable, __file__, *sys.argv[1:], "--worker", kind, "--world", str(world)]
    procs = [
        subprocess.Popen(
            command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, text=True
        )
        for r in range(world)
    ]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"{kind} on {world} processes failed: exit codes {[p.returncode for p in procs]}")
    return json.loads(outputs[0].strip().splitlines()[-1])["examples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=4, help="the first is a warm-up")
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=256, help="per process")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--worker", choices=["hand", "zoo"], help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        rank = int(os.environ["LOCAL_RANK"])
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        worker = hand_worker if args.worker == "hand" else zoo_worker
        result = worker(args, rank, args.world)
        if rank == 0:
            print(json.dumps({"examples_per_s": result}), flush=True)
        return

    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(
        f"{args.rows} rows x {FEATURES} features, MLP {HIDDEN}, batch {args.batch_size} per process, "
        f"{args.epochs} epochs (1 warm-up), {device}"
    )
    results = {}
    for world in args.processes:
        hand = launch(args, "hand", world)
        zoo = launch(args, "zoo", world)
        results[world] = (hand, zoo)
        record(
            "ddp",
            device=args.device,
            processes=world,
            hand_examples_per_s=hand,
            zoo_examples_per_s=zoo,
            ratio_zoo_hand_time=hand / zoo,
        )
        print(
            f"{world} process(es): hand-written DDP {hand:9.0f} examples/s | zoo {zoo:9.0f} examples/s | "
            f"time zoo / hand {hand / zoo:5.2f}",
            flush=True,
        )
    base = min(results)
    for world, (hand, zoo) in sorted(results.items()):
        if world != base:
            print(
                f"speed-up of {world} over {base} process(es): hand-written {hand / results[base][0]:.2f}, "
                f"zoo {zoo / results[base][1]:.2f}"
            )


if __name__ == "__main__":
    main()
