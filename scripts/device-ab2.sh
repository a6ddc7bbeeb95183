#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with
# $D (default .device/c) holding dsbatch.xz, dsbatch-$BASE.xz, models/
# (yolo11n.onnx, yolo11n_seg.onnx) and 1080p-h264.mp4. A/B of the two
# binaries in one call, interleaved ROUNDS (3) times: the engine alone
# (`bench infer`, batch 64) and `dsbatch run --no-track` over COPIES (100)
# links of the clip (decoding, engine and writing, without tracking's
# changes); then a segmentation run with a CPU profile ($OUT/seg.prof).
# Every step bounded and logged to $OUT/log.txt.
set -uo pipefail
D=${D:-.device/c}
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
for f in "$D"/*.xz; do xz -dkf "$f" && chmod +x "${f%.xz}"; done
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
new=$(realpath "$D/dsbatch") base=$(realpath "$D/dsbatch-${BASE:?}")
model=$(realpath "$D/models/yolo11n.onnx")
clip=$(realpath "$D/1080p-h264.mp4")
work=$(mktemp -d)
mkdir -p "$work/in"
for i in $(seq -w 1 "${COPIES:-100}"); do ln "$clip" "$work/in/clip$i.mp4"; done
timeout 60 "$new" run --model "$model" --out "$work/warm" --gpus 1 --no-cache --log-every 1h --no-track "$work/in" >/dev/null 2>&1
for round in $(seq 1 "${ROUNDS:-3}"); do
	for b in "$new" "$base"; do
		echo; echo "== round $round: $("$b" --version)"
		timeout 40 "$b" bench infer --model "$model" --batch 64 --duration 4s 2>&1 | grep -E '^(forward|detect):'
		timeout 60 "$b" run --model "$model" --out "$work/ab-$round-$RANDOM" --gpus 1 --no-cache --no-track --log-every 1h --profile "$work/in" 2>&1 | grep -E '^(frames|pace|worker|peak)'
	done
done
if [ -f "$D/models/yolo11n_seg.onnx" ]; then
	mkdir -p "$work/seg"
	for i in $(seq -w 1 8); do ln "$clip" "$work/seg/clip$i.mp4"; done
	echo; echo "== segmentation, 8 videos, first second, CPU profile"
	timeout 90 "$new" run --model "$(realpath "$D/models/yolo11n_seg.onnx")" --engine gpu --out "$work/seg-out" --gpus 1 --no-cache --no-box-check --log-every 1h --profile --end 1s --cpuprofile "$out/seg.prof" "$work/seg" 2>&1 | grep -v '^progress'
fi
