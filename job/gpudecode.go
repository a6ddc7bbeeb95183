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
	lbx, err := infer.NewGPULetterbox(g, s.InputW, s.InputH, cache)
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

// slots allocates n device tensors of size bytes, as a free list.
func (g *gpuDecode) slots(n, size int) (chan gpu.DevicePtr, error) {
	ch := make(chan gpu.DevicePtr, n)
	for i := 0; i < n; i++ {
		p, err := g.cuda.Alloc(size)
		if err != nil {
			g.freeSlots(ch)
			return nil, fmt.Errorf("frame slots: %w", err)
		}
		ch <- p
	}
	return ch, nil
}

// freeSlots frees the slots in the list, which must hold all of them.
func (g *gpuDecode) freeSlots(ch chan gpu.DevicePtr) {
	for {
		select {
		case p := <-ch:
			g.cuda.Free(p)
		default:
			return
		}
	}
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
