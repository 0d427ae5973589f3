#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see DEVELOPERS' notes: 15 device minutes a task).
#
#   bash benchmarks/gpu.sh [OUT_DIR]            # on the GPU machine, from the repository root
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh   # a dry run of every step on a CPU, tiny sizes
#   STEPS="versions fsdp" bash benchmarks/gpu.sh # only the named steps (a rerun after a fix)
#
# Runs the zoo from the source tree (PYTHONPATH=.), so the machine needs torch, lightning,
# torchmetrics, torchvision and the zoo's other dependencies importable (carry wheels for what it
# lacks and put them on PYTHONPATH first). Steps, each timed and logged to OUT_DIR/gpu.log:
#   1. the card and the versions;
#   2. `zoo train -c mlp_digits` on the GPU (fp32), then the best checkpoint reloaded on the GPU
#      and tested again: the metrics must match;
#   2b. that checkpoint used: `zoo predict --device cuda` (labels equal to the CPU's) and
#      `zoo export` in every format (each checked against the checkpoint);
#   3. `zoo train -c convnet_digits -c trainer/gpu_bf16` (bf16 mixed precision), and a short
#      `zoo fit -c gpt_chars -c trainer/gpu_bf16` (fused AdamW with gradient clipping in bf16);
#   3b. (GPU only) `zoo fit -c gpt_chars -c trainer/fsdp`, a short run, then its checkpoint loaded
#      on the CPU without FSDP;
#   4. the benchmarks, each eager and with --compile: mlp_digits, resnet_cifar10 (bf16,
#      channels_last), gpt_chars (the 10M gpt_char model, bf16: tokens/s and val loss after a fixed
#      number of steps); ddp (one process); on_device (batches kept on the GPU equal the host's,
#      and the time it saves). Every measurement also goes to OUT_DIR/bench.json (one list, with
#      the card and peak GPU memory);
#   4b. (only when named: STEPS="versions probe-compile") benchmarks/compile_probe.py: ResNet-20's
#      training step eager and compiled on device-resident batches, with a profiler's view of
#      each (why the compiled ResNet-20 trained slower than the eager one on an H200);
#   5. (only when named: STEPS="versions fashion") `zoo train -c resnet_fashion` and
#      `-c convnet_fashion`, full runs on real Fashion-MNIST: carry its four .gz files as
#      data/FashionMNIST/raw/ (Debian's dataset-fashion-mnist package has them) — a few minutes;
#      FASHION=resnet_fashion runs one of them.
#      The runs come back under OUT_DIR/runs; one that meets its recipe's floor can be shipped:
#      `python -m zoo.pretrained resnet_fashion --from-run OUT_DIR/runs/resnet_fashion/version_0`
#      (after adding it to zoo.pretrained.SHIPPED; with --url-base for a download entry instead).
# A failing step is reported and the script goes on; it exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu-out}}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu.log"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
STEPS=" ${STEPS:-versions train-and-reload use bf16 fsdp on-device bench-mlp bench-resnet bench-gpt bench-ddp} "
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
export ZOO_BENCH_JSON="$OUT_DIR/bench.jsonl"
PY="${PYTHON:-python3}"
ZOO=("$PY" -m zoo)
if [ "$DEVICE" = cuda ]; then ACCEL=gpu; else ACCEL=cpu; fi
if [ "$QUICK" = 1 ]; then
  EPOCHS=(--trainer.max_epochs 2); BENCH_EPOCHS=2; IMAGES=512; GPT=(--preset recipe --steps 5 --val-batches 2)
  SHORT=(--trainer.limit_train_batches 3 --trainer.limit_val_batches 2 --trainer.limit_test_batches 2 --data.batch_size 16 --data.eval_batch_size 50)
else
  EPOCHS=(); BENCH_EPOCHS=20; IMAGES=20480; SHORT=(); GPT=(--steps 300)
fi
RUNS="$OUT_DIR/runs"
failed=0

step() {
  local name="$1"; shift
  [[ "$STEPS" == *" $name "* ]] || return 0
  echo "=== $name: $*" | tee -a "$LOG"
  local start=$SECONDS
  if "$@" >>"$LOG" 2>&1; then
    echo "=== $name: ok in $((SECONDS - start)) s" | tee -a "$LOG"
  else
    echo "=== $name: FAILED (exit $?) after $((SECONDS - start)) s" | tee -a "$LOG"
    failed=1
  fi
}

versions() {
  if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
  "$PY" -c "import torch, lightning, torchmetrics, torchvision, jsonargparse; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'lightning', lightning.__version__, \
'torchmetrics', torchmetrics.__version__, 'torchvision', torchvision.__version__, 'jsonargparse', jsonargparse.__version__)"
}

train_and_reload() {
  "${ZOO[@]}" train -c mlp_digits --trainer.accelerator "$ACCEL" --trainer.default_root_dir "$RUNS/mlp" \
    --trainer.enable_progress_bar false "${EPOCHS[@]}" || return 1
  "$PY" - "$RUNS/mlp" "$DEVICE" <<'EOF'
import json, sys
from pathlib import Path
import lightning.pytorch as pl
from zoo.data import SklearnDataModule
from zoo.models import ZooModule
root, device = Path(sys.argv[1]), sys.argv[2]
saved = json.loads(next(root.rglob("test_metrics.json")).read_text())
model = ZooModule.load_from_checkpoint(saved["best_checkpoint"], map_location=device)
assert next(model.parameters()).device.type == device, next(model.parameters()).device
data = SklearnDataModule("digits", batch_size=64, val_size=0.15, test_size=0.15, seed=0)
trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False, enable_progress_bar=False)
again = trainer.test(model, datamodule=data, verbose=False)[0]
print("reloaded on", device, {k: round(v, 6) for k, v in again.items()}, "saved", saved["test/acc"])
assert abs(again["test/acc"] - saved["test/acc"]) < 1e-6, (again, saved)
EOF
}

bf16_train() {
  local bf16=(-c trainer/gpu_bf16)
  [ "$DEVICE" = cuda ] || bf16=(--trainer.accelerator cpu --trainer.precision bf16-mixed)
  "${ZOO[@]}" train -c convnet_digits "${bf16[@]}" --trainer.default_root_dir "$RUNS/bf16" \
    --trainer.enable_progress_bar false "${EPOCHS[@]}" || return 1
  # the GPT recipe in bf16: AdamW(fused=True) with gradient clipping (stopped at its first step on
  # the H200 until the zoo clipped bf16 gradients itself)
  local steps=40
  [ "$QUICK" = 1 ] && steps=4
  "${ZOO[@]}" fit -c gpt_chars "${bf16[@]}" --trainer.default_root_dir "$RUNS/bf16_gpt" \
    --trainer.enable_progress_bar false --trainer.max_steps $steps --trainer.val_check_interval $((steps / 2)) \
    --trainer.limit_val_batches 2 --model.lr_scheduler null
}

use_model() {
  # the checkpoint trained on the GPU in train-and-reload: predict on the GPU and on the CPU (the
  # labels must agree), then export it in every format (each export checks itself)
  local ckpt
  ckpt=$(ls "$RUNS"/mlp/version_*/checkpoints/best-*.ckpt | head -1) || return 1
  "$PY" -c "import numpy as np; from sklearn.datasets import load_digits; \
np.save('$OUT_DIR/digits.npy', load_digits().data)" || return 1
  "${ZOO[@]}" predict "$ckpt" --input "$OUT_DIR/digits.npy" --device "$DEVICE" -o "$OUT_DIR/pred_dev.csv" || return 1
  "${ZOO[@]}" predict "$ckpt" --input "$OUT_DIR/digits.npy" --device cpu -o "$OUT_DIR/pred_cpu.csv" || return 1
  "$PY" - "$OUT_DIR" <<'EOF2' || return 1
import csv, sys
from sklearn.datasets import load_digits
out = sys.argv[1]
dev = [r["prediction"] for r in csv.DictReader(open(f"{out}/pred_dev.csv"))]
cpu = [r["prediction"] for r in csv.DictReader(open(f"{out}/pred_cpu.csv"))]
truth = [str(t) for t in load_digits().target]
same = sum(a == b for a, b in zip(dev, cpu))
print(f"predict: {len(dev)} rows; device and cpu labels agree on {same}; accuracy {sum(a == t for a, t in zip(dev, truth)) / len(dev):.4f}")
assert same == len(dev) == len(truth)
EOF2
  for fmt in onnx pt2 torchscript safetensors; do
    "${ZOO[@]}" export "$ckpt" --format "$fmt" -o "$OUT_DIR/model.$fmt" || return 1
  done
}

fsdp_train_and_reload() {
  # trainer/fsdp on the GPUs there are (one is enough to run the wrapping, the bf16 shards and the
  # full-state-dict checkpoint); the checkpoint must load on one device without FSDP
  "${ZOO[@]}" fit -c gpt_chars -c trainer/fsdp --trainer.default_root_dir "$RUNS/fsdp" \
    --trainer.enable_progress_bar false --trainer.max_steps 60 --trainer.limit_train_batches 30 \
    --trainer.limit_val_batches 5 --model.lr_scheduler null || return 1
  "$PY" -c "
import sys, pathlib, torch
from zoo.models import GPT
path = next(pathlib.Path('$RUNS/fsdp').rglob('last.ckpt'))
model = GPT.load_from_checkpoint(path, map_location='cpu')
print('fsdp checkpoint reloaded:', path, sum(p.numel() for p in model.parameters()), 'parameters')
print(model.generate('def ', max_new_tokens=40, seed=0))
"
}

: >"$LOG"
step versions versions
step train-and-reload train_and_reload
step use use_model
step bf16 bf16_train
if [ "$DEVICE" = cuda ]; then step fsdp fsdp_train_and_reload; fi
fashion_runs() {
  local raw=data/FashionMNIST/raw
  if ! ls "$raw"/train-images-idx3-ubyte* >/dev/null 2>&1; then
    echo "no Fashion-MNIST files in $raw: carry them (cp /usr/share/datasets/fashion-mnist/*.gz $raw/)"
    return 1
  fi
  for recipe in ${FASHION:-resnet_fashion convnet_fashion}; do
    "${ZOO[@]}" train -c "$recipe" --trainer.accelerator "$ACCEL" --data.data_dir data \
      --trainer.enable_progress_bar false --trainer.default_root_dir "$RUNS/$recipe" "${EPOCHS[@]}" \
      "${SHORT[@]}" || return 1
    grep -h '"test/acc"' "$RUNS/$recipe"/version_*/test_metrics.json
  done
}

step fashion fashion_runs
eager_and_compiled() {
  "$@" && "$@" --compile
}

: >"$ZOO_BENCH_JSON"
step on-device "$PY" benchmarks/on_device.py --device "$DEVICE" --epochs "$BENCH_EPOCHS"
step bench-mlp eager_and_compiled "$PY" benchmarks/mlp_digits.py --epochs "$BENCH_EPOCHS" --device "$DEVICE"
step bench-resnet eager_and_compiled "$PY" benchmarks/resnet_cifar10.py --images "$IMAGES" --epochs 2 --device "$DEVICE"
step probe-compile "$PY" benchmarks/compile_probe.py --device "$DEVICE" $([ "$QUICK" = 1 ] && echo --steps 10 --batch-size 32)
step bench-gpt eager_and_compiled "$PY" benchmarks/gpt_chars.py --device "$DEVICE" "${GPT[@]}"
step bench-ddp "$PY" benchmarks/ddp.py --processes 1 --epochs 3 --device "$DEVICE" \
  $([ "$QUICK" = 1 ] && echo --rows 2048)
"$PY" - "$ZOO_BENCH_JSON" "$OUT_DIR/bench.json" <<'EOF3' | tee -a "$LOG"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
json.dump(rows, open(sys.argv[2], "w"), indent=1)
print(f"wrote {sys.argv[2]}: {len(rows)} measurements")
EOF3
grep -E "^=== |ms/epoch|ms/step|images/s|examples/s|tokens/s|ratio|speed-up|reloaded|test/acc|equal on|^predict:|^wrote" "$LOG" >"$OUT_DIR/summary.txt"
cat "$OUT_DIR/summary.txt"
exit $failed
