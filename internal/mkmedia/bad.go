package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"github.com/asticode/go-astiav"
)

// writeBad writes the inputs that must fail with a clear error.
func writeBad(out string) error {
	bad := filepath.Join(out, "bad")
	good, err := os.ReadFile(filepath.Join(out, "h264.mp4"))
	if err != nil {
		return err
	}
	fast, err := os.ReadFile(filepath.Join(out, "h264-faststart.mp4"))
	if err != nil {
		return err
	}
	hevc, err := os.ReadFile(filepath.Join(out, "hevc.mkv"))
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(1))
	junk := make([]byte, 64<<10)
	rng.Read(junk)
	unknown := bytes.Replace(hevc, []byte("V_MPEGH/ISO/HEVC"), []byte("V_DSBATCH/NOPE/X"), 1)
	if bytes.Equal(unknown, hevc) {
		return errors.New("hevc.mkv has no V_MPEGH/ISO/HEVC codec id to replace")
	}
	files := map[string][]byte{
		"empty.mp4":         nil,
		"truncated.mp4":     good[:len(good)*2/5], // moov (at the end) is lost
		"truncated-mid.mp4": fast[:len(fast)*3/5], // headers intact, media cut mid-GOP
		"random.mp4":        junk,
		"unknown-codec.mkv": unknown,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(bad, name), b, 0o644); err != nil {
			return err
		}
	}
	if err := writeAudioOnly(filepath.Join(bad, "audio-only.mkv")); err != nil {
		return fmt.Errorf("audio-only.mkv: %w", err)
	}
	fmt.Println("wrote", bad)
	return nil
}

// writeAudioOnly writes one second of 8 kHz mono PCM in Matroska.
func writeAudioOnly(path string) error {
	pkts := make([]rawPacket, 10)
	for i := range pkts {
		pkts[i] = rawPacket{data: make([]byte, 1600), pts: int64(i * 800), dur: 800}
	}
	return writeStream(path, astiav.NewRational(1, 8000), func(cp *astiav.CodecParameters) {
		cp.SetMediaType(astiav.MediaTypeAudio)
		cp.SetCodecID(astiav.CodecIDPcmS16Le)
		cp.SetSampleRate(8000)
		cp.SetChannelLayout(astiav.ChannelLayoutMono)
		cp.SetChannels(1)
		cp.SetSampleFormat(astiav.SampleFormatS16)
	}, pkts)
}

// rawPacket is a packet written as it is, without an encoder; pts and dur
// are in the stream's time base.
type rawPacket struct {
	data     []byte
	pts, dur int64
}

// writeStream writes a Matroska file of one stream, whose parameters set
// fills, holding pkts.
func writeStream(path string, tb astiav.Rational, set func(*astiav.CodecParameters), pkts []rawPacket) error {
	fc, err := astiav.AllocOutputFormatContext(nil, "matroska", path)
	if err != nil {
		return err
	}
	defer fc.Free()
	st := fc.NewStream(nil)
	set(st.CodecParameters())
	st.SetTimeBase(tb)
	pb, err := astiav.OpenIOContext(path, astiav.NewIOContextFlags(astiav.IOContextFlagWrite))
	if err != nil {
		return err
	}
	defer pb.Close()
	fc.SetPb(pb)
	if err := fc.WriteHeader(nil); err != nil {
		return err
	}
	for _, rp := range pkts {
		if err := writeRaw(fc, st, tb, rp); err != nil {
			return err
		}
	}
	return fc.WriteTrailer()
}

func writeRaw(fc *astiav.FormatContext, st *astiav.Stream, tb astiav.Rational, rp rawPacket) error {
	p := astiav.AllocPacket()
	defer p.Free()
	if err := p.FromData(rp.data); err != nil {
		return err
	}
	p.SetPts(rp.pts)
	p.SetDts(rp.pts)
	p.SetDuration(rp.dur)
	p.SetStreamIndex(st.Index())
	p.RescaleTs(tb, st.TimeBase())
	return fc.WriteInterleavedFrame(p)
}
