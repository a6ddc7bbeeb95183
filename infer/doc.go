// Package infer runs YOLO-family object detectors: it reads ONNX models,
// letterboxes frames into batch tensors, runs an Engine (ONNX Runtime on the
// CPU here; the GPU engine plugs into the same interface) and turns raw
// outputs into detections in frame pixels with class-aware NMS.
package infer
