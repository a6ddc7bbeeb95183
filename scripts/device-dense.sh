#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/c) carried: dsbatch.xz (this tree) and
# dsbatch-BASE.xz for TRACK_BASE (built stripped, FFmpeg static),
# models/yolo11n.onnx and models/yolo11n_seg.onnx, 1080p-h264.mp4
# (internal/mkmedia -gpu-bench). In one call, every step bounded and logged
# to $OUT/log.txt as it runs:
#   - bench/track.sh for this tree, then TRACK_BASE's (tracking's cost at
#     the usual density and at 300 boxes a frame, issue 22);
#   - the dense tracked run again with a CPU profile ($OUT/dense.prof);
#   - a segmentation run over SEG_COPIES (30) links, first second of each:
#     its peak memory (rows with masks bounded by bytes, issue 21).
set -uo pipefail
D=${D:-.device/c}
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
rc=0
step() { echo; echo "== $(date +%T) $*"; timeout "${STEP_TIMEOUT:-150}" "$@" || { echo "FAILED ($?): $*"; rc=1; }; }
for f in "$D"/*.xz; do xz -dkf "$f" && chmod +x "${f%.xz}"; done
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
bin=$(realpath "$D/dsbatch")
model=$(realpath "$D/models/yolo11n.onnx")
clip=$(realpath "$D/1080p-h264.mp4")
for b in "$bin" ${TRACK_BASE:+$(realpath "$D/dsbatch-$TRACK_BASE")}; do
	step env COPIES=60 bench/track.sh "$b" "$model" "$clip"
done
work=$(mktemp -d)
mkdir -p "$work/in"
for i in $(seq -w 1 100); do ln "$clip" "$work/in/clip$i.mp4"; done
step "$bin" run --model "$model" --out "$work/prof" --gpus 1 --no-cache --log-every 1h --profile --conf 0.01 --iou 0.9 --max-det 300 --cpuprofile "$out/dense.prof" "$work/in"
if [ -f "$D/models/yolo11n_seg.onnx" ]; then
	mkdir -p "$work/seg"
	for i in $(seq -w 1 "${SEG_COPIES:-30}"); do ln "$clip" "$work/seg/clip$i.mp4"; done
	step "$bin" run --model "$(realpath "$D/models/yolo11n_seg.onnx")" --engine gpu --out "$work/seg-out" --gpus 1 --no-cache --no-box-check --log-every 30s --profile --end 1s "$work/seg"
fi
exit $rc
