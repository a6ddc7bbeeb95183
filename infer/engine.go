package infer

import "context"

// Engine runs a detector on batches of letterboxed images.
type Engine interface {
	// Infer runs n images held in input (n×3×H×W float32, planar RGB in
	// [0, 1]) and returns the raw output tensor and its shape
	// ([n, d1, d2]). The returned slice is valid until the next call.
	Infer(ctx context.Context, input []float32, n int) ([]float32, []int64, error)
	// Name says which engine this is, for reports ("onnxruntime-cpu").
	Name() string
	Close() error
}
