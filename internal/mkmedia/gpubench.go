package main

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"

	"github.com/asticode/go-astiav"
)

// writeGPUBench writes 8 s of 1080p at 30 fps and about 5 Mbit/s as H.264
// and HEVC in MP4, the same bitstreams as Annex-B elementary streams
// (.h264, .hevc) for shared/gpu/nvdec_ceiling and for runs over raw
// streams, and the H.264 one in AVI (1080p-h264.avi). Existing files are
// kept.
func writeGPUBench(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(3))
	tex := make([]byte, 3*2048*1152)
	for i := range tex {
		tex[i] = byte(rng.Intn(48))
	}
	clips := []struct {
		c   clip
		bsf string
		raw string
	}{
		{clip{name: "1080p-h264.mp4", muxer: "mp4", encoder: "libx264",
			opts:   map[string]string{"preset": "veryfast", "b": "5M", "maxrate": "5M", "bufsize": "10M", "g": "60", "bf": "2"},
			pixFmt: astiav.PixelFormatYuv420P, segments: []segment{{1920, 1080, 240}}, fps: 30, texture: tex}, "h264_mp4toannexb", "1080p.h264"},
		{clip{name: "1080p-hevc.mp4", muxer: "mp4", encoder: "libx265",
			opts:   map[string]string{"preset": "ultrafast", "x265-params": "bitrate=5000:vbv-maxrate=5000:vbv-bufsize=10000:keyint=60:log-level=error"},
			pixFmt: astiav.PixelFormatYuv420P, segments: []segment{{1920, 1080, 240}}, fps: 30, texture: tex}, "hevc_mp4toannexb", "1080p.hevc"},
	}
	for _, cl := range clips {
		path := filepath.Join(dir, cl.c.name)
		if _, err := os.Stat(path); err != nil {
			if err := writeClip(path, cl.c); err != nil {
				return fmt.Errorf("%s: %w", cl.c.name, err)
			}
			fmt.Println("wrote", path)
		}
		raw := filepath.Join(dir, cl.raw)
		if _, err := os.Stat(raw); err != nil {
			if err := annexB(path, raw, cl.bsf); err != nil {
				return fmt.Errorf("%s: %w", cl.raw, err)
			}
			fmt.Println("wrote", raw)
		}
	}
	avi := filepath.Join(dir, "1080p-h264.avi")
	if _, err := os.Stat(avi); err != nil {
		if err := remux(filepath.Join(dir, "1080p-h264.mp4"), avi, "avi", "h264_mp4toannexb"); err != nil {
			return fmt.Errorf("1080p-h264.avi: %w", err)
		}
		fmt.Println("wrote", avi)
	}
	return nil
}

// addTexture adds a noise texture, shifted with the frame, to packed RGB.
func addTexture(pix, tex []byte, frame int) {
	n := len(pix)
	off := (frame * 3 * 7) % (len(tex) - n)
	for i := 0; i < n; i++ {
		v := int(pix[i]) + int(tex[off+i]) - 24
		if v < 0 {
			v = 0
		} else if v > 255 {
			v = 255
		}
		pix[i] = byte(v)
	}
}

// annexB copies the video stream of src through the bitstream filter bsf
// (h264_mp4toannexb, hevc_mp4toannexb) into dst as a raw elementary stream.
func annexB(src, dst, bsf string) error {
	return remux(src, dst, strings.TrimSuffix(bsf, "_mp4toannexb"), bsf)
}

// remux copies the video stream of src through the bitstream filter bsf
// into a new container (muxer) at dst, timed by the stream's frame rate:
// the same bitstream in another container.
func remux(src, dst, muxer, bsf string) error {
	in := astiav.AllocFormatContext()
	if err := in.OpenInput(src, nil, nil); err != nil {
		return err
	}
	defer func() { in.CloseInput(); in.Free() }()
	if err := in.FindStreamInfo(nil); err != nil {
		return err
	}
	ist := in.Streams()[0]
	bc, err := astiav.AllocBitStreamFilterContext(astiav.FindBitStreamFilterByName(bsf))
	if err != nil {
		return err
	}
	defer bc.Free()
	if err := ist.CodecParameters().Copy(bc.InputCodecParameters()); err != nil {
		return err
	}
	bc.SetInputTimeBase(ist.TimeBase())
	if err := bc.Initialize(); err != nil {
		return err
	}
	out, err := astiav.AllocOutputFormatContext(nil, muxer, dst)
	if err != nil {
		return err
	}
	defer out.Free()
	// Fields set one by one, not copied: the MP4's extradata (avcC) must
	// stay behind, since the parameter sets travel in the Annex-B packets,
	// as in a camera's AVI.
	ost := out.NewStream(nil)
	icp, ocp := ist.CodecParameters(), ost.CodecParameters()
	ocp.SetMediaType(icp.MediaType())
	ocp.SetCodecID(icp.CodecID())
	ocp.SetWidth(icp.Width())
	ocp.SetHeight(icp.Height())
	ocp.SetPixelFormat(icp.PixelFormat())
	ocp.SetProfile(icp.Profile())
	fr := ist.AvgFrameRate()
	tb := astiav.NewRational(fr.Den(), fr.Num())
	ost.SetTimeBase(tb)
	pb, err := astiav.OpenIOContext(dst, astiav.NewIOContextFlags(astiav.IOContextFlagWrite))
	if err != nil {
		return err
	}
	defer pb.Close()
	out.SetPb(pb)
	if err := out.WriteHeader(nil); err != nil {
		return err
	}
	pkt := astiav.AllocPacket()
	defer pkt.Free()
	for {
		err := in.ReadFrame(pkt)
		if errors.Is(err, astiav.ErrEof) {
			return out.WriteTrailer()
		}
		if err != nil {
			return err
		}
		if err := bc.SendPacket(pkt); err != nil {
			return err
		}
		pkt.Unref()
		for bc.ReceivePacket(pkt) == nil {
			pkt.RescaleTs(ist.TimeBase(), ost.TimeBase())
			pkt.SetStreamIndex(0)
			if err := out.WriteInterleavedFrame(pkt); err != nil {
				return err
			}
		}
	}
}
