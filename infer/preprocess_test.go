package infer

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testConventions are input conventions the letterbox tests run in: each
// channel order, fit, scale and normalisation at least once.
func testConventions(t testing.TB) []Preprocess {
	t.Helper()
	var out []Preprocess
	for _, s := range []string{"ultralytics", "yolox", "imagenet", "bgr,fit=top-left,pad=0,scale=1/127.5,mean=1:1:1"} {
		p, err := ParsePreprocess(s, Ultralytics)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// maxPixelDiff is the largest difference between two tensors of convention
// p, in pixel values (0-255).
func maxPixelDiff(a, b []float32, p Preprocess, plane int) float64 {
	mul, _ := p.Affine()
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i]))/float64(mul[i/plane]))
	}
	return worst
}

func TestParsePreprocess(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // String of the result; "" for an error
	}{
		{"", "rgb,scale=1/255,fit=centre,pad=114"},
		{"ultralytics", "rgb,scale=1/255,fit=centre,pad=114"},
		{"yolox", "bgr,scale=1,fit=top-left,pad=114"},
		{"imagenet", "rgb,scale=1/255,fit=stretch,pad=114,mean=0.485:0.456:0.406,std=0.229:0.224:0.225"},
		{"bgr, scale=1, fit=stretch", "bgr,scale=1,fit=stretch,pad=114"},
		{"yolox,rgb,pad=0", "rgb,scale=1,fit=top-left,pad=0"},
		{"scale=0.5,mean=0.5,std=2", "rgb,scale=1/2,fit=centre,pad=114,mean=0.5:0.5:0.5,std=2:2:2"},
		{"fit=center", "rgb,scale=1/255,fit=centre,pad=114"},
		{"std=0", ""},
		{"scale=-1", ""},
		{"pad=300", ""},
		{"mean=1:2", ""},
		{"fit=diagonal", ""},
		{"grey", ""},
	} {
		p, err := ParsePreprocess(tt.in, Ultralytics)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%q accepted as %s", tt.in, p)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("%q: %s, %v; want %s", tt.in, p, err, tt.want)
			continue
		}
		if back, err := ParsePreprocess(p.String(), YOLOX); err != nil || back != p {
			t.Errorf("%q: %s does not read back (%s, %v)", tt.in, p, back, err)
		}
	}
}

// TestUltralyticsConventionUnchanged: the default convention computes the
// values dsbatch always computed: a pixel times float32(1/255) plus zero,
// and the pad 114/255, rounded once.
func TestUltralyticsConventionUnchanged(t *testing.T) {
	mul, add := Ultralytics.Affine()
	const k float32 = 1.0 / 255
	for c := 0; c < 3; c++ {
		if mul[c] != k || add[c] != 0 {
			t.Errorf("plane %d: ×%v +%v, want ×%v +0", c, mul[c], add[c], k)
		}
		if pad := Ultralytics.PadValues()[c]; pad != float32(114)/255 {
			t.Errorf("plane %d: pad %v, want %v", c, pad, float32(114)/255)
		}
	}
}

// TestLetterboxConventions checks each convention on a frame of two
// colours: the planes' order, the pad's value and place, the stretch, and
// the normalisation.
func TestLetterboxConventions(t *testing.T) {
	const w, h, size = 16, 8, 8
	rgb := make([]byte, 3*w*h)
	for i := 0; i < w*h; i++ {
		rgb[3*i], rgb[3*i+1], rgb[3*i+2] = 200, 100, 50
	}
	dst := make([]float32, 3*size*size)
	at := func(plane, x, y int) float32 { return dst[plane*size*size+y*size+x] }
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-4 }
	convs := testConventions(t)

	// Ultralytics: RGB in [0, 1], rows 0-1 and 6-7 padded.
	lb := LetterboxRGB(rgb, w, h, dst, size, size, convs[0])
	if lb.PadY != 2 || !near(at(0, 3, 4), 200.0/255) || !near(at(2, 3, 4), 50.0/255) || !near(at(0, 3, 0), 114.0/255) || !near(at(0, 3, 7), 114.0/255) {
		t.Errorf("ultralytics: %+v, R %v B %v pad %v", lb, at(0, 3, 4), at(2, 3, 4), at(0, 3, 0))
	}
	// YOLOX: BGR in 0-255, the frame at the top, the pad below.
	lb = LetterboxRGB(rgb, w, h, dst, size, size, convs[1])
	if lb.PadY != 0 || lb.PadX != 0 || at(0, 3, 1) != 50 || at(2, 3, 1) != 200 || at(1, 3, 3) != 100 || at(0, 3, 4) != 114 || at(0, 3, 7) != 114 {
		t.Errorf("yolox: %+v, plane 0 %v plane 2 %v, row 4 %v", lb, at(0, 3, 1), at(2, 3, 1), at(0, 3, 4))
	}
	// ImageNet: stretched over the whole input, normalised.
	lb = LetterboxRGB(rgb, w, h, dst, size, size, convs[2])
	wantR := float32((200.0/255 - 0.485) / 0.229)
	if lb.NewW != size || lb.NewH != size || lb.ScaleX != 0.5 || lb.ScaleY != 1 || !near(at(0, 0, 0), wantR) || !near(at(0, 7, 7), wantR) {
		t.Errorf("imagenet: %+v, R %v want %v", lb, at(0, 0, 0), wantR)
	}
	if x1, y1, x2, y2 := lb.ToFrame(2, 2, 4, 6); x1 != 4 || y1 != 2 || x2 != 8 || y2 != 6 {
		t.Errorf("imagenet: stretched box maps back to %v,%v-%v,%v, want 4,2-8,6", x1, y1, x2, y2)
	}
	// BGR in [-1, 1] with a black pad at the bottom.
	LetterboxRGB(rgb, w, h, dst, size, size, convs[3])
	if !near(at(0, 0, 0), 50/127.5-1) || !near(at(2, 0, 0), 200/127.5-1) || at(0, 0, 5) != -1 {
		t.Errorf("[-1, 1]: B %v R %v pad %v", at(0, 0, 0), at(2, 0, 0), at(0, 0, 5))
	}
}

// TestModelPreprocess reads the convention from a Hugging Face
// preprocessor_config.json beside the model, and from dsbatch_input
// metadata, which wins.
func TestModelPreprocess(t *testing.T) {
	dir := t.TempDir()
	m := &Model{Path: filepath.Join(dir, "rtdetr.onnx"), Metadata: map[string]string{}}
	if _, _, ok, err := m.ModelPreprocess(); ok || err != nil {
		t.Fatalf("no config: %v %v", ok, err)
	}
	cfg := `{"do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
		"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_pad": false}`
	if err := os.WriteFile(filepath.Join(dir, "preprocessor_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, from, ok, err := m.ModelPreprocess()
	want := "rgb,scale=1/255,fit=stretch,pad=0,mean=0.485:0.456:0.406,std=0.229:0.224:0.225"
	if !ok || err != nil || p.String() != want || !strings.HasSuffix(from, "preprocessor_config.json") {
		t.Errorf("config: %s from %s (%v %v), want %s", p, from, ok, err, want)
	}
	m.Metadata["dsbatch_input"] = "yolox"
	if p, _, ok, err := m.ModelPreprocess(); !ok || err != nil || p != YOLOX {
		t.Errorf("metadata: %s (%v %v)", p, ok, err)
	}
	m.Metadata["dsbatch_input"] = "scale=0"
	if _, _, _, err := m.ModelPreprocess(); err == nil || !strings.Contains(err.Error(), m.Path) {
		t.Errorf("bad metadata: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "preprocessor_config.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	delete(m.Metadata, "dsbatch_input")
	if _, _, _, err := m.ModelPreprocess(); err == nil {
		t.Error("broken preprocessor_config.json accepted")
	}
}

// FuzzParsePreprocess: any --input text is refused or gives a convention
// that validates and reads back to itself.
func FuzzParsePreprocess(f *testing.F) {
	for _, seed := range []string{"", "yolox", "imagenet,bgr", "scale=1/0", "mean=1:2:3,std=0.1:0.2:0.3,fit=stretch,pad=0", "pad=256", "std=-1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePreprocess(s, Ultralytics)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%q gave %s, which does not validate: %v", s, p, err)
		}
		if _, err := ParsePreprocess(p.String(), YOLOX); err != nil {
			t.Fatalf("%q gave %s, which does not read back: %v", s, p, err)
		}
	})
}
