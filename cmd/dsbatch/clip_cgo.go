package main

// The preview clip encoder: the one place the CLI writes pixels into an
// FFmpeg frame, which go-astiav v0.16 cannot do.

//#cgo pkg-config: libavutil
//#include <libavutil/frame.h>
//#include <libavutil/imgutils.h>
//
//static int dsb_fill_rgba(AVFrame *f, const uint8_t *pix, int stride) {
//	const uint8_t *data[4] = { pix, NULL, NULL, NULL };
//	int ls[4] = { stride, 0, 0, 0 };
//	av_image_copy(f->data, f->linesize, data, ls, f->format, f->width, f->height);
//	return 0;
//}
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/asticode/go-astiav"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// writePreviewClip encodes the selected frames, annotated, as an MP4 at the
// video's frame rate divided by the step, written under a temporary name.
func writePreviewClip(ctx context.Context, video, to string, sel frameSel, data previewData, tileW int) error {
	info, err := decode.Probe(ctx, video, decode.ProbeOptions{})
	if err != nil {
		return err
	}
	codec := astiav.FindEncoderByName("libx264")
	if codec == nil {
		codec = astiav.FindEncoderByName("mpeg4")
	}
	if codec == nil {
		return errors.New("preview: this dsbatch has no video encoder (the static build only decodes): write a .png sheet, or use the bin/dsbatch that make setup builds")
	}
	fps := info.AvgFPS
	if sel.at < 0 && sel.stride > 1 {
		fps /= float64(sel.stride)
	}
	if fps <= 0 {
		fps = 25
	}
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".tmp.mp4")
	defer os.Remove(tmp)
	enc := &clipEncoder{codec: codec, fps: fps, path: tmp}
	defer enc.close()
	n := 0
	err = renderFrames(ctx, video, sel, data, tileW, func(t tile) (bool, error) {
		n++
		return true, enc.add(t)
	})
	if err == nil && n == 0 {
		err = fmt.Errorf("preview %s: no frame in the selection", video)
	}
	if err == nil {
		err = enc.finish()
	}
	if err != nil {
		return fmt.Errorf("preview %s: %w", to, err)
	}
	return atomicfile.Rename(tmp, to)
}

// clipEncoder encodes RGBA pictures of one size into an MP4 file.
type clipEncoder struct {
	codec  *astiav.Codec
	fps    float64
	path   string
	fc     *astiav.FormatContext
	pb     *astiav.IOContext
	cc     *astiav.CodecContext
	st     *astiav.Stream
	src    *astiav.Frame
	dst    *astiav.Frame
	sws    *astiav.SoftwareScaleContext
	pkt    *astiav.Packet
	w, h   int
	frames int64
}

func (e *clipEncoder) open(w, h int) error {
	// Encoders want even sizes.
	e.w, e.h = w&^1, h&^1
	fc, err := astiav.AllocOutputFormatContext(nil, "mp4", e.path)
	if err != nil {
		return err
	}
	e.fc = fc
	e.cc = astiav.AllocCodecContext(e.codec)
	e.cc.SetWidth(e.w)
	e.cc.SetHeight(e.h)
	e.cc.SetPixelFormat(astiav.PixelFormatYuv420P)
	den := int(math.Round(e.fps * 1000))
	e.cc.SetTimeBase(astiav.NewRational(1000, den))
	e.cc.SetFramerate(astiav.NewRational(den, 1000))
	if fc.OutputFormat().Flags().Has(astiav.IOFormatFlagGlobalheader) {
		e.cc.SetFlags(e.cc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	}
	if err := e.cc.Open(e.codec, nil); err != nil {
		return fmt.Errorf("open %s encoder: %w", e.codec.Name(), err)
	}
	e.st = fc.NewStream(nil)
	if err := e.st.CodecParameters().FromCodecContext(e.cc); err != nil {
		return err
	}
	e.st.SetTimeBase(e.cc.TimeBase())
	if e.pb, err = astiav.OpenIOContext(e.path, astiav.NewIOContextFlags(astiav.IOContextFlagWrite)); err != nil {
		return err
	}
	fc.SetPb(e.pb)
	if err := fc.WriteHeader(nil); err != nil {
		return err
	}
	e.src, e.dst, e.pkt = astiav.AllocFrame(), astiav.AllocFrame(), astiav.AllocPacket()
	e.src.SetWidth(e.w)
	e.src.SetHeight(e.h)
	e.src.SetPixelFormat(astiav.PixelFormatRgba)
	if err := e.src.AllocBuffer(0); err != nil {
		return err
	}
	e.sws, err = astiav.CreateSoftwareScaleContext(e.w, e.h, astiav.PixelFormatRgba, e.w, e.h, astiav.PixelFormatYuv420P,
		astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagBilinear))
	return err
}

func (e *clipEncoder) add(t tile) error {
	if e.fc == nil {
		if err := e.open(t.img.Rect.Dx(), t.img.Rect.Dy()); err != nil {
			return err
		}
	}
	if t.img.Rect.Dx() < e.w || t.img.Rect.Dy() < e.h {
		return fmt.Errorf("frame size changed to %dx%d in a %dx%d clip", t.img.Rect.Dx(), t.img.Rect.Dy(), e.w, e.h)
	}
	C.dsb_fill_rgba((*C.AVFrame)(e.src.UnsafePointer()), (*C.uint8_t)(unsafe.Pointer(&t.img.Pix[0])), C.int(t.img.Stride))
	if err := e.sws.ScaleFrame(e.src, e.dst); err != nil {
		return err
	}
	e.dst.SetPts(e.frames)
	e.frames++
	return e.send(e.dst)
}

// send encodes f (nil flushes) and writes the packets out.
func (e *clipEncoder) send(f *astiav.Frame) error {
	if err := e.cc.SendFrame(f); err != nil {
		return err
	}
	for {
		err := e.cc.ReceivePacket(e.pkt)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			return err
		}
		e.pkt.SetDuration(1) // one frame, in the codec's time base of 1/fps
		e.pkt.SetStreamIndex(e.st.Index())
		e.pkt.RescaleTs(e.cc.TimeBase(), e.st.TimeBase())
		err = e.fc.WriteInterleavedFrame(e.pkt)
		e.pkt.Unref()
		if err != nil {
			return err
		}
	}
}

func (e *clipEncoder) finish() error {
	if err := e.send(nil); err != nil {
		return err
	}
	return e.fc.WriteTrailer()
}

// close frees everything open allocated.
func (e *clipEncoder) close() {
	if e.sws != nil {
		e.sws.Free()
	}
	for _, f := range []*astiav.Frame{e.src, e.dst} {
		if f != nil {
			f.Free()
		}
	}
	if e.pkt != nil {
		e.pkt.Free()
	}
	if e.cc != nil {
		e.cc.Free()
	}
	if e.pb != nil {
		e.pb.Close()
	}
	if e.fc != nil {
		e.fc.Free()
	}
}
