#!/usr/bin/env bash
# Every GPU check in one device call (see benchmarks/gpu.sh for the steps), sized for a lent GPU
# machine's limits: the functional steps run with `zoo train -c resnet_fashion` beside them (their
# wall times overlap, so they are not speed figures), then the benchmarks run alone on the card;
# what comes back is at most 8 files in $OUT: the three logs, bench.jsonl and the resnet_fashion
# run (its best checkpoint, metrics and run.json) as a tar for `python -m zoo.pretrained
# resnet_fashion --from-run DIR`. Took 8 min on an H200 (2026-11-27). resnet_fashion has shipped
# since: the run beside comes only when asked (FASHION=resnet_fashion), and the benchmarks
# (BENCH_STEPS) now start with probe-compile; past 575 s the rest is cut.
#
#   device run: bash benchmarks/gpu_lease.sh      carry: .whl (jsonargparse & co. as wheels);
#                                                   with FASHION, data/FashionMNIST (the four .gz only)
#   CPU dry run: OUT=/tmp/lease DEVICE=cpu QUICK=1 bash benchmarks/gpu_lease.sh
set -u
cd "$(dirname "$0")/.."
T0=$SECONDS
OUT="${OUT:?set OUT to the folder that comes back}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
F=/tmp/gpu-fashion; A=/tmp/gpu-functional; B=/tmp/gpu-bench
if [ -n "${FASHION:-}" ]; then  # e.g. FASHION=resnet_fashion: retrain a shipped model beside
  (STEPS="fashion" bash benchmarks/gpu.sh $F >/tmp/gpu-fashion.out 2>&1) &
else
  (mkdir -p $F; echo "no FASHION run asked" >$F/gpu.log; echo "no FASHION run asked" >/tmp/gpu-fashion.out) &
fi
FPID=$!
STEPS="versions train-and-reload use bf16 fsdp" bash benchmarks/gpu.sh $A
echo "functional steps done at $((SECONDS - T0)) s"
while kill -0 $FPID 2>/dev/null && [ $((SECONDS - T0)) -lt 320 ]; do sleep 2; done
if kill -0 $FPID 2>/dev/null; then echo "resnet_fashion still running at $((SECONDS - T0)) s: stopped"; pkill -f resnet_fashion; fi
wait $FPID; echo "fashion exit $? at $((SECONDS - T0)) s"
cat /tmp/gpu-fashion.out
timeout $((575 - (SECONDS - T0))) env STEPS="${BENCH_STEPS:-probe-compile on-device bench-mlp bench-resnet bench-gpt bench-ddp}" bash benchmarks/gpu.sh $B
echo "benchmarks exit $? at $((SECONDS - T0)) s"
cp $A/gpu.log "$OUT/functional.log"; cp $F/gpu.log "$OUT/fashion.log"; cp $B/gpu.log "$OUT/bench.log"
cp $B/bench.jsonl "$OUT/bench.jsonl" 2>/dev/null
R=$F/runs/resnet_fashion
if ls $R/version_0/test_metrics.json >/dev/null 2>&1; then
  tar -C $R -cf "$OUT/resnet_fashion_run.tar" --exclude=last.ckpt version_0
fi
ls -la "$OUT"
