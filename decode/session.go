package decode

import (
	"context"
	"errors"
	"io"
	"time"
	"unsafe"

	"github.com/dsbatch/dsbatch/gpu"
)

// Session decodes videos one after the other for one consumer: on NVDEC
// when it has a CUDA context and NVDEC takes the file, on the CPU
// otherwise. It owns the choice: NVDEC's decoder is kept from one file to
// the next when the codec allows, a file NVDEC refuses or fails on is
// decoded again on the CPU, and a corrupt bitstream that frame threads
// conceal differently from run to run is decoded again on one thread.
type Session struct {
	cuda   *gpu.CUDA
	stream gpu.Stream
	nv     *NVDEC
}

// SessionFrame is one frame a Session decoded, valid until the sink
// returns: GPU on NVDEC (ready on the session's stream), CPU otherwise
// (planar YUV 4:2:0, rotation left to the consumer, as on NVDEC).
type SessionFrame struct {
	GPU *GPUFrame
	CPU *Frame
	// Took is how long the decoder took to yield the frame: demuxing and
	// decoding.
	Took time.Duration
}

// Sink takes what a Session decodes of one video.
type Sink interface {
	// Frame takes one frame. An error stops the decoder: on NVDEC the
	// file is decoded again on the CPU, on the CPU it is the video's.
	Frame(f *SessionFrame) error
	// Restart drops the frames taken so far: the video is decoded again
	// from its start (on another decoder, or on one thread).
	Restart() error
}

// Decoded says how a Session decoded a video.
type Decoded struct {
	Decoder string // "nvdec" or "cpu": the last decoder that ran
	Note    string // why the video was decoded again, if it was
	Stats   Stats  // the last decoder's
}

// NewSession makes a session on cuda's GPU, whose frames are prepared on
// a stream of the session's own; cuda nil makes a session that decodes on
// the CPU only. The stream is urgent: work queued on a decoded frame (a
// letterbox) is short, and behind other kernels it would hold the
// decoder idle.
func NewSession(cuda *gpu.CUDA) (*Session, error) {
	s := &Session{cuda: cuda}
	if cuda == nil {
		return s, nil
	}
	st, err := cuda.NewUrgentStream()
	if err != nil {
		return nil, err
	}
	s.stream = st
	return s, nil
}

// Stream is the CUDA stream NVDEC frames are ready on (nil on the CPU):
// work queued there on a frame runs after its preparation.
func (s *Session) Stream() gpu.Stream { return s.stream }

// Close frees the session's decoder and stream.
func (s *Session) Close() {
	s.drop()
	if s.stream != nil {
		s.cuda.DestroyStream(s.stream)
		s.stream = nil
	}
}

// Decode decodes the sampled frames of path into sink, from NVDEC when it
// can and on the CPU on threads threads otherwise. A failure of NVDEC is
// not an error: the CPU decodes the file again, and Decoded.Note says
// why. The error is the video's own (or the context's).
func (s *Session) Decode(ctx context.Context, path string, opts Options, threads int, sink Sink) (Decoded, error) {
	var res Decoded
	if s.cuda != nil {
		res.Decoder = "nvdec"
		sent, err := s.decodeNVDEC(ctx, path, opts, sink, &res)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		res.Note = err.Error()
		if sent > 0 {
			if err := sink.Restart(); err != nil {
				return res, err
			}
		}
	}
	res.Decoder = "cpu"
	sent, err := decodeCPU(ctx, path, opts, threads, sink, &res)
	if !errors.Is(err, ErrNondeterministic) || ctx.Err() != nil {
		return res, err
	}
	if res.Note != "" {
		res.Note += "; "
	}
	res.Note += "corrupt bitstream: decoded again on one thread for reproducible results"
	if sent > 0 {
		if err := sink.Restart(); err != nil {
			return res, err
		}
	}
	_, err = decodeCPU(ctx, path, opts, 1, sink, &res)
	return res, err
}

// open readies the session's NVDEC decoder for path, reusing the last
// one when the codec allows.
func (s *Session) open(ctx context.Context, path string, opts Options) (*NVDEC, error) {
	if s.nv != nil {
		err := s.nv.Reopen(ctx, path, opts)
		if err == nil {
			return s.nv, nil
		}
		s.drop()
		if !errors.Is(err, ErrNVDECCodecChanged) {
			return nil, err
		}
	}
	d, err := OpenNVDEC(ctx, path, s.cuda.Context(), opts)
	if err != nil {
		return nil, err
	}
	d.SetStream(unsafe.Pointer(s.stream))
	s.nv = d
	return d, nil
}

// drop closes the NVDEC decoder after a failure; the next file opens a
// new one.
func (s *Session) drop() {
	if s.nv != nil {
		s.nv.Close()
		s.nv = nil
	}
}

// decodeNVDEC decodes on the GPU and returns how many frames the sink
// took.
func (s *Session) decodeNVDEC(ctx context.Context, path string, opts Options, sink Sink, res *Decoded) (int, error) {
	d, err := s.open(ctx, path, opts)
	if err != nil {
		return 0, err
	}
	defer func() { res.Stats = d.Stats() }()
	var f GPUFrame
	sent, decoder, err := pump(sink, &SessionFrame{GPU: &f}, func() error { return d.Next(ctx, &f) })
	if decoder {
		s.drop()
	}
	return sent, err
}

// pump hands sink the frames next decodes into sf until the end, and
// returns how many the sink took and whether an error was the decoder's.
func pump(sink Sink, sf *SessionFrame, next func() error) (sent int, decoder bool, err error) {
	for {
		t0 := time.Now()
		err := next()
		sf.Took = time.Since(t0)
		if errors.Is(err, io.EOF) {
			return sent, false, nil
		}
		if err != nil {
			return sent, true, err
		}
		if err := sink.Frame(sf); err != nil {
			return sent, false, err
		}
		sent++
	}
}

// decodeCPU decodes with FFmpeg on threads threads (0: as many as FFmpeg
// chooses) into planar YUV 4:2:0, rotation left to the sink, and returns
// how many frames the sink took.
func decodeCPU(ctx context.Context, path string, opts Options, threads int, sink Sink, res *Decoded) (int, error) {
	opts.Format, opts.NoAutoRotate, opts.Threads = YUV420P, true, threads
	opts.Probed = nil
	d, err := Open(ctx, path, opts)
	if err != nil {
		return 0, err
	}
	defer func() { res.Stats = d.Stats(); d.Close() }()
	var f Frame
	sent, _, err := pump(sink, &SessionFrame{CPU: &f}, func() error { return d.Next(ctx, &f) })
	return sent, err
}
