package decode

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/asticode/go-astiav"
)

// Options choose what Open's decoder yields.
type Options struct {
	Format PixelFormat // RGB24 (default) or NV12
	Stride int         // keep every Stride-th decoded frame (0 or 1: all)
	FPS    float64     // keep at most FPS frames per second of video (0: no limit)
	// Start skips the frames before this time (seconds). They are decoded,
	// not sought past: frame indices then count from the file's first
	// frame, exactly and alike on the CPU and on NVDEC.
	Start float64
	End   float64 // seconds: stop at this time (0: the end of the file)
	// Threads is the number of decoder threads (0: FFmpeg chooses).
	// With more than one, frames decode in parallel, and FFmpeg's error
	// concealment then depends on timing: Next returns ErrNondeterministic
	// at the first sign of a corrupt bitstream, so that the caller can
	// decode the file again with one thread.
	Threads int
	// AssumeFPS is the frame rate of a raw stream (Info.Raw), whose frames
	// carry no timestamps: frame i is at i/AssumeFPS seconds. 0: the rate
	// the stream's headers give (the VUI of H.264 and HEVC), else 25.
	AssumeFPS float64
	// NoAutoRotate leaves frames as coded, ignoring the display matrix.
	NoAutoRotate bool
	// Probed, when set, holds the facts an earlier Probe of the file gave;
	// OpenNVDEC then skips FFmpeg's stream analysis (tens of milliseconds
	// of software decoding per file).
	Probed *Info
	// Loop makes OpenNVDEC's decoder start the file again at its end, with
	// the same parser and decoder, until the context ends (benchmarks:
	// steady-state decoding without reopening).
	Loop bool
}

// Frame is one decoded picture in host memory.
type Frame struct {
	Index  int64       // decode-order index of the frame in the stream (see Decoder.Next)
	PTS    float64     // presentation time in seconds from the start of the stream
	Width  int         // after rotation
	Height int         // after rotation
	Format PixelFormat // layout of Data
	Data   []byte      // pixels, tightly packed (see PixelFormat)
	// Rotation is the clockwise turn still to apply to show the picture
	// upright: 0 unless Options.NoAutoRotate left it to the caller.
	Rotation int
}

// Planes returns the Y, U and V planes of a YUV420P frame.
func (f *Frame) Planes() (y, u, v []byte) {
	n := f.Width * f.Height
	c := ((f.Width + 1) / 2) * ((f.Height + 1) / 2)
	return f.Data[:n], f.Data[n : n+c], f.Data[n+c : n+2*c]
}

// Stats counts what a Decoder has seen so far.
type Stats struct {
	Packets        int64 // packets of the video stream read
	CorruptPackets int64 // packets or frames the decoder rejected and skipped
	DamagedFrames  int64 // frames decoded with concealed errors (still returned)
	Decoded        int64 // frames out of the decoder
	Emitted        int64 // frames returned by Next after sampling
	// FirstPTS and LastPTS are the times of the first and last frames out
	// of the decoder (seconds; valid when Decoded > 0), for telling why a
	// file whose frames decoded yielded none.
	FirstPTS, LastPTS float64
}

// frame counts a frame out of the decoder at pts seconds.
func (s *Stats) frame(pts float64) {
	if s.Decoded == 0 {
		s.FirstPTS = pts
	}
	s.Decoded++
	s.LastPTS = pts
}

// Decoder yields the frames of one video file. It is not safe for
// concurrent use.
type Decoder struct {
	path    string
	in      *input
	cc      *astiav.CodecContext
	pkt     *astiav.Packet
	frm     *astiav.Frame
	conv    converter
	samp    sampler
	opts    Options
	clock   frameClock
	eof     bool // demuxer exhausted, decoder flushed
	drained bool // decoder returned EOF
	done    bool
	stats   Stats
}

// Open opens path for decoding its best video stream.
func Open(ctx context.Context, path string, opts Options) (*Decoder, error) {
	in, err := openInput(ctx, path)
	if err != nil {
		return nil, fileErr("open", path, err)
	}
	d := &Decoder{path: path, in: in, opts: opts, samp: newSampler(opts), clock: newFrameClock(in, opts.AssumeFPS)}
	if err := d.init(); err != nil {
		d.Close()
		return nil, fileErr("open", path, err)
	}
	return d, nil
}

func (d *Decoder) init() error {
	s := d.in.stream
	cp := s.CodecParameters()
	codec := astiav.FindDecoder(cp.CodecID())
	d.cc = astiav.AllocCodecContext(codec)
	if d.cc == nil {
		return errors.New("cannot allocate decoder context")
	}
	if err := cp.ToCodecContext(d.cc); err != nil {
		return fmt.Errorf("decoder parameters: %w", err)
	}
	d.cc.SetThreadCount(d.opts.Threads)
	d.cc.SetThreadType(astiav.ThreadTypeFrame | astiav.ThreadTypeSlice)
	if err := d.cc.Open(codec, nil); err != nil {
		return fmt.Errorf("%w: opening %s decoder: %v", ErrUnsupportedCodec, codec.Name(), err)
	}
	d.pkt = astiav.AllocPacket()
	d.frm = astiav.AllocFrame()
	d.conv.out = d.opts.Format
	if !d.opts.NoAutoRotate {
		d.conv.rotation = d.in.info.Rotation
	}
	return nil
}

// Info describes the stream being decoded.
func (d *Decoder) Info() Info { return d.in.info }

// Stats returns the counters so far.
func (d *Decoder) Stats() Stats { return d.stats }

// Next decodes until the next frame that sampling keeps and writes it into
// f, reusing f.Data's memory when it is large enough. It returns io.EOF after
// the last frame. Frame.Index counts decoded frames from the start of the
// stream, and Frame.PTS is timed as frameClock says. Corrupt packets are
// counted in Stats and skipped; Next fails only when the file cannot be read
// any further (or with ErrNondeterministic, see Options.Threads).
func (d *Decoder) Next(ctx context.Context, f *Frame) error {
	for {
		if d.done {
			if d.stats.Decoded == 0 {
				return fileErr("decode", d.path, fmt.Errorf("%w (%d packets read, %d rejected)",
					ErrNoFrames, d.stats.Packets, d.stats.CorruptPackets))
			}
			return io.EOF
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.checkDeterministic(); err != nil {
			return err
		}
		got, err := d.receive()
		if err != nil {
			return fileErr("decode", d.path, err)
		}
		if !got {
			if err := d.feed(); err != nil {
				return fileErr("decode", d.path, err)
			}
			continue
		}
		idx, pts := d.clock.frame(d.clock.decoded(d.frm.Pts()))
		d.stats.frame(pts)
		if frameDamaged(d.frm) {
			d.stats.DamagedFrames++
		}
		if err := d.checkDeterministic(); err != nil {
			d.frm.Unref()
			return err
		}
		keep, pastEnd := d.samp.keep(idx, pts)
		if pastEnd {
			d.done = true
			d.frm.Unref()
			continue
		}
		if !keep {
			d.frm.Unref()
			continue
		}
		err = d.conv.convert(d.frm, f)
		d.frm.Unref()
		if err != nil {
			return fileErr("decode", d.path, err)
		}
		f.Index, f.PTS, f.Format = idx, pts, d.opts.Format
		f.Rotation = 0
		if d.opts.NoAutoRotate {
			f.Rotation = d.in.info.Rotation
		}
		d.stats.Emitted++
		return nil
	}
}

// checkDeterministic fails with ErrNondeterministic once a decoder that
// may use several threads has met a corrupt packet or a damaged frame.
func (d *Decoder) checkDeterministic() error {
	if d.opts.Threads == 1 || d.stats.CorruptPackets == 0 && d.stats.DamagedFrames == 0 {
		return nil
	}
	return fileErr("decode", d.path, fmt.Errorf("%w (%d corrupt packets, %d damaged frames so far)",
		ErrNondeterministic, d.stats.CorruptPackets, d.stats.DamagedFrames))
}

// receive takes one frame out of the decoder if it has one ready.
func (d *Decoder) receive() (bool, error) {
	if d.drained {
		d.done = true
		return false, nil
	}
	err := d.cc.ReceiveFrame(d.frm)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, astiav.ErrEagain):
		return false, nil
	case errors.Is(err, astiav.ErrEof):
		d.drained = true
		d.done = true
		return false, nil
	case errors.Is(err, astiav.ErrInvaliddata):
		d.stats.CorruptPackets++
		return false, nil
	}
	return false, fmt.Errorf("receiving frame: %w", err)
}

// feed sends the next packet of the video stream to the decoder, or starts
// the flush at the end of the file.
func (d *Decoder) feed() error {
	if d.eof {
		// Flushing: the decoder already had its nil packet; ReceiveFrame
		// will return EOF once drained.
		return nil
	}
	for {
		err := d.in.fc.ReadFrame(d.pkt)
		if errors.Is(err, astiav.ErrEof) || errors.Is(err, astiav.ErrEio) && d.stats.Packets > 0 {
			d.eof = true
			err := d.cc.SendPacket(nil)
			if errors.Is(err, astiav.ErrInvaliddata) {
				// A frame-threaded decoder reports here that a packet it
				// already had was corrupt (a file cut inside a packet):
				// count it; the frames it holds still drain.
				d.stats.CorruptPackets++
				err = nil
			}
			if err != nil && !errors.Is(err, astiav.ErrEof) {
				return fmt.Errorf("flushing decoder: %w", err)
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, astiav.ErrInvaliddata) {
				d.stats.CorruptPackets++
				continue
			}
			return fmt.Errorf("%w: reading packet %d: %v", ErrTruncated, d.stats.Packets, err)
		}
		if d.pkt.StreamIndex() != d.in.info.StreamIndex {
			d.pkt.Unref()
			continue
		}
		d.stats.Packets++
		d.clock.packet(d.pkt.Pts(), d.pkt.Dts())
		err = d.cc.SendPacket(d.pkt)
		d.pkt.Unref()
		if err != nil {
			// The decoder rejected this packet (corrupt bitstream, or a
			// packet it cannot use): count it and go on with the next.
			d.stats.CorruptPackets++
			continue
		}
		return nil
	}
}

// Close frees the decoder's native memory. It is safe to call more than once.
func (d *Decoder) Close() error {
	d.conv.close()
	if d.frm != nil {
		d.frm.Free()
		d.frm = nil
	}
	if d.pkt != nil {
		d.pkt.Free()
		d.pkt = nil
	}
	if d.cc != nil {
		d.cc.Free()
		d.cc = nil
	}
	if d.in != nil {
		d.in.close()
		d.in = nil
	}
	return nil
}
