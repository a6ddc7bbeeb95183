package infer

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// TestGPUDetectMatchesDecode checks post-processing on the device against
// Head.Decode on the host over the same raw output: the same detections,
// bit for bit, with and without the radix top-k (TopK below the number of
// candidates) and with class-aware and class-agnostic NMS.
func TestGPUDetectMatchesDecode(t *testing.T) {
	uuid := firstGPU(t)
	for _, mm := range parityModels(t) {
		m, err := ReadModel(mm.path)
		if err != nil {
			t.Fatal(err)
		}
		eng, err := NewGPU(m, mm.size, mm.size, GPUOptions{UUID: uuid, Batch: 8, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, n := range []int{1, 3, 8} {
			in := randomImages(n, mm.size, mm.size, int64(10+n))
			raw, shape, err := eng.Infer(ctx, in, n)
			if err != nil {
				t.Fatal(err)
			}
			raw = append([]float32(nil), raw...)
			d1, d2 := int(shape[1]), int(shape[2])
			l := Layout{Head: HeadV8, D1: d1, D2: d2, Classes: d1 - 4, InputH: 640, InputW: 640}
			for _, o := range []PostOptions{
				{Conf: 0.25, IoU: 0.45},
				{Conf: 0.25, IoU: 0.7, TopK: 7, MaxDet: 5},
				{Conf: 0.5, IoU: 0.5, TopK: 300, MaxDet: 100, ClassAgnostic: true},
				{Conf: 0.9, IoU: 0.45, TopK: 1024, MaxDet: 1024},
			} {
				total := checkDetects(t, eng, l, o, in, raw, n, fmt.Sprintf("%s batch %d", filepath.Base(mm.path), n))
				t.Logf("%s batch %d %+v: %d detections, equal", filepath.Base(mm.path), n, o, total)
			}
		}
		eng.Close()
	}
}

// TestGPUDetectOne2One checks the one2one post-processing on the device
// (YOLOv10's and YOLO26's heads with their exported top-k cut off) against
// Layout.Decode on the host: the mini YOLOv8 read transposed, as [B, N,
// 4+C], and $DSBATCH_O2O_MODEL (yolo26n on the GPU machine) when set.
func TestGPUDetectOne2One(t *testing.T) {
	firstGPU(t)
	b, err := onnxtest.MiniYOLOv8(7)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnx.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	g := mp.GetGraph()
	out := g.GetOutput()[0]
	g.Node = append(g.Node, onnxtest.Node("Transpose", []string{out.GetName()}, []string{"o2o"}, onnxtest.IntsAttr("perm", 0, 2, 1)))
	g.Output = []*onnx.ValueInfoProto{{Name: proto.String("o2o")}}
	b, _ = proto.Marshal(&mp)
	path := filepath.Join(t.TempDir(), "mini-o2o.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	eachHeadModel(t, path, 32, "DSBATCH_O2O_MODEL", 21, func(r headRun) {
		d1, d2 := int(r.shape[1]), int(r.shape[2])
		l := Layout{Head: HeadOne2One, D1: d1, D2: d2, Classes: d2 - 4, InputH: r.size, InputW: r.size}
		for _, o := range []PostOptions{{Conf: 0.25}, {Conf: 0.25, MaxDet: 5}, {Conf: 0.5, MaxDet: 100}, {Conf: 0.9, MaxDet: 1024}, {Conf: 0.01, MaxDet: 300}} {
			total := checkDetects(t, r.eng, l, o, r.in, r.raw, 4, r.name)
			t.Logf("%s %+v: %d detections, equal", r.name, o, total)
		}
	})
}

// TestGPUDetectPose checks a pose head's post-processing on the device
// (YOLOv8's with each detection's keypoints) against Layout.Decode on the
// host: a pose-shaped model of one class and 17 points of 3 values
// (miniPose), and $DSBATCH_POSE_MODEL (yolo11n-pose on the GPU machine),
// its layout probed, when set.
func TestGPUDetectPose(t *testing.T) {
	eachHeadModel(t, miniPose(t), 32, "DSBATCH_POSE_MODEL", 23, func(r headRun) {
		d1, d2 := int(r.shape[1]), int(r.shape[2])
		l := Layout{Head: HeadPose, D1: d1, D2: d2, Classes: d1 - 4 - 51, Keypoints: 17, KeypointDims: 3, InputH: r.size, InputW: r.size}
		if r.size == 640 {
			var err error
			if l, err = ProbeLayout(context.Background(), r.eng, ProbeOptions{H: 640, W: 640, Names: len(r.m.Names), Head: r.m.Head, Input: Ultralytics,
				KeypointShape: r.m.KeypointShape, Task: r.m.Metadata["task"]}); err != nil {
				t.Fatal(err)
			}
			if l.Head != HeadPose {
				t.Fatalf("%s: a %v head, not pose", r.name, l.Head)
			}
		}
		for _, o := range []PostOptions{{Conf: 0.25, IoU: 0.45}, {Conf: 0.25, IoU: 0.7, TopK: 7, MaxDet: 5}, {Conf: 0.01, IoU: 0.7, MaxDet: 300, ClassAgnostic: true}} {
			total := checkDetects(t, r.eng, l, o, r.in, r.raw, 4, r.name)
			t.Logf("%s %+v: %d detections with keypoints, equal", r.name, o, total)
		}
	})
}

// miniPose writes a pose-shaped model, [B, 4+1+51, 64] (one class, 17
// points of 3 values), its outputs Raw + mean(image) × K so that they
// differ from image to image, and near-ties are unlikely.
func miniPose(t *testing.T) string {
	r := rand.New(rand.NewSource(13))
	d1, d2 := 4+1+51, 64
	raw, k := make([]float32, d1*d2), make([]float32, d1*d2)
	for a := 0; a < d2; a++ {
		raw[a], raw[d2+a] = r.Float32()*32, r.Float32()*32
		raw[2*d2+a], raw[3*d2+a] = 2+r.Float32()*8, 2+r.Float32()*8
		for row := 4; row < d1; row++ {
			raw[row*d2+a] = r.Float32()
		}
	}
	for i := range k {
		k[i] = r.Float32()*0.2 - 0.1
	}
	return writeModel(t, onnxtest.Detector{H: 32, W: 32, D1: d1, D2: d2, Raw: raw, K: k, ConvMean: true, Names: []string{"person"}})
}

// TestGPUDetectSeg: a segmentation model's detections are selected on the
// device and their masks weighed there, and only the windows' logits cross
// to the host: the detections and their masks equal the host's decode of
// the whole output, value for value; so they do where the device has room
// for too few logits and the host weighs the prototypes instead. The mini
// seg model, and the real yolo11n-seg where DSBATCH_SEG_MODEL names it.
func TestGPUDetectSeg(t *testing.T) {
	eachHeadModel(t, segModel(t), 64, "DSBATCH_SEG_MODEL", 29, func(r headRun) {
		l, err := ProbeLayout(context.Background(), r.eng, ProbeOptions{H: r.size, W: r.size, Names: len(r.m.Names), Masks: r.m.Masks, Task: r.m.Metadata["task"]})
		if err != nil || l.Masks == 0 {
			t.Fatalf("%s: layout %v, %v", r.name, l, err)
		}
		for _, room := range []int{0, 64} {
			r.eng.maskRoom = room
			r.eng.freeMasks()
			for k, o := range []PostOptions{{Conf: 0.25, IoU: 0.45}, {Conf: 0.25, IoU: 0.7, TopK: 7, MaxDet: 5}, {Conf: 0.01, IoU: 0.7, MaxDet: 300, ClassAgnostic: true}} {
				r.eng.hostWeighed = 0
				total := checkDetects(t, r.eng, l, o, r.in, r.raw, 4, r.name)
				t.Logf("%s %+v, room for %d logits (0: all): %d detections with masks, equal; %d batches weighed on the host", r.name, o, room, total, r.eng.hostWeighed)
				// The first options' masks fit the device's room (a few an
				// image); at room 64 every batch with masks falls back. The
				// last options' hundreds of random-weight masks may not fit.
				fell := r.eng.hostWeighed > 0
				if total > 0 && ((room == 0 && k == 0 && fell) || (room > 0 && !fell)) {
					t.Errorf("%s %+v: room for %d logits: %d batches weighed on the host", r.name, o, room, r.eng.hostWeighed)
				}
			}
		}
	})
}

// TestGPUDetectOBB: an oriented-box head's candidates are selected and
// ranked on the device, and the host's rotated NMS over them gives the
// host decode's detections, corners included. The mini model read as an
// OBB layout (its last row the angle), and the real yolo11n-obb where
// DSBATCH_OBB_MODEL names it.
func TestGPUDetectOBB(t *testing.T) {
	eachHeadModel(t, onnxtest.WriteMiniYOLOv8(t, 7), 32, "DSBATCH_OBB_MODEL", 31, func(r headRun) {
		d1, d2 := int(r.shape[1]), int(r.shape[2])
		l := Layout{Head: HeadOBB, D1: d1, D2: d2, Classes: d1 - 5, InputH: r.size, InputW: r.size}
		for _, o := range []PostOptions{{Conf: 0.25, IoU: 0.45}, {Conf: 0.25, IoU: 0.7, TopK: 7, MaxDet: 5}, {Conf: 0.01, IoU: 0.1, MaxDet: 300, ClassAgnostic: true}} {
			total := checkDetects(t, r.eng, l, o, r.in, r.raw, 4, r.name)
			t.Logf("%s %+v: %d oriented detections, equal", r.name, o, total)
		}
	})
}

// headRun is one model of a device post-processing test: its engine for
// batches of 4, four random images and their raw output.
type headRun struct {
	m     *Model
	eng   *GPUEngine
	size  int
	in    []float32
	raw   []float32
	shape []int64
	name  string
}

// eachHeadModel runs check on the mini model at path (size×size inputs)
// and, where the variable env names one, on a real export at 640×640:
// each with a GPU engine for batches of 4 and four random images of seed
// through it.
func eachHeadModel(t *testing.T, path string, size int, env string, seed int64, check func(r headRun)) {
	t.Helper()
	uuid := firstGPU(t)
	type model struct {
		path string
		size int
	}
	ms := []model{{path, size}}
	if p := os.Getenv(env); p != "" {
		ms = append(ms, model{p, 640})
	}
	for _, mm := range ms {
		m, err := ReadModel(mm.path)
		if err != nil {
			t.Fatal(err)
		}
		eng, err := NewGPU(m, mm.size, mm.size, GPUOptions{UUID: uuid, Batch: 4, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		in := randomImages(4, mm.size, mm.size, seed)
		raw, shape, err := eng.Infer(context.Background(), in, 4)
		if err != nil {
			t.Fatal(err)
		}
		check(headRun{m: m, eng: eng, size: mm.size, in: in, raw: append([]float32(nil), raw...), shape: shape, name: filepath.Base(mm.path)})
		eng.Close()
	}
}

// checkDetects runs the n images in through eng's post-processing on the
// device with layout l and options o, and checks each image's detections
// against Layout.Decode of its raw output (from raw): equal, in order. It
// returns how many were compared.
func checkDetects(t *testing.T, eng *GPUEngine, l Layout, o PostOptions, in, raw []float32, n int, label string) int {
	t.Helper()
	if !DeviceDetects(l, o) {
		t.Fatalf("%s %+v: not post-processed on the device", label, o)
	}
	got, err := NewDetector(eng, l, o).Detect(context.Background(), Frames{N: n, Host: in})
	if err != nil {
		t.Fatal(err)
	}
	total, per := 0, l.Values()
	for i := 0; i < n; i++ {
		want := l.Decode(append([]float32(nil), raw[i*per:(i+1)*per]...), o, nil)
		name := fmt.Sprintf("%s image %d %+v", label, i, o)
		if len(got[i]) != len(want) {
			t.Errorf("%s: %d detections on the GPU, %d on the host", name, len(got[i]), len(want))
			continue
		}
		for j := range want {
			if !reflect.DeepEqual(got[i][j], want[j]) {
				t.Errorf("%s: detection %d: GPU %+v, host %+v", name, j, got[i][j], want[j])
				break
			}
		}
		total += len(want)
	}
	return total
}

// TestGPUDetectRefusesNonFinite: on the device, anchors whose output is NaN
// or ±Inf are counted and refused, as on the host.
func TestGPUDetectRefusesNonFinite(t *testing.T) {
	uuid := firstGPU(t)
	for name, path := range nonFiniteModels(t) {
		t.Run(name, func(t *testing.T) {
			m, err := ReadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewGPU(m, 8, 8, GPUOptions{UUID: uuid, Batch: 4, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			checkRefusesNonFinite(t, e, "gpu")
		})
	}
}
