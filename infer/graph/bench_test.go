package graph_test

import (
	"os"
	"testing"

	"github.com/dsbatch/dsbatch/infer/graph"
)

// BenchmarkCompile loads, specialises (batch 64), fuses and lowers a model:
// $DSBATCH_BENCH_MODEL at 640×640 (for example the YOLOv8n network in
// ../shared/gpu), else the mini test model at 32×32. It reports the fp16
// activation arena per image and the nodes left.
func BenchmarkCompile(b *testing.B) {
	path, size := os.Getenv("DSBATCH_BENCH_MODEL"), 640
	if path == "" {
		path, size = miniYOLOPath(b), 32
	}
	var p *graph.Program
	var nodes int
	for i := 0; i < b.N; i++ {
		g, err := graph.Read(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Specialize(64, size, size); err != nil {
			b.Fatal(err)
		}
		g.Fuse()
		if p, err = g.Lower(graph.LowerOptions{PadInputChannels: 8}); err != nil {
			b.Fatal(err)
		}
		nodes = len(g.Nodes)
	}
	b.ReportMetric(float64(p.Arena)/64/1e6, "MB-arena/img")
	b.ReportMetric(float64(nodes), "nodes")
}
