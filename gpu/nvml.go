package gpu

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlHost is the Host backed by NVML.
type nvmlHost struct {
	lib nvml.Interface
}

// Open loads NVML. It returns ErrNoDriver (wrapped with NVML's reason) when
// the driver is missing, so callers can fall back to the CPU.
func Open() (Host, error) {
	lib := nvml.New()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: %s", ErrNoDriver, lib.ErrorString(ret))
	}
	return &nvmlHost{lib: lib}, nil
}

func (h *nvmlHost) Close() error {
	if ret := h.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", h.lib.ErrorString(ret))
	}
	return nil
}

func (h *nvmlHost) Devices() ([]Device, error) {
	n, ret := h.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml device count: %s", h.lib.ErrorString(ret))
	}
	driver, _ := h.lib.SystemGetDriverVersion()
	cudaVer, ret := h.lib.SystemGetCudaDriverVersion_v2()
	cuda := ""
	if ret == nvml.SUCCESS {
		cuda = fmt.Sprintf("%d.%d", cudaVer/1000, cudaVer%1000/10)
	}
	devs := make([]Device, 0, n)
	for i := 0; i < n; i++ {
		d, ret := h.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml device %d: %s", i, h.lib.ErrorString(ret))
		}
		dev := Device{Index: i, Driver: driver, CUDA: cuda}
		dev.UUID, _ = d.GetUUID()
		dev.Name, _ = d.GetName()
		if mem, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			dev.MemoryTotal = mem.Total
		}
		if pci, ret := d.GetPciInfo(); ret == nvml.SUCCESS {
			dev.PCIBusID = cString(pci.BusIdLegacy[:])
		}
		if major, minor, ret := d.GetCudaComputeCapability(); ret == nvml.SUCCESS {
			dev.Compute = fmt.Sprintf("%d.%d", major, minor)
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

func (h *nvmlHost) Sample(uuid string) (Sample, error) {
	d, ret := h.lib.DeviceGetHandleByUUID(uuid)
	if ret != nvml.SUCCESS {
		return Sample{}, fmt.Errorf("nvml %s: %s", uuid, h.lib.ErrorString(ret))
	}
	var s Sample
	if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
		s.SM, s.Memory = u.Gpu, u.Memory
	}
	if dec, _, ret := d.GetDecoderUtilization(); ret == nvml.SUCCESS {
		s.Decoder = dec
	}
	if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
		s.MemUsed = m.Used
	}
	return s, nil
}

func (h *nvmlHost) Decoders(uuid string) (*Decoders, error) {
	return queryDecoders(uuid)
}

func cString[T int8 | uint8](b []T) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
