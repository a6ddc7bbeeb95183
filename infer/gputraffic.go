package infer

import "github.com/dsbatch/dsbatch/infer/graph"

// traffic is what one batch of a lowered program costs the GPU engine:
// the bytes its launches read and write in device memory (each input read
// once per launch, broadcast dimensions counted once; a convolution reads
// its input and weights and writes its output, then its epilogue reads the
// output, bias and residual and writes the output again) and the
// multiply-adds of its convolutions, as floating-point operations.
func traffic(p *graph.Program) (bytes, flops int64) {
	for _, s := range p.Steps {
		out := viewBytes(s.Out)
		if c := s.Conv; c != nil && s.Kind == graph.KConv {
			cin := int64(c.C / max(c.Groups, 1))
			weights := int64(c.K) * int64(c.R*c.S) * cin * 2
			bytes += viewBytes(s.In[0]) + weights + out // cuDNN
			bytes += 2*out + int64(c.K)*4               // epilogue: output read and written, bias
			if c.Residual != nil {
				bytes += viewBytes(*c.Residual)
			}
			flops += 2 * int64(c.N) * int64(c.K) * int64(c.OH*c.OW) * cin * int64(c.R*c.S)
			continue
		}
		for _, in := range s.In {
			bytes += viewBytes(in)
		}
		bytes += out
	}
	return bytes, flops
}

// viewBytes is the size of the distinct elements a view covers: dimensions
// of stride 0 (broadcast) count once.
func viewBytes(v graph.View) int64 {
	n := int64(1)
	for i, d := range v.Shape {
		if i < len(v.Stride) && v.Stride[i] == 0 {
			continue
		}
		n *= int64(d)
	}
	return n * v.Elem.Size()
}
