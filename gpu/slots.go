package gpu

import (
	"context"
	"fmt"
)

// Slots are equal buffers of GPU memory carved from one allocation and
// handed out through a free list: frames waiting between decoding and
// inference.
type Slots struct {
	g    *CUDA
	base DevicePtr
	n    int
	free chan DevicePtr
}

// AllocSlots allocates up to want buffers of size bytes, at least least:
// when the GPU cannot hold want (another process may use it), it tries
// half as many, down to least.
func (g *CUDA) AllocSlots(least, want, size int) (*Slots, error) {
	want = max(want, least)
	for {
		base, err := g.Alloc(want * size)
		if err == nil {
			s := &Slots{g: g, base: base, n: want, free: make(chan DevicePtr, want)}
			for i := 0; i < want; i++ {
				s.free <- base + DevicePtr(i*size)
			}
			return s, nil
		}
		if want == least {
			return nil, fmt.Errorf("%d frame slots of %d bytes: %w", want, size, err)
		}
		want = max(want/2, least)
	}
}

// Len is the number of slots.
func (s *Slots) Len() int { return s.n }

// Get takes a free slot, waiting for one.
func (s *Slots) Get(ctx context.Context) (DevicePtr, error) {
	select {
	case p := <-s.free:
		return p, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Put gives back a slot from Get; it never blocks.
func (s *Slots) Put(p DevicePtr) { s.free <- p }

// Release frees the slots' memory, once none is in use.
func (s *Slots) Release() { s.g.Free(s.base) }
