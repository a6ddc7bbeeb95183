package gpu

import (
	"context"
	"sync"
	"time"
)

// Sample is one reading of a GPU's load.
type Sample struct {
	SM      uint32 // % of time a kernel ran
	Memory  uint32 // % of time device memory was read or written
	Decoder uint32 // % of NVDEC capacity in use
	MemUsed uint64 // bytes
}

// Load summarises a GPU's samples over a run.
type Load struct {
	UUID        string  `json:"uuid"`
	Samples     int     `json:"samples"`
	SMMean      float64 `json:"sm_mean_pct"`
	SMMax       uint32  `json:"sm_max_pct"`
	MemoryMean  float64 `json:"memory_mean_pct"`
	DecoderMean float64 `json:"decoder_mean_pct"`
	DecoderMax  uint32  `json:"decoder_max_pct"`
	MemUsedMax  uint64  `json:"mem_used_max_bytes"`
	Last        Sample  `json:"-"`
}

// Sampler reads Host.Sample for a set of GPUs at an interval.
type Sampler struct {
	mu    sync.Mutex
	loads []Load
}

// StartSampler samples uuids every interval until ctx ends. A GPU that
// cannot be read is skipped.
func StartSampler(ctx context.Context, h Host, uuids []string, interval time.Duration) *Sampler {
	s := &Sampler{loads: make([]Load, len(uuids))}
	for i, u := range uuids {
		s.loads[i].UUID = u
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for i, u := range uuids {
					if smp, err := h.Sample(u); err == nil {
						s.add(i, smp)
					}
				}
			}
		}
	}()
	return s
}

func (s *Sampler) add(i int, smp Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.loads[i]
	n := float64(l.Samples)
	l.SMMean = (l.SMMean*n + float64(smp.SM)) / (n + 1)
	l.MemoryMean = (l.MemoryMean*n + float64(smp.Memory)) / (n + 1)
	l.DecoderMean = (l.DecoderMean*n + float64(smp.Decoder)) / (n + 1)
	l.SMMax = max(l.SMMax, smp.SM)
	l.DecoderMax = max(l.DecoderMax, smp.Decoder)
	l.MemUsedMax = max(l.MemUsedMax, smp.MemUsed)
	l.Samples++
	l.Last = smp
}

// Loads returns the summaries so far, in the order of the uuids.
func (s *Sampler) Loads() []Load {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Load(nil), s.loads...)
}
