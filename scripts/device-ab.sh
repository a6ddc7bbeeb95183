#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/c) carried: dsbatch.xz (this tree), dsbatch-BASE.xz
# for each BASE commit in BASES (built the same way, stripped, FFmpeg
# static), infer.test.xz and job.test.xz, models/yolo11n.onnx and
# 1080p-h264.mp4 (internal/mkmedia -gpu-bench). In one call:
#   - the GPU tests of infer (engine, device detection, NVDEC letterbox) and
#     job (a GPU worker's run against a CPU worker's, NVDEC falling back);
#   - A/B: `dsbatch bench infer` and `dsbatch run` over COPIES (100) links
#     of the clip, each binary twice, interleaved (the seams of issue 18
#     must leave both unchanged);
#   - bench/track.sh for this tree and for TRACK_BASE (tracking's cost,
#     usual and dense, issue 22), and a CPU profile of the dense tracked run
#     in $OUT/dense.prof.
set -uo pipefail
D=${D:-.device/c}
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
rc=0
# Every step is bounded (STEP_TIMEOUT seconds, 150) and its output kept in
# $OUT/log.txt as it comes: a step that hangs costs its bound, not the call.
exec > >(tee -a "$out/log.txt") 2>&1
step() { echo; echo "== $(date +%T) $*"; timeout "${STEP_TIMEOUT:-150}" "$@" || { echo "FAILED ($?): $*"; rc=1; }; }
for f in "$D"/*.xz; do xz -dkf "$f" && chmod +x "${f%.xz}"; done
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
bin=$(realpath "$D/dsbatch")
model=$(realpath "$D/models/yolo11n.onnx")
clip=$(realpath "$D/1080p-h264.mp4")
step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
work=$(mktemp -d)
mkdir -p "$work/in"
for i in $(seq -w 1 "${COPIES:-100}"); do ln "$clip" "$work/in/clip$i.mp4"; done
# The first run builds the caches and warms the GPU; it shows a hang first.
step "$bin" run --model "$model" --out "$work/warm" --gpus 1 --no-cache --log-every 10s --profile --no-track "$work/in"
(cd infer && step "$(realpath "../$D/infer.test")" -test.count=1 -test.timeout 140s -test.run 'TestGPUEngine|TestGPUDetect|TestNVDECMatchesCPU' -test.v)
(cd job && [ -x "../$D/job.test" ] && step "$(realpath "../$D/job.test")" -test.count=1 -test.timeout 140s -test.run 'GPU' -test.v)
for round in $(seq 1 "${ROUNDS:-2}"); do
	for b in "$bin" $(for base in ${BASES:-}; do realpath "$D/dsbatch-$base"; done); do
		v=$("$b" --version)
		echo; echo "== A/B round $round: $v"
		timeout 60 "$b" bench infer --model "$model" --batch 64 --duration 4s 2>&1 | grep -E '^(forward|detect):'
		timeout 90 "$b" run --model "$model" --out "$work/ab-$round-$RANDOM" --gpus 1 --no-cache --log-every 1h --profile "$work/in" 2>&1 | grep -E '^(frames|pace|worker|peak)'
	done
done
for b in "$bin" ${TRACK_BASE:+$(realpath "$D/dsbatch-$TRACK_BASE")}; do
	step env COPIES=60 bench/track.sh "$b" "$model" "$clip" 2>/dev/null
done
step "$bin" run --model "$model" --out "$work/prof" --gpus 1 --no-cache --log-every 1h --profile --conf 0.01 --iou 0.9 --max-det 300 --cpuprofile "$out/dense.prof" "$work/in" 2>&1 | grep -E '^(frames|pace|stage|worker|  |peak|host)'
exit $rc
