package decode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/asticode/go-astiav"
)

// Info describes the video stream of a file, as Probe reads it from the
// container and the stream headers (no frame is decoded).
type Info struct {
	Container   string  `json:"container"`        // demuxer name: "mov", "matroska", "avi", …
	Codec       string  `json:"codec"`            // "h264", "hevc", "vp9", …
	Profile     string  `json:"profile"`          // "High", "Main 10", or ""
	Width       int     `json:"width"`            // coded width, before rotation
	Height      int     `json:"height"`           // coded height, before rotation
	PixelFormat string  `json:"pix_fmt"`          // "yuv420p", "yuv420p10le", …
	BitDepth    int     `json:"bit_depth"`        // bits per luma sample
	Chroma      string  `json:"chroma"`           // "4:2:0", "4:2:2", "4:4:4", "4:0:0"
	AvgFPS      float64 `json:"avg_fps"`          // average frame rate
	RealFPS     float64 `json:"real_fps"`         // the stream's base ("real") frame rate
	Duration    float64 `json:"duration"`         // seconds
	Frames      int64   `json:"frames"`           // number of frames
	Estimated   bool    `json:"frames_estimated"` // Frames was derived from duration × rate
	Rotation    int     `json:"rotation"`         // clockwise degrees to display upright: 0, 90, 180, 270
	BitRate     int64   `json:"bitrate"`          // bits per second, 0 if unknown
	StreamIndex int     `json:"stream_index"`     // index of the video stream in the container
	StartTime   float64 `json:"start_time"`       // seconds: the stream's first timestamp (timestamps count from it)
	// CreationTime is the container's creation_time tag as written (or
	// the video stream's), "" when it has none: when a camera wrote it,
	// the recording's start; often it is when the file was remuxed.
	CreationTime string `json:"creation_time,omitempty"`
	// Raw marks an elementary stream (.h264, .hevc, …) with no container
	// around it: no timestamps, no duration, no index. Its frames are
	// timed by the frame rate, and Probe counts them.
	Raw bool `json:"raw,omitempty"`
}

// WithAssumedFPS returns i with the frame rate of a raw stream set to fps
// (when fps > 0), and its duration to match: what decoding with
// Options.AssumeFPS gives. Other streams are returned unchanged.
func (i Info) WithAssumedFPS(fps float64) Info {
	if !i.Raw || fps <= 0 {
		return i
	}
	i.AvgFPS, i.RealFPS = fps, fps
	if !i.Estimated {
		i.Duration = float64(i.Frames) / fps
	}
	return i
}

// DisplaySize returns the frame size once rotated upright.
func (i Info) DisplaySize() (w, h int) {
	if i.Rotation == 90 || i.Rotation == 270 {
		return i.Height, i.Width
	}
	return i.Width, i.Height
}

// ProbeOptions tune Probe.
type ProbeOptions struct {
	// CountFrames reads every packet of the video stream to count frames
	// exactly when the container does not store the count.
	CountFrames bool
}

// Probe opens path and describes its best video stream. It decodes nothing,
// so it costs a few reads of the file's headers.
func Probe(ctx context.Context, path string, opts ProbeOptions) (Info, error) {
	in, err := openInput(ctx, path)
	if err != nil {
		return Info{}, fileErr("probe", path, err)
	}
	defer in.close()
	info := in.info
	// A raw stream's frames are counted whatever the options: it states
	// neither a count nor a duration, and planning needs one.
	if (opts.CountFrames || info.Raw) && info.Estimated {
		n, err := in.countPackets(ctx)
		if err != nil {
			return Info{}, fileErr("probe", path, err)
		}
		info.Frames, info.Estimated = n, false
		if info.Raw && info.AvgFPS > 0 {
			info.Duration = float64(n) / info.AvgFPS
		}
	}
	return info, nil
}

// input is an opened container with its video stream chosen.
type input struct {
	fc     *astiav.FormatContext
	stream *astiav.Stream
	info   Info
}

func openInput(ctx context.Context, path string) (*input, error) {
	fc, err := openContainer(ctx, path)
	if err != nil {
		return nil, err
	}
	in := &input{fc: fc}
	if err := fc.FindStreamInfo(nil); err != nil {
		in.close()
		return nil, fmt.Errorf("%w: reading stream information: %v", ErrNotVideo, err)
	}
	s, err := bestVideoStream(fc)
	if err != nil {
		in.close()
		return nil, err
	}
	in.stream = s
	in.info = describe(fc, s)
	if in.info.Width <= 0 || in.info.Height <= 0 {
		in.close()
		return nil, fmt.Errorf("%w: video stream %d has no frame size (%s)", ErrTruncated, s.Index(), in.info.Codec)
	}
	return in, nil
}

// openContainer checks path and opens its container (headers only).
func openContainer(ctx context.Context, path string) (*astiav.FormatContext, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := checkFile(path); err != nil {
		return nil, err
	}
	opts := astiav.NewDictionary()
	defer opts.Free()
	if err := opts.Set("protocol_whitelist", "file", 0); err != nil {
		return nil, err
	}
	if err := opts.Set("format_whitelist", demuxerWhitelist(), 0); err != nil {
		return nil, err
	}
	fc := astiav.AllocFormatContext()
	if fc == nil {
		return nil, errors.New("cannot allocate format context")
	}
	// avformat_open_input frees the context when it fails. The "file:"
	// prefix keeps a name with a colon ("2024-05-01T08:00:00.mp4") from
	// being read as a protocol.
	if err := fc.OpenInput("file:"+path, nil, opts); err != nil {
		if name := formatOf(path); refusedDemuxer(name) {
			return nil, fmt.Errorf("%w (%s)", ErrPlaylist, name)
		}
		return nil, classifyOpenError(err)
	}
	return fc, nil
}

// refusedDemuxers open files or network addresses named inside their input:
// playlists, manifests and session descriptions. An archive holds
// recordings, not references to them; following one would let a file make
// dsbatch read files outside the job, or itself without end (an ffconcat
// list naming itself took 20,000 nested opens before this guard).
var refusedDemuxers = map[string]bool{
	"concat": true, "hls": true, "dash": true, "imf": true,
	"sdp": true, "rtsp": true, "rtp": true, "sap": true,
}

// refusedDemuxer reports whether names, a demuxer's comma-separated
// aliases, include a refused one.
func refusedDemuxer(names string) bool {
	for _, n := range strings.Split(names, ",") {
		if refusedDemuxers[n] {
			return true
		}
	}
	return false
}

// demuxerWhitelist returns every demuxer of the linked FFmpeg but the
// refused ones, as FFmpeg's format_whitelist option reads it. It is a
// constant of the linked library, built once: building it took 40 µs, a
// twentieth of probing a small file.
var demuxerWhitelist = sync.OnceValue(func() string {
	var ok []string
	for _, d := range demuxers() {
		if !refusedDemuxer(d) {
			ok = append(ok, d)
		}
	}
	return strings.Join(ok, ",")
})

// formatOf names the demuxer FFmpeg picks for path from its name and first
// megabyte (as much as FFmpeg reads to tell the format), or "" if it cannot
// tell or the file cannot be read. Only failed opens call it.
func formatOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return probeFormat(path, head)
}

// openProbed opens path for a video whose facts an earlier Probe gave,
// without FFmpeg's stream analysis (which decodes frames in software). It
// checks that the file still holds that stream.
func openProbed(ctx context.Context, path string, info *Info) (*input, error) {
	fc, err := openContainer(ctx, path)
	if err != nil {
		return nil, err
	}
	in := &input{fc: fc, info: *info}
	ss := fc.Streams()
	if info.StreamIndex >= len(ss) || ss[info.StreamIndex].CodecParameters().CodecID().Name() != info.Codec {
		in.close()
		return nil, fmt.Errorf("%w: the file changed since it was probed", ErrNotVideo)
	}
	in.stream = ss[info.StreamIndex]
	return in, nil
}

func (in *input) close() {
	if in.fc != nil {
		in.fc.CloseInput()
		in.fc.Free()
		in.fc = nil
	}
}

func classifyOpenError(err error) error {
	switch {
	case errors.Is(err, astiav.ErrInvaliddata):
		return fmt.Errorf("%w: %v", ErrNotVideo, err)
	case errors.Is(err, astiav.ErrEof):
		return fmt.Errorf("%w: end of file reached while reading the header", ErrTruncated)
	}
	return err
}

// rawDemuxers read elementary streams: a codec's bitstream with no
// container, so no timestamp, duration or index.
var rawDemuxers = map[string]bool{
	"h264": true, "hevc": true, "vvc": true, "m4v": true, "mpegvideo": true, "mjpeg": true, "h261": true, "h263": true,
	"cavsvideo": true, "avs2": true, "avs3": true, "vc1": true, "obu": true, "rawvideo": true,
}

// stillImageCodecs mark streams that are cover art rather than video, when
// the container also has a real video stream.
var stillImageCodecs = map[astiav.CodecID]bool{
	astiav.CodecIDMjpeg: true, astiav.CodecIDPng: true, astiav.CodecIDBmp: true,
}

func bestVideoStream(fc *astiav.FormatContext) (*astiav.Stream, error) {
	var best *astiav.Stream
	for _, s := range fc.Streams() {
		cp := s.CodecParameters()
		if cp.MediaType() != astiav.MediaTypeVideo {
			continue
		}
		if best == nil || (stillImageCodecs[best.CodecParameters().CodecID()] && !stillImageCodecs[cp.CodecID()]) {
			best = s
		}
	}
	if best == nil {
		kinds := make([]string, 0, fc.NbStreams())
		for _, s := range fc.Streams() {
			cp := s.CodecParameters()
			kinds = append(kinds, cp.MediaType().String()+"/"+cp.CodecID().Name())
		}
		if len(kinds) == 0 {
			return nil, fmt.Errorf("%w: the container has no streams", ErrNoVideo)
		}
		return nil, fmt.Errorf("%w: streams are %s", ErrNoVideo, strings.Join(kinds, ", "))
	}
	id := best.CodecParameters().CodecID()
	if id == astiav.CodecIDNone {
		return nil, fmt.Errorf("%w: the container names a codec FFmpeg does not know", ErrUnsupportedCodec)
	}
	if astiav.FindDecoder(id) == nil {
		return nil, fmt.Errorf("%w: no decoder for %q in this build", ErrUnsupportedCodec, id.Name())
	}
	return best, nil
}

func describe(fc *astiav.FormatContext, s *astiav.Stream) Info {
	cp := s.CodecParameters()
	info := Info{
		Container:   strings.SplitN(fc.InputFormat().Name(), ",", 2)[0],
		Codec:       cp.CodecID().Name(),
		Profile:     profileName(cp.CodecID(), cp.Profile()),
		Width:       cp.Width(),
		Height:      cp.Height(),
		PixelFormat: cp.PixelFormat().Name(),
		BitDepth:    pixelFormatDepth(cp.PixelFormat()),
		Chroma:      chromaSubsampling(cp.PixelFormat()),
		AvgFPS:      s.AvgFrameRate().Float64(),
		RealFPS:     s.RFrameRate().Float64(),
		Rotation:    streamRotation(s),
		BitRate:     cp.BitRate(),
		StreamIndex: s.Index(),
	}
	info.Raw = rawDemuxers[info.Container]
	for _, d := range []*astiav.Dictionary{fc.Metadata(), s.Metadata()} {
		if d == nil {
			continue
		}
		if e := d.Get("creation_time", nil, 0); e != nil && info.CreationTime == "" {
			info.CreationTime = e.Value()
		}
	}
	if info.AvgFPS == 0 || math.IsInf(info.AvgFPS, 0) {
		info.AvgFPS = info.RealFPS
	}
	if info.BitRate == 0 {
		info.BitRate = fc.BitRate()
	}
	tb := s.TimeBase().Float64()
	if st := s.StartTime(); st != astiav.NoPtsValue {
		info.StartTime = float64(st) * tb
	}
	if info.Raw {
		// FFmpeg guesses a raw stream's duration from its bit rate; a
		// count of its frames replaces the guess (Probe).
		info.Estimated = true
		return info
	}
	if d := s.Duration(); d > 0 && d != astiav.NoPtsValue && tb > 0 {
		info.Duration = float64(d) * tb
	} else if d := fc.Duration(); d > 0 && d != astiav.NoPtsValue {
		info.Duration = float64(d) / float64(astiav.TimeBase)
	}
	if n := s.NbFrames(); n > 0 {
		info.Frames = n
	} else if info.Duration > 0 && info.AvgFPS > 0 {
		info.Frames = int64(math.Round(info.Duration * info.AvgFPS))
		info.Estimated = true
	} else {
		info.Estimated = true
	}
	return info
}

// streamRotation reads the display matrix and returns the clockwise rotation
// that shows the picture upright, snapped to a multiple of 90 degrees.
func streamRotation(s *astiav.Stream) int {
	b := s.SideData(astiav.PacketSideDataTypeDisplaymatrix)
	if len(b) < 36 {
		return 0
	}
	m, err := astiav.NewDisplayMatrixFromBytes(b)
	if err != nil {
		return 0
	}
	r := m.Rotation() // clockwise angle the picture was rotated by
	if math.IsNaN(r) {
		return 0
	}
	deg := int(math.Round(r/90)) * 90
	return ((deg % 360) + 360) % 360
}

// countPackets reads every packet of the video stream, for an exact count.
func (in *input) countPackets(ctx context.Context) (int64, error) {
	pkt := astiav.AllocPacket()
	defer pkt.Free()
	var n int64
	for {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		err := in.fc.ReadFrame(pkt)
		if errors.Is(err, astiav.ErrEof) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%w: counting frames: %v", ErrTruncated, err)
		}
		if pkt.StreamIndex() == in.info.StreamIndex {
			n++
		}
		pkt.Unref()
	}
}

// HasDecoder reports whether this build's FFmpeg has the decoder named
// name ("h264", "ffv1") and, when container is not empty, the demuxer
// named container ("matroska", "png_pipe"). The static build (make static)
// carries fewer than Debian's FFmpeg.
func HasDecoder(name, container string) bool {
	if astiav.FindDecoderByName(name) == nil {
		return false
	}
	return container == "" || astiav.FindInputFormat(container) != nil
}
