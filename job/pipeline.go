package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/track"
)

// pipeline is one worker: decode sessions → batcher → engine → exporter,
// joined by bounded channels on one errgroup.
type pipeline struct {
	worker Worker
	index  int
	opts   *RunOptions
	out    *outDir
	work   *workQueue
	byPath map[string]*Video
	// finish records a finished video, and hands a done one's rows on to
	// the compactor.
	finish func(export.Video, map[string]*export.Staged) error
	gpu    *gpuWorker // nil for CPU workers
	// slots are device tensors frames are letterboxed into when the
	// engine reads GPU memory (nil otherwise): frames then stay on the GPU.
	slots *gpu.Slots
	clock *StageClock // this worker's stage times
	start time.Time   // the run's start
	// boxes judges the layout on the worker's first detections: a misread
	// layout stops the run before it writes boxes that look like results.
	boxes infer.BoxCheck
	// masks rasterises a segmentation model's masks for the exporters
	// (nil for other models).
	masks *maskPool
}

// video is the state of one video travelling through the pipeline.
type video struct {
	id      int64
	planned PlannedVideo
	rec     export.Video
	start   time.Time
	err     error        // decode error, set before the end marker is sent
	stats   decode.Stats // set before the end marker is sent
	// exportErr fails the video from its exporter (a panic in tracking):
	// its frames after it are not written.
	exportErr error
}

// item is a frame, or a marker of its video (tensor nil): end, or reset
// (drop what was exported of the video so far: it is being decoded again).
type item struct {
	v      *video
	end    bool
	reset  bool
	index  int64
	pts    float64
	lb     infer.Letterbox
	tensor []float32
	slot   gpu.DevicePtr // the frame on the GPU, when p.slots is set
	dets   []infer.Detection
}

// batch is up to Batch frames, with end markers in arrival order.
type batch struct {
	items  []*item
	frames int
	buf    []float32       // contiguous input tensor
	slots  []gpu.DevicePtr // or the frames' device tensors
}

func (p *pipeline) run(ctx context.Context) error {
	p.clock.startNanos.Store(since(p.start))
	p.clock.sessions.Store(int64(p.opts.DecodeSessions))
	defer func() { p.clock.endNanos.Store(since(p.start)) }()
	if p.worker.Kind == "gpu" {
		dev, err := openGPUWorker(p.worker, p.opts)
		if err != nil {
			return fmt.Errorf("worker %d: %w", p.worker.ID, err)
		}
		defer dev.close()
		p.gpu = dev
	}

	h, w := p.opts.Settings.InputH, p.opts.Settings.InputW
	size := 3 * h * w
	bsz := p.opts.Batch
	// Frame tensors and batch buffers circulate through free lists, which
	// bound the memory in flight whatever the archive's size. With an
	// engine that reads GPU memory, frames live in device slots instead,
	// as many as GPUFrames allows, and host tensors serve only files the
	// CPU decodes.
	nt, nb, queued := 2*bsz+p.opts.DecodeSessions, 2, 1
	if p.opts.DeviceFrames && p.gpu != nil {
		least := 2*bsz + p.opts.DecodeSessions
		want := p.opts.GPUFrames
		if want <= 0 {
			want = p.gpu.autoSlots(p.worker.GPU.MemoryTotal, 4*size)
		}
		slots, err := p.gpu.cuda.AllocSlots(least, want, 4*size)
		if err != nil {
			return fmt.Errorf("worker %d: %w", p.worker.ID, err)
		}
		defer slots.Release()
		p.slots = slots
		nt, nb, queued = p.opts.DecodeSessions, 0, max(1, slots.Len()/bsz)
	}
	tensors := make(chan []float32, nt)
	for i := 0; i < cap(tensors); i++ {
		tensors <- make([]float32, size)
	}
	buffers := make(chan []float32, max(nb, 1))
	for i := 0; i < nb; i++ {
		buffers <- make([]float32, bsz*size)
	}
	frames := make(chan *item, bsz)
	// Full batches wait here for the engine: as many as the slots hold, so
	// decoding goes on while the engine builds.
	batches := make(chan *batch, queued)
	results := make(chan *batch, 1)

	g, ctx := errgroup.WithContext(ctx)
	dg, dctx := errgroup.WithContext(ctx)
	for s := 0; s < p.opts.DecodeSessions; s++ {
		dg.Go(func() error { return p.decodeLoop(dctx, frames, tensors) })
	}
	g.Go(func() error {
		err := dg.Wait()
		close(frames)
		return err
	})
	g.Go(func() error { return p.batchLoop(ctx, frames, batches, tensors, buffers, size) })
	g.Go(func() error {
		// The engine builds while the first frames decode.
		t0 := time.Now()
		var cuda *gpu.CUDA
		if p.gpu != nil {
			cuda = p.gpu.cuda
		}
		engine, err := p.opts.NewEngine(p.worker, cuda)
		p.clock.engineBuilds.Add(since(t0))
		if err != nil {
			return fmt.Errorf("worker %d: %w", p.worker.ID, err)
		}
		det := infer.NewDetector(engine, p.opts.Layout, p.opts.Post)
		defer det.Close()
		if p.slots != nil && !det.OnDevice() {
			return fmt.Errorf("worker %d: engine %s does not read frames in GPU memory", p.worker.ID, det.Name())
		}
		return p.inferLoop(ctx, det, batches, results)
	})
	g.Go(func() error { return p.exportLoop(ctx, results, buffers) })
	return g.Wait()
}

func send[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func recv[T any](ctx context.Context, ch <-chan T) (T, bool, error) {
	select {
	case v, ok := <-ch:
		return v, ok, nil
	case <-ctx.Done():
		var zero T
		return zero, false, ctx.Err()
	}
}

// recvIdle is recv that adds the time spent waiting to idle, and returns
// when the value came.
func recvIdle[T any](ctx context.Context, ch <-chan T, idle *atomic.Int64) (T, time.Time, bool, error) {
	t1 := time.Now()
	v, ok, err := recv(ctx, ch)
	t0 := time.Now()
	idle.Add(int64(t0.Sub(t1)))
	return v, t0, ok, err
}

// decodeLoop decodes videos from the work queue one after the other, on
// one decode session.
func (p *pipeline) decodeLoop(ctx context.Context, frames chan<- *item, tensors chan []float32) error {
	d, err := p.newDecoder()
	if err != nil {
		return fmt.Errorf("worker %d: %w", p.worker.ID, err)
	}
	defer d.close(p)
	for {
		pv, ok := p.work.next(p.index)
		if !ok {
			return nil
		}
		v := &video{id: VideoID(pv.Path), planned: pv, start: time.Now()}
		v.rec = videoRecord(p.byPath[pv.Path], v.id)
		if p.opts.start != nil {
			if t, ok := p.opts.start(p.byPath[pv.Path]); ok {
				v.rec.RecordedAt = t
			}
		}
		v.rec.Worker = int32(p.worker.ID)
		opts := p.decodeOptions()
		if pv := p.byPath[v.planned.Path]; pv != nil && pv.OK() {
			opts.Probed = &pv.Info
		}
		sink := &frameSink{ctx: ctx, p: p, d: d, v: v, frames: frames, tensors: tensors}
		// The video's error belongs to it, not to the run.
		res, err := d.sess.Decode(ctx, v.planned.Path, opts, p.opts.DecodeThreads, sink)
		v.err, v.stats = err, res.Stats
		v.rec.Decoder, v.rec.DecoderNote = res.Decoder, res.Note
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := send(ctx, frames, &item{v: v, end: true}); err != nil {
			return err
		}
	}
}

// decodeOptions are the sampling settings of the run, for either decoder.
func (p *pipeline) decodeOptions() decode.Options {
	s := p.opts.Settings
	return decode.Options{Stride: s.Stride, FPS: s.FPS, Start: s.Start, End: s.End, AssumeFPS: s.AssumeFPS}
}

// batchLoop packs frames of any videos into full batches; the last batch
// of the run may be short.
func (p *pipeline) batchLoop(ctx context.Context, frames <-chan *item, batches chan<- *batch, tensors chan []float32, buffers chan []float32, size int) error {
	defer close(batches)
	var cur *batch
	flush := func() error {
		if cur == nil {
			return nil
		}
		b := cur
		cur = nil
		return send(ctx, batches, b)
	}
	for {
		it, ok, err := recv(ctx, frames)
		if err != nil {
			return err
		}
		if !ok {
			return flush()
		}
		if cur == nil {
			cur = &batch{}
			if p.slots == nil {
				if cur.buf, _, err = recv(ctx, buffers); err != nil {
					return err
				}
			}
		}
		cur.items = append(cur.items, it)
		if it.end || it.reset {
			continue
		}
		if p.slots != nil {
			cur.slots = append(cur.slots, it.slot)
			it.slot = 0
		} else {
			copy(cur.buf[cur.frames*size:(cur.frames+1)*size], it.tensor)
			tensors <- it.tensor // never blocks: the tensor came from this list
			it.tensor = nil
		}
		cur.frames++
		if cur.frames == p.opts.Batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// inferLoop runs the detector on each batch.
func (p *pipeline) inferLoop(ctx context.Context, det *infer.Detector, batches <-chan *batch, results chan<- *batch) error {
	defer close(results)
	c := p.clock
	for {
		t0 := time.Now()
		b, ok, err := recv(ctx, batches)
		if err != nil || !ok {
			return err
		}
		c.InferIdle.Add(since(t0))
		if b.frames > 0 {
			tb := time.Now()
			if err := p.infer(ctx, det, b); err != nil {
				return fmt.Errorf("worker %d: %s: %w", p.worker.ID, det.Name(), err)
			}
			c.Batches.Add(1)
			c.BatchFrames.Add(int64(b.frames))
			c.InferBusy.Add(since(tb))
		}
		t1 := time.Now()
		if err := send(ctx, results, b); err != nil {
			return err
		}
		c.InferBlock.Add(since(t1))
	}
}

// infer runs a batch's frames through the detector and gives each frame
// its detections in frame pixels. Device slots go back to their list
// whatever happens.
func (p *pipeline) infer(ctx context.Context, det *infer.Detector, b *batch) error {
	size := 3 * p.opts.Settings.InputH * p.opts.Settings.InputW
	var frames []*item
	for _, it := range b.items {
		if !it.end && !it.reset {
			frames = append(frames, it)
		}
	}
	if b.slots != nil {
		defer func() {
			for _, s := range b.slots {
				p.slots.Put(s)
			}
			b.slots = nil
		}()
	}
	f := infer.Frames{N: len(frames), Device: b.slots}
	if b.slots == nil {
		f.Host = b.buf[:len(frames)*size]
	}
	dets, err := det.Detect(ctx, f)
	if nf := (*infer.NonFiniteError)(nil); errors.As(err, &nf) && nf.Image >= 0 && nf.Image < len(frames) {
		it := frames[nf.Image]
		return fmt.Errorf("%s, frame %d: %w", it.v.planned.Path, it.index, err)
	}
	if err != nil {
		return err
	}
	for k, it := range frames {
		if err := p.boxes.Add(dets[k]); err != nil {
			return err
		}
		for j := range dets[k] {
			d := &dets[k][j]
			d.X1, d.Y1, d.X2, d.Y2 = it.lb.ToFrame(d.X1, d.Y1, d.X2, d.Y2)
			for q := range d.Keypoints {
				kp := &d.Keypoints[q]
				kp.X, kp.Y = it.lb.PointToFrame(kp.X, kp.Y)
			}
			if d.Rotated != nil {
				r := it.lb.RotatedToFrame(*d.Rotated)
				d.Rotated = &r
			}
		}
		it.dets = dets[k]
	}
	return nil
}

// exportLoop hands each video's results, in order, to one of the worker's
// exporters (RunOptions.Exporters): videos are independent, so tracking
// and Parquet encoding of different videos run side by side. A video goes
// to the exporter with the fewest videos open, and stays there to its end
// marker.
func (p *pipeline) exportLoop(ctx context.Context, results <-chan *batch, buffers chan<- []float32) error {
	n := max(p.opts.Exporters, 1)
	p.clock.exporters.Store(int64(2 * n)) // each tracks on one goroutine and writes on another
	if p.opts.Layout.Masks > 0 {
		var stop func()
		p.masks, stop = startMasks(ctx, 0)
		defer stop()
	}
	g, ctx := errgroup.WithContext(ctx)
	queues := make([]chan *item, n)
	for i := range queues {
		queues[i] = make(chan *item, 2*p.opts.Batch)
		g.Go(func() error { return p.exportVideos(ctx, queues[i]) })
	}
	g.Go(func() error {
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		owner := map[int64]int{} // video → its exporter
		open := make([]int, n)   // videos open per exporter
		for {
			b, ok, err := recv(ctx, results)
			if err != nil || !ok {
				return err
			}
			for _, it := range b.items {
				k, ok := owner[it.v.id]
				if !ok {
					k = 0
					for i := range open {
						if open[i] < open[k] {
							k = i
						}
					}
					owner[it.v.id] = k
					open[k]++
				}
				if it.end {
					delete(owner, it.v.id)
					open[k]--
				}
				if err := send(ctx, queues[k], it); err != nil {
					return err
				}
			}
			if b.buf != nil {
				buffers <- b.buf // never blocks: the buffer came from this list
			}
		}
	})
	return g.Wait()
}

// exportVideos tracks and writes the frames of the videos given to one
// exporter, and commits each video's file at its end marker. Tracking a
// frame and writing the frame before run side by side, on two goroutines:
// a video's pace is bounded by the slower of the two, not by their sum
// (tracking a dense frame costs milliseconds).
func (p *pipeline) exportVideos(ctx context.Context, items <-chan *item) error {
	// A short queue: items may hold a segmentation model's masks.
	tracked := make(chan trackedItem, 16)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(tracked)
		return p.trackVideos(ctx, items, tracked)
	})
	g.Go(func() error { return p.writeVideos(ctx, tracked) })
	return g.Wait()
}

// trackedItem is an item with its detections' track IDs (nil without
// tracking or for a marker), the video's tracks, the error that failed
// the video in tracking and its masks on their way.
type trackedItem struct {
	*item
	ids []int64
	vt  *videoTracks
	err error
	// masks are the frame's masks, rasterising on the pipeline's pool.
	masks *pendingMasks
}

// trackVideos runs the trackers of an exporter's videos, in order.
func (p *pipeline) trackVideos(ctx context.Context, items <-chan *item, out chan<- trackedItem) error {
	trackers := map[int64]*videoTracks{}
	failed := map[int64]bool{} // videos that failed in tracking: their frames go nowhere
	c := p.clock
	for {
		it, t0, ok, err := recvIdle(ctx, items, &c.ExportIdle)
		if err != nil || !ok {
			return err
		}
		v := it.v
		ti := trackedItem{item: it}
		switch {
		case it.reset:
			delete(trackers, v.id)
		case it.end:
			ti.vt = trackers[v.id]
			delete(trackers, v.id)
			delete(failed, v.id)
		case failed[v.id]:
			c.ExportBusy.Add(since(t0))
			continue
		default:
			ids, vt, err := p.safeTrackIDs(trackers, v, it)
			if err != nil {
				failed[v.id] = true
				delete(trackers, v.id)
				ti.err = err
				break
			}
			if vt != nil {
				for k, d := range it.dets {
					if ids[k] >= 0 {
						vt.sums.Add(ids[k], d.Class, it.index, it.pts, track.Box{X1: d.X1, Y1: d.Y1, X2: d.X2, Y2: d.Y2}, d.Score)
					}
				}
			}
			ti.ids, ti.vt = ids, vt
			if ti.masks, err = p.masks.submit(ctx, it.dets, it.lb); err != nil {
				return err
			}
		}
		c.ExportBusy.Add(since(t0))
		if err := send(ctx, out, ti); err != nil {
			return err
		}
	}
}

// writeVideos writes the tracked frames of an exporter's videos, and
// commits each video's file at its end marker.
func (p *pipeline) writeVideos(ctx context.Context, items <-chan trackedItem) error {
	writers := map[int64]*export.DetectionWriter{}
	defer func() {
		for _, w := range writers { // interrupted: nothing half-written stays
			w.Abort()
		}
	}()
	names := p.opts.Settings.Names
	c := p.clock
	var masks []*export.Mask  // the frame's rasterised masks
	var kps []export.Keypoint // a row's points (Append copies them)
	for {
		it, t0, ok, err := recvIdle(ctx, items, &c.ExportIdle)
		if err != nil || !ok {
			return err
		}
		v := it.v
		switch {
		case it.reset:
			if w := writers[v.id]; w != nil {
				w.Abort()
				delete(writers, v.id)
			}
			p.opts.Counters.FramesDone.Add(-v.rec.FramesInferred)
			p.opts.Counters.WorkerFrames[p.index].Add(-v.rec.FramesInferred)
			c.frames.Add(-v.rec.FramesInferred)
			p.opts.Counters.Detections.Add(-v.rec.Detections)
			v.rec.FramesInferred, v.rec.Detections = 0, 0
		case it.end:
			w := writers[v.id]
			if w == nil {
				w = export.StageDetections(p.out.stagePath(v.id, detectionsDir), p.opts.Mem, p.detectionOptions(), p.memRows())
			}
			delete(writers, v.id)
			if err := p.endVideo(v, w, it.vt); err != nil {
				return err
			}
		case v.exportErr != nil:
			// Failed: the rest of its frames go nowhere.
		default:
			w := writers[v.id]
			if w == nil {
				w = export.StageDetections(p.out.stagePath(v.id, detectionsDir), p.opts.Mem, p.detectionOptions(), p.memRows())
				writers[v.id] = w
			}
			v.rec.FramesInferred++
			c.frames.Add(1)
			p.opts.Counters.FramesDone.Add(1)
			p.opts.Counters.WorkerFrames[p.index].Add(1)
			if it.err != nil {
				v.exportErr = it.err
				break
			}
			masks = slices.Grow(masks[:0], len(it.dets))[:len(it.dets)]
			clear(masks)
			if err := it.masks.wait(ctx, it.dets, it.lb, masks); err != nil {
				return err
			}
			for k, d := range it.dets {
				kps = kps[:0]
				for _, q := range d.Keypoints {
					kps = append(kps, export.Keypoint(q))
				}
				row := export.Detection{VideoID: v.id, VideoPath: v.planned.Path, FrameIndex: it.index, PTS: it.pts,
					ClassID: int32(d.Class), ClassName: className(names, d.Class), Score: d.Score, X1: d.X1, Y1: d.Y1, X2: d.X2, Y2: d.Y2, TrackID: it.ids[k], Keypoints: kps}
				if r := d.Rotated; r != nil {
					row.Oriented = &export.OrientedBox{CX: r.CX, CY: r.CY, W: r.W, H: r.H, Angle: r.Angle, Corners: r.Corners}
				}
				if d.Mask != nil {
					row.Mask = masks[k]
				}
				if !v.rec.RecordedAt.IsZero() {
					row.RecordedAt = v.rec.RecordedAt.Add(time.Duration(it.pts * float64(time.Second)))
				}
				if err := w.Append(row); err != nil {
					return err
				}
			}
			v.rec.Detections += int64(len(it.dets))
			p.opts.Counters.Detections.Add(int64(len(it.dets)))
			c.firstBatch(p.start)
			p.opts.Counters.firstBatch(p.start)
		}
		c.ExportBusy.Add(since(t0))
	}
}

// detectionOptions are the detections files' columns for this run's model:
// keypoints for a pose model, the oriented box for an OBB model, masks
// for a segmentation model.
func (p *pipeline) detectionOptions() export.DetectionOptions {
	return export.DetectionOptions{KeypointNames: p.opts.KeypointNames, Keypoints: p.opts.Layout.Keypoints, Oriented: p.opts.Layout.Head == infer.HeadOBB,
		RecordedAt: p.opts.Settings.RecordedAt != "", Masks: p.opts.Layout.Masks > 0}
}

// memRows is how many of a video's detections wait in memory for their
// part before they go to a stage file: fewer for a segmentation model,
// whose rows hold masks (a few kilobytes each, against 60 bytes), so that
// memory stays bounded by bytes, not rows alone (a dense seg run over 30
// videos held 97 GiB before, 2026-12-02).
func (p *pipeline) memRows() int64 {
	if p.opts.Layout.Masks > 0 {
		return videoMemRows / maskRowsFactor
	}
	return videoMemRows
}

// frameMask encodes a detection's mask (its box already in frame pixels)
// over the frame lb maps to, as the detections table stores it: the mask
// pool does it, on many cores, rather than the worker's one inference
// loop.
func frameMask(d infer.Detection, lb infer.Letterbox) *export.Mask {
	counts, area := d.Mask.EncodeFrame(lb, d.X1, d.Y1, d.X2, d.Y2)
	return &export.Mask{Area: area, Height: int32(lb.SrcH), Width: int32(lb.SrcW), Counts: counts}
}

// videoTracks is a video's tracker and the summaries of its tracks.
type videoTracks struct {
	tr   *track.Tracker
	sums track.Summaries
}

func className(names []string, class int) string {
	if class >= 0 && class < len(names) {
		return names[class]
	}
	return fmt.Sprintf("class_%d", class)
}

// safeTrackIDs is trackIDs, with a panic (a bug, on a model's odd boxes
// say) turned into an error that fails this video only.
func (p *pipeline) safeTrackIDs(trackers map[int64]*videoTracks, v *video, it *item) (ids []int64, vt *videoTracks, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error tracking %s at frame %d: %v (a bug; the other videos go on)", v.planned.Path, it.index, r)
		}
	}()
	ids, vt = p.trackIDs(trackers, v, it.dets)
	return ids, vt, nil
}

// trackIDs runs the video's tracker (made on its first frame) over one
// frame's detections; without tracking every ID is -1 (null) and the
// returned tracks are nil.
func (p *pipeline) trackIDs(trackers map[int64]*videoTracks, v *video, dets []infer.Detection) ([]int64, *videoTracks) {
	s := p.opts.Settings
	if !s.Track {
		ids := make([]int64, len(dets))
		for i := range ids {
			ids[i] = -1
		}
		return ids, nil
	}
	vt := trackers[v.id]
	if vt == nil {
		// The rate of the frames the tracker sees: the video's, thinned by
		// sampling.
		rate := v.rec.FPS
		if rate <= 0 {
			rate = 30
		}
		if s.Stride > 1 {
			rate /= float64(s.Stride)
		}
		if s.FPS > 0 && s.FPS < rate {
			rate = s.FPS
		}
		cfg := track.DefaultConfig(rate)
		cfg.BufferSeconds, cfg.ClassAgnostic = s.TrackBuffer, s.TrackAgnostic
		vt = &videoTracks{tr: track.New(cfg)}
		trackers[v.id] = vt
	}
	in := make([]track.Detection, len(dets))
	for i, d := range dets {
		in[i] = track.Detection{Box: track.Box{X1: d.X1, Y1: d.Y1, X2: d.X2, Y2: d.Y2}, Score: d.Score, Class: d.Class}
	}
	return vt.tr.Update(in), vt
}

// unexplainedEmpty is the error of a video that decoded without a frame
// reaching the detector, unless the settings explain it: every frame
// before --start or from --end on. A video marked done must have been
// looked at.
func (p *pipeline) unexplainedEmpty(v *video) error {
	s, st := p.opts.Settings, v.stats
	if st.Decoded == 0 {
		return fmt.Errorf("decode %s: %w", v.planned.Path, decode.ErrNoFrames)
	}
	if s.Start > 0 && st.LastPTS < s.Start || s.End > 0 && st.FirstPTS >= s.End {
		return nil
	}
	return fmt.Errorf("decode %s: %d frames decoded (times %.3fs to %.3fs) but none sampled for inference (stride %d, fps %g, start %gs, end %gs)",
		v.planned.Path, st.Decoded, st.FirstPTS, st.LastPTS, s.Stride, s.FPS, s.Start, s.End)
}

// endVideo stages or discards a finished video's rows and records it.
func (p *pipeline) endVideo(v *video, w *export.DetectionWriter, vt *videoTracks) error {
	v.rec.FramesDecoded = v.stats.Decoded
	v.rec.CorruptPackets = v.stats.CorruptPackets
	v.rec.WallSeconds = time.Since(v.start).Seconds()
	if v.err == nil {
		v.err = v.exportErr
	}
	if v.err == nil && v.rec.FramesInferred == 0 {
		v.err = p.unexplainedEmpty(v)
	}
	if v.err != nil {
		w.Abort()
		v.rec.Status, v.rec.Error = "failed", v.err.Error()
		v.rec.Detections = 0
		return p.finish(v.rec, nil)
	}
	if err := w.Commit(); err != nil {
		return err
	}
	rows := map[string]*export.Staged{detectionsDir: w.Staged()}
	if p.opts.Settings.Track {
		var tracks []export.Track
		if vt != nil {
			for _, t := range vt.sums.All() {
				tracks = append(tracks, export.Track{VideoID: v.id, VideoPath: v.planned.Path, TrackID: t.ID, ClassID: int32(t.Class),
					ClassName: className(p.opts.Settings.Names, t.Class), FirstFrame: t.FirstFrame, LastFrame: t.LastFrame,
					FirstPTS: t.FirstPTS, LastPTS: t.LastPTS, Detections: t.Detections, MeanScore: t.MeanScore, MaxScore: t.MaxScore,
					First: [4]float32{t.First.X1, t.First.Y1, t.First.X2, t.First.Y2}, Last: [4]float32{t.Last.X1, t.Last.Y1, t.Last.X2, t.Last.Y2},
					PathLength: t.PathLength, MeanSpeed: t.MeanSpeed()})
			}
		}
		// A video whose detections went to a stage file has its tracks
		// there too: a rerun then finds all its rows, or redoes it.
		memRows := int64(videoMemRows)
		if rows[detectionsDir].Path != "" {
			memRows = 0
		}
		st, err := export.StageTracks(p.out.stagePath(v.id, tracksDir), tracks, p.opts.Mem, memRows)
		if err != nil {
			rows[detectionsDir].Release()
			return err
		}
		rows[tracksDir] = st
	}
	v.rec.Status = "done"
	return p.finish(v.rec, rows)
}
