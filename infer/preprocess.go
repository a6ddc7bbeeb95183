package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Fit is how a frame is fitted into the model's input.
type Fit int

// Ways to fit a frame.
const (
	// FitCentre keeps the aspect ratio and centres the frame, padding
	// both sides (Ultralytics).
	FitCentre Fit = iota
	// FitTopLeft keeps the aspect ratio and puts the frame at the
	// top-left, padding right and bottom (YOLOX).
	FitTopLeft
	// FitStretch resizes the frame to the input, aspect ratio not kept
	// (most DETR-style exports).
	FitStretch
)

var fitNames = [...]string{FitCentre: "centre", FitTopLeft: "top-left", FitStretch: "stretch"}

func (f Fit) String() string {
	if f >= 0 && int(f) < len(fitNames) {
		return fitNames[f]
	}
	return fmt.Sprintf("Fit(%d)", int(f))
}

// ParseFit parses "centre" (or "center"), "top-left" or "stretch".
func ParseFit(s string) (Fit, error) {
	switch strings.ToLower(s) {
	case "centre", "center", "centred", "centered", "symmetric":
		return FitCentre, nil
	case "top-left", "topleft", "corner":
		return FitTopLeft, nil
	case "stretch", "resize", "none":
		return FitStretch, nil
	}
	return 0, fmt.Errorf("fit %q: want centre, top-left or stretch", s)
}

// Preprocess is a model's input convention: how the pixels of a frame
// become the values of its input tensor. Channel c of a pixel of value v
// (0-255) becomes (v × Scale − Mean[c]) / Std[c], c in R, G, B order
// whatever the order of the planes.
type Preprocess struct {
	BGR   bool       // planes in B, G, R order
	Fit   Fit        // how the frame fits the input
	Pad   uint8      // the grey the borders get, before scaling
	Scale float64    // multiplies pixel values
	Mean  [3]float64 // subtracted after Scale, per channel R, G, B
	Std   [3]float64 // divides after Mean, per channel R, G, B
}

// Ultralytics is the input convention of Ultralytics' exports, dsbatch's
// default: RGB in [0, 1], centred letterbox padded with grey 114.
var Ultralytics = Preprocess{Fit: FitCentre, Pad: 114, Scale: 1.0 / 255, Std: [3]float64{1, 1, 1}}

// YOLOX is the input convention of YOLOX's exports since its 0.2 release:
// BGR in 0-255, top-left letterbox padded with grey 114.
var YOLOX = Preprocess{BGR: true, Fit: FitTopLeft, Pad: 114, Scale: 1, Std: [3]float64{1, 1, 1}}

// Affine returns the per-plane factors of the tensor's value: plane p of
// a pixel whose channel is v becomes float32(v×A[p]) + B[p], with the
// planes in the tensor's order.
func (p Preprocess) Affine() (a, b [3]float32) {
	for c := 0; c < 3; c++ {
		a[p.plane(c)] = float32(p.Scale / p.Std[c])
		b[p.plane(c)] = float32(-p.Mean[c] / p.Std[c])
	}
	return a, b
}

// plane is the tensor plane of channel c (0 R, 1 G, 2 B).
func (p Preprocess) plane(c int) int {
	if p.BGR {
		return 2 - c
	}
	return c
}

// PadValues are the values of a padding pixel, per plane in the tensor's
// order, computed exactly (114/255 for Ultralytics' convention).
func (p Preprocess) PadValues() [3]float32 {
	var v [3]float32
	for c := 0; c < 3; c++ {
		v[p.plane(c)] = float32((float64(p.Pad)*p.Scale - p.Mean[c]) / p.Std[c])
	}
	return v
}

// Validate reports a convention that cannot be applied.
func (p Preprocess) Validate() error {
	if !(p.Scale > 0) || math.IsInf(p.Scale, 0) {
		return fmt.Errorf("input scale %g: want a positive number", p.Scale)
	}
	for c := 0; c < 3; c++ {
		if !(p.Std[c] > 0) || math.IsInf(p.Std[c], 0) || math.IsNaN(p.Mean[c]) || math.IsInf(p.Mean[c], 0) {
			return fmt.Errorf("input mean %v, std %v: want finite means and positive deviations", p.Mean, p.Std)
		}
	}
	if p.Fit < 0 || int(p.Fit) >= len(fitNames) {
		return fmt.Errorf("input fit %d unknown", p.Fit)
	}
	return nil
}

// String describes the convention the way the --input flag spells it.
func (p Preprocess) String() string {
	order := "rgb"
	if p.BGR {
		order = "bgr"
	}
	s := fmt.Sprintf("%s,scale=%s,fit=%s,pad=%d", order, formatScale(p.Scale), p.Fit, p.Pad)
	if p.Mean != [3]float64{} {
		s += ",mean=" + formatTriple(p.Mean)
	}
	if p.Std != [3]float64{1, 1, 1} {
		s += ",std=" + formatTriple(p.Std)
	}
	return s
}

func formatScale(v float64) string {
	if v > 0 && v < 1 {
		if r := 1 / v; math.Abs(r-math.Round(r)) < 1e-9 {
			return "1/" + strconv.FormatFloat(math.Round(r), 'f', -1, 64)
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func formatTriple(v [3]float64) string {
	f := make([]string, 3)
	for i, x := range v {
		f[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(f, ":")
}

// ParsePreprocess changes base by a comma-separated list of settings, as
// --input takes them: "rgb" or "bgr", "scale=1/255", "mean=0.485:0.456:0.406",
// "std=0.229:0.224:0.225" (after scale, R:G:B), "fit=centre|top-left|stretch",
// "pad=114", or a named convention first ("ultralytics", "yolox",
// "imagenet": Ultralytics' with ImageNet's mean and std and a stretch).
func ParsePreprocess(s string, base Preprocess) (Preprocess, error) {
	p := base
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ToLower(f))
		k, v, hasValue := strings.Cut(f, "=")
		var err error
		switch {
		case f == "":
		case f == "rgb":
			p.BGR = false
		case f == "bgr":
			p.BGR = true
		case f == "ultralytics":
			p = Ultralytics
		case f == "yolox":
			p = YOLOX
		case f == "imagenet":
			p = Ultralytics
			p.Fit, p.Mean, p.Std = FitStretch, [3]float64{0.485, 0.456, 0.406}, [3]float64{0.229, 0.224, 0.225}
		case hasValue && k == "scale":
			p.Scale, err = parseRatio(v)
		case hasValue && k == "mean":
			p.Mean, err = parseTriple(v)
		case hasValue && k == "std":
			p.Std, err = parseTriple(v)
		case hasValue && k == "fit":
			p.Fit, err = ParseFit(v)
		case hasValue && k == "pad":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			p.Pad = uint8(n)
		default:
			err = errors.New("unknown setting")
		}
		if err != nil {
			return base, fmt.Errorf("input convention %q: %s: %v (want rgb|bgr, scale=, mean=R:G:B, std=R:G:B, fit=centre|top-left|stretch, pad=0-255)", s, f, err)
		}
	}
	if err := p.Validate(); err != nil {
		return base, fmt.Errorf("input convention %q: %w", s, err)
	}
	return p, nil
}

func parseRatio(s string) (float64, error) {
	if a, b, ok := strings.Cut(s, "/"); ok {
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err := errors.Join(err1, err2); err != nil || y == 0 {
			return 0, fmt.Errorf("%q is not a number or a ratio", s)
		}
		return x / y, nil
	}
	return strconv.ParseFloat(s, 64)
}

func parseTriple(s string) ([3]float64, error) {
	var v [3]float64
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ' ' || r == '/' })
	if len(f) == 1 {
		f = []string{f[0], f[0], f[0]}
	}
	if len(f) != 3 {
		return v, fmt.Errorf("%q: want one value or three, R:G:B", s)
	}
	for i := range f {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return v, err
		}
		v[i] = x
	}
	return v, nil
}

// preprocessorConfig is the part of a Hugging Face preprocessor_config.json
// that says how images are normalised.
type preprocessorConfig struct {
	DoRescale     *bool     `json:"do_rescale"`
	RescaleFactor *float64  `json:"rescale_factor"`
	DoNormalize   *bool     `json:"do_normalize"`
	ImageMean     []float64 `json:"image_mean"`
	ImageStd      []float64 `json:"image_std"`
	DoPad         *bool     `json:"do_pad"`
}

// ModelPreprocess returns the input convention m says it was trained with
// and where that came from: a preprocessor_config.json beside the model
// (as Hugging Face exports write it), or the model's metadata written by
// dsbatch's convention (key "dsbatch_input", in --input's syntax), or
// none (ok false).
func (m *Model) ModelPreprocess() (p Preprocess, from string, ok bool, err error) {
	if s, found := m.Metadata["dsbatch_input"]; found {
		p, err = ParsePreprocess(s, Ultralytics)
		if err != nil {
			return p, "", false, fmt.Errorf("model %s: metadata dsbatch_input: %w", m.Path, err)
		}
		return p, "the model's metadata", true, nil
	}
	path := filepath.Join(filepath.Dir(m.Path), "preprocessor_config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, "", false, nil
	}
	if err != nil {
		return p, "", false, err
	}
	var c preprocessorConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return p, "", false, fmt.Errorf("%s: %w", path, err)
	}
	p = Preprocess{Fit: FitStretch, Pad: 0, Scale: 1, Std: [3]float64{1, 1, 1}}
	if c.DoRescale == nil || *c.DoRescale {
		p.Scale = 1.0 / 255
		if c.RescaleFactor != nil {
			p.Scale = *c.RescaleFactor
		}
	}
	if c.DoNormalize == nil || *c.DoNormalize {
		if len(c.ImageMean) == 3 && len(c.ImageStd) == 3 {
			copy(p.Mean[:], c.ImageMean)
			copy(p.Std[:], c.ImageStd)
		}
	}
	if c.DoPad != nil && *c.DoPad {
		p.Fit = FitTopLeft // Hugging Face pads at the bottom and right
	}
	if err := p.Validate(); err != nil {
		return p, "", false, fmt.Errorf("%s: %w", path, err)
	}
	return p, path, true, nil
}
