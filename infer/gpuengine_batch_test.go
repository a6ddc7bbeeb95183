package infer

import "testing"

func TestAutoBatch(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		mem, per int64
		want     int
	}{
		{80 << 30, 22 * mib, 128}, // an H100 and YOLOv8n at 640
		{8 << 30, 22 * mib, 64},   // 2 GiB for activations
		{4 << 30, 22 * mib, 32},   // 1 GiB for activations
		{1 << 30, 22 * mib, 8},    // too small for 8: still 8
		{16 << 30, 200 * mib, 16}, // a large model
	} {
		if got := AutoBatch(c.mem, c.per); got != c.want {
			t.Errorf("AutoBatch(%d MiB, %d MiB/image) = %d, want %d", c.mem/mib, c.per/mib, got, c.want)
		}
	}
}
