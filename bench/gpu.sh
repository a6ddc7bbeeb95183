#!/usr/bin/env bash
# GPU decode benchmark: NVDEC decode + GPU letterbox throughput of dsbatch
# against the NVDEC ceiling (shared/gpu/nvdec_ceiling, the cuvid API driven
# directly), on the same bitstreams, in one run. Prints a table last.
#
# usage: bench/gpu.sh DSBATCH NVDEC_CEILING DIR
#   DIR holds 1080p-h264.mp4, 1080p.h264, 1080p-hevc.mp4, 1080p.hevc
#   (go run ./internal/mkmedia -gpu-bench DIR writes them).
set -uo pipefail
dsbatch=${1:?dsbatch binary}
ceiling=${2:?nvdec_ceiling binary}
dir=${3:?folder of clips}
sessions=${SESSIONS:-"7 14"}
duration=${DURATION:-10s}
rows=()
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
for codec in h264 hevc; do
  ceil=$("$ceiling" "$dir/1080p.$codec" "$codec" 14 6 | tee /dev/stderr | field fps)
  rows+=("$codec nvdec_ceiling 14 threads: ${ceil} frames/s")
  for s in $sessions; do
    for imgsz in 0 640; do
      got=$("$dsbatch" bench decode --sessions "$s" --duration "$duration" --imgsz "$imgsz" "$dir/1080p-$codec.mp4" | tee /dev/stderr | field fps)
      pct=$(awk -v a="$got" -v b="$ceil" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b }')
      what="decode only"
      [ "$imgsz" = 0 ] || what="decode + letterbox ${imgsz}"
      rows+=("$codec dsbatch ${s} sessions, ${what}: ${got} frames/s (${pct}% of the ceiling)")
    done
  done
done
echo
echo "== GPU decode benchmark ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1), $(date -u +%F))"
printf '%s\n' "${rows[@]}"
