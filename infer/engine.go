package infer

import (
	"context"

	"github.com/dsbatch/dsbatch/gpu"
)

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

// BatchLimit is implemented by engines that take at most MaxBatch images
// per call, fewer than they were asked for (the GPU engine, when the batch
// asked for did not fit in GPU memory).
type BatchLimit interface {
	MaxBatch() int
}

// DeviceEngine is an engine that reads its input from GPU memory: the GPU
// pipeline letterboxes frames there and hands it their addresses, so that
// images never cross to the host and only detections come back.
type DeviceEngine interface {
	Engine
	// DetectFrames runs the images at srcs (each 3×H×W float32 planar RGB
	// in [0, 1], in memory of the engine's GPU, written before the call
	// returns to the host) and returns each one's detections in
	// model-input pixels.
	DetectFrames(ctx context.Context, srcs []gpu.DevicePtr, l Layout, o PostOptions) ([][]Detection, error)
}
