#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D carried as for scripts/device-detr.sh (dsbatch.xz, infer.test.xz,
# old/dsbatch.xz, models/yolo11n.onnx.xz). The products' A/B in one call:
# the infer package's GPU tests, DETR-style models exported there, PyTorch
# eager on them, then BenchmarkGPUEngine/forward of this binary with the
# pipelined products and with the one-stage ones (DSBATCH_BENCH_ONESTAGE)
# in turn, `dsbatch check` old and new (agreement with ONNX Runtime), and
# the profile by launch of RT-DETR (prof-rtdetr.log).
set -uo pipefail
D=$(realpath "${D:-.device/products}")
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
(cd "$D" && for f in *.xz old/*.xz models/*.xz; do xz -dkf "$f"; done && chmod +x dsbatch infer.test old/dsbatch)
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache}
(cd infer && timeout 150 "$D/infer.test" -test.count=1 -test.run 'TestKernelSourcesCompile|TestGPUDetect|TestGPUEngine|TestGPUOperators|TestGPUAttention' -test.v > "$out/gputest.log" 2>&1; echo "gpu tests rc=$?")
grep -E -- '^(ok|PASS|FAIL)|^    --- FAIL|^--- FAIL|panic' "$out/gputest.log" | head -20
grep -E -A1 -- '=== RUN   TestGPUOperators/(MatMul|Linear)' "$out/gputest.log" | grep -E "RUN|rel L2"
x=$(mktemp -d)
timeout 150 python3 scripts/export-detr.py "$x" --no-calibrate 2>&1 | grep -E "exported"
timeout 100 python3 bench/torch_detr.py --batch 64 --seconds 3 > "$out/torch.md" 2> "$out/torch.err"; grep -v capture "$out/torch.md"
cache=$(mktemp -d)
for m in rtdetr dfine; do
	for mode in one two one two; do
		one=""; [ $mode = one ] && one=1
		echo "== forward $m $([ $mode = one ] && echo one-stage || echo pipelined)"
		(cd infer && DSBATCH_BENCH_MODEL=$x/$m/model.onnx DSBATCH_BENCH_CACHE=$cache DSBATCH_BENCH_ONESTAGE=$one timeout 100 "$D/infer.test" -test.run XXX -test.bench 'BenchmarkGPUEngine/forward' -test.benchtime 20x 2>/dev/null | grep -E "img/s")
	done
	for b in old new; do
		bin=$D/dsbatch; [ $b = old ] && bin=$D/old/dsbatch
		echo "== check $b $m"; timeout 100 "$bin" check --frames 4 --min 0 "$x/$m/model.onnx" 2>&1 | grep -E "speed|engines agree|not finite" | cut -c1-160
	done
done
for b in old new; do
	bin=$D/dsbatch; [ $b = old ] && bin=$D/old/dsbatch
	echo "== check $b yolo11n"; timeout 60 "$bin" check --frames 4 --min 0 "$D/models/yolo11n.onnx" 2>&1 | grep -E "speed|engines agree" | cut -c1-160
done
(cd infer && DSBATCH_BENCH_MODEL=$x/rtdetr/model.onnx DSBATCH_BENCH_CACHE=$cache DSBATCH_BENCH_PROFILE=nodes timeout 100 "$D/infer.test" -test.run XXX -test.bench 'BenchmarkGPUEngine/forward' -test.benchtime 5x 2> "$out/prof-rtdetr.log" | grep -E "img/s")
(cd infer && DSBATCH_BENCH_MODEL=$x/rtdetr/model.onnx DSBATCH_BENCH_CACHE=$cache DSBATCH_BENCH_PROFILE=1 timeout 100 "$D/infer.test" -test.run XXX -test.bench 'BenchmarkGPUEngine/forward' -test.benchtime 5x 2>&1 | grep -v "^ *gpuengine_test.go:[0-9]*: {" | head -30 | cut -c1-150)
