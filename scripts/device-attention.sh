#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with
# $D (default .device/at) holding dsbatch.xz, dsbatch-base.xz (the tree
# before the change under test), infer.test.xz, models/*.onnx,
# torch_baseline.py (../shared/gpu's) and intel_car-detection.mp4. Issue 19's
# attention figures in one call: the GPU operator tests (fused attention
# against ONNX Runtime), each model's engine speed on both binaries
# (`bench infer`, batch 64, interleaved), PyTorch on the same models
# (bench/torch_onnx.py, CUDA graph, batch 64) and torch_baseline.py's
# hand-written YOLOv8n (whose ONNX export is timed too, so the interpreter's
# figure can be checked against native PyTorch), the per-step profile of
# the first model, and `dsbatch check` of each model on the clip. Every
# step bounded and logged to $OUT/log.txt.
set -uo pipefail
D=${D:-.device/at}
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
for f in "$D"/*.xz; do xz -dkf "$f" && chmod +x "${f%.xz}"; done
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
new=$(realpath "$D/dsbatch") base=$(realpath "$D/dsbatch-base") tests=$(realpath "$D/infer.test")
work=$(mktemp -d)
step() { local t=$1; shift; echo; echo "== $*"; timeout "$t" "$@"; local rc=$?; [ $rc -ne 0 ] && echo "FAILED ($rc): $*"; return 0; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
(cd infer && step 240 "$tests" -test.count=1 -test.run 'TestGPUOperators|TestGPUEngine$|TestEngineSources' -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS)|rel L2|panic|error' | grep -v '^=== ')
echo; echo "== torch_baseline.py --export (native YOLOv8n)"
tb=$(realpath "$D/torch_baseline.py")
(cd "$work" && OUT=$work timeout 150 python3 "$tb" --export 2>&1 | tail -9)
models=$(ls "$(realpath "$D/models")"/*.onnx)
[ -f "$work/yolov8n_arch_random.onnx" ] && models="$models $work/yolov8n_arch_random.onnx"
for round in $(seq 1 "${ROUNDS:-1}"); do
	for m in $models; do
		for b in "$new" "$base"; do
			echo; echo "== round $round $(basename "$m") $(basename "$b")"
			timeout 90 "$b" bench infer --model "$m" --batch 64 --duration 3s 2>&1 | grep -E '^(forward|detect|error)|rror'
		done
	done
done
echo; echo "== PyTorch on the same files"
timeout 240 python3 bench/torch_onnx.py --batch 64 --seconds 3 $models 2>&1
first=$(echo $models | tr ' ' '\n' | grep "${PROFILE:-.}" | head -1)
(cd infer && DSBATCH_BENCH_MODEL=$first DSBATCH_BENCH_PROFILE=1 step 120 "$tests" -test.run '^$' -test.bench 'BenchmarkGPUEngine$' -test.benchtime 20x 2>&1 | grep -E 'launches|total|img/s|Benchmark' | awk '{print $(NF-1), $0}' | sort -rn | head -40 | cut -d' ' -f2-)
for m in $models; do
	step 120 "$new" check --video "$(realpath "$D/intel_car-detection.mp4")" --min 0 "$m"
done
