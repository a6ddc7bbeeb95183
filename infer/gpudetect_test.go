package infer

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
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
				if !DeviceDetects(l, o) {
					t.Fatalf("%+v: not post-processed on the device", o)
				}
				got, err := NewDetector(eng, l, o).Detect(ctx, Frames{N: n, Host: in})
				if err != nil {
					t.Fatal(err)
				}
				total := 0
				for i := 0; i < n; i++ {
					per := d1 * d2
					want := l.Decode(append([]float32(nil), raw[i*per:(i+1)*per]...), o, nil)
					name := fmt.Sprintf("%s batch %d image %d %+v", filepath.Base(mm.path), n, i, o)
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
				t.Logf("%s batch %d %+v: %d detections, equal", filepath.Base(mm.path), n, o, total)
			}
		}
		eng.Close()
	}
}
