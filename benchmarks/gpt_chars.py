"""Training speed of the zoo's GPT against a hand-written PyTorch loop: same network, windows, optimizer.

    python benchmarks/gpt_chars.py [--preset recipe|gpt_char] [--steps 200] [--device cpu|cuda] [--compile]

Both train ``zoo.nn.GPT`` on the offline default corpus (the standard library's Python source) from
the same seed: the same random windows (``RandomWindowLoader`` over the training split), AdamW
(lr 1e-3, betas 0.9/0.99, weight decay 0.1 on matrices only, fused), gradient clipping at 1.0,
bf16 autocast on CUDA and float32 on CPU (``--precision`` overrides), no schedule. The hand loop is
what one writes without Lightning; the zoo is ``ZooTrainer.fit`` on ``CharTextDataModule`` with the
``GPT`` LightningModule. The first ``--warmup`` steps of each are not timed.

Presets: ``recipe`` is the ``gpt_chars`` recipe's CPU model (4 layers, 4 heads, width 128, block 64,
batch 12); ``gpt_char`` is nanoGPT's 10.7M-parameter Shakespeare-char model (6 layers, 6 heads,
width 384, dropout 0.2, block 256, batch 64), for a GPU.

Prints training tokens per second of each and their ratio, and each model's validation loss after
the same number of steps (on the same first ``--val-batches`` validation windows).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import torch
import torch.nn.functional as F
from common import peak_memory_mib, record, reset_peak_memory, sync, training_only_trainer

PRESETS = {
    "recipe": {"n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0, "block_size": 64, "batch_size": 12},
    "gpt_char": {
        "n_layer": 6,
        "n_head": 6,
        "n_embd": 384,
        "dropout": 0.2,
        "block_size": 256,
        "batch_size": 64,
    },
}
NET_KEYS = ("n_layer", "n_head", "n_embd", "dropout")


def make_optimizer(params, device: str) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=True)


def autocast(device: str, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=dtype)


@torch.no_grad()
def val_loss(net: torch.nn.Module, windows, device: str, dtype: torch.dtype) -> float:
    """The mean per-token cross-entropy over the given validation windows."""
    was_training = net.training
    net.eval()
    total, tokens = 0.0, 0
    for x, y in windows:
        x, y = x.to(device), y.to(device)
        with autocast(device, dtype):
            logits = net(x)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        tokens += y.numel()
    net.train(was_training)
    return total / tokens


def hand_loop(data, preset, steps, warmup, device, dtype, compile) -> tuple[float, torch.nn.Module]:
    """Tokens per second of a plain loop, and the trained network."""
    from zoo.data.text import RandomWindowLoader
    from zoo.nn import GPT

    torch.manual_seed(0)
    net = GPT(len(data.vocab), preset["block_size"], bias=False, **{k: preset[k] for k in NET_KEYS}).to(
        device
    )
    if compile:
        net.compile()
    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    opt = make_optimizer([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], device)
    loader = RandomWindowLoader(
        data.split_tokens("train"), preset["block_size"], preset["batch_size"], warmup + steps, seed=data.seed
    )
    start = 0.0
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, dtype):  # the loss too, as Lightning's autocast does: fp32 cross-entropy
            logits = net(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    sync(device)
    return steps * preset["batch_size"] * preset["block_size"] / (time.perf_counter() - start), net


def zoo_fit(data, preset, steps, warmup, device, precision, compile) -> tuple[float, torch.nn.Module]:
    """Tokens per second of ``ZooTrainer.fit``, and the trained network."""
    import lightning.pytorch as pl

    from zoo.models import GPT

    class StepClock(pl.Callback):
        start = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == warmup:
                sync(device)
                self.start = time.perf_counter()

    torch.manual_seed(0)
    model = GPT(
        num_classes=len(data.vocab),
        input_shape=[preset["block_size"]],
        vocab=data.vocab,
        bias=False,
        optimizer=lambda params: make_optimizer(params, device),
        compile=compile,
        **{k: preset[k] for k in NET_KEYS},
    )
    clock = StepClock()
    trainer = training_only_trainer(
        max_steps=warmup + steps,
        accelerator=device,
        devices=1,
        precision=precision,
        gradient_clip_val=1.0,
        callbacks=[clock],
    )
    trainer.fit(model, data)
    sync(device)
    return steps * preset["batch_size"] * preset["block_size"] / (
        time.perf_counter() - clock.start
    ), model.net


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: gpt_char on CUDA")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--val-batches", type=int, default=20, help="validation batches of 64 windows")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["bf16-mixed", "32"], default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network in both")
    args = parser.parse_args()
    preset_name = args.preset or ("gpt_char" if args.device == "cuda" else "recipe")
    preset = PRESETS[preset_name]
    precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32

    from zoo.data import CharTextDataModule
    from zoo.data.text import contiguous_windows

    data = CharTextDataModule(
        block_size=preset["block_size"],
        batch_size=preset["batch_size"],
        train_batches_per_epoch=args.warmup + args.steps,
    )
    data.setup()
    vx, vy = contiguous_windows(data.split_tokens("val"), preset["block_size"])
    windows = [(vx[i : i + 64], vy[i : i + 64]) for i in range(0, min(len(vx), 64 * args.val_batches), 64)]
    card = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"GPT preset {preset_name} {preset}, vocab {len(data.vocab)}, {args.steps} timed steps after "
        f"{args.warmup}, {precision}, compile {args.compile}, {card}"
    )
    reset_peak_memory(args.device)
    hand, hand_net = hand_loop(data, preset, args.steps, args.warmup, args.device, dtype, args.compile)
    hand_memory = peak_memory_mib(args.device)
    hand_val = val_loss(hand_net, windows, args.device, dtype)
    del hand_net
    reset_peak_memory(args.device)
    zoo, zoo_net = zoo_fit(data, preset, args.steps, args.warmup, args.device, precision, args.compile)
    zoo_memory = peak_memory_mib(args.device)
    zoo_val = val_loss(zoo_net.to(args.device), windows, args.device, dtype)
    steps = args.warmup + args.steps
    print(f"hand-written loop : {hand:10.0f} tokens/s, val loss {hand_val:.4f} after {steps} steps")
    print(f"zoo (ZooTrainer)  : {zoo:10.0f} tokens/s, val loss {zoo_val:.4f} after {steps} steps")
    print(f"speed ratio zoo / hand-written (tokens/s): {zoo / hand:6.3f}")
    parameters = sum(p.numel() for p in zoo_net.parameters())
    record(
        "gpt_chars",
        device=args.device,
        compile=args.compile,
        precision=precision,
        preset=preset_name,
        parameters=parameters,
        steps=args.steps,
        hand_tokens_per_s=hand,
        zoo_tokens_per_s=zoo,
        ratio_zoo_hand_speed=zoo / hand,
        hand_val_loss=hand_val,
        zoo_val_loss=zoo_val,
        chance_val_loss=math.log(len(data.vocab)),
        hand_peak_memory_mib=hand_memory,
        zoo_peak_memory_mib=zoo_memory,
    )


if __name__ == "__main__":
    main()
