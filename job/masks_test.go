package job

import (
	"context"
	"errors"
	"math/rand"
	"reflect"
	"testing"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/infer"
)

// poolFrame is a frame of n detections, every other one with a mask of
// speckled logits, boxes in frame pixels of a 1280×720 frame.
func poolFrame(n int) ([]infer.Detection, infer.Letterbox) {
	r := rand.New(rand.NewSource(5))
	lb := infer.FitLetterbox(1280, 720, 640, 640, infer.FitCentre)
	dets := make([]infer.Detection, n)
	for i := range dets {
		x, y := r.Float32()*1000, r.Float32()*500
		dets[i] = infer.Detection{X1: x, Y1: y, X2: x + 20 + r.Float32()*200, Y2: y + 20 + r.Float32()*200}
		if i%2 == 0 {
			m := &infer.Mask{X0: int(x / 8), Y0: int(y/8) + 10, W: 30, H: 30, GridW: 160, GridH: 160, CellW: 4, CellH: 4}
			m.Logits = make([]float32, m.W*m.H)
			for k := range m.Logits {
				m.Logits[k] = r.Float32()*2 - 1
			}
			dets[i].Mask = m
		}
	}
	return dets, lb
}

// TestMaskPool: masks rasterised on the pool, frames in flight side by
// side, equal what the caller's goroutine makes of them, in their places;
// a cancelled context ends a wait and the pool's goroutines.
func TestMaskPool(t *testing.T) {
	ctx := context.Background()
	pool, stop := startMasks(ctx, 3)
	dets, lb := poolFrame(40)
	want := make([]*export.Mask, len(dets))
	if err := (*pendingMasks)(nil).wait(ctx, dets, lb, want); err != nil {
		t.Fatal(err)
	}
	var pending []*pendingMasks
	for range 4 { // four frames submitted before the first is collected
		pm, err := pool.submit(ctx, dets, lb)
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, pm)
	}
	for f, pm := range pending {
		got := make([]*export.Mask, len(dets))
		if err := pm.wait(ctx, dets, lb, got); err != nil {
			t.Fatal(err)
		}
		for k := range dets {
			if (dets[k].Mask == nil) != (got[k] == nil) || !reflect.DeepEqual(got[k], want[k]) {
				t.Fatalf("frame %d, detection %d: mask %+v, want %+v", f, k, got[k], want[k])
			}
		}
	}
	if pm, err := pool.submit(ctx, make([]infer.Detection, 3), lb); pm != nil || err != nil {
		t.Errorf("a frame without masks: %v, %v", pm, err)
	}
	stop()

	cctx, cancel := context.WithCancel(ctx)
	pool, stop = startMasks(cctx, 1)
	pm, err := pool.submit(cctx, dets[:2], lb)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	// The mask may be done before the cancel: then the wait has it.
	if err := pm.wait(cctx, dets[:2], lb, make([]*export.Mask, 2)); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	stop() // returns: the goroutines end with the context
}
