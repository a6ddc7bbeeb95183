package gpu

import "fmt"

// Decoders is what a GPU's NVDEC engines decode.
type Decoders struct {
	Engines int         `json:"engines"` // number of NVDEC engines
	Caps    []CodecCaps `json:"caps"`    // supported combinations only
}

// CodecCaps is one codec, chroma format and bit depth NVDEC decodes, with
// its size limits (coded pixels).
type CodecCaps struct {
	Codec      string `json:"codec"`  // FFmpeg codec name: "h264", "hevc", …
	Chroma     string `json:"chroma"` // "4:2:0", "4:2:2", "4:4:4", "4:0:0"
	BitDepth   int    `json:"bit_depth"`
	MinWidth   int    `json:"min_width"`
	MinHeight  int    `json:"min_height"`
	MaxWidth   int    `json:"max_width"`
	MaxHeight  int    `json:"max_height"`
	MaxMBCount int    `json:"max_mb_count"` // width×height/256 must not exceed it
}

// Check returns nil when NVDEC can decode a stream of this codec (FFmpeg
// name), chroma subsampling, bit depth and coded size, or an error that says
// why not.
func (d *Decoders) Check(codec, chroma string, depth, width, height int) error {
	if d == nil {
		return fmt.Errorf("no NVDEC")
	}
	var sameCodec []CodecCaps
	for _, c := range d.Caps {
		if c.Codec == codec {
			sameCodec = append(sameCodec, c)
		}
	}
	if len(sameCodec) == 0 {
		return fmt.Errorf("NVDEC does not decode %s", codec)
	}
	for _, c := range sameCodec {
		if c.Chroma != chroma || c.BitDepth != depth {
			continue
		}
		mbs := ((width + 15) / 16) * ((height + 15) / 16)
		if width < c.MinWidth || height < c.MinHeight || width > c.MaxWidth || height > c.MaxHeight ||
			(c.MaxMBCount > 0 && mbs > c.MaxMBCount) {
			return fmt.Errorf("NVDEC decodes %s %s %d-bit from %dx%d to %dx%d, not %dx%d",
				codec, chroma, depth, c.MinWidth, c.MinHeight, c.MaxWidth, c.MaxHeight, width, height)
		}
		return nil
	}
	return fmt.Errorf("NVDEC does not decode %s %s %d-bit", codec, chroma, depth)
}

// cuvidCodecs maps FFmpeg codec names to cudaVideoCodec values.
var cuvidCodecs = []struct {
	name  string
	cuvid int
}{
	{"mpeg1video", 0}, {"mpeg2video", 1}, {"mpeg4", 2}, {"vc1", 3}, {"h264", 4},
	{"mjpeg", 5}, {"hevc", 8}, {"vp8", 9}, {"vp9", 10}, {"av1", 11},
}

// cuvidChroma maps cudaVideoChromaFormat values to names.
var cuvidChroma = []struct {
	name  string
	cuvid int
}{{"4:0:0", 0}, {"4:2:0", 1}, {"4:2:2", 2}, {"4:4:4", 3}}
