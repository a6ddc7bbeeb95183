package gpu

import "errors"

// ErrNoDriver means the NVIDIA driver (libnvidia-ml.so.1) is not installed
// or cannot be initialised: the machine has no usable GPU.
var ErrNoDriver = errors.New("no NVIDIA driver found")

// Device describes one GPU.
type Device struct {
	Index       int       `json:"index"` // NVML index (PCI bus order)
	UUID        string    `json:"uuid"`
	Name        string    `json:"name"`
	MemoryTotal uint64    `json:"memory_total"` // bytes
	PCIBusID    string    `json:"pci_bus_id"`
	Compute     string    `json:"compute_capability"` // "9.0"
	Driver      string    `json:"driver"`
	CUDA        string    `json:"cuda"` // highest CUDA version the driver supports: "13.0"
	Decoders    *Decoders `json:"nvdec,omitempty"`
}

// Host lists the GPUs of a machine. The NVML host (Open) is the real one;
// tests use their own.
type Host interface {
	Devices() ([]Device, error)
	// Decoders reports what the NVDEC engines of the GPU with this UUID decode.
	Decoders(uuid string) (*Decoders, error)
	// Sample reads the current load of the GPU with this UUID.
	Sample(uuid string) (Sample, error)
	Close() error
}
