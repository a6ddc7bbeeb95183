package gpu

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func fakeDevices(n int) []Device {
	devs := make([]Device, n)
	for i := range devs {
		devs[i] = Device{Index: i, UUID: "GPU-" + strings.Repeat(string(rune('a'+i)), 8) + "-0000", Name: "Fake H100"}
	}
	return devs
}

func indices(devs []Device) []int {
	out := []int{}
	for _, d := range devs {
		out = append(out, d.Index)
	}
	return out
}

func TestSelect(t *testing.T) {
	devs := fakeDevices(4)
	tests := []struct {
		spec, visible string
		want          []int
		err           string
	}{
		{"all", "", []int{0, 1, 2, 3}, ""},
		{"", "", []int{0, 1, 2, 3}, ""},
		{"2", "", []int{0, 1}, ""},
		{"0", "", []int{}, ""},
		{"0,2", "", []int{0, 2}, ""},
		{"3,1", "", []int{3, 1}, ""},
		{"GPU-cccc", "", []int{2}, ""},
		{"GPU-bbbbbbbb-0000,0", "", []int{1, 0}, ""},
		{"all", "2,3", []int{2, 3}, ""},
		{"1,", "2,3", []int{3}, ""},
		{"all", "1,,3", []int{1}, ""},
		{"all", "-1", []int{}, ""},
		{"all", "GPU-dddd", []int{3}, ""},
		{"5", "", nil, "only 4 GPU(s) visible"},
		{"0,7", "", nil, "no GPU 7"},
		{"0,0", "", nil, "listed twice"},
		{"GPU-zz", "", nil, `no GPU with UUID "GPU-zz"`},
		{"GPU-", "", nil, "more than one GPU"},
		{"many", "", nil, "want all, a count"},
		{"all", "9", nil, "CUDA_VISIBLE_DEVICES"},
	}
	for _, tt := range tests {
		got, err := Select(devs, tt.spec, tt.visible)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Select(%q, %q) error %v, want %q", tt.spec, tt.visible, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Select(%q, %q): %v", tt.spec, tt.visible, err)
			continue
		}
		if !reflect.DeepEqual(indices(got), tt.want) {
			t.Errorf("Select(%q, %q) = %v, want %v", tt.spec, tt.visible, indices(got), tt.want)
		}
	}
}

func TestVisible(t *testing.T) {
	tests := []struct {
		env          map[string]string
		nodeGPUs     int
		list, source string
	}{
		{map[string]string{}, 4, "", ""},
		{map[string]string{"CUDA_VISIBLE_DEVICES": "1,3", "SLURM_JOB_GPUS": "2"}, 4, "1,3", "CUDA_VISIBLE_DEVICES"},
		{map[string]string{"SLURM_JOB_GPUS": "2,3"}, 4, "2,3", "SLURM_JOB_GPUS"},
		{map[string]string{"SLURM_JOB_GPUS": "0,1,2,3", "SLURM_STEP_GPUS": "3"}, 4, "3", "SLURM_STEP_GPUS"},
		// The device cgroup shows only the two assigned GPUs, as 0 and 1.
		{map[string]string{"SLURM_JOB_GPUS": "4,6"}, 2, "", "SLURM_JOB_GPUS"},
		{map[string]string{"SLURM_JOB_GPUS": "0,1"}, 2, "0,1", "SLURM_JOB_GPUS"},
	}
	for _, tt := range tests {
		list, source := Visible(func(k string) string { return tt.env[k] }, tt.nodeGPUs)
		if list != tt.list || source != tt.source {
			t.Errorf("Visible(%v, %d) = %q, %q; want %q, %q", tt.env, tt.nodeGPUs, list, source, tt.list, tt.source)
		}
	}
}

func TestDecodersCheck(t *testing.T) {
	// The H100's caps as cuvidGetDecoderCaps reports them (shared/gpu/README).
	d := &Decoders{Engines: 7, Caps: []CodecCaps{
		{Codec: "h264", Chroma: "4:2:0", BitDepth: 8, MinWidth: 48, MinHeight: 16, MaxWidth: 4096, MaxHeight: 4096, MaxMBCount: 65536},
		{Codec: "hevc", Chroma: "4:2:0", BitDepth: 8, MinWidth: 144, MinHeight: 144, MaxWidth: 8192, MaxHeight: 8192, MaxMBCount: 262144},
		{Codec: "hevc", Chroma: "4:2:0", BitDepth: 10, MinWidth: 144, MinHeight: 144, MaxWidth: 8192, MaxHeight: 8192, MaxMBCount: 262144},
	}}
	tests := []struct {
		codec, chroma string
		depth, w, h   int
		err           string
	}{
		{"h264", "4:2:0", 8, 1920, 1080, ""},
		{"h264", "4:2:0", 8, 4096, 2160, ""},
		{"h264", "4:2:0", 8, 7680, 4320, "not 7680x4320"},
		{"h264", "4:2:2", 8, 1920, 1080, "does not decode h264 4:2:2 8-bit"},
		{"h264", "4:2:0", 8, 32, 32, "not 32x32"},
		{"hevc", "4:2:0", 10, 3840, 2160, ""},
		{"av1", "4:2:0", 8, 1920, 1080, "NVDEC does not decode av1"},
	}
	for _, tt := range tests {
		err := d.Check(tt.codec, tt.chroma, tt.depth, tt.w, tt.h)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Check(%s %s %d %dx%d) = %v, want %q", tt.codec, tt.chroma, tt.depth, tt.w, tt.h, err, tt.err)
		}
	}
	var none *Decoders
	if none.Check("h264", "4:2:0", 8, 64, 64) == nil {
		t.Error("nil Decoders decodes nothing")
	}
}

// TestOpen runs against the real NVML: on a machine without a driver it
// must say so with ErrNoDriver; on a GPU machine it must list the GPUs.
func TestOpen(t *testing.T) {
	h, err := Open()
	if err != nil {
		if !errors.Is(err, ErrNoDriver) {
			t.Fatalf("Open: %v, want ErrNoDriver on a machine without GPUs", err)
		}
		t.Skipf("no GPU here: %v", err)
	}
	defer h.Close()
	devs, err := h.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) == 0 {
		t.Fatal("NVML loaded but lists no GPU")
	}
	for _, d := range devs {
		if !strings.HasPrefix(d.UUID, "GPU-") || d.Name == "" || d.MemoryTotal == 0 {
			t.Errorf("incomplete device %+v", d)
		}
		dec, err := h.Decoders(d.UUID)
		if err != nil {
			t.Fatalf("decoders of %s: %v", d.UUID, err)
		}
		if dec.Engines == 0 || dec.Check("h264", "4:2:0", 8, 1920, 1080) != nil {
			t.Errorf("GPU %d: NVDEC %+v cannot decode 1080p H.264", d.Index, dec)
		}
		smp, err := h.Sample(d.UUID)
		if err != nil || smp.MemUsed == 0 || smp.SM > 100 || smp.Decoder > 100 {
			t.Errorf("GPU %d: sample %+v, %v", d.Index, smp, err)
		}
	}
}

// fakeHost serves scripted samples.
type fakeHost struct {
	samples map[string][]Sample
	n       map[string]int
}

func (f *fakeHost) Devices() ([]Device, error)         { return nil, nil }
func (f *fakeHost) Decoders(string) (*Decoders, error) { return nil, nil }
func (f *fakeHost) Close() error                       { return nil }
func (f *fakeHost) Sample(uuid string) (Sample, error) {
	s := f.samples[uuid]
	if len(s) == 0 {
		return Sample{}, errors.New("no such GPU")
	}
	i := f.n[uuid] % len(s)
	f.n[uuid]++
	return s[i], nil
}

func TestSampler(t *testing.T) {
	h := &fakeHost{n: map[string]int{}, samples: map[string][]Sample{
		"GPU-a": {{SM: 10, Decoder: 90, MemUsed: 5}, {SM: 30, Decoder: 70, MemUsed: 9}},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	s := StartSampler(ctx, h, []string{"GPU-a", "GPU-missing"}, time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for s.Loads()[0].Samples < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	l := s.Loads()
	if l[0].Samples < 10 || l[0].SMMax != 30 || l[0].DecoderMax != 90 || l[0].MemUsedMax != 9 {
		t.Fatalf("load %+v", l[0])
	}
	if l[0].SMMean < 10 || l[0].SMMean > 30 || l[0].DecoderMean < 70 || l[0].DecoderMean > 90 {
		t.Errorf("means %+v", l[0])
	}
	if l[1].Samples != 0 {
		t.Errorf("unreadable GPU sampled: %+v", l[1])
	}
}

// TestKernelsConcurrently asks for the functions of two sources from
// several goroutines at once: each source compiles once, every caller
// gets the same function, and both run.
func TestKernelsConcurrently(t *testing.T) {
	g := testCUDA(t)
	srcs := []string{
		`extern "C" __global__ void fill(float* y, float v) { y[threadIdx.x] = v; }`,
		`extern "C" __global__ void twice(float* y) { y[threadIdx.x] *= 2.0f; }
extern "C" __global__ void unused(float* y) { y[threadIdx.x] = 0.0f; }`,
	}
	names := [][]string{{"fill"}, {"twice", "unused"}}
	const callers = 8
	got := make([][]*Kernel, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range srcs {
				s := (i + c) % len(srcs) // half the callers start with each source
				for _, n := range names[s] {
					k, err := g.Kernel(srcs[s], n, "")
					if err != nil {
						errs[c] = err
						return
					}
					got[c] = append(got[c], k)
				}
			}
		}()
	}
	wg.Wait()
	byName := map[string]*Kernel{}
	for c := 0; c < callers; c++ {
		if errs[c] != nil {
			t.Fatal(errs[c])
		}
		i := 0
		for j := range srcs {
			s := (j + c) % len(srcs)
			for _, n := range names[s] {
				if k, ok := byName[n]; ok && k != got[c][i] {
					t.Fatalf("caller %d got another %s", c, n)
				}
				byName[n] = got[c][i]
				i++
			}
		}
	}
	s, err := g.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer g.DestroyStream(s)
	y, err := g.Alloc(32 * 4)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free(y)
	if err := byName["fill"].Launch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, s, y, float32(1.5)); err != nil {
		t.Fatal(err)
	}
	if err := byName["twice"].Launch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, s, y); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 32)
	if err := g.CopyToHost(out, y, s); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(s); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if v != 3 {
			t.Fatalf("y[%d] = %g, want 3", i, v)
		}
	}
}

// TestKernelWithoutArguments launches a kernel that takes none.
func TestKernelWithoutArguments(t *testing.T) {
	g := testCUDA(t)
	k, err := g.Kernel(`extern "C" __global__ void nop() {}`, "nop", "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := g.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer g.DestroyStream(s)
	if err := k.Launch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, s); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(s); err != nil {
		t.Fatal(err)
	}
}

// testCUDA opens CUDA on the first GPU, closed at the test's end, or skips
// the test on a machine without one.
func testCUDA(t *testing.T) *CUDA {
	t.Helper()
	h, err := Open()
	if err != nil {
		t.Skipf("no GPU here: %v", err)
	}
	defer h.Close()
	devs, err := h.Devices()
	if err != nil || len(devs) == 0 {
		t.Skipf("no GPU listed: %v", err)
	}
	g, err := OpenCUDA(devs[0].UUID)
	if err != nil {
		t.Skipf("no CUDA: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}
