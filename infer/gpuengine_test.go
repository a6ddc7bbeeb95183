package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// firstGPU returns the first GPU's UUID, or skips the test on a machine
// without one (CI).
func firstGPU(t testing.TB) string {
	t.Helper()
	host, err := gpu.Open()
	if errors.Is(err, gpu.ErrNoDriver) {
		t.Skipf("no GPU: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	devs, err := host.Devices()
	if err != nil || len(devs) == 0 {
		t.Fatalf("devices: %v %v", devs, err)
	}
	return devs[0].UUID
}

func randomImages(n, h, w int, seed int64) []float32 {
	r := rand.New(rand.NewSource(seed))
	in := make([]float32, n*3*h*w)
	for i := range in {
		in[i] = r.Float32()
	}
	return in
}

// parityModels are the detectors the GPU engine is checked on: the mini
// YOLOv8 (every operator in exporter form), the same exported at batch 1
// (re-batched by the compiler) and, where DSBATCH_BENCH_MODEL names it, a
// full-size one.
func parityModels(t *testing.T) []struct {
	path string
	size int
} {
	mini := onnxtest.WriteMiniYOLOv8(t, 7)
	b, err := onnxtest.MiniYOLOv8Static(7)
	if err != nil {
		t.Fatal(err)
	}
	static := filepath.Join(t.TempDir(), "mini-static.onnx")
	if err := os.WriteFile(static, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ms := []struct {
		path string
		size int
	}{{mini, 32}, {static, 32}}
	if p := os.Getenv("DSBATCH_BENCH_MODEL"); p != "" {
		ms = append(ms, struct {
			path string
			size int
		}{p, 640})
	}
	return ms
}

// TestGPUEngineMatchesONNXRuntime runs the same random images through the
// GPU engine (fp16) and ONNX Runtime (fp32, CPU): raw outputs within 1e-2
// relative L2, and the detections after NMS the same objects.
func TestGPUEngineMatchesONNXRuntime(t *testing.T) {
	uuid := firstGPU(t)
	lib := ortLib(t)
	for _, mm := range parityModels(t) {
		m, err := ReadModel(mm.path)
		if err != nil {
			t.Fatal(err)
		}
		ort, err := NewORT(m, mm.size, mm.size, ORTOptions{Lib: lib})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := NewGPU(m, mm.size, mm.size, GPUOptions{UUID: uuid, Batch: 8, CacheDir: t.TempDir()})
		if err != nil {
			ort.Close()
			t.Fatal(err)
		}
		t.Logf("%s: %+v", filepath.Base(mm.path), eng.Stats())
		for _, n := range []int{1, 3, 8} {
			in := randomImages(n, mm.size, mm.size, int64(n))
			want, wshape, err := ort.Infer(context.Background(), in, n)
			if err != nil {
				t.Fatal(err)
			}
			want = append([]float32(nil), want...)
			got, gshape, err := eng.Infer(context.Background(), in, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(gshape) != len(wshape) || gshape[0] != wshape[0] || gshape[1] != wshape[1] || gshape[2] != wshape[2] {
				t.Fatalf("shape %v, ORT %v", gshape, wshape)
			}
			e := onnxtest.RelL2(got, want)
			t.Logf("%s batch %d: rel L2 %.3g", filepath.Base(mm.path), n, e)
			if e > 1e-2 || math.IsNaN(e) {
				t.Errorf("%s batch %d: relative L2 error %.3g, want ≤ 1e-2", mm.path, n, e)
			}
			boxes, scores := maxDiff(got, want, int(gshape[1]), int(gshape[2]), n)
			t.Logf("max |difference|: boxes %.3g px, scores %.3g", boxes, scores)
			compareDetections(t, got, want, int(gshape[1]), int(gshape[2]), n)
		}
		eng.Close()
		ort.Close()
	}
}

// maxDiff returns the largest difference of the box rows and of the score
// rows of two v8 outputs.
func maxDiff(got, want []float32, d1, d2, n int) (boxes, scores float64) {
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if (i/d2)%d1 < 4 {
			boxes = max(boxes, d)
		} else {
			scores = max(scores, d)
		}
	}
	return boxes, scores
}

// compareDetections decodes both outputs (v8 head) and matches them: the
// counts within 1% (and 1 box), and all but 1% of the ONNX Runtime boxes
// found among the GPU's with the same class and IoU ≥ 0.95.
//
// A model with random weights scores thousands of anchors within 1e-5 of
// each other, so which of two overlapping near-equal boxes NMS keeps is a
// coin toss at fp16 precision. Both outputs' scores are therefore rounded
// to 1e-3 first: near-ties become exact ties, which NMS resolves the same
// way (anchor order) for both. The scores themselves are compared, to
// 1e-3, by maxDiff's caller through the relative error.
func compareDetections(t *testing.T, got, want []float32, d1, d2, n int) {
	t.Helper()
	per := d1 * d2
	o := PostOptions{Conf: 0.25, IoU: 0.45, MaxDet: 300}
	round := func(x []float32) []float32 {
		y := append([]float32(nil), x...)
		for i := range y {
			if (i/d2)%d1 >= 4 {
				y[i] = float32(math.Round(float64(y[i])*1000) / 1000)
			}
		}
		return y
	}
	got, want = round(got), round(want)
	var total, matched, wantTotal int
	for i := 0; i < n; i++ {
		l := Layout{Head: HeadV8, D1: d1, D2: d2, Classes: d1 - 4}
		g := l.Decode(got[i*per:(i+1)*per], o, nil)
		w := l.Decode(want[i*per:(i+1)*per], o, nil)
		total += len(g)
		wantTotal += len(w)
		used := make([]bool, len(g))
		for _, b := range w {
			for j, a := range g {
				if !used[j] && a.Class == b.Class && IoU(a, b) >= 0.95 {
					used[j] = true
					matched++
					break
				}
			}
		}
	}
	tol := max(1, wantTotal/100)
	if d := total - wantTotal; d > tol || -d > tol || wantTotal-matched > tol {
		t.Errorf("detections: GPU %d, ONNX Runtime %d, matched %d (tolerance %d)", total, wantTotal, matched, tol)
	}
	t.Logf("detections: GPU %d, ONNX Runtime %d, matched %d", total, wantTotal, matched)
}

// TestGPUEngineUnsupported: a model with an operator the engine lacks is
// refused before any GPU is touched (so here too), naming the node and
// pointing at the ONNX Runtime engine.
func TestGPUEngineUnsupported(t *testing.T) {
	b, err := onnxtest.MiniYOLOv8(7)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnx.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	for _, n := range mp.GetGraph().GetNode() {
		if n.GetOpType() == "Softmax" {
			n.OpType = proto.String("Hardmax")
		}
	}
	b, _ = proto.Marshal(&mp)
	path := filepath.Join(t.TempDir(), "hardmax.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewGPU(m, 32, 32, GPUOptions{UUID: "GPU-00000000-0000-0000-0000-000000000000", Batch: 2})
	if !errors.Is(err, graph.ErrUnsupported) || !strings.Contains(err.Error(), "Hardmax") || !strings.Contains(err.Error(), "--engine onnxruntime") {
		t.Fatalf("err = %v, want the operator and the way out", err)
	}
}

// BenchmarkGPUEngine measures images per second of the model
// DSBATCH_BENCH_MODEL at DSBATCH_BENCH_SIZE (640) square and batch
// DSBATCH_BENCH_BATCH (64), as one CUDA graph per batch, inputs already on
// the GPU. DSBATCH_BENCH_LEGACY keeps convolutions on cuDNN's legacy API,
// DSBATCH_BENCH_KERNELPRODUCTS linear layers on the engine's own product,
// so that one binary compares both in one call.
func BenchmarkGPUEngine(b *testing.B) {
	path := os.Getenv("DSBATCH_BENCH_MODEL")
	if path == "" {
		b.Skip("DSBATCH_BENCH_MODEL not set")
	}
	uuid := firstGPU(b)
	batch := 64
	if s := os.Getenv("DSBATCH_BENCH_BATCH"); s != "" {
		batch, _ = strconv.Atoi(s)
	}
	size := 640
	if s := os.Getenv("DSBATCH_BENCH_SIZE"); s != "" {
		size, _ = strconv.Atoi(s)
	}
	m, err := ReadModel(path)
	if err != nil {
		b.Fatal(err)
	}
	cache := os.Getenv("DSBATCH_BENCH_CACHE")
	if cache == "" {
		cache = b.TempDir()
	}
	eng, err := NewGPU(m, size, size, GPUOptions{UUID: uuid, Batch: batch, CacheDir: cache, NoGraphs: os.Getenv("DSBATCH_BENCH_NOGRAPHS") != "",
		LegacyConv: os.Getenv("DSBATCH_BENCH_LEGACY") != "", KernelProducts: os.Getenv("DSBATCH_BENCH_KERNELPRODUCTS") != ""})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	b.Logf("%+v", eng.Stats())
	if os.Getenv("DSBATCH_BENCH_PROFILE") != "" {
		byNode := os.Getenv("DSBATCH_BENCH_PROFILE") == "nodes"
		prof, err := eng.Profile(batch, 5, byNode)
		if err != nil {
			b.Fatal(err)
		}
		// Printed rather than logged: the testing package truncates a
		// benchmark's log. By node, the 60 longest launches.
		var total float64
		for i, p := range prof {
			total += p.Millis
			if !byNode || i < 60 {
				fmt.Fprintf(os.Stderr, "%-40s %4d launches %8.3f ms\n", p.Label, p.Launches, p.Millis)
			}
		}
		fmt.Fprintf(os.Stderr, "%-40s %4s          %8.3f ms\n", "total (synchronised after each launch)", "", total)
	}
	ctx := context.Background()
	in := randomImages(batch, size, size, 1)
	if _, _, err := eng.Infer(ctx, in, batch); err != nil {
		b.Fatal(err)
	}
	p, err := eng.planFor(batch)
	if err != nil {
		b.Fatal(err)
	}
	// forward: the network alone, as torch_baseline.py times PyTorch.
	// detect: what dsbatch run does, threshold, top-k and NMS on the device
	// and the detections copied to the host. raw: the whole output copied
	// to the host instead.
	l := Layout{Head: HeadV8, D1: int(p.shape[1]), D2: int(p.shape[2]), Classes: int(p.shape[1]) - 4}
	post := PostOptions{Conf: 0.25, IoU: 0.7}
	for _, mode := range []string{"forward", "detect", "raw"} {
		b.Run(mode, func(b *testing.B) {
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				switch mode {
				case "forward":
					err = eng.run(p)
					if err == nil && (i == b.N-1 || i%8 == 7) {
						err = eng.cuda.Sync(eng.stream)
					}
				case "detect":
					_, err = eng.detect(ctx, Frames{N: batch, Device: eng.InputFrames(batch)}, l, post)
				case "raw":
					_, _, err = eng.inferDevice(batch)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(t0).Seconds(), "img/s")
		})
	}
}

// TestGPUEngineBacksOffWhenOutOfMemory leaves 1.5 GiB of the GPU free and
// asks for a batch whose buffers need more: NewGPU halves the batch until
// the engine fits, and the engine it returns computes what ONNX Runtime
// does.
func TestGPUEngineBacksOffWhenOutOfMemory(t *testing.T) {
	uuid := firstGPU(t)
	m, err := ReadModel(onnxtest.WriteMiniYOLOv8(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gpu.OpenCUDA(uuid)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const left, asked = 1536 << 20, 1 << 15 // 32768 images need about 3.2 GiB
	var hog []gpu.DevicePtr
	defer func() {
		for _, p := range hog {
			g.Free(p)
		}
	}()
	for {
		free, _, err := g.MemInfo()
		if err != nil {
			t.Fatal(err)
		}
		if free <= left {
			break
		}
		p, err := g.Alloc(int(min(free-left, 1<<30)))
		if err != nil {
			t.Fatal(err)
		}
		hog = append(hog, p)
	}
	if _, err := g.Alloc(4 << 30); !errors.Is(err, gpu.ErrOutOfMemory) {
		t.Fatalf("allocating 4 GiB with 1.5 GiB free: %v, want ErrOutOfMemory", err)
	}
	e, err := NewGPU(m, 32, 32, GPUOptions{UUID: uuid, Batch: asked, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	t.Logf("batch %d of %d fits in 1.5 GiB", e.MaxBatch(), asked)
	if e.MaxBatch() >= asked || e.MaxBatch() < 256 {
		t.Errorf("MaxBatch %d after asking for %d with 1.5 GiB free", e.MaxBatch(), asked)
	}
	ort, err := NewORT(m, 32, 32, ORTOptions{Lib: ortLib(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer ort.Close()
	in := randomImages(3, 32, 32, 3)
	want, _, err := ort.Infer(context.Background(), in, 3)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	got, _, err := e.Infer(context.Background(), in, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d := onnxtest.RelL2(got, want); d > 1e-2 || math.IsNaN(d) {
		t.Errorf("relative L2 %.3g against ONNX Runtime", d)
	}
}

// TestGPUEngineBacksOffWhenTooLarge asks for 64 images of 640×640 from a
// model whose first tensor then has 3.4·10^9 elements, more than the
// engine's kernels index: NewGPU halves the batch to 32 (1.7·10^9).
func TestGPUEngineBacksOffWhenTooLarge(t *testing.T) {
	uuid := firstGPU(t)
	m, err := ReadModel(writeWideModel(t))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewGPU(m, 640, 640, GPUOptions{UUID: uuid, Batch: 64, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.MaxBatch() != 32 {
		t.Errorf("MaxBatch %d, want 32", e.MaxBatch())
	}
}

// writeWideModel writes a model with a wide full-resolution tensor: a
// 3×3 convolution to 128 channels, then 8×8 max pooling.
func writeWideModel(t *testing.T) string {
	t.Helper()
	w := make([]float32, 128*3*3*3)
	for i := range w {
		w[i] = 0.01
	}
	mp := onnxtest.Model("images", "output0", []*onnx.TensorProto{onnxtest.Floats("w", []int64{128, 3, 3, 3}, w)},
		onnxtest.Node("Conv", []string{"images", "w"}, []string{"c"}, onnxtest.IntsAttr("pads", 1, 1, 1, 1)),
		onnxtest.Node("MaxPool", []string{"c"}, []string{"output0"}, onnxtest.IntsAttr("kernel_shape", 8, 8), onnxtest.IntsAttr("strides", 8, 8)))
	return onnxtest.WriteModel(t, "wide.onnx", mp)
}

// TestKernelSourcesCompile compiles every kernel source with NVRTC for
// Hopper (sm_90). It needs NVRTC only, not a GPU: on a machine without
// CUDA, DSBATCH_NVRTC_LIB can point at any NVRTC (Debian's libnvrtc11.2
// in non-free is one), so kernel edits are checked before a device run.
func TestKernelSourcesCompile(t *testing.T) {
	for _, src := range []struct{ name, code string }{
		{"strided", stridedSource}, {"layout", layoutSource}, {"detect", detectSource}, {"letterbox", letterboxSource},
		{"depthwise", depthwiseSource}, {"obb", obbSource}, {"mask", maskSource}, {"matmul", kernelPrelude + matmulMMASource},
	} {
		err := gpu.CheckSource(src.code, 90)
		if errors.Is(err, gpu.ErrNoCUDA) {
			t.Skip(err)
		}
		if err != nil {
			t.Errorf("%s kernels: %v", src.name, err)
		}
	}
}

// TestEngineSourcesNameTheirKernels checks on the CPU that every kernel the
// engine loads is defined in the source it is loaded from, and that every
// field of the engine's kernels is loaded, once.
func TestEngineSourcesNameTheirKernels(t *testing.T) {
	var k kernels
	loaded := map[**gpu.Kernel]string{}
	for _, src := range k.sources() {
		for i, name := range src.names {
			if !strings.Contains(src.code, "__global__ void "+name+"(") {
				t.Errorf("kernel %s is not in its source", name)
			}
			if other, ok := loaded[src.into[i]]; ok {
				t.Errorf("kernels %s and %s load into one field", other, name)
			}
			loaded[src.into[i]] = name
			*src.into[i] = &gpu.Kernel{}
		}
	}
	// Every *gpu.Kernel in k, arrays included, was given one.
	var check func(path string, v reflect.Value)
	check = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Array:
			for i := 0; i < v.Len(); i++ {
				check(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		case reflect.Pointer:
			if v.IsNil() {
				t.Errorf("kernel field %s is loaded by no source", path)
			}
		}
	}
	rv := reflect.ValueOf(k)
	for i := 0; i < rv.NumField(); i++ {
		check(rv.Type().Field(i).Name, rv.Field(i))
	}
}

func TestVec8(t *testing.T) {
	nhwc := func(c, h, w int, pix int64, off int64) graph.View {
		return graph.View{Shape: []int{2, c, h, w}, Stride: []int64{int64(h*w) * pix, 1, int64(w) * pix, pix}, Off: off, Elem: graph.F16, Layout: graph.NHWC}
	}
	for _, c := range []struct {
		name string
		v    graph.View
		want bool
	}{
		{"packed", nhwc(16, 4, 4, 16, 0), true},
		{"inside a Concat at channel 16", nhwc(16, 4, 4, 48, 16), true},
		{"inside a Concat at channel 4", nhwc(16, 4, 4, 48, 4), false},
		{"12 channels", nhwc(12, 4, 4, 12, 0), false},
		{"pixel stride 20", nhwc(16, 4, 4, 20, 0), false},
		{"fp32", func() graph.View { v := nhwc(16, 4, 4, 16, 0); v.Elem = graph.F32; return v }(), false},
		{"row-major", func() graph.View { v := nhwc(16, 4, 4, 16, 0); v.Layout = graph.RowMajor; return v }(), false},
	} {
		if got := vec8(c.v); got != c.want {
			t.Errorf("%s: vec8 %v, want %v", c.name, got, c.want)
		}
	}
}

// TestGPUOperators runs each operator conformance graph on the GPU engine
// and on ONNX Runtime: equal but for fp16 where the engine holds NHWC.
func TestGPUOperators(t *testing.T) {
	uuid := firstGPU(t)
	lib, cache := ortLib(t), t.TempDir()
	for _, c := range onnxtest.OpCases() {
		t.Run(c.Name, func(t *testing.T) {
			path := onnxtest.WriteModel(t, "op.onnx", c.Model)
			m, err := ReadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			ort, err := NewORT(m, c.H, c.W, ORTOptions{Lib: lib, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer ort.Close()
			eng, err := NewGPU(m, c.H, c.W, GPUOptions{UUID: uuid, Batch: 4, CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			in := randomImages(4, c.H, c.W, 9)
			for i := range in {
				in[i] = 4*in[i] - 2
			}
			want, _, err := ort.Infer(context.Background(), in, 4)
			if err != nil {
				t.Fatal(err)
			}
			want = append([]float32(nil), want...)
			got, _, err := eng.Infer(context.Background(), in, 4)
			if err != nil {
				t.Fatal(err)
			}
			e := onnxtest.RelL2(got, want)
			t.Logf("rel L2 %.3g", e)
			if e > 2e-3 || math.IsNaN(e) {
				t.Errorf("relative L2 error %.3g against ONNX Runtime, want ≤ 2e-3", e)
			}
			if n, i := onnxtest.Mismatches(got, want); c.Exact && n > 0 {
				t.Errorf("%d elements differ from ONNX Runtime's, the first %d: %g, want %g", n, i, got[i], want[i])
			}
		})
	}
}

// TestGPULinearOnCUDNN runs the operator case of linear layers over many
// tokens with its products on cuDNN and on the engine's own kernel: both
// against ONNX Runtime, and cuDNN must have taken them (on Ampere and
// later, whose cuDNN has fp32 NHWC convolutions on TF32 tensor cores).
func TestGPULinearOnCUDNN(t *testing.T) {
	uuid := firstGPU(t)
	lib, cache := ortLib(t), t.TempDir()
	i := slices.IndexFunc(onnxtest.OpCases(), func(c onnxtest.OpCase) bool { return strings.HasPrefix(c.Name, "Linear layers over many tokens") })
	c := onnxtest.OpCases()[i]
	m, err := ReadModel(onnxtest.WriteModel(t, "op.onnx", c.Model))
	if err != nil {
		t.Fatal(err)
	}
	ort, err := NewORT(m, c.H, c.W, ORTOptions{Lib: lib, Threads: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ort.Close()
	in := randomImages(4, c.H, c.W, 9)
	want, _, err := ort.Infer(context.Background(), in, 4)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	for _, kernel := range []bool{false, true} {
		eng, err := NewGPU(m, c.H, c.W, GPUOptions{UUID: uuid, Batch: 4, CacheDir: cache, KernelProducts: kernel})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := eng.Infer(context.Background(), in, 4)
		if err != nil {
			eng.Close()
			t.Fatal(err)
		}
		// got is the engine's memory: read before Close.
		e, st, arch := onnxtest.RelL2(got, want), eng.Stats(), eng.cuda.Arch
		eng.Close()
		t.Logf("kernel products %v: %d linear layers on cuDNN, rel L2 %.3g", kernel, st.Linear, e)
		if e > 2e-3 || math.IsNaN(e) {
			t.Errorf("kernel products %v: relative L2 error %.3g against ONNX Runtime, want ≤ 2e-3", kernel, e)
		}
		if want := 2; !kernel && arch >= 80 && st.Linear != want {
			t.Errorf("%d linear layers ran on cuDNN, want %d", st.Linear, want)
		}
		if kernel && st.Linear != 0 {
			t.Errorf("KernelProducts: %d linear layers ran on cuDNN", st.Linear)
		}
	}
}

// TestGPUModels compiles every model under $DSBATCH_MODELS_DIR (the shared
// detectors on the GPU machine) on the GPU engine at batch 64 and prints one
// table: whether it compiles (else the node that stops it), the time to a
// first batch, images/s, and the raw output's distance from ONNX Runtime's
// on four random images (a sanity check: agreement is judged on the
// detections of real frames, with dsbatch compare).
func TestGPUModels(t *testing.T) {
	dir := os.Getenv("DSBATCH_MODELS_DIR")
	if dir == "" {
		t.Skip("DSBATCH_MODELS_DIR names no folder of models")
	}
	uuid := firstGPU(t)
	lib, cache := ortLib(t), t.TempDir()
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "*.onnx"))
	more, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	paths = append(paths, more...)
	var table strings.Builder
	fmt.Fprintf(&table, "%-26s %-8s %9s %9s %9s  %s\n", "model", "compiles", "first s", "img/s", "rel L2", "note")
	for _, path := range paths {
		name := filepath.Base(path)
		m, err := ReadModel(path)
		if err != nil {
			fmt.Fprintf(&table, "%-26s %-8s %9s %9s %9s  %v\n", name, "no", "", "", "", err)
			continue
		}
		h, w, err := m.InputSize(640)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		eng, err := NewGPU(m, h, w, GPUOptions{UUID: uuid, Batch: 64, CacheDir: cache})
		if err != nil {
			fmt.Fprintf(&table, "%-26s %-8s %9s %9s %9s  %v\n", name, "no", "", "", "", err)
			continue
		}
		first := time.Since(t0).Seconds()
		n, start := 0, time.Now()
		for time.Since(start) < 3*time.Second {
			if err := eng.Forward(context.Background(), 64); err != nil {
				t.Fatal(err)
			}
			n += 64
		}
		rate := float64(n) / time.Since(start).Seconds()
		in := randomImages(4, h, w, 1)
		got, _, err := eng.Infer(context.Background(), in, 4)
		if err != nil {
			t.Fatal(err)
		}
		got = append([]float32(nil), got...)
		eng.Close()
		e := math.NaN()
		if ort, err := NewORT(m, h, w, ORTOptions{Lib: lib}); err == nil {
			if want, _, err := ort.Infer(context.Background(), in, 4); err == nil && len(want) == len(got) {
				e = onnxtest.RelL2(got, want)
			}
			ort.Close()
		}
		note := ""
		if m.InputShape[0] == 1 {
			note = "exported at batch 1: re-batched"
		}
		fmt.Fprintf(&table, "%-26s %-8s %9.2f %9.0f %9.2g  %s\n", name, "yes", first, rate, e, note)
		// The raw outputs of random-weight models on noise differ by
		// fp16's rounding through the network, more for outputs near zero
		// (YOLOX's offsets and log sizes); detections on real frames are
		// what agreement is judged on (dsbatch compare). An output that
		// is not a number, or unrelated, is a defect.
		if e > 0.25 || math.IsNaN(e) {
			t.Errorf("%s: relative L2 %.3g against ONNX Runtime", name, e)
		}
	}
	t.Log("\n" + table.String())
}

// TestGPUEngineJoinsDETROutputs runs a model of two outputs, boxes and
// logits, on the GPU engine: ReadModel's joined output, as ONNX Runtime
// gives it.
func TestGPUEngineJoinsDETROutputs(t *testing.T) {
	uuid := firstGPU(t)
	const size, q, c = 32, 6, 5
	r := rand.New(rand.NewSource(2))
	raw, k := make([]float32, q*(4+c)), make([]float32, q*(4+c))
	for i := range raw {
		raw[i], k[i] = r.Float32()*4-2, r.Float32()
	}
	path := writeModel(t, onnxtest.Detector{H: size, W: size, D1: q, D2: 4 + c, Raw: raw, K: k, BoxColumns: 4, ConvMean: true})
	m, err := ReadModel(path)
	if err != nil || len(m.Joined) != 2 {
		t.Fatalf("%v, joined %v", err, m.Joined)
	}
	ort, err := NewORT(m, size, size, ORTOptions{Lib: ortLib(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ort.Close()
	eng, err := NewGPU(m, size, size, GPUOptions{UUID: uuid, Batch: 4, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	in := randomImages(4, size, size, 3)
	want, ws, err := ort.Infer(context.Background(), in, 4)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	got, gs, err := eng.Infer(context.Background(), in, 4)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gs) != fmt.Sprint(ws) || fmt.Sprint(gs) != fmt.Sprint([]int64{4, q, 4 + c}) {
		t.Fatalf("shapes: GPU %v, ONNX Runtime %v", gs, ws)
	}
	if e := onnxtest.RelL2(got, want); e > 2e-3 {
		t.Errorf("relative L2 %.3g", e)
	}
}

// TestEveryStepKindHasKernel: each kind of step the compiler lowers to
// has the engine's launches and a name for profiles.
func TestEveryStepKindHasKernel(t *testing.T) {
	for k := graph.Kind(0); k < graph.Kinds; k++ {
		if stepKernels[k] == nil {
			t.Errorf("step kind %v has no kernel", k)
		}
		if k.String() == "" {
			t.Errorf("step kind %d has no name", int(k))
		}
	}
}
