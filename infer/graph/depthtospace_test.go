package graph

import (
	"slices"
	"testing"
)

// TestConvTransposeFoldsIntoEpilogue: the prototypes' upsampling (a
// ConvTranspose of kernel 2, stride 2, into 16 channels) lowers to the
// patch convolution, whose epilogue writes the upsampled tensor the next
// convolution reads, with no copy in between; a ConvTranspose into 5
// channels (not a multiple of 8) keeps its one copy.
func TestConvTransposeFoldsIntoEpilogue(t *testing.T) {
	for _, tt := range []struct {
		name    string
		kinds   []Kind
		shuffle int
	}{
		// The input's conversion, the first conv, the patch conv (shuffled), the last conv, the output's conversion.
		{"ConvTranspose k2 s2 to 16 channels, then a conv", []Kind{KCopy, KConv, KConv, KConv, KCopy}, 2},
		// The input's conversion, the first conv, the patch conv, the patches placed, the output's conversion.
		{"ConvTranspose k2 s2 bias", []Kind{KCopy, KConv, KConv, KCopy, KCopy}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, p := loweredCase(t, tt.name, LowerOptions{PadInputChannels: 8})
			var kinds []Kind
			for _, s := range p.Steps {
				kinds = append(kinds, s.Kind)
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Fatalf("steps %v, want %v", kinds, tt.kinds)
			}
			patch := p.Steps[2]
			if patch.Conv.Shuffle != tt.shuffle {
				t.Fatalf("patch convolution's shuffle %d, want %d", patch.Conv.Shuffle, tt.shuffle)
			}
			if tt.shuffle > 0 {
				next := p.Steps[3]
				if patch.Conv.Raw == nil || next.In[0].Buf != patch.Out.Buf || !slices.Equal(next.In[0].Shape, []int{2, 16, 2 * c.H, 2 * c.W}) {
					t.Errorf("the next convolution reads buffer %d %v, the patch convolution writes %d", next.In[0].Buf, next.In[0].Shape, patch.Out.Buf)
				}
			}
		})
	}
}
