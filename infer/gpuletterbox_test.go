package infer

import (
	"context"
	"errors"
	"io"
	"math"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/gpu"
)

// openGPU returns the first GPU's CUDA context, or skips the test on a
// machine without one (CI): GPU paths are proven on the GPU machine.
func openGPU(t *testing.T) *gpu.CUDA {
	t.Helper()
	g, err := gpu.OpenCUDA(firstGPU(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// unsupported are the clips NVDEC must refuse with ErrNVDECUnsupported:
// HEVC 160×120 is under NVDEC's 144×144 minimum, VP9 decodes on the CPU,
// and a resolution change mid-stream sends the file back to the CPU.
var unsupported = map[string]bool{"hevc10.mkv": true, "vp9.webm": true, "resize.ts": true}

// TestNVDECMatchesCPU decodes each clip on NVDEC and on the CPU, letterboxes
// each frame on the GPU and with LetterboxYUV420 on the CPU, and compares
// them: the same frames, and tensors equal but for float rounding, in
// every input convention.
func TestNVDECMatchesCPU(t *testing.T) {
	g := openGPU(t)
	const size = 320
	convs := testConventions(t)
	lbxs := make([]*GPULetterbox, len(convs))
	for i, p := range convs {
		var err error
		if lbxs[i], err = NewGPULetterbox(g, size, size, p, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	dst, err := g.Alloc(3 * size * size * 4)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free(dst)
	s, err := g.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer g.DestroyStream(s)
	var nv *decode.NVDEC
	defer func() {
		if nv != nil {
			nv.Close()
		}
	}()
	gpuT := make([]float32, 3*size*size)
	cpuT := make([]float32, 3*size*size)
	ctx := context.Background()
	for _, name := range []string{"h264.mp4", "h264-faststart.mp4", "rotated.mp4", "hevc.mkv", "hevc10.mkv", "vp9.webm", "vfr.mkv", "resize.ts", "h264.mp4"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("../testdata/media", name)
			info, err := decode.Probe(ctx, path, decode.ProbeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// One decoder for all clips, reopened from clip to clip as a
			// pipeline session does; a new one after a refusal.
			opts := decode.Options{Probed: &info}
			if nv != nil {
				if err := nv.Reopen(ctx, path, opts); err != nil {
					nv.Close()
					nv = nil
					if !errors.Is(err, decode.ErrNVDECCodecChanged) && !errors.Is(err, decode.ErrNVDECUnsupported) {
						t.Fatal(err)
					}
				}
			}
			if nv == nil {
				d, err := decode.OpenNVDEC(ctx, path, g.Context(), opts)
				if errors.Is(err, decode.ErrNVDECUnsupported) && unsupported[name] {
					t.Logf("refused as it must be: %v", err)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				d.SetStream(unsafe.Pointer(s))
				nv = d
			} else if unsupported[name] && nv.Info().Codec != "h264" && nv.Info().Codec != "hevc" {
				t.Fatalf("reopened on a codec NVDEC does not take")
			}
			cpu, err := decode.Open(ctx, path, decode.Options{Format: decode.YUV420P, NoAutoRotate: true})
			if err != nil {
				t.Fatal(err)
			}
			defer cpu.Close()
			var gf decode.GPUFrame
			var cf decode.Frame
			frames, worst := 0, 0.0
			for {
				gerr := nv.Next(ctx, &gf)
				cerr := cpu.Next(ctx, &cf)
				if errors.Is(gerr, io.EOF) || errors.Is(cerr, io.EOF) {
					if !errors.Is(gerr, io.EOF) || !errors.Is(cerr, io.EOF) {
						t.Fatalf("frame %d: NVDEC %v, CPU %v: frame counts differ", frames, gerr, cerr)
					}
					break
				}
				if errors.Is(gerr, decode.ErrNVDECUnsupported) && unsupported[name] {
					t.Logf("refused after %d frames as it must be: %v", frames, gerr)
					nv.Close()
					nv = nil
					return
				}
				if gerr != nil || cerr != nil {
					t.Fatalf("frame %d: NVDEC %v, CPU %v", frames, gerr, cerr)
				}
				if gf.Index != cf.Index || math.Abs(gf.PTS-cf.PTS) > 1e-6 {
					t.Fatalf("frame %d: NVDEC index %d pts %v, CPU index %d pts %v", frames, gf.Index, gf.PTS, cf.Index, cf.PTS)
				}
				for k, lbx := range lbxs {
					glb, err := lbx.Run(&gf, dst, s)
					if err != nil {
						t.Fatal(err)
					}
					if err := g.CopyToHost(gpuT, dst, s); err != nil {
						t.Fatal(err)
					}
					y, u, v := cf.Planes()
					clb := LetterboxYUV420(y, u, v, cf.Width, cf.Height, cf.Rotation, cpuT, size, size, convs[k])
					if glb != clb {
						t.Fatalf("frame %d, input %s: GPU geometry %+v, CPU %+v", frames, convs[k], glb, clb)
					}
					worst = math.Max(worst, maxPixelDiff(gpuT, cpuT, convs[k], size*size)/255)
				}
				frames++
			}
			t.Logf("%s: %d frames, max |GPU−CPU| = %.4f (%.2f/255), stats %+v", name, frames, worst, worst*255, nv.Stats())
			if frames == 0 {
				t.Fatal("no frames")
			}
			if unsupported[name] {
				t.Errorf("NVDEC decoded %s, which it must refuse", name)
			}
			if worst > 2.0/255 {
				t.Errorf("max abs difference %.2f/255 exceeds 2/255 (in pixel values, whatever the convention)", worst*255)
			}
		})
	}
}
