#!/usr/bin/env bash
# Tracking's cost on a GPU worker in dense scenes: `dsbatch run` over COPIES
# (default 60) hard links of one clip, with and without tracking, at the
# model's usual density and denser (DENSE_FLAGS, default --conf 0.01
# --iou 0.9 --max-det 300: up to 300 boxes a frame), in one call, after a
# warm-up run. Prints a table last: frames/s, boxes per
# frame, and the tracked pace as a share of the untracked one.
#
# usage: bench/track.sh DSBATCH MODEL CLIP
#   Set DSBATCH_ORT_LIB where DSBATCH has no ONNX Runtime beside it.
set -uo pipefail
dsbatch=${1:?dsbatch binary}
model=${2:?ONNX model}
clip=${3:?video clip}
copies=${COPIES:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in"
cp "$clip" "$work/clip.${clip##*.}"
for i in $(seq -w 1 "$copies"); do ln "$work/clip.${clip##*.}" "$work/in/clip$i.${clip##*.}"; done
# A first run over the whole folder builds the engine's caches (cuDNN
# plans, kernels) and warms the GPU: every measured run then starts warm.
# (A one-clip warm-up left the first measured run 25% slower whatever its
# mode, 2026-12-02.)
"$dsbatch" run --model "$model" --out "$work/warm" --gpus 1 --no-cache --log-every 1h --no-track "$work/in" >/dev/null 2>&1
rows=()
for density in "usual:" "dense:${DENSE_FLAGS:---conf 0.01 --iou 0.9 --max-det 300}"; do
  name=${density%%:*} flags=${density#*:}
  declare -A fps
  for mode in track no-track; do
    extra=""
    [ "$mode" = no-track ] && extra="--no-track"
    # shellcheck disable=SC2086
    "$dsbatch" run --model "$model" --out "$work/out-$name-$mode" --gpus 1 --no-cache --log-every 1h --profile $flags $extra "$work/in" > "$work/$name-$mode.txt" 2>&1
    cat "$work/$name-$mode.txt" >&2
    line=$(grep '^frames:' "$work/$name-$mode.txt")
    frames=$(sed -n 's/^frames: \([0-9]*\) inferred.*/\1/p' <<<"$line")
    dets=$(sed -n 's/.*, \([0-9]*\) detections$/\1/p' <<<"$line")
    fps[$mode]=$(sed -n 's/.*(\([0-9.]*\) frames\/s).*/\1/p' <<<"$line")
    bound=$(sed -n 's/^worker 0.*frames, \([a-z]*\)-bound.*/\1/p' "$work/$name-$mode.txt")
    export_busy=$(sed -n 's/^  export *busy *\([0-9]*%\).*/\1/p' "$work/$name-$mode.txt")
    rows+=("$name density, $mode: ${fps[$mode]} frames/s, $(awk -v d="$dets" -v f="$frames" 'BEGIN { if (f > 0) printf "%.0f", d / f }') boxes/frame, $bound-bound, export busy $export_busy")
  done
  rows+=("$name density: tracked pace = $(awk -v a="${fps[track]}" -v b="${fps[no-track]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }') of untracked")
done
echo
echo "== tracking benchmark ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1), $(date -u +%F), $copies copies of $(basename "$clip"), $($dsbatch --version))"
printf '%s\n' "${rows[@]}"
