package job

import (
	"context"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/infer"
)

// maskPool rasterises a segmentation model's masks for the exporters of
// one worker, on a fixed set of goroutines: a frame holds tens of masks,
// each hundreds of microseconds of work at frame resolution, and an
// exporter rasterising its videos' masks alone left most cores idle (2 to
// 4 of 16 busy on the H200, 2026-12-02).
type maskPool struct {
	jobs chan maskJob
}

// maskJob is one detection's mask to rasterise; its result goes to out,
// which has room for every mask of the frame.
type maskJob struct {
	k   int
	d   *infer.Detection
	lb  infer.Letterbox
	out chan<- maskDone
}

type maskDone struct {
	k    int
	mask *export.Mask
}

// startMasks starts a pool of n rasterising goroutines (GOMAXPROCS when n
// is 0) and returns it with the function that stops them and waits.
func startMasks(ctx context.Context, n int) (*maskPool, func()) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	m := &maskPool{jobs: make(chan maskJob, 4*n)}
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	for range n {
		g.Go(func() error { return m.run(ctx) })
	}
	return m, func() {
		cancel()
		g.Wait() // each returns ctx's error, which says nothing here
	}
}

// run rasterises masks until ctx ends.
func (m *maskPool) run(ctx context.Context) error {
	for {
		j, _, err := recv(ctx, m.jobs)
		if err != nil {
			return err
		}
		j.out <- maskDone{j.k, frameMask(*j.d, j.lb)} // never blocks: out has room for the frame's masks
	}
}

// pendingMasks are a frame's masks on the pool: submitted when the frame
// is tracked, collected when it is written, so that the frames in between
// keep the pool busy.
type pendingMasks struct {
	n    int
	done chan maskDone
}

// submit hands the masks of a frame's detections (boxes in frame pixels)
// to the pool. It returns nil, submitting nothing, for a nil pool or a
// frame without masks.
func (m *maskPool) submit(ctx context.Context, dets []infer.Detection, lb infer.Letterbox) (*pendingMasks, error) {
	n := 0
	for k := range dets {
		if dets[k].Mask != nil {
			n++
		}
	}
	if m == nil || n == 0 {
		return nil, nil
	}
	pm := &pendingMasks{n: n, done: make(chan maskDone, n)}
	for k := range dets {
		if dets[k].Mask != nil {
			if err := send(ctx, m.jobs, maskJob{k: k, d: &dets[k], lb: lb, out: pm.done}); err != nil {
				return nil, err
			}
		}
	}
	return pm, nil
}

// wait puts the frame's masks in masks (mask k in masks[k], nil for a
// detection without one). A nil pendingMasks rasterises what dets hold on
// the caller's goroutine.
func (pm *pendingMasks) wait(ctx context.Context, dets []infer.Detection, lb infer.Letterbox, masks []*export.Mask) error {
	if pm == nil {
		for k := range dets {
			if dets[k].Mask != nil {
				masks[k] = frameMask(dets[k], lb)
			}
		}
		return nil
	}
	for range pm.n {
		r, _, err := recv(ctx, pm.done)
		if err != nil {
			return err
		}
		masks[r.k] = r.mask
	}
	return nil
}
