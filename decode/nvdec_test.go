package decode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/gpu"
)

// TestNVDECMatchesCPU decodes every file NVDEC takes of the timestamp
// corpus and testdata/media with NVDEC and with FFmpeg on the CPU, with
// several samplings, on one decoder reopened from file to file as a GPU
// worker does: the same frames (indices) with the same times, and no
// picture lost. It skips without a GPU.
func TestNVDECMatchesCPU(t *testing.T) {
	host, err := gpu.Open()
	if errors.Is(err, gpu.ErrNoDriver) {
		t.Skipf("no GPU: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	devs, err := host.Devices()
	host.Close()
	if err != nil || len(devs) == 0 {
		t.Fatalf("devices: %v", err)
	}
	cu, err := gpu.OpenCUDA(devs[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	defer cu.Close()
	files, _ := filepath.Glob(filepath.Join(corpus, "*"))
	more, _ := filepath.Glob(filepath.Join(media, "*.*"))
	files = append(files, more...)
	samplings := []Options{{}, {Stride: 10}, {FPS: 2}, {Start: 0.5, End: 1.2}}
	var nv *NVDEC
	defer func() {
		if nv != nil {
			nv.Close()
		}
	}()
	var table strings.Builder
	bad := 0
	for _, opts := range samplings {
		for _, path := range files {
			if filepath.Base(path) == "corrupt.mkv" {
				continue // damaged: NVDEC drops what FFmpeg conceals
			}
			cpuIdx, cpuPTS, cst := decodeTimes(t, path, opts)
			var err error
			if nv == nil {
				nv, err = OpenNVDEC(context.Background(), path, cu.Context(), opts)
			} else if err = nv.Reopen(context.Background(), path, opts); err != nil {
				nv.Close()
				nv = nil
				if errors.Is(err, ErrNVDECCodecChanged) {
					nv, err = OpenNVDEC(context.Background(), path, cu.Context(), opts)
				}
			}
			if errors.Is(err, ErrNVDECUnsupported) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			var idx []int64
			var pts []float64
			var f GPUFrame
			for err = nv.Next(context.Background(), &f); err == nil; err = nv.Next(context.Background(), &f) {
				idx, pts = append(idx, f.Index), append(pts, f.PTS)
			}
			st := nv.Stats()
			if errors.Is(err, ErrNVDECUnsupported) {
				nv.Close()
				nv = nil
				fmt.Fprintf(&table, "%-22s left to the CPU (%v)\n", filepath.Base(path), err)
				continue
			}
			if err != io.EOF {
				t.Fatalf("%s: %v", path, err)
			}
			verdict := "same"
			if !slices.Equal(idx, cpuIdx) || !closeTo(pts, cpuPTS) || st.Decoded != cst.Decoded || st.CorruptPackets != 0 {
				verdict = fmt.Sprintf("DIFFER: nvdec %v %v, cpu %v %v", idx, pts, cpuIdx, cpuPTS)
				bad++
			}
			fmt.Fprintf(&table, "%-22s %-28s decoded nvdec %3d cpu %3d, kept %3d %3d, nvdec errors %d: %s\n", filepath.Base(path),
				fmt.Sprintf("stride %d fps %g start %g end %g", opts.Stride, opts.FPS, opts.Start, opts.End), st.Decoded, cst.Decoded, len(idx), len(cpuIdx), st.CorruptPackets, verdict)
		}
	}
	t.Logf("NVDEC against the CPU decoder:\n%s", table.String())
	if bad > 0 {
		t.Errorf("%d (file, sampling) pairs differ", bad)
	}
}

// decodeTimes decodes path on the CPU and returns the kept frames' indices
// and times.
func decodeTimes(t *testing.T, path string, opts Options) ([]int64, []float64, Stats) {
	t.Helper()
	opts.Format, opts.Threads = YUV420P, 1
	_, idx, pts, _, st := decodeAll(t, path, opts)
	return idx, pts, st
}
