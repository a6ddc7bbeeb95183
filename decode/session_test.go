package decode

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// countSink counts a session's frames since its last restart.
type countSink struct {
	frames, restarts int
	cpu              bool
	rotation         int
	failAt           int // fail the frame of this count (0: never)
}

func (s *countSink) Frame(f *SessionFrame) error {
	s.cpu = f.CPU != nil && f.GPU == nil
	if s.cpu && f.CPU.Format != YUV420P {
		return errors.New("not planar YUV 4:2:0")
	}
	if s.cpu {
		s.rotation = f.CPU.Rotation
	}
	s.frames++
	if s.failAt > 0 && s.frames == s.failAt {
		return errors.New("sink refused the frame")
	}
	return nil
}

func (s *countSink) Restart() error { s.restarts++; s.frames = 0; return nil }

// TestSessionCPU: a session without CUDA decodes on the CPU, into planar
// YUV; a corrupt bitstream is decoded again on one thread after a
// restart, and the note says why; a sink's error is the video's.
func TestSessionCPU(t *testing.T) {
	s, err := NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Stream() != nil {
		t.Error("a CPU session has a stream")
	}
	ctx := context.Background()
	var want int
	{
		d, err := Open(ctx, filepath.Join(media, "h264.mp4"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		for d.Next(ctx, &f) == nil {
			want++
		}
		d.Close()
	}
	var sink countSink
	res, err := s.Decode(ctx, filepath.Join(media, "h264.mp4"), Options{}, 0, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decoder != "cpu" || res.Note != "" || sink.restarts != 0 || !sink.cpu || sink.frames != want || res.Stats.Emitted != int64(want) {
		t.Errorf("h264.mp4: %+v, sink %+v; want %d frames on the CPU, no restart", res, sink, want)
	}

	sink = countSink{}
	res, err = s.Decode(ctx, filepath.Join(media, "corrupt.mkv"), Options{}, 4, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Note, "one thread") || sink.frames < 30 {
		t.Errorf("corrupt.mkv: %+v, sink %+v; want it decoded again on one thread", res, sink)
	}

	// Rotation is left to the consumer, as NVDEC leaves it.
	sink = countSink{}
	if _, err := s.Decode(ctx, filepath.Join(media, "rotated.mp4"), Options{}, 0, &sink); err != nil || sink.rotation == 0 {
		t.Errorf("rotated.mp4: %v, rotation %d left to the consumer, want a turn", err, sink.rotation)
	}

	sink = countSink{failAt: 3}
	if _, err := s.Decode(ctx, filepath.Join(media, "h264.mp4"), Options{}, 0, &sink); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a sink's error: %v", err)
	}
	if _, err := s.Decode(ctx, filepath.Join(media, "missing.mp4"), Options{}, 0, &countSink{}); err == nil || !strings.Contains(err.Error(), "missing.mp4") {
		t.Errorf("a missing file: %v, want an error naming it", err)
	}
}
