#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/detr) carried: dsbatch.xz and infer.test.xz of
# this tree (built stripped, FFmpeg static), old/dsbatch.xz (the binary to
# compare with) and models/yolo11n.onnx.xz. In one call: the infer
# package's GPU tests (the operator cases against ONNX Runtime), DETR-style
# models exported there from transformers (RT-DETR-R50, D-FINE; random
# weights, scripts/export-detr.py), PyTorch eager on them
# (bench/torch_detr.py), `dsbatch check` with the old and the new binary in
# turn (speed, agreement with ONNX Runtime, first batch), the same for
# YOLO11n, and the new binary's profile of RT-DETR (PROFILE=nodes for one
# line a launch). docs/PERF.md's DETR figures of 2026-12-03 come from it.
set -uo pipefail
D=$(realpath "${D:-.device/detr}")
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
(cd "$D" && for f in *.xz old/*.xz models/*.xz; do xz -dkf "$f"; done && chmod +x dsbatch infer.test old/dsbatch)
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache}
(cd infer && timeout 150 "$D/infer.test" -test.count=1 -test.run 'TestKernelSourcesCompile|TestGPUDetect|TestGPUEngine|TestGPUOperators|TestGPUAttention' -test.v > "$out/gputest.log" 2>&1; echo "gpu tests rc=$?")
grep -E -- '^(ok|PASS|FAIL)|^    --- FAIL|^--- FAIL|panic' "$out/gputest.log" | head -20
grep -E -A1 -- '=== RUN   TestGPUOperators/(MatMul|Linear|LayerNorm)' "$out/gputest.log" | grep -E "RUN|rel L2"
x=$(mktemp -d)
timeout 150 python3 scripts/export-detr.py "$x" --no-calibrate 2>&1 | grep -E "exported"
timeout 100 python3 bench/torch_detr.py --batch 64 --seconds 3 > "$out/torch.md" 2> "$out/torch.err"; grep -v capture "$out/torch.md"
for m in rtdetr dfine; do
	for b in old new old new; do
		bin=$D/dsbatch; [ $b = old ] && bin=$D/old/dsbatch
		echo "== $b $m"; timeout 100 "$bin" check --frames 4 --min 0 "$x/$m/model.onnx" 2>&1 | grep -E "first batch|speed|engines agree|not finite" | cut -c1-160
	done
done
for b in old new; do
	bin=$D/dsbatch; [ $b = old ] && bin=$D/old/dsbatch
	echo "== $b yolo11n"; timeout 60 "$bin" check --frames 4 --min 0 "$D/models/yolo11n.onnx" 2>&1 | grep -E "speed|engines agree" | cut -c1-160
done
export DSBATCH_BENCH_MODEL=$x/rtdetr/model.onnx DSBATCH_BENCH_PROFILE=${PROFILE:-1}
(cd infer && timeout 100 "$D/infer.test" -test.run XXX -test.bench 'BenchmarkGPUEngine/forward' -test.benchtime 10x 2> "$out/prof.log" | grep -E "forward|img")
head -64 "$out/prof.log" | cut -c1-150
