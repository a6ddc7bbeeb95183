#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/c) carried: infer.test.xz and dsbatch.xz (built
# stripped, FFmpeg static), models/ (ONNX files, coco80.names) and footage/
# (real clips). It checks the model work of issues 19 and 20 in one call:
# the infer package's tests on the GPU (letterbox conventions against the
# CPU, operators and re-batching against ONNX Runtime), every model in
# models/ compiled and timed on the GPU engine, and YOLOX-Nano run on the
# GPU engine and on ONNX Runtime over the footage, compared box for box, as
# is every other model there. DETR=1 exports DETR-family models with
# transformers (scripts/export-detr.py) and runs them; SKIP_TESTS=1 leaves
# the package tests out.
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
[ -z "${SKIP_TESTS:-}" ] && (cd infer && step "$tests" -test.count=1 -test.timeout 300s -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS)|rel L2|max \|' | grep -v '^=== ')
(cd infer && DSBATCH_MODELS_DIR=$models step "$tests" -test.count=1 -test.run TestGPUModels -test.v)
# Every other model of models/: the GPU engine against ONNX Runtime on the
# footage, box for box.
for m in "$models"/*.onnx; do
	name=$(basename "$m" .onnx)
	[ "$name" = yolox_nano ] && continue
	for e in gpu onnxruntime; do
		# Random weights: boxes as arbitrary as a misread layout's.
		step "$bin" run --no-cache --no-box-check --engine "$e" --model "$m" --out "$out/$name-$e" "$D/footage" 2>&1 | grep -v '^progress'
	done
	step "$bin" compare "$out/$name-gpu" "$out/$name-onnxruntime"
done
# DETR-family exports of transformers (random weights), where asked: does
# dsbatch read them, and does the GPU engine compile them?
if [ -n "${DETR:-}" ]; then
	ls /tmp/detr/*/model.onnx >/dev/null 2>&1 || step python3 -W ignore scripts/export-detr.py /tmp/detr 2>&1 | grep -v 'Warning\|^  '
	for m in /tmp/detr/*/model.onnx; do
		[ -f "$m" ] || continue
		step "$bin" run --no-cache --conf 0.05 --model "$m" --out "$out/detr-$(basename "$(dirname "$m")")" "$D/footage" 2>&1 | grep -v '^progress'
	done
fi
y="$models/yolox_nano.onnx"
if [ -f "$y" ]; then
	step "$bin" bench infer --model "$y" --imgsz 416 --batch 64 --duration 5s
	for e in gpu onnxruntime; do
		step "$bin" run --no-cache --engine "$e" --model "$y" --classes "$models/coco80.names" --out "$out/yolox-$e" "$D/footage"
	done
	step "$bin" compare --min 0.99 "$out/yolox-gpu" "$out/yolox-onnxruntime"
	step "$bin" inspect "$out/yolox-gpu"
fi
exit $rc
