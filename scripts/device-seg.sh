#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/c) carried: infer.test.xz and dsbatch.xz (built
# stripped, FFmpeg static), models/ (yolo11n.onnx, yolo11n_seg.onnx),
# footage/ (real clips) and 1080p-h264.mp4 (internal/mkmedia -gpu-bench).
# It checks segmentation on the GPU engine (issue 21) in one call: the
# infer package's GPU tests (ConvTranspose among the operators, against ONNX
# Runtime), the seg model compiled and timed (dsbatch check), the run's pace
# with the seg model next to the same-size detector's over COPIES (30)
# links of the 1080p clip, and the seg model's boxes on the GPU engine
# against ONNX Runtime's over a real clip.
set -uo pipefail
D=${D:-.device/c}
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
rc=0
step() { echo; echo "== $*"; "$@" || { echo "FAILED ($?): $*"; rc=1; }; }
xz -dkf "$D/infer.test.xz" "$D/dsbatch.xz" && chmod +x "$D/infer.test" "$D/dsbatch"
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
bin=$(realpath "$D/dsbatch")
tests=$(realpath "$D/infer.test")
models=$(realpath "$D/models")
step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
(cd infer && step "$tests" -test.count=1 -test.timeout 300s -test.run 'TestGPUOperators|TestSegmentation|TestCutSegmentation|TestGPUEngine' -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS)|ConvTranspose|rel L2' | grep -v '^=== ')
(cd infer && DSBATCH_MODELS_DIR=$models step "$tests" -test.count=1 -test.run TestGPUModels -test.v 2>&1 | grep -v '^=== ')
step "$bin" check --video "$D/footage/intel_car-detection.mp4" "$models/yolo11n_seg.onnx"
work=$(mktemp -d)
mkdir -p "$work/in"
for i in $(seq -w 1 "${COPIES:-30}"); do ln "$D/1080p-h264.mp4" "$work/in/clip$i.mp4" 2>/dev/null || cp "$D/1080p-h264.mp4" "$work/in/clip$i.mp4"; done
"$bin" run --model "$models/yolo11n.onnx" --out "$work/warm" --gpus 1 --no-cache --log-every 1h --no-box-check --no-track "$work/in" >/dev/null 2>&1
for m in yolo11n yolo11n_seg yolo11n yolo11n_seg; do
	step "$bin" run --engine gpu --gpus 1 --no-cache --no-box-check --log-every 1h --profile --model "$models/$m.onnx" --out "$work/$m-$RANDOM" "$work/in" 2>&1 | grep -E '^(frames|pace|stage|worker|peak|dsbatch: model)'
done
for e in gpu onnxruntime; do
	step "$bin" run --no-cache --no-box-check --engine "$e" --model "$models/yolo11n_seg.onnx" --out "$out/seg-$e" "$D/footage/intel_car-detection.mp4" 2>&1 | grep -v '^progress'
done
step "$bin" compare "$out/seg-gpu" "$out/seg-onnxruntime"
step "$bin" inspect "$out/seg-gpu"
exit $rc
