package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
)

// gpuDecode is a GPU worker's decoding side: its CUDA context and the
// letterbox kernel.
type gpuDecode struct {
	cuda *gpu.CUDA
	lbx  *infer.GPULetterbox
	size int // floats per letterboxed image
}

func openGPUDecode(w Worker, opts *RunOptions) (*gpuDecode, error) {
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
	return &gpuDecode{cuda: g, lbx: lbx, size: 3 * s.InputW * s.InputH}, nil
}

func (g *gpuDecode) close() { g.cuda.Close() }

// gpuSession is one decode session's stream, letterbox buffer and NVDEC
// decoder, which it keeps from one file to the next when it can.
type gpuSession struct {
	g      *gpuDecode
	stream gpu.Stream
	buf    gpu.DevicePtr
	nv     *decode.NVDEC
}

// open readies the session's decoder for path.
func (s *gpuSession) open(ctx context.Context, path string, opts decode.Options) (*decode.NVDEC, error) {
	if s.nv != nil {
		err := s.nv.Reopen(ctx, path, opts)
		if err == nil {
			return s.nv, nil
		}
		s.drop()
		if !errors.Is(err, decode.ErrNVDECCodecChanged) {
			return nil, err
		}
	}
	d, err := decode.OpenNVDEC(ctx, path, s.g.cuda.Context(), opts)
	if err != nil {
		return nil, err
	}
	d.SetStream(unsafe.Pointer(s.stream))
	s.nv = d
	return d, nil
}

// drop closes the decoder after a failure; the next file opens a new one.
func (s *gpuSession) drop() {
	if s.nv != nil {
		s.nv.Close()
		s.nv = nil
	}
}

// session makes a decode session. Its stream is urgent: a frame's
// post-processing and letterbox are short kernels that a session waits for
// before decoding on, and behind the engine's kernels they would hold the
// decoder idle.
func (g *gpuDecode) session() (*gpuSession, error) {
	s, err := g.cuda.NewUrgentStream()
	if err != nil {
		return nil, err
	}
	buf, err := g.cuda.Alloc(4 * g.size)
	if err != nil {
		g.cuda.DestroyStream(s)
		return nil, err
	}
	return &gpuSession{g: g, stream: s, buf: buf}, nil
}

func (s *gpuSession) close() {
	s.drop()
	s.g.cuda.Free(s.buf)
	s.g.cuda.DestroyStream(s.stream)
}

// letterboxDevice letterboxes f into the device tensor dst and waits for
// it, so that the engine may read dst once the frame is sent on.
func (s *gpuSession) letterboxDevice(f *decode.GPUFrame, dst gpu.DevicePtr) (infer.Letterbox, error) {
	lb, err := s.g.lbx.Run(f, dst, s.stream)
	if err != nil {
		return lb, err
	}
	if err := s.g.cuda.Sync(s.stream); err != nil {
		return lb, fmt.Errorf("letterbox: %w", err)
	}
	return lb, nil
}

// slotPool is the device tensors frames are letterboxed into, carved from
// one allocation and handed out through a free list.
type slotPool struct {
	base gpu.DevicePtr
	n    int
	free chan gpu.DevicePtr
}

// slots allocates up to want device tensors of size bytes, at least least:
// when the GPU cannot hold want (another process may use it), it tries
// half as many, down to least.
func (g *gpuDecode) slots(least, want, size int) (*slotPool, error) {
	want = max(want, least)
	for {
		base, err := g.cuda.Alloc(want * size)
		if err == nil {
			p := &slotPool{base: base, n: want, free: make(chan gpu.DevicePtr, want)}
			for i := 0; i < want; i++ {
				p.free <- base + gpu.DevicePtr(i*size)
			}
			return p, nil
		}
		if want == least {
			return nil, fmt.Errorf("%d frame slots of %d bytes: %w", want, size, err)
		}
		want = max(want/2, least)
	}
}

// freeSlots frees the pool's memory, once no frame is in use.
func (g *gpuDecode) freeSlots(p *slotPool) { g.cuda.Free(p.base) }

// autoSlots is how many frames of size bytes a GPU worker keeps between
// decoding and inference when the user does not say: a quarter of the
// GPU's free memory (of its total when that is unknown), at most 16 GiB,
// so that decoding runs on while the engine builds and while it is busy.
func (g *gpuDecode) autoSlots(memTotal uint64, size int) int {
	mem := memTotal
	if free, _, err := g.cuda.MemInfo(); err == nil {
		mem = free
	}
	return int(min(mem/4, 16<<30) / uint64(size))
}

// upload copies a letterboxed tensor from the host into a device slot.
func (g *gpuDecode) upload(dst gpu.DevicePtr, t []float32) error {
	return g.cuda.CopyToDevice(dst, unsafe.Slice((*byte)(unsafe.Pointer(&t[0])), 4*len(t)))
}

// letterbox letterboxes f on the GPU and copies the tensor into dst on the
// host, for engines that read host memory (ONNX Runtime).
func (s *gpuSession) letterbox(f *decode.GPUFrame, dst []float32) (infer.Letterbox, error) {
	lb, err := s.g.lbx.Run(f, s.buf, s.stream)
	if err != nil {
		return lb, err
	}
	if err := s.g.cuda.CopyToHost(dst[:s.g.size], s.buf, s.stream); err != nil {
		return lb, fmt.Errorf("letterbox copy: %w", err)
	}
	return lb, nil
}
