#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with
# $D (default .device/fam) holding dsbatch.xz, models/*.onnx (or
# .onnx.xz) and one clip (*.mp4). Issue 19's one table: for every model,
# whether the GPU engine compiles it, its first batch (cold: a cache of
# its own; then warm), its img/s at batch 64 (`dsbatch check`), the same
# file's PyTorch CUDA-graph img/s (bench/torch_onnx.py; eager where the
# graph does not capture), the ratio, and the engines' agreement on the
# clip's first 16 frames. PyTorch runs first, alone on the GPU. Every step
# bounded and logged to $OUT/log.txt; the table is also $OUT/families.md.
# The carry limit (64 MiB) takes four or five models a call.
set -uo pipefail
D=${D:-.device/fam}
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
for f in "$D"/*.xz "$D"/models/*.xz; do [ -e "$f" ] && xz -dkf "$f" && chmod +x "${f%.xz}"; done
export DSBATCH_ORT_LIB=${DSBATCH_ORT_LIB:-$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)}
bin=$(realpath "$D/dsbatch")
clip=$(ls "$D"/*.mp4 | head -1)
models=$(ls "$(realpath "$D/models")"/*.onnx)
echo "== PyTorch"
timeout 400 python3 bench/torch_onnx.py --batch 64 --seconds 3 $models > "$out/torch.md" 2> "$out/torch.err"
cat "$out/torch.md"
# torch_img NAME: the CUDA-graph figure of NAME.onnx, else its eager one
# with a star, from torch_onnx.py's table.
torch_img() {
	awk -F'|' -v m="$1.onnx" '{gsub(/ /, "", $2)} $2 == m {g = $5; e = $4; gsub(/[ ,]/, "", g); gsub(/[ ,]/, "", e);
		if (g != "" && g != "nan") print g; else if (e != "") print e "*"}' "$out/torch.md"
}
{
	echo "| model | GPU engine | first batch, cold / warm | engine img/s | PyTorch img/s | ratio | engines agree |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for m in $models; do
		name=$(basename "$m" .onnx)
		# Cold: a cache of its own (kernels compiled, convolutions
		# measured); then warm, the same cache again.
		export XDG_CACHE_HOME=$(mktemp -d)
		c=$(timeout 180 "$bin" check --video "$clip" --min 0 "$m" 2>&1)
		warm=$(timeout 180 "$bin" check --frames 1 --video "$clip" --min 0 "$m" 2>&1 | awk '/^GPU first batch/{print $4 " s"; exit}')
		compiles=$(echo "$c" | awk '/^GPU engine  /{$1 = $2 = ""; sub(/^ +/, ""); print; exit}')
		first=$(echo "$c" | awk '/^GPU first batch/{print $4 " s"; exit}')
		first="$first / $warm"
		img=$(echo "$c" | awk '/^GPU engine speed/{print $4; exit}')
		agree=$(echo "$c" | awk '/^engines agree/{print $3; exit}')
		pt=$(torch_img "$name")
		ratio=$(awk -v a="$img" -v b="${pt%\*}" 'BEGIN {if (a > 0 && b > 0) printf "%.2f×", a / b}')
		echo "| $name | ${compiles:-?} | ${first:-} | ${img:-} | ${pt:-} | ${ratio:-} | ${agree:-} |"
	done
	echo
	echo "PyTorch: bench/torch_onnx.py (the ONNX file node by node in PyTorch, fp16 channels_last, CUDA graph at batch 64;"
	echo "* eager, where the graph does not capture). Agreement: boxes matched on the first 16 frames of $(basename "$clip")."
} | tee "$out/families.md"
