// Command mkmedia writes the small video files under testdata/media that the
// tests decode, with FFmpeg's encoders (libx264, libx265, libvpx, mpeg4)
// through go-astiav. It runs with Debian's shared FFmpeg, which has those
// encoders; the files are committed so that tests need no encoder.
//
//	go run ./internal/mkmedia -out testdata/media
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"github.com/asticode/go-astiav"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

func main() {
	out := flag.String("out", "testdata/media", "output folder")
	bench := flag.String("bench", "", "write the benchmark inputs (a 720p clip and a small model) into this folder instead")
	gpuBench := flag.String("gpu-bench", "", "write the GPU benchmark inputs (1080p H.264 and HEVC, MP4 and Annex-B) into this folder instead")
	corpus := flag.String("corpus", "", "write the timestamp corpus (raw streams, AVI, MOV, MPEG-PS, MJPEG, open GOPs) into this folder instead")
	hostile := flag.String("hostile", "", "write the reliability corpus (extreme sizes, timestamps going back, subtitles only, a picture and playlists named .mp4) into this folder instead")
	flag.Parse()
	astiav.SetLogLevel(astiav.LogLevelError)
	var err error
	switch {
	case *bench != "":
		err = writeBench(*bench)
	case *gpuBench != "":
		err = writeGPUBench(*gpuBench)
	case *corpus != "":
		err = writeCorpus(*corpus)
	case *hostile != "":
		err = writeHostile(*hostile)
	default:
		err = run(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkmedia:", err)
		os.Exit(1)
	}
}

// segment is a run of frames of one size.
type segment struct{ w, h, frames int }

// clip describes one file to write.
type clip struct {
	name     string
	muxer    string
	encoder  string
	opts     map[string]string
	pixFmt   astiav.PixelFormat
	segments []segment
	fps      int
	// ptsMS, when set, gives frame i's timestamp in milliseconds (variable
	// frame rate); otherwise frames are 1/fps apart.
	ptsMS func(i int) int64
	// ticks, when above 1, makes the time base 1/(fps×ticks) with frames
	// ticks apart: an AVI then states fps×ticks frames/s and skips ticks.
	ticks int
	// rotation, when set, stores pictures turned counter-clockwise and a
	// display matrix asking players to turn them back clockwise.
	rotation int
	// texture adds a moving noise texture, so that encoders spend a
	// realistic bitrate.
	texture []byte
	// damage, when set, replaces the payload of packet i with random bytes,
	// keeping the first 5 (NAL length and header) so framing stays valid.
	damage func(i int) bool
}

var x264 = map[string]string{"preset": "veryfast", "crf": "26", "bf": "2", "g": "25"}

func run(out string) error {
	if err := os.MkdirAll(filepath.Join(out, "bad"), 0o755); err != nil {
		return err
	}
	const w, h = 320, 240
	clips := []clip{
		{name: "h264.mp4", muxer: "mp4", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{w, h, 50}}, fps: 25},
		{name: "h264-faststart.mp4", muxer: "mp4", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{w, h, 50}}, fps: 25},
		{name: "hevc.mkv", muxer: "matroska", encoder: "libx265",
			opts:   map[string]string{"preset": "ultrafast", "crf": "30", "x265-params": "log-level=error:keyint=25"},
			pixFmt: astiav.PixelFormatYuv420P, segments: []segment{{w, h, 40}}, fps: 20},
		{name: "hevc10.mkv", muxer: "matroska", encoder: "libx265",
			opts:   map[string]string{"preset": "ultrafast", "crf": "30", "x265-params": "log-level=error:keyint=25"},
			pixFmt: astiav.PixelFormatYuv420P10Le, segments: []segment{{160, 120, 20}}, fps: 20},
		{name: "mpeg4.avi", muxer: "avi", encoder: "mpeg4", opts: map[string]string{"q": "4", "g": "12"},
			pixFmt: astiav.PixelFormatYuv420P, segments: []segment{{w, h, 30}}, fps: 30},
		{name: "vp9.webm", muxer: "webm", encoder: "libvpx-vp9",
			opts:   map[string]string{"deadline": "realtime", "cpu-used": "8", "b": "300k", "g": "30"},
			pixFmt: astiav.PixelFormatYuv420P, segments: []segment{{w, h, 30}}, fps: 30},
		{name: "rotated.mp4", muxer: "mp4", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{240, 320, 20}}, fps: 25, rotation: 90},
		{name: "vfr.mkv", muxer: "matroska", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{w, h, 40}}, fps: 25, ptsMS: vfrPTS},
		{name: "resize.ts", muxer: "mpegts", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{w, h, 25}, {160, 120, 25}}, fps: 25},
		{name: "corrupt.mkv", muxer: "matroska", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{w, h, 50}}, fps: 25, damage: func(i int) bool { return i >= 20 && i < 24 }},
	}
	for _, c := range clips {
		path := filepath.Join(out, c.name)
		if err := writeClip(path, c); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Println("wrote", path)
	}
	if err := moveMoovFirst(filepath.Join(out, "h264-faststart.mp4")); err != nil {
		return err
	}
	return writeBad(out)
}

// frameDuration is the nominal duration of one frame in the clip's time base,
// so that muxers know how long the last frame lasts.
func frameDuration(c clip) int64 {
	if c.ptsMS != nil {
		return 40
	}
	return int64(max(c.ticks, 1))
}

// writeBench writes 720p.mp4 (10 s of 1280×720 H.264 at 25 fps) and
// tiny.onnx (onnxtest.TinyYOLO at 640) for `make bench`, unless present.
func writeBench(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	clipPath := filepath.Join(dir, "720p.mp4")
	if _, err := os.Stat(clipPath); err != nil {
		c := clip{name: "720p.mp4", muxer: "mp4", encoder: "libx264",
			opts:   map[string]string{"preset": "veryfast", "crf": "20", "g": "50", "bf": "2"},
			pixFmt: astiav.PixelFormatYuv420P, segments: []segment{{1280, 720, 250}}, fps: 25}
		if err := writeClip(clipPath, c); err != nil {
			return fmt.Errorf("720p.mp4: %w", err)
		}
	}
	model, err := onnxtest.TinyYOLO(640, 80, 1)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tiny.onnx"), model, 0o644)
}

// vfrPTS spaces frames 40, 20 and 80 ms apart in turn.
func vfrPTS(i int) int64 {
	steps := []int64{40, 20, 80}
	var t int64
	for k := 0; k < i; k++ {
		t += steps[k%len(steps)]
	}
	return t
}

func writeClip(path string, c clip) (err error) {
	fc, err := astiav.AllocOutputFormatContext(nil, c.muxer, path)
	if err != nil {
		return fmt.Errorf("output context: %w", err)
	}
	defer fc.Free()
	codec := astiav.FindEncoderByName(c.encoder)
	if codec == nil {
		return fmt.Errorf("encoder %s not in this FFmpeg", c.encoder)
	}
	tb := astiav.NewRational(1, c.fps*max(c.ticks, 1))
	if c.ptsMS != nil {
		tb = astiav.NewRational(1, 1000)
	}
	st := fc.NewStream(nil)
	global := fc.OutputFormat().Flags().Has(astiav.IOFormatFlagGlobalheader)
	rng := rand.New(rand.NewSource(7))

	var pkts []*astiav.Packet
	frameIdx := 0
	for si, seg := range c.segments {
		cw, ch := seg.w, seg.h
		if c.rotation == 90 {
			cw, ch = seg.h, seg.w
		}
		enc, err := openEncoder(codec, c, cw, ch, tb, global && si == 0)
		if err != nil {
			return err
		}
		if si == 0 {
			if err := st.CodecParameters().FromCodecContext(enc); err != nil {
				enc.Free()
				return err
			}
			st.SetTimeBase(tb)
			if c.rotation != 0 {
				m := astiav.NewDisplayMatrixFromRotation(float64(c.rotation))
				if err := st.AddSideData(astiav.PacketSideDataTypeDisplaymatrix, m.Bytes()); err != nil {
					enc.Free()
					return err
				}
			}
		}
		for i := 0; i < seg.frames; i++ {
			pix := picture(frameIdx, seg.w, seg.h)
			if c.texture != nil {
				addTexture(pix, c.texture, frameIdx)
			}
			if c.rotation == 90 {
				pix = rotateCCW(pix, seg.w, seg.h)
			}
			pts := int64(frameIdx * max(c.ticks, 1))
			if c.ptsMS != nil {
				pts = c.ptsMS(frameIdx)
			}
			got, err := encodeFrame(enc, c.pixFmt, cw, ch, pix, pts)
			if err != nil {
				enc.Free()
				return err
			}
			pkts = append(pkts, got...)
			frameIdx++
		}
		got, err := drain(enc, nil)
		enc.Free()
		if err != nil {
			return err
		}
		pkts = append(pkts, got...)
	}

	if !fc.OutputFormat().Flags().Has(astiav.IOFormatFlagNofile) {
		pb, err := astiav.OpenIOContext(path, astiav.NewIOContextFlags(astiav.IOContextFlagWrite))
		if err != nil {
			return err
		}
		defer pb.Close()
		fc.SetPb(pb)
	}
	if err := fc.WriteHeader(nil); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	for i, p := range pkts {
		if c.damage != nil && c.damage(i) {
			junk := append([]byte(nil), p.Data()...)
			if len(junk) > 5 {
				rng.Read(junk[5:])
			}
			np := astiav.AllocPacket()
			if err := np.FromData(junk); err != nil {
				return err
			}
			np.SetPts(p.Pts())
			np.SetDts(p.Dts())
			np.SetDuration(p.Duration())
			p.Free()
			p = np
		}
		p.SetDuration(frameDuration(c))
		p.SetStreamIndex(st.Index())
		p.RescaleTs(tb, st.TimeBase())
		if err := fc.WriteInterleavedFrame(p); err != nil {
			return fmt.Errorf("write packet %d: %w", i, err)
		}
		p.Free()
	}
	return fc.WriteTrailer()
}

func openEncoder(codec *astiav.Codec, c clip, w, h int, tb astiav.Rational, global bool) (*astiav.CodecContext, error) {
	enc := astiav.AllocCodecContext(codec)
	enc.SetWidth(w)
	enc.SetHeight(h)
	enc.SetPixelFormat(c.pixFmt)
	enc.SetTimeBase(tb)
	enc.SetFramerate(astiav.NewRational(c.fps, 1))
	enc.SetThreadCount(1)
	if global {
		enc.SetFlags(enc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	}
	d := astiav.NewDictionary()
	defer d.Free()
	for k, v := range c.opts {
		if err := d.Set(k, v, 0); err != nil {
			enc.Free()
			return nil, err
		}
	}
	if err := enc.Open(codec, d); err != nil {
		enc.Free()
		return nil, fmt.Errorf("open %s: %w", codec.Name(), err)
	}
	return enc, nil
}

// encodeFrame converts packed RGB to the encoder's format and encodes it.
func encodeFrame(enc *astiav.CodecContext, pf astiav.PixelFormat, w, h int, rgb []byte, pts int64) ([]*astiav.Packet, error) {
	src := astiav.AllocFrame()
	defer src.Free()
	src.SetWidth(w)
	src.SetHeight(h)
	src.SetPixelFormat(astiav.PixelFormatRgb24)
	if err := src.AllocBuffer(0); err != nil {
		return nil, err
	}
	if err := fillFrame(src, rgb); err != nil {
		return nil, err
	}
	dst := astiav.AllocFrame()
	defer dst.Free()
	dst.SetWidth(w)
	dst.SetHeight(h)
	dst.SetPixelFormat(pf)
	if err := dst.AllocBuffer(0); err != nil {
		return nil, err
	}
	sws, err := astiav.CreateSoftwareScaleContext(w, h, astiav.PixelFormatRgb24, w, h, pf,
		astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagBilinear))
	if err != nil {
		return nil, err
	}
	defer sws.Free()
	if err := sws.ScaleFrame(src, dst); err != nil {
		return nil, err
	}
	dst.SetPts(pts)
	return drain(enc, dst)
}

// drain sends f (nil to flush) and returns the packets the encoder gives.
func drain(enc *astiav.CodecContext, f *astiav.Frame) ([]*astiav.Packet, error) {
	if err := enc.SendFrame(f); err != nil {
		return nil, fmt.Errorf("send frame: %w", err)
	}
	var out []*astiav.Packet
	for {
		p := astiav.AllocPacket()
		err := enc.ReceivePacket(p)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			p.Free()
			return out, nil
		}
		if err != nil {
			p.Free()
			return nil, fmt.Errorf("receive packet: %w", err)
		}
		out = append(out, p)
	}
}

// moveMoovFirst rewrites an MP4 whose moov box follows mdat so that moov
// comes first (what `-movflags faststart` does), fixing chunk offsets.
func moveMoovFirst(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	boxes, err := topBoxes(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var ftyp, moov, mdat []byte
	var rest [][]byte
	for _, bx := range boxes {
		switch string(bx[4:8]) {
		case "ftyp":
			ftyp = bx
		case "moov":
			moov = append([]byte(nil), bx...)
		case "mdat":
			mdat = bx
		default:
			rest = append(rest, bx)
		}
	}
	if ftyp == nil || moov == nil || mdat == nil {
		return fmt.Errorf("%s: missing ftyp, moov or mdat", path)
	}
	shift := int64(len(moov))
	if err := shiftChunkOffsets(moov, shift); err != nil {
		return err
	}
	var out bytes.Buffer
	out.Write(ftyp)
	out.Write(moov)
	for _, r := range rest {
		out.Write(r)
	}
	out.Write(mdat)
	return os.WriteFile(path, out.Bytes(), 0o644)
}
