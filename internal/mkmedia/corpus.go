package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/asticode/go-astiav"
)

// writeCorpus writes the timestamp corpus: the containers and timestamp
// kinds users bring that testdata/media lacks, each 40 frames of 320×240
// with the frame's index drawn in, at 25 frames/s of video time. CPU and
// GPU workers must give every file the same frames and times:
//
//   - raw Annex-B H.264 and HEVC with B-frames (no timestamps at all);
//   - AVI, which stores decode order only: H.264 with B-frames, and H.264
//     and MPEG-4 part 2 whose header says 50 frames/s where the video holds
//     25 (a frame every other tick, as cameras write);
//   - MOV, MPEG-PS and MPEG-TS H.264, MJPEG in AVI;
//   - H.264 with open GOPs (leading B-frames referring across keyframes).
func writeCorpus(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	const w, h, n = 320, 240, 40
	seg := []segment{{w, h, n}}
	bf := map[string]string{"preset": "veryfast", "crf": "26", "bf": "2", "g": "20"}
	noB := map[string]string{"preset": "veryfast", "crf": "26", "bf": "0", "g": "20"}
	openGOP := map[string]string{"preset": "veryfast", "crf": "26", "bf": "3", "g": "12", "x264-params": "open-gop=1"}
	x265 := map[string]string{"preset": "ultrafast", "crf": "30", "x265-params": "log-level=error:keyint=20:bframes=3"}
	yuv := astiav.PixelFormatYuv420P
	clips := []clip{
		{name: "h264.mov", muxer: "mov", encoder: "libx264", opts: bf, pixFmt: yuv, segments: seg, fps: 25},
		{name: "h264.mpg", muxer: "vob", encoder: "libx264", opts: bf, pixFmt: yuv, segments: seg, fps: 25},
		{name: "h264.ts", muxer: "mpegts", encoder: "libx264", opts: bf, pixFmt: yuv, segments: seg, fps: 25},
		{name: "h264-bframes.avi", muxer: "avi", encoder: "libx264", opts: bf, pixFmt: yuv, segments: seg, fps: 25},
		{name: "h264-50hz.avi", muxer: "avi", encoder: "libx264", opts: noB, pixFmt: yuv, segments: seg, fps: 25, ticks: 2},
		{name: "mpeg4-50hz.avi", muxer: "avi", encoder: "mpeg4", opts: map[string]string{"q": "4", "g": "12"},
			pixFmt: yuv, segments: seg, fps: 25, ticks: 2},
		{name: "mjpeg.avi", muxer: "avi", encoder: "mjpeg", opts: map[string]string{"q": "4"},
			pixFmt: astiav.PixelFormatYuvj420P, segments: seg, fps: 25},
		{name: "h264-opengop.mkv", muxer: "matroska", encoder: "libx264", opts: openGOP, pixFmt: yuv, segments: seg, fps: 25},
	}
	for _, c := range clips {
		path := filepath.Join(out, c.name)
		if err := writeClip(path, c); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Println("wrote", path)
	}
	// Raw streams: the bitstreams of MP4s, without the container.
	raws := []struct {
		c        clip
		bsf, raw string
	}{
		{clip{name: "h264-raw.mp4", muxer: "mp4", encoder: "libx264", opts: bf, pixFmt: yuv, segments: seg, fps: 25},
			"h264_mp4toannexb", "raw.h264"},
		{clip{name: "hevc-raw.mp4", muxer: "mp4", encoder: "libx265", opts: x265, pixFmt: yuv, segments: seg, fps: 25},
			"hevc_mp4toannexb", "raw.hevc"},
	}
	for _, r := range raws {
		tmp := filepath.Join(out, r.c.name)
		if err := writeClip(tmp, r.c); err != nil {
			return fmt.Errorf("%s: %w", r.c.name, err)
		}
		dst := filepath.Join(out, r.raw)
		err := annexB(tmp, dst, r.bsf)
		os.Remove(tmp)
		if err != nil {
			return fmt.Errorf("%s: %w", r.raw, err)
		}
		fmt.Println("wrote", dst)
	}
	return nil
}
