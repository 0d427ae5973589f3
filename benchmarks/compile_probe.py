"""What ``torch.compile`` does to ResNet-20's training step on this device, without any data pipeline.

    python benchmarks/compile_probe.py [--device cuda] [--steps 60] [--batch-size 128]

The question it answers: on an H200 (session 8) the compiled ResNet-20 trained slower than the
eager one in the zoo (7,538 against 11,012 images/s) and in the torchvision loop, while the hand
loop's uint8 path stayed level. Here the same step (``zoo.nn.ResNet`` 16/32/64 x 3 blocks in
``channels_last``, SGD with Nesterov momentum, bf16 autocast on CUDA, float32 on a CPU) runs on
batches already on the device, in four variants:

- ``eager``;
- ``compiled``: ``nn.Module.compile()``, as ``--model.compile true`` does;
- ``compiled, after an odd batch``: one batch of another size first (the zoo's split ends each
  epoch on one), which makes dynamo recompile with a dynamic batch size; then timed as before;
- ``compiled, dynamic=False``: the same odd batch, but every batch size gets its own static graph.

For each: milliseconds per step (the median of five timed blocks), the graphs dynamo compiled,
and from a ``torch.profiler`` trace of ten steps the device's busy time per step, the kernels
launched per step and the kernels (or, on a CPU, the operators) that took the most time. A step
whose device time is well under its wall time is bound by the host (launches and Python), which
compiling is meant to cut.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import record, sync
from resnet_cifar10 import make_net, make_optimizer
from torch.profiler import ProfilerActivity, profile

#: name -> (compiled, dynamic, one batch of another size before timing)
VARIANTS = {
    "eager": (False, None, False),
    "compiled": (True, None, False),
    "compiled, after an odd batch": (True, None, True),
    "compiled, dynamic=False": (True, False, True),
}


def run(name: str, args: argparse.Namespace) -> dict:
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    device, dtype = args.device, (torch.bfloat16 if args.device == "cuda" else torch.float32)
    compiled, dynamic, odd_batch = VARIANTS[name]
    torch.manual_seed(0)
    net = make_net().to(device)
    if compiled:
        net.compile(dynamic=dynamic)
    opt = make_optimizer(net.parameters())
    g = torch.Generator(device=device).manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 3, 32, 32, device=device, generator=g)
        y = torch.randint(0, 10, (n,), device=device, generator=g)
        return x.contiguous(memory_format=torch.channels_last), y

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    batches = [batch(args.batch_size) for _ in range(8)]
    started = time.perf_counter()
    for i in range(3):  # warm-up: compilation, cuDNN's choices, the allocator
        step(*batches[i])
    if odd_batch:
        step(*batch(args.batch_size - 20))
        step(*batches[0])
    sync(device)
    warm_s = time.perf_counter() - started
    blocks = []
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        for i in range(args.steps // 5):
            step(*batches[i % len(batches)])
        sync(device)
        blocks.append((time.perf_counter() - start) / (args.steps // 5))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    traced = 10
    with profile(activities=activities) as prof:
        for i in range(traced):
            step(*batches[i % len(batches)])
        sync(device)
    events = prof.key_averages()
    if device == "cuda":
        timed = [e for e in events if e.device_type.name == "CUDA" and e.self_device_time_total > 0]
        own = [(e, e.self_device_time_total) for e in timed]
    else:  # a CPU has no kernels: its operators' own time instead
        own = [(e, e.self_cpu_time_total) for e in events if e.self_cpu_time_total > 0]
    stats = torch._dynamo.utils.counters["stats"]
    result = {
        "variant": name,
        "ms_per_step": statistics.median(blocks) * 1e3,
        "warmup_s": warm_s,
        "graphs": int(stats.get("unique_graphs", 0)),
        "device_ms_per_step": sum(t for _, t in own) / traced / 1e3 if device == "cuda" else None,
        "kernels_per_step": sum(e.count for e, _ in own) / traced if device == "cuda" else None,
        "top_kernels": [(e.key[:70], t / traced / 1e3) for e, t in sorted(own, key=lambda et: -et[1])[:5]],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant (five blocks)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    card = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"ResNet-20 training step, batch {args.batch_size}, {card}, torch {torch.__version__}")
    for name in VARIANTS:
        r = run(name, args)
        line = (
            f"{name:30s} {r['ms_per_step']:7.2f} ms/step  warm-up {r['warmup_s']:5.1f} s  "
            f"graphs compiled {r['graphs']}"
        )
        if args.device == "cuda":
            busy = r["device_ms_per_step"]
            line += f"  device busy {busy:6.2f} ms/step ({busy / r['ms_per_step']:.0%})"
            line += f"  kernels/step {r['kernels_per_step']:.0f}"
        print(line, flush=True)
        for kernel, ms in r["top_kernels"]:
            print(f"    {ms:7.3f} ms/step  {kernel}")
        record("compile_probe", device=args.device, **{k: v for k, v in r.items() if k != "top_kernels"})


if __name__ == "__main__":
    main()
