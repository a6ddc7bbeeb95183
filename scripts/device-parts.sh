#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with the
# folder $D (default .device/c) carried: dsbatch.xz, gpu.test.xz and
# infer.test.xz (built stripped, FFmpeg static), models/ (yolo11n.onnx,
# yolo26n.onnx, yolo11n_pose.onnx), footage/ (real clips) and
# 1080p-h264.mp4 (mkmedia -gpu-bench). In one call: the GPU tests of the
# previous session's work (a kernel without arguments, the operators'
# conformance table, letterbox conventions), the end-to-end and one-to-one
# pose heads on the GPU engine against ONNX Runtime, tracking's cost in
# dense scenes with outputs in parts (bench/track.sh), and a run killed
# with SIGKILL then resumed, compared box for box with one never killed.
set -uo pipefail
D=${D:-.device/c}
out=${RESULTS:-/tmp/dsbatch-out}
mkdir -p "$out"
rc=0
step() { echo; echo "== $*"; "$@" || { echo "FAILED ($?): $*"; rc=1; }; }
for f in "$D"/*.xz; do xz -dkf "$f" && chmod +x "${f%.xz}"; done
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
bin=$(realpath "$D/dsbatch")
models=$(realpath "$D/models")
step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
(cd gpu && step "$(realpath "../$D/gpu.test")" -test.count=1 -test.run 'TestKernelWithoutArguments' -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS)')
(cd infer && step "$(realpath "../$D/infer.test")" -test.count=1 -test.timeout 200s -test.run 'TestGPUOperators|TestNVDECMatchesCPU|TestGPUEngine|TestGPUDetect' -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS)|max \|' | grep -v '^=== ')
for name in yolo26n yolo11n_pose; do
	for e in gpu onnxruntime; do
		step "$bin" run --no-cache --no-box-check --engine "$e" --model "$models/$name.onnx" --out "$out/$name-$e" "$D/footage" 2>&1 | grep -v '^progress'
	done
	step "$bin" compare "$out/$name-gpu" "$out/$name-onnxruntime"
done
in=$(mktemp -d)
for i in $(seq -w 1 60); do ln "$D/1080p-h264.mp4" "$in/clip$i.mp4"; done
if [ -n "${PROFILE:-}" ]; then
	# Where a tracked run's time goes, against an untracked one: Go CPU
	# profiles into $OUT, and the tracked run again with GOGC=400.
	"$bin" run --model "$models/yolo11n.onnx" --out "$out/warm" --gpus 1 --no-cache --log-every 1h "$in/clip01.mp4" >/dev/null 2>&1
	step "$bin" run --no-cache --log-every 1h --profile --gpus 1 --cpuprofile "$OUT/track.pprof" --model "$models/yolo11n.onnx" --out "$out/p-track" "$in" 2>&1 | grep -E '^(frames|pace|worker|  )'
	step "$bin" run --no-cache --log-every 1h --profile --gpus 1 --no-track --cpuprofile "$OUT/notrack.pprof" --model "$models/yolo11n.onnx" --out "$out/p-notrack" "$in" 2>&1 | grep -E '^(frames|pace|worker|  )'
	GOGC=400 step "$bin" run --no-cache --log-every 1h --profile --gpus 1 --model "$models/yolo11n.onnx" --out "$out/p-track-gogc" "$in" 2>&1 | grep -E '^(frames|pace|worker|  )'
	step "$bin" run --no-cache --log-every 1h --profile --gpus 1 --part-rows 100000000 --model "$models/yolo11n.onnx" --out "$out/p-track-onepart" "$in" 2>&1 | grep -E '^(frames|pace|worker|  )'
else
	step bench/track.sh "$bin" "$models/yolo11n.onnx" "$D/1080p-h264.mp4"
fi
# A run killed with SIGKILL mid-way, then resumed: the same boxes as a run
# never killed, none twice.
step "$bin" run --no-cache --log-every 1h --part-rows 20000 --model "$models/yolo11n.onnx" --out "$out/ref" "$in" | tail -3
"$bin" run --no-cache --log-every 1h --part-rows 20000 --model "$models/yolo11n.onnx" --out "$out/killed" "$in" > /dev/null 2>&1 &
pid=$!
sleep ${KILL_AFTER:-4}
kill -9 $pid
wait $pid 2>/dev/null
echo "killed: $(ls "$out/killed/detections" | wc -l) parts published, $(ls "$out/killed/.dsbatch/staging" | wc -l) stage files"
step "$bin" run --no-cache --log-every 1h --part-rows 20000 --model "$models/yolo11n.onnx" --out "$out/killed" "$in" | tail -3
step "$bin" compare --min 0.999 "$out/killed" "$out/ref"
step "$bin" compare --min 0.999 "$out/ref" "$out/killed"
"$bin" inspect --json "$out/ref" | grep -A3 detections_per_class
"$bin" inspect --json "$out/killed" | grep -A3 detections_per_class
exit $rc
