package job

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
)

// gpuWorker is a GPU worker's CUDA context, which its decode sessions and
// its engine share, and its letterbox kernel.
type gpuWorker struct {
	cuda *gpu.CUDA
	lbx  *infer.GPULetterbox
	size int // floats per letterboxed image
}

func openGPUWorker(w Worker, opts *RunOptions) (*gpuWorker, error) {
	g, err := gpu.OpenCUDA(w.GPU.UUID)
	if err != nil {
		return nil, err
	}
	cache := opts.KernelCache
	if cache == "" {
		if base, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(base, "dsbatch", "kernels")
		}
	}
	s := opts.Settings
	lbx, err := infer.NewGPULetterbox(g, s.InputW, s.InputH, opts.Input, cache)
	if err != nil {
		g.Close()
		return nil, err
	}
	return &gpuWorker{cuda: g, lbx: lbx, size: 3 * s.InputW * s.InputH}, nil
}

func (g *gpuWorker) close() { g.cuda.Close() }

// autoSlots is how many frames of size bytes a GPU worker keeps between
// decoding and inference when the user does not say: a quarter of the
// GPU's free memory (of its total when that is unknown), at most 16 GiB,
// so that decoding runs on while the engine builds and while it is busy.
func (g *gpuWorker) autoSlots(memTotal uint64, size int) int {
	mem := memTotal
	if free, _, err := g.cuda.MemInfo(); err == nil {
		mem = free
	}
	return int(min(mem/4, 16<<30) / uint64(size))
}

// decoder is one decode loop's session, and the device tensor it
// letterboxes NVDEC frames into when they go to host memory.
type decoder struct {
	sess *decode.Session
	buf  gpu.DevicePtr // 0 on CPU workers
}

func (p *pipeline) newDecoder() (*decoder, error) {
	var cuda *gpu.CUDA
	if p.gpu != nil {
		cuda = p.gpu.cuda
	}
	s, err := decode.NewSession(cuda)
	if err != nil {
		return nil, err
	}
	d := &decoder{sess: s}
	if p.gpu != nil {
		if d.buf, err = cuda.Alloc(4 * p.gpu.size); err != nil {
			s.Close()
			return nil, err
		}
	}
	return d, nil
}

func (d *decoder) close(p *pipeline) {
	d.sess.Close()
	if d.buf != 0 {
		p.gpu.cuda.Free(d.buf)
	}
}

// frameSink letterboxes one video's decoded frames and sends them on to
// the batcher: into a device slot when the engine reads GPU memory, into
// a host tensor otherwise.
type frameSink struct {
	ctx     context.Context
	p       *pipeline
	d       *decoder
	v       *video
	frames  chan<- *item
	tensors chan []float32
}

// Restart tells the exporter to drop the video's frames so far.
func (s *frameSink) Restart() error {
	return send(s.ctx, s.frames, &item{v: s.v, reset: true})
}

// Frame letterboxes f and sends it on.
func (s *frameSink) Frame(f *decode.SessionFrame) error {
	c := s.p.clock
	var it *item
	var busy time.Duration
	var err error
	if f.GPU != nil {
		it, busy, err = s.gpuFrame(f.GPU)
	} else {
		it, busy, err = s.cpuFrame(f.CPU)
	}
	if err != nil {
		return err
	}
	c.DecodeBusy.Add(int64(f.Took + busy))
	t3 := time.Now()
	if err := send(s.ctx, s.frames, it); err != nil {
		return err
	}
	c.DecodeBlock.Add(since(t3))
	return nil
}

// gpuFrame letterboxes an NVDEC frame on the GPU, into a slot or through
// the decoder's device tensor into a host tensor.
func (s *frameSink) gpuFrame(f *decode.GPUFrame) (*item, time.Duration, error) {
	p, c, g := s.p, s.p.clock, s.p.gpu
	st := s.d.sess.Stream()
	it := &item{v: s.v, index: f.Index, pts: f.PTS}
	t1 := time.Now()
	var err error
	if p.slots != nil {
		if it.slot, err = p.slots.Get(s.ctx); err != nil {
			return nil, 0, err
		}
		t2 := time.Now()
		c.DecodeStall.Add(int64(t2.Sub(t1)))
		// Waited for, so that the engine may read the slot once the frame
		// is sent on.
		if it.lb, err = g.lbx.Run(f, it.slot, st); err == nil {
			if err = g.cuda.Sync(st); err != nil {
				err = fmt.Errorf("letterbox: %w", err)
			}
		}
		if err != nil {
			p.slots.Put(it.slot)
		}
		return it, time.Since(t2), err
	}
	if it.tensor, _, err = recv(s.ctx, s.tensors); err != nil {
		return nil, 0, err
	}
	t2 := time.Now()
	c.DecodeStall.Add(int64(t2.Sub(t1)))
	if it.lb, err = g.lbx.Run(f, s.d.buf, st); err == nil {
		if err = g.cuda.CopyToHost(it.tensor[:g.size], s.d.buf, st); err != nil {
			err = fmt.Errorf("letterbox copy: %w", err)
		}
	}
	if err != nil {
		s.tensors <- it.tensor // never blocks: the tensor came from this list
	}
	return it, time.Since(t2), err
}

// cpuFrame letterboxes a frame decoded on the CPU into a host tensor, and
// uploads it to a slot when the engine reads GPU memory.
func (s *frameSink) cpuFrame(f *decode.Frame) (*item, time.Duration, error) {
	p, c := s.p, s.p.clock
	st := p.opts.Settings
	t1 := time.Now()
	t, _, err := recv(s.ctx, s.tensors) // the list is never closed
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	c.DecodeStall.Add(int64(t0.Sub(t1)))
	py, pu, pv := f.Planes()
	lb := infer.LetterboxYUV420(py, pu, pv, f.Width, f.Height, f.Rotation, t, st.InputW, st.InputH, p.opts.Input)
	it := &item{v: s.v, index: f.Index, pts: f.PTS, lb: lb, tensor: t}
	if p.slots == nil {
		return it, time.Since(t0), nil
	}
	// The engine reads GPU memory: the tensor goes up to a slot.
	busy := time.Since(t0)
	t1 = time.Now()
	if it.slot, err = p.slots.Get(s.ctx); err != nil {
		return nil, 0, err
	}
	t0 = time.Now()
	c.DecodeStall.Add(int64(t0.Sub(t1)))
	err = p.gpu.cuda.CopyFloatsToDevice(it.slot, t)
	s.tensors <- t // never blocks: the tensor came from this list
	it.tensor = nil
	if err != nil {
		p.slots.Put(it.slot)
		return nil, 0, fmt.Errorf("frame upload: %w", err)
	}
	return it, busy + time.Since(t0), nil
}
