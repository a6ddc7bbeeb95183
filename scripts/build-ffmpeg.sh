#!/usr/bin/env bash
# Builds a minimal static FFmpeg 5.1 (Debian 12's source package) with NVDEC/cuvid
# into a local prefix, so that `make static` can link dsbatch into one binary that
# runs on GPU machines without FFmpeg. Usage: scripts/build-ffmpeg.sh PREFIX
set -euo pipefail
prefix=$(realpath -m "${1:?usage: build-ffmpeg.sh PREFIX}")
work=$(realpath -m "${FFMPEG_BUILD_DIR:-.build/ffmpeg}")
jobs=$(nproc)

if [ -f "$prefix/lib/pkgconfig/libavcodec.pc" ]; then
  echo "static FFmpeg already in $prefix"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# FFmpeg's x86 assembly (most of its decoding speed) needs an assembler; a
# fresh Debian 12 machine has none, and configure stops with "nasm/yasm not found".
if ! command -v nasm >/dev/null; then
  echo "installing nasm"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nasm
fi

# Debian ships FFmpeg's source as a deb-src package; enable deb-src once.
if ! apt-get indextargets --format '$(CREATED_BY)' 2>/dev/null | grep -q '^Sources$'; then
  echo "enabling deb-src for apt-get source"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | $sudo tee /etc/apt/sources.list.d/dsbatch-src.sources >/dev/null
  $sudo apt-get update -qq
fi

mkdir -p "$work"
cd "$work"
if ! ls -d ffmpeg-5.1*/ >/dev/null 2>&1; then
  apt-get source -qq ffmpeg
fi
src=$(ls -d ffmpeg-5.1*/ | head -n1)
cd "$src"

decoders=h264,hevc,vp8,vp9,mpeg4,mpeg2video,mpeg1video,mjpeg,h263
./configure \
  --prefix="$prefix" \
  --disable-shared --enable-static --enable-pic \
  --disable-programs --disable-doc --disable-network --disable-debug \
  --disable-autodetect --disable-everything \
  --enable-ffnvcodec --enable-nvdec --enable-cuvid \
  --enable-decoder="$decoders" \
  --enable-decoder=h264_cuvid,hevc_cuvid,vp8_cuvid,vp9_cuvid,mpeg4_cuvid,mpeg2_cuvid,mjpeg_cuvid \
  --enable-hwaccel=h264_nvdec,hevc_nvdec,vp8_nvdec,vp9_nvdec,mpeg4_nvdec,mpeg2_nvdec,mpeg1_nvdec,mjpeg_nvdec \
  --enable-demuxer=mov,matroska,avi,mpegts,mpegps,mpegvideo,flv,h264,hevc,m4v,ivf,mjpeg \
  --enable-parser=h264,hevc,vp8,vp9,mpeg4video,mpegvideo,mjpeg,h263 \
  --enable-bsf=h264_mp4toannexb,hevc_mp4toannexb,vp9_superframe_split,extract_extradata,mpeg4_unpack_bframes,null \
  --enable-protocol=file,pipe \
  --enable-swscale --enable-filter=buffer,buffersink,scale,transpose,format \
  >configure.log 2>&1 || { tail -30 configure.log; exit 1; }
make -j"$jobs" >make.log 2>&1 || { tail -40 make.log; exit 1; }
make install >/dev/null
echo "static FFmpeg $(cat VERSION 2>/dev/null || echo 5.1) installed in $prefix"
