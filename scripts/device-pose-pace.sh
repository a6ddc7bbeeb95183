#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/pose) carried: dsbatch.xz of this tree,
# old/dsbatch.xz (the binary to compare with), models/yolo11n.onnx.xz and
# models/yolo11n_pose.onnx.xz, and 1080p-h264.mp4 (internal/mkmedia
# -gpu-bench). The pose model's run pace next to the same-size detector's
# (issue 21: within 10%) over COPIES (96) links of the clip, old and new
# binaries, two rounds, then inspect on a pose run. docs/PERF.md's pose
# pace of 2026-12-03 comes from it.
set -uo pipefail
D=$(realpath "${D:-.device/pose}")
(cd "$D" && for f in *.xz old/*.xz models/*.xz; do xz -dkf "$f"; done && chmod +x dsbatch old/dsbatch)
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache}
w=$(mktemp -d)
mkdir -p "$w/in"
for i in $(seq -w 1 "${COPIES:-96}"); do ln "$D/1080p-h264.mp4" "$w/in/clip$i.mp4"; done
for m in yolo11n yolo11n_pose; do
	"$D/dsbatch" run --model "$D/models/$m.onnx" --out "$w/warm-$m" --gpus 1 --no-cache --log-every 1h --no-box-check --no-track "$w/in/clip01.mp4" > /dev/null 2>&1
done
for round in 1 2; do
	for b in old new; do
		bin=$D/dsbatch; [ $b = old ] && bin=$D/old/dsbatch
		for m in yolo11n yolo11n_pose; do
			echo "== $b $m round $round"
			timeout 60 "$bin" run --engine gpu --gpus 1 --no-cache --no-box-check --log-every 1h --profile --model "$D/models/$m.onnx" --out "$w/$b-$m-$round" "$w/in" 2>&1 | grep -E '^(frames|pace|worker)' | cut -c1-200
		done
	done
done
"$D/dsbatch" inspect "$w/new-yolo11n_pose-1" | grep -A18 KEYPOINT
echo "parts: $(ls "$w/new-yolo11n_pose-1/detections" | wc -l)"
