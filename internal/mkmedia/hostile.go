package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"github.com/asticode/go-astiav"
)

// writeHostile writes the inputs of the reliability corpus that are not
// plainly broken: extreme and odd sizes, timestamps that go back, a
// container holding only subtitles, a picture named like a video. Each
// must be processed correctly or refused with a clear error.
func writeHostile(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	x264Still := map[string]string{"preset": "ultrafast", "crf": "40", "g": "25"}
	clips := []clip{
		{name: "tiny16.mp4", muxer: "mp4", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{16, 16, 10}}, fps: 25},
		// FFV1 keeps odd sizes exactly (4:2:0 chroma of ceil(w/2)×ceil(h/2)).
		{name: "odd-99x67.mkv", muxer: "matroska", encoder: "ffv1", pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{99, 67, 10}}, fps: 25},
		// Above NVDEC's 4096-pixel H.264 limit: GPU workers decode it on the CPU.
		{name: "8k.mp4", muxer: "mp4", encoder: "libx264", opts: x264Still, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{7680, 4320, 2}}, fps: 25},
		{name: "segment.ts", muxer: "mpegts", encoder: "libx264", opts: x264, pixFmt: astiav.PixelFormatYuv420P,
			segments: []segment{{320, 240, 10}}, fps: 25},
	}
	for _, c := range clips {
		path := filepath.Join(out, c.name)
		if err := writeClip(path, c); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	// The same transport stream twice: timestamps jump back to the start
	// halfway through.
	seg := filepath.Join(out, "segment.ts")
	b, err := os.ReadFile(seg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "backwards.ts"), append(b, b...), 0o644); err != nil {
		return err
	}
	if err := os.Remove(seg); err != nil {
		return err
	}
	if err := writeSubtitlesOnly(filepath.Join(out, "subtitles-only.mkv")); err != nil {
		return fmt.Errorf("subtitles-only.mkv: %w", err)
	}
	var img bytes.Buffer
	pic := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range pic.Pix {
		pic.Pix[i] = byte(i)
	}
	pic.Set(0, 0, color.White)
	if err := png.Encode(&img, pic); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "picture.png.mp4"), img.Bytes(), 0o644); err != nil {
		return err
	}
	// Playlists named like videos: an ffconcat list naming itself (FFmpeg
	// would open it inside itself until file descriptors run out) and an
	// HLS playlist pointing at another file of the folder.
	playlists := map[string]string{
		"playlist-loop.mp4": "ffconcat version 1.0\nfile playlist-loop.mp4\n",
		"playlist-hls.mp4":  "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ntiny16.mp4\n#EXT-X-ENDLIST\n",
	}
	for name, text := range playlists {
		if err := os.WriteFile(filepath.Join(out, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	fmt.Println("wrote", out)
	return nil
}

// writeSubtitlesOnly writes a Matroska file whose one stream is SubRip text.
func writeSubtitlesOnly(path string) error {
	pkts := []rawPacket{{data: []byte("first line"), pts: 0, dur: 1500}, {data: []byte("second line"), pts: 2000, dur: 1500}}
	return writeStream(path, astiav.NewRational(1, 1000), func(cp *astiav.CodecParameters) {
		cp.SetMediaType(astiav.MediaTypeSubtitle)
		cp.SetCodecID(astiav.CodecIDSubrip)
	}, pkts)
}
