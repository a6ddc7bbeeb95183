package job

import (
	"container/heap"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/dsbatch/dsbatch/gpu"
)

// PlanVersion identifies the layout of Plan in JSON.
const PlanVersion = 1

// Worker is one unit of execution: a GPU, or a CPU worker.
type Worker struct {
	ID   int    `json:"id"`
	Kind string `json:"kind"` // "gpu" or "cpu"
	// GPU is set for GPU workers.
	GPU *gpu.Device `json:"gpu,omitempty"`
}

// Workers returns one GPU worker per device, or cpu CPU workers when devs is
// empty.
func Workers(devs []gpu.Device, cpu int) []Worker {
	if len(devs) == 0 {
		if cpu < 1 {
			cpu = 1
		}
		ws := make([]Worker, cpu)
		for i := range ws {
			ws[i] = Worker{ID: i, Kind: "cpu"}
		}
		return ws
	}
	ws := make([]Worker, len(devs))
	for i := range devs {
		d := devs[i]
		d.Decoders = nil
		ws[i] = Worker{ID: i, Kind: "gpu", GPU: &d}
	}
	return ws
}

// Shard is this node's share of a multi-node run: files whose path hashes
// to Index modulo Count. The zero value (Count 0) keeps everything.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// ParseShard parses "i/n" with 0 ≤ i < n.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("--shard %q: want i/n with 0 <= i < n, like 0/4", s)
	}
	return Shard{Index: i, Count: n}, nil
}

func (s Shard) String() string {
	if s.Count == 0 {
		return "all"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Keep reports whether path belongs to this shard. The hash depends on the
// path alone, so every node computes the same split without talking to the
// others, and adding files never moves old ones between shards. All nodes
// must therefore see the archive under the same paths.
func (s Shard) Keep(path string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	return h.Sum64()%uint64(s.Count) == uint64(s.Index)
}

// Filter returns the paths that belong to this shard.
func (s Shard) Filter(paths []string) []string {
	if s.Count <= 1 {
		return paths
	}
	var out []string
	for _, p := range paths {
		if s.Keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// Relative decode cost per pixel by codec, measured on one H100 and 16 CPU
// cores (shared/gpu/README.md: NVDEC 4,400 H.264 and 7,300 HEVC 1080p
// frames/s; CPU 1,550 and 1,170). Codecs not measured take guesses from
// their complexity relative to H.264.
var (
	gpuCodecCost = map[string]float64{"h264": 1, "hevc": 0.6, "vp9": 0.7, "vp8": 0.8, "av1": 0.8, "mpeg2video": 0.5, "mpeg4": 0.6, "mjpeg": 0.5}
	cpuCodecCost = map[string]float64{"h264": 1, "hevc": 1.33, "vp9": 1.2, "vp8": 0.9, "av1": 1.6, "mpeg2video": 0.4, "mpeg4": 0.5, "mjpeg": 0.6}
)

// nvdecFallbackCost is how much more a file costs a GPU worker when NVDEC
// cannot decode it and the CPU must (4,400 vs 1,550 frames/s for H.264, with
// the CPU shared among all GPU workers).
const nvdecFallbackCost = 3

// Cost estimates the decode work of v for a worker of kind ("gpu" or
// "cpu"): frames × pixels × codec weight, in units of one 1080p H.264 frame.
func Cost(v *Video, kind string) float64 {
	weights := cpuCodecCost
	if kind == "gpu" {
		weights = gpuCodecCost
	}
	w, ok := weights[v.Codec]
	if !ok {
		w = 1.5
	}
	if kind == "gpu" && strings.HasPrefix(v.NVDEC, "no") {
		w *= nvdecFallbackCost
	}
	frames := float64(v.Frames)
	if frames <= 0 {
		frames = 1
	}
	return frames * float64(v.Width*v.Height) / (1920 * 1080) * w
}

// Plan is the assignment of an archive's videos to workers.
type Plan struct {
	Version   int          `json:"version"`
	Shard     Shard        `json:"shard"`
	Workers   []WorkerPlan `json:"workers"`
	Skipped   []Skipped    `json:"skipped,omitempty"`
	Videos    int          `json:"videos"`
	Frames    int64        `json:"frames"`
	Cost      float64      `json:"cost"`
	Imbalance float64      `json:"imbalance"` // max/mean − 1 over worker costs
}

// WorkerPlan is one worker's share.
type WorkerPlan struct {
	Worker
	Videos []PlannedVideo `json:"videos"`
	Frames int64          `json:"frames"`
	Bytes  int64          `json:"bytes"`
	Cost   float64        `json:"cost"`
}

// PlannedVideo is a video as the plan records it.
type PlannedVideo struct {
	Path   string  `json:"path"`
	Codec  string  `json:"codec"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Frames int64   `json:"frames"`
	Bytes  int64   `json:"bytes"`
	Cost   float64 `json:"cost"`
	NVDEC  string  `json:"nvdec,omitempty"`
}

// Skipped is a file left out of the plan because it could not be probed.
type Skipped struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// MakePlan assigns videos to workers, longest first, each to the worker
// with the least work so far (LPT scheduling, within 4/3 of optimal). Ties
// go to the lower path and the lower worker ID, so the same input always
// gives the same plan. Videos that failed probing are listed as skipped.
func MakePlan(videos []Video, workers []Worker, shard Shard) *Plan {
	p := &Plan{Version: PlanVersion, Shard: shard, Workers: make([]WorkerPlan, len(workers))}
	if len(workers) == 0 {
		return p
	}
	for i, w := range workers {
		p.Workers[i].Worker = w
		p.Workers[i].Videos = []PlannedVideo{}
	}
	kind := workers[0].Kind
	items := make([]PlannedVideo, 0, len(videos))
	for i := range videos {
		v := &videos[i]
		if !v.OK() {
			p.Skipped = append(p.Skipped, Skipped{Path: v.Path, Error: v.Error})
			continue
		}
		items = append(items, PlannedVideo{Path: v.Path, Codec: v.Codec, Width: v.Width, Height: v.Height,
			Frames: v.Frames, Bytes: v.Size, Cost: Cost(v, kind), NVDEC: v.NVDEC})
	}
	sort.Slice(items, func(a, b int) bool {
		if items[a].Cost != items[b].Cost {
			return items[a].Cost > items[b].Cost
		}
		return items[a].Path < items[b].Path
	})
	loads := make(loadHeap, len(workers))
	for i := range loads {
		loads[i] = load{worker: i}
	}
	for _, it := range items {
		w := &p.Workers[loads[0].worker]
		w.Videos = append(w.Videos, it)
		w.Frames += it.Frames
		w.Bytes += it.Bytes
		w.Cost += it.Cost
		loads[0].cost = w.Cost
		heap.Fix(&loads, 0)
		p.Videos++
		p.Frames += it.Frames
		p.Cost += it.Cost
	}
	p.Imbalance = imbalance(p.Workers)
	return p
}

func imbalance(ws []WorkerPlan) float64 {
	var sum, max float64
	for _, w := range ws {
		sum += w.Cost
		max = math.Max(max, w.Cost)
	}
	if sum == 0 {
		return 0
	}
	return max/(sum/float64(len(ws))) - 1
}

type load struct {
	worker int
	cost   float64
}

// loadHeap orders workers by load, then ID.
type loadHeap []load

func (h loadHeap) Len() int { return len(h) }
func (h loadHeap) Less(i, j int) bool {
	if h[i].cost != h[j].cost {
		return h[i].cost < h[j].cost
	}
	return h[i].worker < h[j].worker
}
func (h loadHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *loadHeap) Push(x any)   { *h = append(*h, x.(load)) }
func (h *loadHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
