package decode

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/asticode/go-astiav"
)

const media = "../testdata/media"

// vfrPTS mirrors internal/mkmedia: frames 40, 20 and 80 ms apart in turn.
func vfrPTS(i int) float64 {
	steps := []float64{0.040, 0.020, 0.080}
	t := 0.0
	for k := 0; k < i; k++ {
		t += steps[k%3]
	}
	return t
}

// code reads the frame index that mkmedia draws as 8 blocks along the
// bottom-left edge of an RGB24 frame.
func code(f *Frame) int {
	v := 0
	for bit := 0; bit < 8; bit++ {
		x, y := bit*8+4, f.Height-4
		o := 3 * (y*f.Width + x)
		luma := (int(f.Data[o]) + int(f.Data[o+1]) + int(f.Data[o+2])) / 3
		v <<= 1
		if luma > 128 {
			v |= 1
		}
	}
	return v
}

// isRed reports whether pixel (x, y) of an RGB24 frame is the red marker.
func isRed(f *Frame, x, y int) bool {
	o := 3 * (y*f.Width + x)
	return f.Data[o] > 180 && f.Data[o+1] < 90 && f.Data[o+2] < 90
}

func TestMain(m *testing.M) {
	astiav.SetLogLevel(astiav.LogLevelQuiet)
	os.Exit(m.Run())
}

func TestProbe(t *testing.T) {
	tests := []struct {
		file             string
		container, codec string
		w, h, rotation   int
		frames           int64
		estimated        bool
		depth            int
		pixfmt, chroma   string
		fps              float64
	}{
		{"h264.mp4", "mov", "h264", 320, 240, 0, 50, false, 8, "yuv420p", "4:2:0", 25},
		{"hevc.mkv", "matroska", "hevc", 320, 240, 0, 40, true, 8, "yuv420p", "4:2:0", 20},
		{"hevc10.mkv", "matroska", "hevc", 160, 120, 0, 20, true, 10, "yuv420p10le", "4:2:0", 20},
		{"mpeg4.avi", "avi", "mpeg4", 320, 240, 0, 30, false, 8, "yuv420p", "4:2:0", 30},
		{"vp9.webm", "matroska", "vp9", 320, 240, 0, 30, true, 8, "yuv420p", "4:2:0", 30},
		{"rotated.mp4", "mov", "h264", 320, 240, 90, 20, false, 8, "yuv420p", "4:2:0", 25},
		{"resize.ts", "mpegts", "h264", 320, 240, 0, 50, true, 8, "yuv420p", "4:2:0", 25},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			info, err := Probe(context.Background(), filepath.Join(media, tt.file), ProbeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if info.Container != tt.container || info.Codec != tt.codec || info.Width != tt.w || info.Height != tt.h ||
				info.Rotation != tt.rotation || info.BitDepth != tt.depth || info.PixelFormat != tt.pixfmt || info.Chroma != tt.chroma {
				t.Errorf("got %+v", info)
			}
			if info.Estimated != tt.estimated {
				t.Errorf("estimated = %v, want %v", info.Estimated, tt.estimated)
			}
			if math.Abs(float64(info.Frames-tt.frames)) > 1 {
				t.Errorf("frames = %d, want %d±1", info.Frames, tt.frames)
			}
			if math.Abs(info.AvgFPS-tt.fps) > 0.01 {
				t.Errorf("avg fps = %v, want %v", info.AvgFPS, tt.fps)
			}
			if info.Duration <= 0 {
				t.Errorf("duration = %v", info.Duration)
			}
			exact, err := Probe(context.Background(), filepath.Join(media, tt.file), ProbeOptions{CountFrames: true})
			if err != nil {
				t.Fatal(err)
			}
			if exact.Frames != tt.frames || exact.Estimated {
				t.Errorf("counted frames = %d (estimated %v), want %d", exact.Frames, exact.Estimated, tt.frames)
			}
		})
	}
}

func TestProbeProfile(t *testing.T) {
	info, err := Probe(context.Background(), filepath.Join(media, "hevc10.mkv"), ProbeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Profile != "Main 10" {
		t.Errorf("profile = %q, want Main 10", info.Profile)
	}
}

// decodeAll decodes path and returns the frames' codes, indices, timestamps
// and sizes.
func decodeAll(t *testing.T, path string, opts Options) (codes []int, idx []int64, pts []float64, sizes [][2]int, st Stats) {
	t.Helper()
	d, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var f Frame
	for {
		err := d.Next(context.Background(), &f)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Data) != frameSize(f.Format, f.Width, f.Height) {
			t.Fatalf("frame %d: %d bytes for %dx%d %s", f.Index, len(f.Data), f.Width, f.Height, f.Format)
		}
		if f.Format == RGB24 {
			codes = append(codes, code(&f))
		}
		idx = append(idx, f.Index)
		pts = append(pts, f.PTS)
		sizes = append(sizes, [2]int{f.Width, f.Height})
	}
	return codes, idx, pts, sizes, d.Stats()
}

func TestDecodeAllFrames(t *testing.T) {
	tests := []struct {
		file   string
		frames int
		fps    float64
		ptsOf  func(i int) float64
		tol    float64
	}{
		{file: "h264.mp4", frames: 50, fps: 25},
		{file: "h264-faststart.mp4", frames: 50, fps: 25},
		{file: "hevc.mkv", frames: 40, fps: 20},
		{file: "hevc10.mkv", frames: 20, fps: 20},
		{file: "mpeg4.avi", frames: 30, fps: 30},
		{file: "vp9.webm", frames: 30, fps: 30, tol: 0.001},
		{file: "vfr.mkv", frames: 40, ptsOf: vfrPTS},
		{file: "resize.ts", frames: 50, fps: 25},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			codes, idx, pts, _, st := decodeAll(t, filepath.Join(media, tt.file), Options{})
			if len(codes) != tt.frames {
				t.Fatalf("%d frames, want %d", len(codes), tt.frames)
			}
			for i := range codes {
				want := float64(i) / tt.fps
				if tt.ptsOf != nil {
					want = tt.ptsOf(i)
				}
				if codes[i] != i || idx[i] != int64(i) || math.Abs(pts[i]-want) > tt.tol+1e-9 {
					t.Fatalf("frame %d: code %d index %d pts %.6f, want pts %.6f", i, codes[i], idx[i], pts[i], want)
				}
			}
			if st.CorruptPackets != 0 || st.Decoded != int64(tt.frames) || st.Emitted != int64(tt.frames) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestDecodeResolutionChange(t *testing.T) {
	_, _, _, sizes, _ := decodeAll(t, filepath.Join(media, "resize.ts"), Options{})
	for i, s := range sizes {
		want := [2]int{320, 240}
		if i >= 25 {
			want = [2]int{160, 120}
		}
		if s != want {
			t.Fatalf("frame %d is %dx%d, want %dx%d", i, s[0], s[1], want[0], want[1])
		}
	}
	// NV12 output follows the change too.
	_, _, _, sizes, _ = decodeAll(t, filepath.Join(media, "resize.ts"), Options{Format: NV12})
	if len(sizes) != 50 || sizes[0] != [2]int{320, 240} || sizes[49] != [2]int{160, 120} {
		t.Fatalf("NV12 sizes: first %v last %v of %d", sizes[0], sizes[len(sizes)-1], len(sizes))
	}
}

func TestDecodeRotation(t *testing.T) {
	d, err := Open(context.Background(), filepath.Join(media, "rotated.mp4"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var f Frame
	if err := d.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if f.Width != 240 || f.Height != 320 {
		t.Fatalf("upright size %dx%d, want 240x320", f.Width, f.Height)
	}
	if !isRed(&f, 4, 4) || isRed(&f, f.Width-5, 4) {
		t.Error("red marker is not in the top-left corner after rotation")
	}
	if code(&f) != 0 {
		t.Errorf("code %d, want 0", code(&f))
	}

	raw, err := Open(context.Background(), filepath.Join(media, "rotated.mp4"), Options{NoAutoRotate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if f.Width != 320 || f.Height != 240 || !isRed(&f, 4, f.Height-5) {
		t.Errorf("coded frame %dx%d should hold the marker bottom-left", f.Width, f.Height)
	}
}

func TestDecodeSampling(t *testing.T) {
	path := filepath.Join(media, "h264.mp4") // 50 frames at 25 fps
	tests := []struct {
		name string
		opts Options
		want []int
	}{
		{"stride 10", Options{Stride: 10}, []int{0, 10, 20, 30, 40}},
		{"fps 5", Options{FPS: 5}, []int{0, 5, 10, 15, 20, 25, 30, 35, 40, 45}},
		{"fps above source", Options{FPS: 100}, seq(0, 50, 1)},
		{"start and end", Options{Start: 1.0, End: 1.2}, []int{25, 26, 27, 28, 29}},
		{"start only", Options{Start: 1.8}, []int{45, 46, 47, 48, 49}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codes, idx, _, _, _ := decodeAll(t, path, tt.opts)
			if len(codes) != len(tt.want) {
				t.Fatalf("codes %v, want %v", codes, tt.want)
			}
			for i := range codes {
				if codes[i] != tt.want[i] || idx[i] != int64(tt.want[i]) {
					t.Fatalf("codes %v indices %v, want %v", codes, idx, tt.want)
				}
			}
		})
	}
}

func TestDecodeVFRSampling(t *testing.T) {
	// Timestamps 0, .04, .06, .14, .18, .20, .28, …: at 10 fps one frame per
	// 100 ms window is kept, the first at or after each grid point.
	_, _, pts, _, _ := decodeAll(t, filepath.Join(media, "vfr.mkv"), Options{FPS: 10})
	for i := 1; i < len(pts); i++ {
		if math.Floor(pts[i]*10+1e-6) == math.Floor(pts[i-1]*10+1e-6) {
			t.Fatalf("two frames in one 100 ms window: %v", pts)
		}
	}
	if len(pts) < 10 {
		t.Fatalf("only %d frames kept: %v", len(pts), pts)
	}
}

func seq(from, to, step int) []int {
	var s []int
	for i := from; i < to; i += step {
		s = append(s, i)
	}
	return s
}

func TestDecodeCorruptPackets(t *testing.T) {
	codes, _, _, _, st := decodeAll(t, filepath.Join(media, "corrupt.mkv"), Options{Threads: 1})
	if st.Packets != 50 {
		t.Errorf("read %d packets, want 50", st.Packets)
	}
	if st.CorruptPackets+st.DamagedFrames == 0 {
		t.Error("4 damaged packets went unnoticed")
	}
	if len(codes) < 30 {
		t.Errorf("only %d frames survived 4 damaged packets", len(codes))
	}
	if codes[0] != 0 || codes[len(codes)-1] != 49 {
		t.Errorf("first/last codes %d/%d, want 0/49", codes[0], codes[len(codes)-1])
	}
	t.Logf("corrupt.mkv: %+v", st)
}

// TestCorruptDecodesDeterministically: a decoder that may use several
// threads stops at the first corrupt packet with ErrNondeterministic,
// having returned no frame decoded after it, and one thread decodes the
// same pixels every time.
func TestCorruptDecodesDeterministically(t *testing.T) {
	path := filepath.Join(media, "corrupt.mkv")
	for _, threads := range []int{0, 2, 4} {
		d, err := Open(context.Background(), path, Options{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		n := 0
		for err = d.Next(context.Background(), &f); err == nil; err = d.Next(context.Background(), &f) {
			n++
		}
		d.Close()
		if !errors.Is(err, ErrNondeterministic) {
			t.Errorf("threads %d: %v after %d frames, want ErrNondeterministic", threads, err, n)
		}
		if n >= 20 { // packets 20-23 are damaged
			t.Errorf("threads %d: %d frames out before the corruption was reported", threads, n)
		}
	}
	var first []uint64
	for run := 0; run < 3; run++ {
		d, err := Open(context.Background(), path, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		var sums []uint64
		var f Frame
		for err = d.Next(context.Background(), &f); err == nil; err = d.Next(context.Background(), &f) {
			h := fnv.New64a()
			h.Write(f.Data)
			sums = append(sums, h.Sum64())
		}
		d.Close()
		if err != io.EOF {
			t.Fatal(err)
		}
		if run == 0 {
			first = sums
		} else if !slices.Equal(sums, first) {
			t.Fatalf("run %d decoded other pixels than run 0", run)
		}
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "gone.mp4"), filepath.Join(dir, "broken.mp4")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.mp4"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Playlists are refused; the static build has no playlist demuxers
	// and knows no such format.
	playlist := ErrPlaylist
	if !HasDecoder("h264", "concat") {
		playlist = ErrNotVideo
	}
	tests := []struct {
		path string
		want error
	}{
		{filepath.Join(media, "bad/empty.mp4"), ErrEmpty},
		{filepath.Join(media, "../hostile/playlist-loop.mp4"), playlist},
		{filepath.Join(media, "../hostile/playlist-hls.mp4"), playlist},
		{filepath.Join(media, "bad/truncated.mp4"), ErrNotVideo},
		{filepath.Join(media, "bad/random.mp4"), ErrNotVideo},
		{filepath.Join(media, "bad/audio-only.mkv"), ErrNoVideo},
		{filepath.Join(media, "bad/unknown-codec.mkv"), ErrUnsupportedCodec},
		{filepath.Join(dir, "broken.mp4"), ErrBrokenLink},
		{filepath.Join(dir, "missing.mp4"), os.ErrNotExist},
		{filepath.Join(dir, "folder.mp4"), ErrNotRegular},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			_, err := Probe(context.Background(), tt.path, ProbeOptions{})
			checkFileError(t, err, "probe", tt.path, tt.want)
			d, err := Open(context.Background(), tt.path, Options{})
			if err == nil {
				d.Close()
			}
			checkFileError(t, err, "open", tt.path, tt.want)
		})
	}
}

// TestNameWithColon probes and decodes a file named as cameras name
// recordings, by a relative path: FFmpeg alone would take "2024-05-01T08"
// for a protocol and fail with "Protocol not found".
func TestNameWithColon(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(media, "h264.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const name = "2024-05-01T08:00:00.mp4"
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	ctx := context.Background()
	info, err := Probe(ctx, name, ProbeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Frames != 50 {
		t.Errorf("probed %d frames, want 50", info.Frames)
	}
	d, err := Open(ctx, name, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var fr Frame
	if err := d.Next(ctx, &fr); err != nil {
		t.Fatal(err)
	}
}

func checkFileError(t *testing.T, err error, op, path string, want error) {
	t.Helper()
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: error %v (%T), want a *FileError", op, err, err)
	}
	if fe.Path != path || fe.Op != op {
		t.Errorf("error names %s %s, want %s %s", fe.Op, fe.Path, op, path)
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", op, err, want)
	}
}

func TestTruncatedMidStream(t *testing.T) {
	// Headers are intact and the media is cut: the frames before the cut
	// decode, then the decoder stops cleanly.
	codes, _, _, _, _ := decodeAll(t, filepath.Join(media, "bad/truncated-mid.mp4"), Options{Threads: 1})
	if len(codes) == 0 || len(codes) >= 50 {
		t.Fatalf("%d frames from a file cut at 60%%", len(codes))
	}
	for i, c := range codes {
		if c != i {
			t.Fatalf("frame %d has code %d", i, c)
		}
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Probe(ctx, filepath.Join(media, "h264.mp4"), ProbeOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("probe: %v", err)
	}
}

func TestHasDecoder(t *testing.T) {
	for _, tt := range []struct {
		name, container string
		want            bool
	}{
		{"h264", "", true},
		{"h264", "mov", true},
		{"hevc", "matroska", true},
		{"no-such-codec", "", false},
		{"h264", "no-such-container", false},
	} {
		if got := HasDecoder(tt.name, tt.container); got != tt.want {
			t.Errorf("HasDecoder(%q, %q) = %v", tt.name, tt.container, got)
		}
	}
}

// corpus is internal/mkmedia -corpus's folder: 40 frames at 25 frames/s
// of video time in each file.
const corpus = "../testdata/corpus"

// TestCorpusTimes decodes each file of the timestamp corpus, on one
// thread and on several: every frame comes out once, in order, with its
// decode index and the time the encoder gave it (i/25 s), whatever the
// container stores (both timestamps, decode order only, or nothing at all).
func TestCorpusTimes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpus, "*"))
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	for _, path := range files {
		for _, threads := range []int{1, 0} {
			t.Run(fmt.Sprintf("%s/threads=%d", filepath.Base(path), threads), func(t *testing.T) {
				codes, idx, pts, _, st := decodeAll(t, path, Options{Threads: threads})
				if len(codes) != 40 || st.Decoded != 40 {
					t.Fatalf("%d frames (%d decoded), want 40: codes %v", len(codes), st.Decoded, codes)
				}
				for i := range codes {
					if want := float64(i) / 25; codes[i] != i || idx[i] != int64(i) || math.Abs(pts[i]-want) > 1e-6 {
						t.Fatalf("frame %d: code %d index %d pts %.6f, want pts %.6f (all: %v)", i, codes[i], idx[i], pts[i], want, pts)
					}
				}
				if st.FirstPTS != pts[0] || st.LastPTS != pts[39] {
					t.Errorf("stats say times %g to %g, frames %g to %g", st.FirstPTS, st.LastPTS, pts[0], pts[39])
				}
			})
		}
	}
}
