package job

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
)

// TestRunGPUWorkerMatchesCPU runs the same clips through a GPU worker (NVDEC
// and the GPU letterbox) and a CPU worker: the detections must be the same
// rows, and files NVDEC refuses must fall back to the CPU with a note.
// It skips on machines without a GPU; the device run proves it.
func TestRunGPUWorkerMatchesCPU(t *testing.T) {
	devs := gpuDevices(t)
	h := newHarness(t)
	files := mediaFiles(t, "h264.mp4", "h264-faststart.mp4", "hevc.mkv", "rotated.mp4", "vfr.mkv", "resize.ts", "vp9.webm", "mpeg4.avi")
	videos, cpuOut := cpuReference(t, h, files)
	gpuOut := t.TempDir()
	opts := h.options(gpuOut, 1)
	opts.KernelCache = t.TempDir()
	sum, err := Run(context.Background(), MakePlan(videos, Workers(devs[:1], 0), Shard{}), videos, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != len(files) {
		t.Fatalf("GPU run: %+v", sum)
	}
	// The same detections (video, frame, class, box to 1e-3 px) with the same
	// scores to 1e-5: the kernel is built with fast math, so floats may
	// differ in their last bits from the CPU's.
	db := sameDetections(t, cpuOut, gpuOut, 1e-5)
	rows, err := db.Query(fmt.Sprintf(`select path, decoder, coalesce(decoder_note, '') from read_parquet('%s') order by path`, filepath.Join(gpuOut, "videos.parquet")))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var path, dec, note string
		rows.Scan(&path, &dec, &note)
		t.Logf("%s: %s %s", filepath.Base(path), dec, note)
		want := "nvdec"
		if strings.HasSuffix(path, "resize.ts") || strings.HasSuffix(path, "vp9.webm") || strings.HasSuffix(path, "mpeg4.avi") {
			want = "cpu"
			if note == "" {
				t.Errorf("%s fell back to the CPU without a note", path)
			}
		}
		if dec != want {
			t.Errorf("%s decoded by %s, want %s", path, dec, want)
		}
	}
}

// gpuDevices lists the machine's GPUs, skipping the test without one.
func gpuDevices(t *testing.T) []gpu.Device {
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
	return devs
}

// TestRunGPUEngineDeviceFrames runs clips through a GPU worker whose
// engine reads frames in GPU memory (NVDEC, letterbox into slots, the GPU
// engine, NMS on the device; files NVDEC refuses uploaded to slots) and
// through a CPU worker on ONNX Runtime. The model is testModel's, with the
// mean as a convolution: the same rows, boxes to 1e-3 px and scores to
// 5e-3 (the GPU engine computes in fp16).
func TestRunGPUEngineDeviceFrames(t *testing.T) {
	devs := gpuDevices(t)
	h := newHarness(t)
	d := testDetector()
	d.ConvMean = true
	path := filepath.Join(t.TempDir(), "conv.onnx")
	if err := d.Write(path); err != nil {
		t.Fatal(err)
	}
	m, err := infer.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	files := mediaFiles(t, "h264.mp4", "hevc.mkv", "rotated.mp4", "vfr.mkv", "resize.ts", "vp9.webm", "mpeg4.avi")
	videos, cpuOut := cpuReference(t, h, files)
	gpuOut := t.TempDir()
	opts := h.options(gpuOut, 1)
	opts.DeviceFrames, opts.GPUFrames = true, 20 // two batches, a frame per session, a few more
	opts.KernelCache = t.TempDir()
	opts.NewEngine = func(w Worker, cuda *gpu.CUDA) (infer.Engine, error) {
		return infer.NewGPU(m, imgsz, imgsz, infer.GPUOptions{UUID: w.GPU.UUID, CUDA: cuda, Batch: opts.Batch, CacheDir: opts.KernelCache})
	}
	sum, err := Run(context.Background(), MakePlan(videos, Workers(devs[:1], 0), Shard{}), videos, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != len(files) {
		t.Fatalf("GPU run: %+v", sum)
	}
	db := sameDetections(t, cpuOut, gpuOut, 5e-3)
	decoders := queryInts(t, db, fmt.Sprintf(`select count(*) from read_parquet('%s') group by decoder order by decoder`, filepath.Join(gpuOut, "videos.parquet")))
	if fmt.Sprint(decoders) != "[3 4]" { // cpu: resize.ts, vp9.webm, mpeg4.avi
		t.Errorf("videos per decoder (cpu, nvdec) %v, want [3 4]", decoders)
	}
	checkProfile(t, sum, 1, 2)
}

// cpuReference probes files and runs them through one CPU worker: the
// reference GPU runs are compared with.
func cpuReference(t *testing.T, h *harness, files []string) ([]Video, string) {
	t.Helper()
	videos, err := ProbeAll(context.Background(), files, ProbeOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := Run(context.Background(), MakePlan(videos, Workers(nil, 1), Shard{}), videos, h.options(out, 1)); err != nil {
		t.Fatal(err)
	}
	return videos, out
}

// sameDetections checks that two runs wrote the same detections: the same
// count, and each of the first run's found in the second with the same
// video, frame, class and timestamp, the box to 1e-3 px and the score to
// scoreTol. It returns the database for further queries.
func sameDetections(t *testing.T, cpuOut, gpuOut string, scoreTol float64) *sql.DB {
	t.Helper()
	db := openDuck(t)
	a, b := filepath.Join(cpuOut, "detections", "*.parquet"), filepath.Join(gpuOut, "detections", "*.parquet")
	total := queryInts(t, db, fmt.Sprintf("select count(*) from read_parquet('%s')", a))[0]
	if n := queryInts(t, db, fmt.Sprintf("select count(*) from read_parquet('%s')", b))[0]; n != total || total == 0 {
		t.Fatalf("CPU worker %d rows, GPU worker %d", total, n)
	}
	matched := queryInts(t, db, fmt.Sprintf(`select count(*) from read_parquet('%s') c join read_parquet('%s') g
		using (video_id, frame_index, class_id)
		where abs(c.score - g.score) < %g and abs(c.x1 - g.x1) < 1e-3 and abs(c.y1 - g.y1) < 1e-3
		  and abs(c.x2 - g.x2) < 1e-3 and abs(c.y2 - g.y2) < 1e-3 and c.pts_seconds = g.pts_seconds`, a, b, scoreTol))[0]
	worst := queryFloat(t, db, fmt.Sprintf(`select max(abs(c.score - g.score)) from read_parquet('%s') c join read_parquet('%s') g using (video_id, frame_index, class_id)`, a, b))
	t.Logf("%d detections, %d matched, max |score CPU − GPU| = %g", total, matched, worst)
	if matched != total {
		t.Errorf("%d of %d detections match between the two runs", matched, total)
	}
	return db
}

func queryFloat(t *testing.T, db *sql.DB, q string) float64 {
	t.Helper()
	var v float64
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}
