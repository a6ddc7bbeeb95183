#!/usr/bin/env bash
# GPU decode benchmark: NVDEC decode + GPU letterbox throughput of dsbatch
# against the NVDEC ceiling (shared/gpu/nvdec_ceiling, the cuvid API driven
# directly), on the same bitstreams, in one run. Prints a table last.
#
# usage: bench/gpu.sh DSBATCH NVDEC_CEILING DIR
#   DIR holds 1080p-h264.mp4, 1080p.h264, 1080p-hevc.mp4, 1080p.hevc
#   (go run ./internal/mkmedia -gpu-bench DIR writes them).
# "steady" keeps one decoder per session and loops the file, as
# nvdec_ceiling does (long videos); "reopen" opens the file again at its end
# (archives of short clips). With several GPUs, it also runs every GPU at
# once and reports the scaling.
set -uo pipefail
dsbatch=${1:?dsbatch binary}
ceiling=${2:?nvdec_ceiling binary}
dir=${3:?folder of clips}
sessions=${SESSIONS:-14}
duration=${DURATION:-8s}
rows=()
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b }'; }
for codec in h264 hevc; do
  ceil=$("$ceiling" "$dir/1080p.$codec" "$codec" 14 6 | tee /dev/stderr | field fps)
  rows+=("$codec nvdec_ceiling 14 threads: ${ceil} frames/s")
  for mode in steady reopen; do
    loop=""
    [ "$mode" = steady ] && loop="--loop"
    got=$("$dsbatch" bench decode $loop --sessions "$sessions" --duration "$duration" --imgsz 640 "$dir/1080p-$codec.mp4" | tee /dev/stderr | field fps)
    rows+=("$codec dsbatch $sessions sessions, $mode, decode + letterbox 640: ${got} frames/s ($(pct "$got" "$ceil")% of the ceiling)")
  done
done
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
if [ "$gpus" -gt 1 ]; then
  for codec in h264 hevc; do
    one=$("$dsbatch" bench decode --loop --gpu 0 --sessions "$sessions" --duration "$duration" --imgsz 640 "$dir/1080p-$codec.mp4" | field fps)
    tmp=$(mktemp -d)
    for g in $(seq 0 $((gpus - 1))); do
      "$dsbatch" bench decode --loop --gpu "$g" --sessions "$sessions" --duration "$duration" --imgsz 640 "$dir/1080p-$codec.mp4" > "$tmp/$g" &
    done
    wait
    all=$(cat "$tmp"/* | field fps | awk '{ s += $1 } END { printf "%.1f", s }')
    rows+=("$codec $gpus GPUs at once: ${all} frames/s, one GPU ${one}: scaling $(awk -v a="$all" -v b="$one" 'BEGIN { printf "%.2f", a / b }')x")
    rm -rf "$tmp"
  done
fi
echo
echo "== GPU decode benchmark ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1) x${gpus}, $(date -u +%F))"
printf '%s\n' "${rows[@]}"
