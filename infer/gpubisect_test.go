package infer

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// TestGPUBisect finds where the GPU engine first parts from ONNX Runtime
// on the model $DSBATCH_BISECT_MODEL (a diagnostic for a model whose
// engines disagree; skipped without it or without a GPU). It cuts the
// graph at node outputs, each cast to float and made the only output,
// runs both engines on the same random images and prints the distance:
// first at evenly spaced nodes, then by bisection within the first
// interval where it grows past 5e-2 or
// turns non-finite. The cut models are written under
// $DSBATCH_BISECT_OUT when set.
func TestGPUBisect(t *testing.T) {
	path := os.Getenv("DSBATCH_BISECT_MODEL")
	if path == "" {
		t.Skip("DSBATCH_BISECT_MODEL names no model")
	}
	uuid := firstGPU(t)
	lib, cache := ortLib(t), t.TempDir()
	full, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	h, w, err := full.InputSize(640)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnx.ModelProto
	if err := proto.Unmarshal(full.ONNX(), &mp); err != nil {
		t.Fatal(err)
	}
	nodes := mp.GetGraph().GetNode()
	const batch = 2
	in := randomImages(batch, h, w, 5)
	// probe returns the relative L2 distance of the GPU engine's value of
	// node i's first output from ONNX Runtime's, and describes both.
	type result struct {
		e      float64
		max    float64 // ONNX Runtime's largest magnitude
		finite [2]int  // values not finite: the GPU engine's, ONNX Runtime's
	}
	probe := func(i int) (result, error) {
		cut := proto.Clone(&mp).(*onnx.ModelProto)
		g := cut.GetGraph()
		v := nodes[i].GetOutput()[0]
		g.Node = append(g.Node[:i+1:i+1], &onnx.NodeProto{
			Name: proto.String("dsbatch_probe"), OpType: proto.String("Cast"), Input: []string{v}, Output: []string{"dsbatch_probe"},
			Attribute: []*onnx.AttributeProto{{Name: proto.String("to"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(int64(onnx.TensorProto_FLOAT))}},
		})
		g.Output = []*onnx.ValueInfoProto{{Name: proto.String("dsbatch_probe"), Type: floatTensor()}}
		b, err := proto.Marshal(cut)
		if err != nil {
			return result{}, err
		}
		dir := os.Getenv("DSBATCH_BISECT_OUT")
		if dir == "" {
			dir = t.TempDir()
		}
		p := filepath.Join(dir, fmt.Sprintf("cut%04d.onnx", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return result{}, err
		}
		m, err := ReadModel(p)
		if err != nil {
			return result{}, err
		}
		ort, err := NewORT(m, h, w, ORTOptions{Lib: lib})
		if err != nil {
			return result{}, err
		}
		defer ort.Close()
		want, _, err := ort.Infer(context.Background(), in, batch)
		if err != nil {
			return result{}, err
		}
		want = append([]float32(nil), want...)
		eng, err := NewGPU(m, h, w, GPUOptions{UUID: uuid, Batch: batch, CacheDir: cache})
		if err != nil {
			return result{}, err
		}
		defer eng.Close()
		got, _, err := eng.Infer(context.Background(), in, batch)
		if err != nil {
			return result{}, err
		}
		if len(got) != len(want) {
			return result{}, fmt.Errorf("%d values, ONNX Runtime %d", len(got), len(want))
		}
		r := result{e: onnxtest.RelL2(got, want)}
		for j := range got {
			g, w := float64(got[j]), float64(want[j])
			if math.IsNaN(g) || math.IsInf(g, 0) {
				r.finite[0]++
			}
			if math.IsNaN(w) || math.IsInf(w, 0) {
				r.finite[1]++
			} else {
				r.max = math.Max(r.max, math.Abs(w))
			}
		}
		return r, nil
	}
	// The engine computes in fp16, whose error a sigmoid of large negative
	// inputs multiplies: a distance of a few 1e-2 is not yet a defect.
	bad := func(r result) bool { return r.e > 5e-2 || math.IsNaN(r.e) || r.finite[0] > r.finite[1] }
	show := func(i int, r result, err error) {
		n := nodes[i]
		if err != nil {
			t.Logf("%5d %-18s %-40.40s %v", i, n.GetOpType(), n.GetName(), err)
			return
		}
		t.Logf("%5d %-18s %-40.40s rel L2 %.3g, |ORT| ≤ %.3g, not finite %d (ORT %d)", i, n.GetOpType(), n.GetName(), r.e, r.max, r.finite[0], r.finite[1])
	}
	const steps = 24
	lo, hi := -1, -1
	last := -1
	for k := 1; k <= steps; k++ {
		i := k*len(nodes)/steps - 1
		r, err := probe(i)
		show(i, r, err)
		if err != nil {
			continue
		}
		if bad(r) {
			lo, hi = last, i
			break
		}
		last = i
	}
	if hi < 0 {
		t.Logf("no probe parts from ONNX Runtime by more than 5e-2")
		return
	}
	// Bisect in (lo, hi]: lo agrees (or is the input), hi does not.
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		r, err := probe(mid)
		show(mid, r, err)
		for j := mid + 1; err != nil && j < hi; j++ {
			mid = j
			r, err = probe(mid)
			show(mid, r, err)
		}
		switch {
		case err != nil:
			lo = hi - 1
		case bad(r):
			hi = mid
		default:
			lo = mid
		}
	}
	n := nodes[hi]
	t.Logf("first node past 5e-2: %d %s %s, inputs %v", hi, n.GetOpType(), n.GetName(), n.GetInput())
}
