// Package gpu finds the machine's NVIDIA GPUs through NVML, selects the ones
// a job may use, asks each GPU's NVDEC which videos it can decode, and gives
// the other packages the CUDA driver (contexts, memory, streams, CUDA
// graphs), NVRTC (kernels compiled at run time and cached) and cuDNN
// (convolutions).
//
// Every NVIDIA library is loaded at run time (dlopen), so this package builds
// and its tests run on machines without CUDA or a driver; there, Open
// returns ErrNoDriver and callers fall back to the CPU.
package gpu
