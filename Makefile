# dsbatch: make setup (install and build), make test, make bench, make static.

GO        ?= go
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# go-nvml's header marks some functions deprecated; its cgo would warn on every build.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

# Debian 12 / Ubuntu packages: FFmpeg 5.1 development files (go-astiav v0.16.0 is
# built for FFmpeg 5.1), pkg-config, a C compiler for cgo, and NVIDIA's
# dynamic-loading codec headers (ffnvcodec) for NVDEC.
APT_PACKAGES := pkg-config gcc g++ libc6-dev libavcodec-dev libavformat-dev libavutil-dev \
	libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev libffmpeg-nvenc-dev

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# ONNX Runtime's official Linux x64 CPU library, from the npm package
# onnxruntime-node (fetched with `npm pack`: no install scripts run).
# yalue/onnxruntime_go v1.27.0 speaks its C API version 24, which 1.30
# serves too. 1.30.0 is the version of the GPU machine's Python package,
# so that both machines' tests hold the engines to the same reference
# (1.25 changed AveragePool's ceil_mode divisor to PyTorch's).
ORT_VERSION := 1.30.0
ORT_LIB     := bin/libonnxruntime.so.1

# NVRTC for make test's compilation of every CUDA kernel source (scripts/
# fetch-nvrtc.sh: Debian non-free's libnvrtc11.2, unpacked into .nvrtc, nothing
# installed). Without it that test skips; the GPU machine uses its CUDA's.
NVRTC_DIR := $(CURDIR)/.nvrtc
NVRTC_LIB := $(NVRTC_DIR)/lib/libnvrtc.so.11.2
NVRTC_ENV  = $(if $(wildcard $(NVRTC_LIB)),DSBATCH_NVRTC_LIB=$(NVRTC_LIB) LD_LIBRARY_PATH=$(NVRTC_DIR)/lib)

FFMPEG_PREFIX := $(CURDIR)/.ffmpeg
FFMPEG_LIBS   := libavdevice libavfilter libavformat libavcodec libswresample libswscale libavutil

.PHONY: fuzz setup deps ort nvrtc build test bench static ffmpeg-static device-bins media clean

## setup: install system packages, Go modules, ONNX Runtime and NVRTC (.nvrtc), then build bin/dsbatch
setup: deps ort nvrtc build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm; }
	$(GO) mod download

ort: $(ORT_LIB)

# A machine that cannot fetch it still sets up; make test then skips the
# kernel compilation, and says so.
nvrtc:
	@[ -e $(NVRTC_LIB) ] || scripts/fetch-nvrtc.sh $(NVRTC_DIR) || echo "NVRTC not fetched: make test will not compile the CUDA kernel sources"

# The library depends on its version's package, so that a new ORT_VERSION
# replaces a library already there.
$(ORT_LIB): .ort/onnxruntime-node-$(ORT_VERSION).tgz
	mkdir -p bin
	tar -xzf $< -C .ort package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	cp .ort/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 $@

.ort/onnxruntime-node-$(ORT_VERSION).tgz:
	mkdir -p .ort
	cd .ort && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/dsbatch ./cmd/dsbatch

## test: vet, formatting, and every test with the race detector
test:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(NVRTC_ENV) $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

## fuzz: each fuzz target for a fixed number of inputs (7 to 20 s each on a 2-core machine); a crasher
## is kept in the package's testdata/fuzz. A count, not a duration: Go 1.26's fuzzing coordinator can
## fail a run that ends on a -fuzztime duration with "context deadline exceeded" though nothing was
## found (golang/go#75804, fixed in Go 1.27), which a count never triggers. Minimizing is off
## (FUZZMINIMIZE=0) so a short run fuzzes rather than minimizes every input that finds new coverage.
## Long runs: make fuzz FUZZTIME=10m FUZZMINIMIZE=60s (a duration, so the race can strike at the end).
FUZZTIME ?=
FUZZMINIMIZE ?= 0
FUZZ_TARGETS = ./decode:FuzzProbe:5000x ./infer:FuzzParseNamesDict:100000x ./infer:FuzzParsePreprocess:20000x ./events:FuzzParseGeometry:20000x ./infer/graph:FuzzCompile:100000x ./cmd/dsbatch:FuzzParseConfig:1000x ./job:FuzzLoadState:2000x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$(or $(FUZZTIME),$${rest#*:}); \
		echo "fuzz $$name ($$pkg) for $$n"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $$n -fuzzminimizetime $(FUZZMINIMIZE) $$pkg; \
	done

## bench: Go benchmarks, then `dsbatch run` on a generated 720p clip with a small model (CPU)
bench: build ort
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./internal/mkmedia -bench .bench
	rm -rf .bench/out
	bin/dsbatch run --no-cache --model .bench/tiny.onnx --out .bench/out --log-every 1h .bench/720p.mp4

## static: bin/dsbatch-static, linked against a minimal static FFmpeg 5.1 with
## NVDEC, for GPU machines that have no FFmpeg
static: ffmpeg-static
	PKG_CONFIG_LIBDIR=$(FFMPEG_PREFIX)/lib/pkgconfig \
	CGO_LDFLAGS="$$(PKG_CONFIG_LIBDIR=$(FFMPEG_PREFIX)/lib/pkgconfig pkg-config --static --libs $(FFMPEG_LIBS))" \
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/dsbatch-static ./cmd/dsbatch
	@! ldd bin/dsbatch-static | grep -E 'libav|libsw' || { echo "bin/dsbatch-static still links shared FFmpeg"; exit 1; }
	@echo "bin/dsbatch-static: $$(du -h bin/dsbatch-static | cut -f1), FFmpeg linked statically"

ffmpeg-static: $(FFMPEG_PREFIX)/lib/pkgconfig/libavcodec.pc

$(FFMPEG_PREFIX)/lib/pkgconfig/libavcodec.pc:
	scripts/build-ffmpeg.sh $(FFMPEG_PREFIX)

## media: regenerate testdata/media and testdata/hostile with Debian's FFmpeg encoders
media:
	$(GO) run ./internal/mkmedia -out testdata/media
	$(GO) run ./internal/mkmedia -hostile testdata/hostile

clean:
	rm -rf bin .build

## device-bins: bin/dsbatch-static plus test binaries of the packages with GPU
## paths, linked like it, to carry to a GPU machine (scripts/device-check.sh)
device-bins: static
	for p in gpu decode infer job; do \
		PKG_CONFIG_LIBDIR=$(FFMPEG_PREFIX)/lib/pkgconfig \
		CGO_LDFLAGS="$$(PKG_CONFIG_LIBDIR=$(FFMPEG_PREFIX)/lib/pkgconfig pkg-config --static --libs $(FFMPEG_LIBS))" \
		$(GO) test -c -o bin/$$p.test ./$$p || exit 1; \
	done
