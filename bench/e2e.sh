#!/usr/bin/env bash
# End-to-end GPU benchmark: `dsbatch run` over a folder of 1080p clips, with
# the NVDEC ceiling (shared/gpu/nvdec_ceiling) and the engine's own pace
# (`dsbatch bench infer`) measured in the same call, and the run's peak RSS
# (its own report). Prints a table last.
#
# usage: bench/e2e.sh DSBATCH MODEL NVDEC_CEILING CLIPDIR
#   CLIPDIR holds 1080p-h264.mp4, 1080p.h264, 1080p-h264.avi,
#   1080p-hevc.mp4, 1080p.hevc (go run ./internal/mkmedia -gpu-bench
#   CLIPDIR writes them). The run's folder holds COPIES (default 200: 26.7
#   minutes of video) of one file, as separate files (hard links), for each
#   codec and each of FORMATS (default "mp4"; "mp4 raw avi" also runs the
#   raw Annex-B streams and the AVI, whose bitstream is the MP4's: the
#   ceiling is measured on that stream); RUN_FLAGS are added to `dsbatch run`.
#   `run` uses one GPU (--gpus 1); on a machine with more GPUs it runs again with
#   --gpus all and reports the speed-up. BATCH (default 128, what
#   --batch auto picks on an H100) is the batch of the engine benchmark and
#   of the runs; the benchmark also warms the convolution cache. Set
#   DSBATCH_ORT_LIB where bin/dsbatch has no ONNX Runtime beside it. The
#   PyTorch pipeline reads the first 24 files.
# Optional: TORCH_PIPELINE="python3 bench/torch_pipeline.py torch_baseline.py"
# times a PyTorch pipeline with CPU decoding over the same files.
set -uo pipefail
dsbatch=${1:?dsbatch binary}
model=${2:?ONNX model}
ceiling=${3:?nvdec_ceiling binary}
clips=${4:?folder of clips}
copies=${COPIES:-200}
ngpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rows=()
field() { sed -n "s/.*$1[=:] *\([0-9.]*\).*/\1/p" | head -n1; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b }'; }
minf() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }

batch=${BATCH:-128}
engine=$("$dsbatch" bench infer --model "$model" --batch "$batch" --duration 5s | tee /dev/stderr | sed -n "s/^detect: batch $batch, \([0-9]*\) img\/s.*/\1/p")
rows+=("engine (YOLOv8n arch, 640, batch $batch, with device post-processing): ${engine} img/s")
for codec in h264 hevc; do
 ceil=$("$ceiling" "$clips/1080p.$codec" "$codec" 14 6 | tee /dev/stderr | field fps)
 for format in ${FORMATS:-mp4}; do
  case $format in
  mp4) src="$clips/1080p-$codec.mp4" ext=mp4 ;;
  raw) src="$clips/1080p.$codec" ext=$codec ;;
  avi) src="$clips/1080p-$codec.avi" ext=avi ;;
  *) echo "unknown format $format" >&2; exit 2 ;;
  esac
  [ -f "$src" ] || continue
  name=$codec-$format
  mkdir -p "$work/$name"
  cp "$src" "$work/clip-$name.$ext"
  for i in $(seq -w 1 "$copies"); do ln "$work/clip-$name.$ext" "$work/$name/clip$i.$ext"; done
  "$dsbatch" run --model "$model" --out "$work/out-$name" --engine gpu --batch "$batch" --gpus 1 --no-cache --log-every 1h --profile ${RUN_FLAGS:-} "$work/$name" > "$work/run-$name.txt" 2>&1
  cat "$work/run-$name.txt" >&2
  rss=$(sed -n 's/^peak memory: \([^;]*\);.*/\1/p' "$work/run-$name.txt")
  fps=$(grep '^frames:' "$work/run-$name.txt" | sed -n 's/.*(\([0-9.]*\) frames\/s).*/\1/p')
  steady=$(sed -n 's/^pace: .*then \([0-9.]*\) frames\/s.*/\1/p' "$work/run-$name.txt")
  bound=$(minf "$ceil" "$engine")
  inferred=$(sed -n 's/^frames: \([0-9]*\) inferred.*/\1/p' "$work/run-$name.txt")
  rows+=("$name: $copies files x 8 s 1080p; nvdec_ceiling ${ceil} frames/s; dsbatch run ${fps} frames/s = $(pct "$fps" "$bound")% of min(ceiling, engine), after the first batch ${steady} frames/s = $(pct "$steady" "$bound")%; ${inferred} frames inferred of $((copies * 240)); peak RSS $rss")
  grep -E '^stage time|^gpu |^pace|^worker|^  ' "$work/run-$name.txt" | sed "s/^/$name   /" >> "$work/stages"
  if [ "$ngpus" -gt 1 ]; then
    "$dsbatch" run --model "$model" --out "$work/all-$name" --engine gpu --batch "$batch" --gpus all --no-cache --log-every 1h --profile ${RUN_FLAGS:-} "$work/$name" > "$work/all-$name.txt" 2>&1
    cat "$work/all-$name.txt" >&2
    all=$(grep '^frames:' "$work/all-$name.txt" | sed -n 's/.*(\([0-9.]*\) frames\/s).*/\1/p')
    rows+=("$name: $ngpus GPUs ${all} frames/s = $(awk -v a="$all" -v b="$fps" 'BEGIN { if (b > 0) printf "%.2f", a / b }')x one GPU")
    grep -E '^stage time|^gpu |^pace|^worker|^  ' "$work/all-$name.txt" | sed "s/^/$name x$ngpus   /" >> "$work/stages"
  fi
  if [ -n "${TORCH_PIPELINE:-}" ]; then
    t=$($TORCH_PIPELINE "$work/$name" 24 | tee /dev/stderr | field fps)
    rows+=("$name: PyTorch pipeline with CPU decoding ${t} frames/s; dsbatch $(awk -v a="$fps" -v b="$t" 'BEGIN { if (b > 0) printf "%.1f", a / b }')x")
  fi
 done
done
echo
echo "== end-to-end benchmark ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1), $(date -u +%F))"
printf '%s\n' "${rows[@]}"
cat "$work/stages"
