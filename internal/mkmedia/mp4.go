package main

import (
	"encoding/binary"
	"errors"
)

// topBoxes splits an MP4 file into its top-level boxes (32-bit sizes only,
// which is what FFmpeg writes for small files).
func topBoxes(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errors.New("trailing bytes after the last box")
		}
		n := int(binary.BigEndian.Uint32(b))
		if n < 8 || n > len(b) {
			return nil, errors.New("box size out of range")
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

// shiftChunkOffsets adds delta to every stco entry inside moov, in place.
func shiftChunkOffsets(moov []byte, delta int64) error {
	containers := map[string]bool{"moov": true, "trak": true, "mdia": true, "minf": true, "stbl": true}
	var walk func(b []byte) error
	walk = func(b []byte) error {
		for len(b) >= 8 {
			n := int(binary.BigEndian.Uint32(b))
			if n < 8 || n > len(b) {
				return errors.New("bad box inside moov")
			}
			typ := string(b[4:8])
			body := b[8:n]
			switch {
			case containers[typ]:
				if err := walk(body); err != nil {
					return err
				}
			case typ == "stco":
				count := int(binary.BigEndian.Uint32(body[4:8]))
				for i := 0; i < count; i++ {
					p := body[8+4*i:]
					binary.BigEndian.PutUint32(p, uint32(int64(binary.BigEndian.Uint32(p))+delta))
				}
			case typ == "co64":
				return errors.New("co64 not handled")
			}
			b = b[n:]
		}
		return nil
	}
	return walk(moov[8:])
}
