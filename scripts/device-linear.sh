#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D carried: dsbatch.xz and infer.test.xz of this tree (built
# stripped, FFmpeg static), old/dsbatch.xz (an earlier binary) and
# models/yolo11n.onnx.xz. In one call: TestGPULinearOnCUDNN; DETR-style
# models exported there (scripts/export-detr.py: RT-DETR-R50, D-FINE, random
# weights); PyTorch eager on them (bench/torch_detr.py); the engine's
# forward pass (BenchmarkGPUEngine/forward, batch 64) with linear layers on
# the engine's own product (DSBATCH_BENCH_KERNELPRODUCTS=1) and on cuDNN,
# alternated, one binary; RT-DETR's profile by launch and by kernel;
# `dsbatch check` of RT-DETR and YOLO11n with the old and the new binary;
# then the infer package's GPU tests.
set -uo pipefail
D=$(realpath "${D:?the carried folder}")
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
(cd "$D" && for f in *.xz old/*.xz models/*.xz; do xz -dkf "$f"; done && chmod +x dsbatch infer.test old/dsbatch)
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache} DSBATCH_BENCH_CACHE=${DSBATCH_BENCH_CACHE:-/tmp/bc}
(cd infer && timeout 60 "$D/infer.test" -test.count=1 -test.run 'TestGPULinearOnCUDNN' -test.v 2>&1 | grep -E "linear|rel L2|FAIL|^ok|PASS|panic" | head)
x=$(mktemp -d)
timeout 150 python3 scripts/export-detr.py "$x" --no-calibrate 2>&1 | grep exported
timeout 100 python3 bench/torch_detr.py --batch 64 --seconds 3 > "$out/torch.md" 2> "$out/torch.err"; grep -v capture "$out/torch.md"
bench() { # model, kernel products ("" or 1), then extra environment
	local m=$1 k=$2; shift 2
	(cd infer && env DSBATCH_BENCH_KERNELPRODUCTS="$k" DSBATCH_BENCH_MODEL="$x/$m/model.onnx" "$@" timeout 100 "$D/infer.test" -test.run XXX \
		-test.bench 'BenchmarkGPUEngine/forward' -test.benchtime 20x)
}
for m in rtdetr dfine; do
	for k in 1 "" 1 ""; do
		echo "== $m kernel products=${k:-0}"
		bench $m "$k" 2>&1 | grep -E "img/s|FAIL|panic" | cut -c1-160
	done
done
bench rtdetr "" DSBATCH_BENCH_PROFILE=nodes 2> "$out/prof.log" | grep -oE "Linear:[0-9]+"
head -45 "$out/prof.log" | cut -c1-150; tail -1 "$out/prof.log"
bench rtdetr "" DSBATCH_BENCH_PROFILE=1 2> "$out/prof1.log" > /dev/null
head -30 "$out/prof1.log" | cut -c1-150
for b in old new; do
	bin=$D/dsbatch; [ $b = old ] && bin=$D/old/dsbatch
	for f in "$x/rtdetr/model.onnx" "$D/models/yolo11n.onnx"; do
		echo "== $b $f"; timeout 100 "$bin" check --frames 4 --min 0 "$f" 2>&1 | grep -E "first batch|speed|engines agree|not finite" | cut -c1-160
	done
done
(cd infer && timeout 200 "$D/infer.test" -test.count=1 -test.run 'TestKernelSourcesCompile|TestGPUDetect|TestGPUEngine|TestGPUOperators|TestGPUAttention' -test.v > "$out/gputest.log" 2>&1; echo "gpu tests rc=$?")
grep -E -- '^(ok|PASS|FAIL)|^    --- FAIL|^--- FAIL|panic' "$out/gputest.log" | head
grep -E -A1 -- '=== RUN   TestGPUOperators/(MatMul|Linear)' "$out/gputest.log" | grep -E "RUN|rel L2"
