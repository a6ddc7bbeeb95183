package main

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"github.com/asticode/go-astiav"
)

// writeGPUBench writes 8 s of 1080p at 30 fps and about 5 Mbit/s as H.264
// and HEVC in MP4, and the same bitstreams as Annex-B elementary streams
// (.h264, .hevc) for shared/gpu/nvdec_ceiling. Existing files are kept.
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
// into dst as a raw elementary stream.
func annexB(src, dst, bsf string) error {
	fc := astiav.AllocFormatContext()
	if err := fc.OpenInput(src, nil, nil); err != nil {
		return err
	}
	defer func() { fc.CloseInput(); fc.Free() }()
	if err := fc.FindStreamInfo(nil); err != nil {
		return err
	}
	st := fc.Streams()[0]
	f := astiav.FindBitStreamFilterByName(bsf)
	if f == nil {
		return fmt.Errorf("no %s filter", bsf)
	}
	ctx, err := astiav.AllocBitStreamFilterContext(f)
	if err != nil {
		return err
	}
	defer ctx.Free()
	if err := st.CodecParameters().Copy(ctx.InputCodecParameters()); err != nil {
		return err
	}
	ctx.SetInputTimeBase(st.TimeBase())
	if err := ctx.Initialize(); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	pkt := astiav.AllocPacket()
	defer pkt.Free()
	for {
		err := fc.ReadFrame(pkt)
		if errors.Is(err, astiav.ErrEof) {
			return out.Sync()
		}
		if err != nil {
			return err
		}
		if err := ctx.SendPacket(pkt); err != nil {
			return err
		}
		pkt.Unref()
		for ctx.ReceivePacket(pkt) == nil {
			if _, err := out.Write(pkt.Data()); err != nil {
				return err
			}
			pkt.Unref()
		}
	}
}
