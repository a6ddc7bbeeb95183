// Package gpu finds the machine's NVIDIA GPUs through NVML, selects the ones
// a job may use, and asks each GPU's NVDEC which videos it can decode.
//
// Every NVIDIA library is loaded at run time (dlopen), so this package builds
// and its tests run on machines without CUDA or a driver; there, Open
// returns ErrNoDriver and callers fall back to the CPU.
package gpu
