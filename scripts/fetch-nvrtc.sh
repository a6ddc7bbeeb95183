#!/usr/bin/env bash
# fetch-nvrtc.sh DIR: NVIDIA's runtime compiler (Debian 12 non-free's
# libnvrtc11.2, CUDA 11.8) unpacked into DIR/lib, fetched with apt-get
# download through a package list of DIR's own: nothing is installed and the
# system's apt state is not touched. make test compiles every CUDA kernel
# source with it (TestKernelSourcesCompile), so that a kernel that does not
# compile fails on a machine without a GPU.
set -euo pipefail
dir=$(realpath -m "$1")
mkdir -p "$dir/apt/parts" "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/root" "$dir/lib"
cat > "$dir/apt/parts/non-free.sources" <<'S'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
S
opts=(-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts="$dir/apt/parts" -o Dir::State::Lists="$dir/apt/lists"
	-o Dir::Cache="$dir/apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
apt-get -qq "${opts[@]}" update
(cd "$dir/debs" && apt-get -qq "${opts[@]}" download libnvrtc11.2 libnvrtc-builtins11.8)
for d in "$dir"/debs/*.deb; do dpkg-deb -x "$d" "$dir/root"; done
cp -a "$dir"/root/usr/lib/x86_64-linux-gnu/libnvrtc* "$dir/lib/"
rm -rf "$dir/apt" "$dir/debs" "$dir/root"
test -e "$dir/lib/libnvrtc.so.11.2"
