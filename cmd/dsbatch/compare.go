package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/job"
)

func compareCommand() *cli.Command {
	return &cli.Command{
		Name: "compare",
		Usage: "compare the detections of two runs over the same videos (another engine, model version or setting): " +
			"boxes matched frame by frame, same class, best score first",
		ArgsUsage: "OUT_A OUT_B",
		Description: "Videos done in both runs are compared. Each box of A is matched to the unmatched box of B of the same class, in the same frame of the\n" +
			"same video, that overlaps it most (IoU at least --iou), best-scored boxes first. Agreement is the\n" +
			"matched boxes over the larger of the two counts. The points of matched boxes (pose models: distance\n" +
			"in frame pixels, point by point) and their masks (segmentation: IoU) are compared too. B's detections\n" +
			"are held in memory.\n" +
			"Exit status: 0, or 4 when agreement is below --min.",
		Flags: []cli.Flag{
			&cli.Float64Flag{Name: "iou", Value: 0.5, Usage: "overlap at which two boxes match"},
			&cli.Float64Flag{Name: "min", Usage: "agreement (0-1) below which compare exits with status 4 (0: report only)"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object"},
		},
		Action: runCompare,
	}
}

// box is a detection as compare sees it: its class, score, box, a pose's
// points and a segmentation's mask (its run lengths).
type box struct {
	class int32
	score float32
	d     infer.Detection
	kps   []export.Keypoint
	mask  []int32
}

// partStats compares what matched boxes carry besides the box: the
// distances between their points, the IoUs of their masks.
type partStats struct {
	points           int64
	pointSum, maxGap float64
	masks            int64
	iouSum, minIoU   float64
}

// add compares two matched boxes' points, point by point, and masks.
func (p *partStats) add(a, b box) {
	for i := range min(len(a.kps), len(b.kps)) {
		d := math.Hypot(float64(a.kps[i].X-b.kps[i].X), float64(a.kps[i].Y-b.kps[i].Y))
		p.points++
		p.pointSum += d
		p.maxGap = math.Max(p.maxGap, d)
	}
	if a.mask != nil && b.mask != nil {
		iou := rleIoU(a.mask, b.mask)
		if p.masks == 0 || iou < p.minIoU {
			p.minIoU = iou
		}
		p.masks++
		p.iouSum += iou
	}
}

// rleIoU is the IoU of two masks of one frame as COCO's run lengths
// (alternate runs of 0s and 1s, 0s first); 1 for two empty masks.
func rleIoU(a, b []int32) float64 {
	area := func(c []int32) (n int64) {
		for i := 1; i < len(c); i += 2 {
			n += int64(c[i])
		}
		return n
	}
	// Walk both runs' boundaries; i, j index the runs, ra, rb what is
	// left of them.
	next := func(c []int32, i int) (int, int64) {
		for i++; i < len(c) && c[i] == 0; i++ {
		}
		if i < len(c) {
			return i, int64(c[i])
		}
		return i, 0
	}
	var inter int64
	i, ra := next(a, -1)
	j, rb := next(b, -1)
	for i < len(a) && j < len(b) {
		step := min(ra, rb)
		if i%2 == 1 && j%2 == 1 {
			inter += step
		}
		if ra -= step; ra == 0 {
			i, ra = next(a, i)
		}
		if rb -= step; rb == 0 {
			j, rb = next(b, j)
		}
	}
	union := area(a) + area(b) - inter
	if union == 0 {
		return 1
	}
	return float64(inter) / float64(union)
}

// frameKey names one frame of one video.
type frameKey struct {
	path  string
	frame int64
}

// agreement is compare's report, overall and per video.
type agreement struct {
	Videos    int     `json:"videos"`
	Skipped   int     `json:"videos_not_done_in_both"`
	A         int64   `json:"boxes_a"`
	B         int64   `json:"boxes_b"`
	Matched   int64   `json:"matched"`
	Agreement float64 `json:"agreement"`
	MeanIoU   float64 `json:"mean_iou"`
	MaxScore  float64 `json:"max_score_difference"`
	// Points of matched boxes compared (pose models; both runs naming
	// their points alike), their mean and largest distance in pixels.
	Keypoints     int64   `json:"keypoints_compared,omitempty"`
	KeypointsMean float64 `json:"keypoint_mean_distance_px,omitempty"`
	KeypointsMax  float64 `json:"keypoint_max_distance_px,omitempty"`
	// Masks of matched boxes compared (segmentation models), their mean
	// and lowest IoU.
	Masks       int64        `json:"masks_compared,omitempty"`
	MaskMeanIoU float64      `json:"mask_mean_iou,omitempty"`
	MaskMinIoU  float64      `json:"mask_min_iou,omitempty"`
	PerVideo    []videoAgree `json:"per_video"`
}

type videoAgree struct {
	Path      string  `json:"path"`
	A         int64   `json:"boxes_a"`
	B         int64   `json:"boxes_b"`
	Matched   int64   `json:"matched"`
	Agreement float64 `json:"agreement"`
}

func runCompare(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("compare: want two output folders, OUT_A and OUT_B")
	}
	ag, err := compareRuns(c, c.Args().Get(0), c.Args().Get(1), float32(c.Float64("iou")))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ag); err != nil {
			return err
		}
	} else {
		writeAgreement(c.App.Writer, ag)
	}
	if m := c.Float64("min"); m > 0 && ag.Agreement < m {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: agreement %.2f%% is below --min %.2f%%\n", 100*ag.Agreement, 100*m)
		return errDisagree
	}
	return nil
}

func compareRuns(c *cli.Context, a, b string, iou float32) (*agreement, error) {
	doneA, err := doneVideos(c, a)
	if err != nil {
		return nil, err
	}
	doneB, err := doneVideos(c, b)
	if err != nil {
		return nil, err
	}
	both := map[string]bool{}
	for p := range doneA {
		if doneB[p] {
			both[p] = true
		}
	}
	bs, bNames, err := readBoxes(c, b, both)
	if err != nil {
		return nil, err
	}
	as, aNames, err := readBoxes(c, a, both)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(aNames, bNames) {
		// Points named otherwise are not compared.
		for _, fb := range bs {
			for i := range fb {
				fb[i].kps = nil
			}
		}
	}
	var parts partStats
	ag := &agreement{Skipped: len(doneA) + len(doneB) - 2*len(both)}
	per := map[string]*videoAgree{}
	for p := range both {
		per[p] = &videoAgree{Path: p}
	}
	video := func(p string) *videoAgree {
		if per[p] == nil {
			per[p] = &videoAgree{Path: p}
		}
		return per[p]
	}
	var iouSum float64
	for k, fa := range as {
		v := video(k.path)
		m, sum, ds := matchBoxes(fa, bs[k], iou, &parts)
		v.A += int64(len(fa))
		v.B += int64(len(bs[k]))
		v.Matched += int64(m)
		iouSum += sum
		ag.MaxScore = math.Max(ag.MaxScore, ds)
	}
	for k, fb := range bs {
		if _, ok := as[k]; !ok {
			video(k.path).B += int64(len(fb))
		}
	}
	for _, v := range per {
		v.Agreement = ratio(v.Matched, max(v.A, v.B))
		ag.A += v.A
		ag.B += v.B
		ag.Matched += v.Matched
		ag.PerVideo = append(ag.PerVideo, *v)
	}
	sort.Slice(ag.PerVideo, func(i, j int) bool { return ag.PerVideo[i].Path < ag.PerVideo[j].Path })
	ag.Videos = len(ag.PerVideo)
	ag.Agreement = ratio(ag.Matched, max(ag.A, ag.B))
	if ag.Matched > 0 {
		ag.MeanIoU = iouSum / float64(ag.Matched)
	}
	if parts.points > 0 {
		ag.Keypoints, ag.KeypointsMean, ag.KeypointsMax = parts.points, parts.pointSum/float64(parts.points), parts.maxGap
	}
	if parts.masks > 0 {
		ag.Masks, ag.MaskMeanIoU, ag.MaskMinIoU = parts.masks, parts.iouSum/float64(parts.masks), parts.minIoU
	}
	return ag, nil
}

// ratio is m/n, and 1 when both are 0: two runs that found nothing agree.
func ratio(m, n int64) float64 {
	if n == 0 {
		return 1
	}
	return float64(m) / float64(n)
}

// matchBoxes pairs the boxes of one frame greedily, a's best-scored first,
// each with the unmatched box of b of its class that overlaps it most by
// at least iou (equal boxes, flat ones too, overlap by 1). It returns the
// pairs, the sum of their IoUs and their largest score difference, and
// adds the pairs' points and masks to parts (when not nil).
func matchBoxes(a, b []box, iou float32, parts *partStats) (int, float64, float64) {
	order := make([]int, len(a))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return a[order[i]].score > a[order[j]].score })
	used := make([]bool, len(b))
	n, sum, ds := 0, 0.0, 0.0
	for _, i := range order {
		best, at := iou, -1
		for j := range b {
			if used[j] || b[j].class != a[i].class {
				continue
			}
			if o := overlap(a[i].d, b[j].d); o >= best {
				best, at = o, j
			}
		}
		if at >= 0 {
			used[at] = true
			n++
			sum += float64(best)
			ds = math.Max(ds, math.Abs(float64(a[i].score-b[at].score)))
			if parts != nil {
				parts.add(a[i], b[at])
			}
		}
	}
	return n, sum, ds
}

// overlap is the IoU of two boxes, and 1 for equal boxes: a box of no
// area (a model's box clipped flat at the frame's edge) has an IoU of 0
// with itself, and two runs that both found it agree.
func overlap(a, b infer.Detection) float32 {
	if a.X1 == b.X1 && a.Y1 == b.Y1 && a.X2 == b.X2 && a.Y2 == b.Y2 {
		return 1
	}
	return infer.IoU(a, b)
}

// doneVideos are the paths of the videos the run in out finished.
func doneVideos(c *cli.Context, out string) (map[string]bool, error) {
	in, err := job.Inspect(c.Context, out, math.MaxInt)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, v := range in.Busiest {
		done[v.Path] = true
	}
	return done, nil
}

// readBoxes reads the detections of the run in out, by frame, of the
// videos in paths, and the names of a pose model's points (in the order of
// each box's kps; none for other models).
func readBoxes(c *cli.Context, out string, paths map[string]bool) (map[frameKey][]box, []string, error) {
	files, err := filepath.Glob(filepath.Join(out, "detections", "*.parquet"))
	if err != nil {
		return nil, nil, err
	}
	mem := memory.NewGoAllocator()
	boxes := map[frameKey][]box{}
	var names []string
	for _, f := range files {
		cols := []string{"video_path", "frame_index", "class_id", "score", "x1", "y1", "x2", "y2"}
		have, err := export.ColumnNames(f, mem)
		if err != nil {
			return nil, nil, err
		}
		pose, seg := slices.Contains(have, "keypoints"), slices.Contains(have, "mask_rle")
		kpCol, maskCol := len(cols), len(cols)
		if pose {
			cols = append(cols, "keypoints")
			maskCol++
		}
		if seg {
			cols = append(cols, "mask_rle")
		}
		err = export.ScanColumns(c.Context, f, cols, mem, func(r arrow.Record) error {
			path, frame, class := r.Column(0).(*array.String), r.Column(1).(*array.Int64), r.Column(2).(*array.Int32)
			var f32 [5]*array.Float32
			for i := range f32 {
				f32[i] = r.Column(3 + i).(*array.Float32)
			}
			for i := 0; i < int(r.NumRows()); i++ {
				if !paths[path.Value(i)] {
					continue
				}
				k := frameKey{path.Value(i), frame.Value(i)}
				bx := box{class: class.Value(i), score: f32[0].Value(i),
					d: infer.Detection{X1: f32[1].Value(i), Y1: f32[2].Value(i), X2: f32[3].Value(i), Y2: f32[4].Value(i)}}
				if pose {
					var seen []string
					err := export.Keypoints(r.Column(kpCol), i, func(name string, p export.Keypoint) {
						bx.kps = append(bx.kps, p)
						seen = append(seen, name)
					})
					if err != nil {
						return fmt.Errorf("%s: %w", f, err)
					}
					if names == nil {
						names = seen
					}
				}
				if seg {
					bx.mask, _, _ = maskRLE(r.Column(maskCol).(*array.Struct), i)
				}
				boxes[k] = append(boxes[k], bx)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return boxes, names, nil
}

func writeAgreement(w io.Writer, ag *agreement) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIDEO\tBOXES A\tBOXES B\tMATCHED\tAGREEMENT")
	for _, v := range ag.PerVideo {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f%%\n", v.Path, v.A, v.B, v.Matched, 100*v.Agreement)
	}
	fmt.Fprintf(tw, "all %d videos\t%d\t%d\t%d\t%.2f%%\n", ag.Videos, ag.A, ag.B, ag.Matched, 100*ag.Agreement)
	tw.Flush()
	fmt.Fprintf(w, "matched boxes: mean IoU %.4f, largest score difference %.2g\n", ag.MeanIoU, ag.MaxScore)
	if ag.Keypoints > 0 {
		fmt.Fprintf(w, "their %d points: mean distance %.3g px, largest %.3g px\n", ag.Keypoints, ag.KeypointsMean, ag.KeypointsMax)
	}
	if ag.Masks > 0 {
		fmt.Fprintf(w, "their %d masks: mean IoU %.4f, lowest %.4f\n", ag.Masks, ag.MaskMeanIoU, ag.MaskMinIoU)
	}
	if ag.Skipped > 0 {
		fmt.Fprintf(w, "%d videos left out: not done in both runs\n", ag.Skipped)
	}
}
