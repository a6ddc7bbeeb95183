package infer

// Convolutions on cuDNN: their shapes, plans finalised ahead of lowering,
// the fused epilogue, and the cache of algorithm choices on disk.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// convShape is the cuDNN description of a convolution step (its output
// is Raw when set), with the pixel strides of what cuDNN writes (yp) and
// of the residual.
func convShape(s graph.Step) (shape gpu.ConvShape, yp, rp int64, err error) {
	c := s.Conv
	shape = gpu.ConvShape{N: c.N, C: c.C, H: c.H, W: c.W, K: c.K, R: c.R, S: c.S, PadH: c.PadH, PadW: c.PadW,
		StrH: c.StrH, StrW: c.StrW, DilH: c.DilH, DilW: c.DilW, Groups: c.Groups, OH: c.OH, OW: c.OW}
	in, out := s.In[0], s.Out
	if c.Raw != nil {
		out = *c.Raw
	}
	// x and y may be views inside a Concat's output (LowerOptions.
	// InPlaceConcat): NHWC with a wider pixel stride, 16-byte aligned.
	xp, okx := graph.PixelStride(in)
	yp, oky := graph.PixelStride(out)
	if !okx || !oky || xp%8 != 0 && xp != int64(c.C) || yp%8 != 0 && yp != int64(c.K) || in.Off%8 != 0 || out.Off%8 != 0 {
		return shape, 0, 0, fmt.Errorf("convolution over %v / %v strides: %w", in.Stride, out.Stride, graph.ErrUnsupported)
	}
	if xp != int64(c.C) {
		shape.XPix = int(xp)
	}
	if yp != int64(c.K) {
		shape.YPix = int(yp)
	}
	if c.Residual != nil {
		var ok bool
		if rp, ok = graph.PixelStride(*c.Residual); !ok {
			return shape, 0, 0, fmt.Errorf("residual over %v strides: %w", c.Residual.Stride, graph.ErrUnsupported)
		}
	}
	return shape, yp, rp, nil
}

// preparedConv is a convolution whose execution plan is finalized.
type preparedConv struct {
	conv *gpu.Conv
	algo gpu.ConvAlgo
	need int64
}

// prepareConvs finalizes, side by side on up to four cuDNN handles, the
// plans of the convolutions whose choice is in the cache: each takes
// milliseconds of CPU, and YOLOv8n's 63 were half of a warm build. Those
// to measure are left to conv, one after the other, so that their timings
// do not overlap. Every conv made goes into p.convs, which closes them.
func (e *GPUEngine) prepareConvs(p *gpuPlan) {
	type job struct {
		step  int
		shape gpu.ConvShape
		algo  gpu.ConvAlgo
	}
	var jobs []job
	for i, s := range p.prog.Steps {
		if _, _, _, own := depthwiseFits(p.prog, s); s.Kind != graph.KConv || own {
			continue
		}
		if shape, _, _, err := convShape(s); err == nil {
			if a, ok := e.algos.get(shape); ok {
				jobs = append(jobs, job{i, shape, a})
			}
		}
	}
	for len(e.more) < min(3, len(jobs)/8) {
		d, err := e.cuda.OpenCUDNN()
		if err != nil {
			break
		}
		d.Legacy = e.dnn.Legacy
		e.more = append(e.more, d)
	}
	handles := append([]*gpu.CUDNN{e.dnn}, e.more...)
	done := make([]preparedConv, len(jobs))
	ok := make([]bool, len(jobs))
	var wg sync.WaitGroup
	for h, d := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := h; j < len(jobs); j += len(handles) {
				c, err := d.NewConv(jobs[j].shape)
				if err != nil {
					continue
				}
				need, err := c.Use(jobs[j].algo)
				done[j], ok[j] = preparedConv{conv: c, algo: jobs[j].algo, need: need}, err == nil
			}
		}()
	}
	wg.Wait()
	p.prepared = map[int]preparedConv{}
	for j, jb := range jobs {
		if done[j].conv != nil {
			p.convs = append(p.convs, done[j].conv)
		}
		if ok[j] {
			p.prepared[jb.step] = done[j]
		}
	}
}

// conv lowers a convolution: a depthwise one onto the engine's kernel
// where it can (see depthwiseSource), else cuDNN, then the epilogue
// kernel, in place or from the step's Raw tensor into a view inside a
// Concat.
func (e *GPUEngine) conv(p *gpuPlan, s graph.Step) error {
	if e.depthwise(p, s) {
		return nil
	}
	c := s.Conv
	shape, yp, rp, err := convShape(s)
	if err != nil {
		return err
	}
	in := s.In[0]
	x, w, y, bias := e.addr(p, in), p.consts[c.Weight], e.addr(p, s.Out), p.consts[c.Bias]
	// cuDNN writes raw (y itself unless the step has a Raw tensor); the
	// epilogue reads raw and writes y.
	raw, sp := y, yp
	if c.Raw != nil {
		raw = e.addr(p, *c.Raw)
		var ok bool
		if yp, ok = graph.PixelStride(s.Out); !ok || s.Out.Off%2 != 0 {
			return fmt.Errorf("convolution output over %v strides: %w", s.Out.Stride, graph.ErrUnsupported)
		}
	}
	conv, err := e.convFor(p, shape, x, w, raw)
	if err != nil {
		return err
	}
	e.stats.Convs++
	ws, wsBytes := e.ws, e.wsBytes
	p.ops = append(p.ops, func(st gpu.Stream) error { return conv.Forward(st, x, w, raw, ws, wsBytes) })
	var res gpu.DevicePtr
	if c.Residual != nil {
		res = e.addr(p, *c.Residual)
	}
	n := int64(graph.Len(s.Out.Shape))
	// The epilogue kernels take the activation after the residual in acts'
	// second byte.
	act, alpha, k, ypix, spix, rpix := int32(c.Act)|int32(c.PostAct)<<8, c.Alpha, int32(c.K), int32(yp), int32(sp), int32(rp)
	aligned := func(v int64) bool { return v%8 == 0 }
	switch {
	case c.Shuffle > 1:
		if c.Raw == nil || c.Residual != nil || (c.K/(c.Shuffle*c.Shuffle))%8 != 0 || yp != int64(c.K/(c.Shuffle*c.Shuffle)) || sp != int64(c.K) {
			return fmt.Errorf("convolution with a DepthToSpace of %d over %v strides: %w", c.Shuffle, s.Out.Stride, graph.ErrUnsupported)
		}
		kern, groups, b, ow := e.k.epilogueD2S, int64(c.N)*int64(c.OH*c.OW)*int64(c.K)/8, int32(c.Shuffle), int32(c.OW)
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(groups), block, st, uint32(groups), k, b, ow, y, raw, bias, act, alpha)
		})
	case c.K%8 == 0 && aligned(yp) && aligned(s.Out.Off) && (c.Residual == nil || aligned(rp) && aligned(c.Residual.Off)):
		kern := e.k.epilogue8
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n/8), block, st, uint32(n/8), k, ypix, y, raw, spix, bias, res, rpix, act, alpha)
		})
	case c.K%2 == 0 && yp%2 == 0 && (c.Residual == nil || rp%2 == 0 && c.Residual.Off%2 == 0):
		kern := e.k.epilogue
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n/2), block, st, uint32(n/2), k, ypix, y, raw, spix, bias, res, rpix, act, alpha)
		})
	default:
		kern := e.k.epilogue1
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n), block, st, uint32(n), k, ypix, y, raw, spix, bias, res, rpix, act, alpha)
		})
	}
	return nil
}

// convFor returns the step's convolution ready to run: prepared ahead
// (prepareConvs), or made now with its algorithm from the cache or
// measured on x, w and y; it goes into p.convs, and the workspace it needs
// is checked.
func (e *GPUEngine) convFor(p *gpuPlan, shape gpu.ConvShape, x, w, y gpu.DevicePtr) (*gpu.Conv, error) {
	pc, ready := p.prepared[p.step]
	conv, algo, need := pc.conv, pc.algo, pc.need
	if ready {
		e.stats.AlgoCached++
	} else {
		var err error
		if conv, err = e.dnn.NewConv(shape); err != nil {
			return nil, err
		}
		p.convs = append(p.convs, conv)
		var cached bool
		if algo, cached = e.algos.get(shape); cached {
			e.stats.AlgoCached++
		} else {
			if algo, err = conv.Find(e.stream, x, w, y, e.ws, e.wsBytes); err != nil {
				return nil, err
			}
			e.algos.put(shape, algo)
			e.stats.AlgoMeasure++
		}
		if need, err = conv.Use(algo); err != nil {
			return nil, err
		}
	}
	if algo.Graph {
		e.stats.GraphAPI++
	}
	if need > e.wsBytes {
		return nil, fmt.Errorf("cuDNN algorithm %d needs %d bytes of workspace, %d allocated", algo.Algo, need, e.wsBytes)
	}
	return conv, nil
}

// algoCache keeps cuDNN's algorithm choices on disk, per cuDNN version and
// GPU architecture, so an engine built again skips the measurements.
type algoCache struct {
	path  string
	m     map[string]gpu.ConvAlgo
	dirty bool
}

func loadAlgoCache(dir string, version, arch int) *algoCache {
	c := &algoCache{m: map[string]gpu.ConvAlgo{}}
	if dir == "" {
		return c
	}
	c.path = filepath.Join(dir, fmt.Sprintf("cudnn%d-sm%d-convs.json", version, arch))
	if b, err := os.ReadFile(c.path); err == nil {
		json.Unmarshal(b, &c.m)
	}
	return c
}

func algoKey(s gpu.ConvShape) string { return fmt.Sprint(s) }

func (c *algoCache) get(s gpu.ConvShape) (gpu.ConvAlgo, bool) {
	a, ok := c.m[algoKey(s)]
	return a, ok
}

func (c *algoCache) put(s gpu.ConvShape, a gpu.ConvAlgo) {
	c.m[algoKey(s)] = a
	c.dirty = true
}

// save writes the cache when it changed; a failure only costs the next
// run its measurements.
func (c *algoCache) save() {
	if !c.dirty || c.path == "" {
		return
	}
	b, err := json.MarshalIndent(c.m, "", " ")
	if err != nil {
		return
	}
	// A cache: a failed write costs a measurement next time, nothing else.
	if atomicfile.Write(c.path, func(w io.Writer) error { _, err := w.Write(b); return err }) == nil {
		c.dirty = false
	}
}
