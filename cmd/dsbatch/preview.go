package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/urfave/cli/v2"
	xdraw "golang.org/x/image/draw"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/events"
	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
	"github.com/dsbatch/dsbatch/job"
)

func previewCommand() *cli.Command {
	return &cli.Command{
		Name:      "preview",
		Usage:     "draw what a run found in a video: boxes, classes, scores, track ids and trails, as a contact sheet",
		ArgsUsage: "OUT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "video", Usage: "the video, as given to dsbatch run", Required: true},
			&cli.StringFlag{Name: "at", Usage: "one frame, at this time (12.5s, 1m3s or seconds)"},
			&cli.StringFlag{Name: "frames", Value: "0:300:30", Usage: "frames start:end:step (decoded frame indices)"},
			&cli.StringFlag{Name: "to", Usage: "the PNG file to write", Required: true},
			&cli.IntFlag{Name: "tile", Value: 640, Usage: "width of each frame in the sheet"},
			&cli.StringFlag{Name: "zones", Usage: "draw the lines and zones of the video's camera in this zones file (as dsbatch events takes)"},
		},
		Action: runPreview,
	}
}

type previewDet struct {
	class   string
	score   float32
	box     [4]float32
	track   int64
	points  [][3]float32 // a pose's keypoints: x, y, score
	corners [][2]float32 // an oriented box's corners
	// mask is a segmentation model's mask: COCO's uncompressed RLE over
	// the frame's maskH×maskW pixels, column by column (docs/SCHEMA.md).
	mask         []int32
	maskH, maskW int
}

// frameSel says which decoded frames the preview shows.
type frameSel struct {
	at                 float64 // seconds, when >= 0
	start, end, stride int64
}

func parseFrameSel(at, frames string) (frameSel, error) {
	if at != "" {
		secs, err := parseSeconds(at)
		if err != nil {
			return frameSel{}, fmt.Errorf("--at %q: %w", at, err)
		}
		return frameSel{at: secs}, nil
	}
	parts := strings.Split(frames, ":")
	var v [3]int64
	for i := range v {
		if i >= len(parts) || parts[i] == "" {
			v[i] = []int64{0, math.MaxInt64, 1}[i]
			continue
		}
		n, err := strconv.ParseInt(parts[i], 10, 64)
		if err != nil || n < 0 {
			return frameSel{}, fmt.Errorf("--frames %q: want start:end:step, like 0:300:30", frames)
		}
		v[i] = n
	}
	if v[2] == 0 || len(parts) > 3 || v[1] <= v[0] {
		return frameSel{}, fmt.Errorf("--frames %q: want start:end:step with start < end and step > 0", frames)
	}
	return frameSel{at: -1, start: v[0], end: v[1], stride: v[2]}, nil
}

func parseSeconds(s string) (float64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds(), nil
	}
	return strconv.ParseFloat(s, 64)
}

func runPreview(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("preview: give the output folder of a run")
	}
	out, video, to := c.Args().First(), c.String("video"), c.String("to")
	ext := strings.ToLower(filepath.Ext(to))
	if ext != ".png" && ext != ".mp4" {
		return fmt.Errorf("--to %s: write a contact sheet (.png) or a clip (.mp4)", to)
	}
	sel, err := parseFrameSel(c.String("at"), c.String("frames"))
	if err != nil {
		return err
	}
	var data previewData
	var g *events.Geometry
	if f := c.String("zones"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--zones: %w", err)
		}
		if g, err = events.ParseGeometry(b); err != nil {
			return fmt.Errorf("--zones %s: %w", f, err)
		}
		if data.cam = g.Camera(video); data.cam == nil {
			return fmt.Errorf("--zones %s: no camera matches %s", f, video)
		}
	}
	id := job.VideoID(video)
	files, err := job.VideoFiles(out, id)
	if err != nil {
		return fmt.Errorf("preview %s: %w (was it processed by the run in %s?)", video, err, out)
	}
	if g != nil {
		// The counts so far, where dsbatch events (or run --zones) wrote
		// this video's events.
		if evPath, ok := files["events"]; ok {
			if data.events, err = loadPreviewEvents(c.Context, evPath, id); err != nil {
				return fmt.Errorf("preview %s: %w", video, err)
			}
		}
	}
	data.dets, data.trails, err = loadPreviewDetections(c.Context, files["detections"], id)
	if err != nil {
		return fmt.Errorf("preview %s: %w (was it processed by the run in %s?)", video, err, out)
	}
	if ext == ".mp4" {
		return writePreviewClip(c.Context, video, to, sel, data, c.Int("tile"))
	}
	var tiles []tile
	err = renderFrames(c.Context, video, sel, data, c.Int("tile"), func(t tile) (bool, error) {
		tiles = append(tiles, t)
		return len(tiles) < maxTiles, nil
	})
	if err != nil {
		return err
	}
	if len(tiles) == 0 {
		return fmt.Errorf("preview %s: no frame in the selection", video)
	}
	sheet := contactSheet(tiles)
	return atomicfile.Write(to, func(w io.Writer) error { return png.Encode(w, sheet) })
}

// maskRLE reads row i of a mask_rle column: its counts and the frame's
// height and width (nil for a detection without a mask).
func maskRLE(col *array.Struct, i int) ([]int32, int, int) {
	if !col.IsValid(i) {
		return nil, 0, 0
	}
	size, counts := col.Field(0).(*array.List), col.Field(1).(*array.List)
	sv, cv := size.ListValues().(*array.Int32), counts.ListValues().(*array.Int32)
	s0, s1 := size.ValueOffsets(i)
	if s1-s0 != 2 {
		return nil, 0, 0
	}
	c0, c1 := counts.ValueOffsets(i)
	return slices.Clone(cv.Int32Values()[c0:c1]), int(sv.Value(int(s0))), int(sv.Value(int(s0) + 1))
}

// loadPreviewDetections reads a video's detections by frame, and each
// track's box centres by frame for the trails.
func loadPreviewDetections(ctx context.Context, path string, id int64) (map[int64][]previewDet, map[int64]map[int64][2]float32, error) {
	dets := map[int64][]previewDet{}
	trails := map[int64]map[int64][2]float32{}
	cols := []string{"frame_index", "class_name", "score", "x1", "y1", "x2", "y2", "track_id"}
	mem := memory.NewGoAllocator()
	have, err := export.ColumnNames(path, mem)
	if err != nil {
		return nil, nil, err
	}
	kpCol, cornersCol, maskCol := -1, -1, -1
	for _, c := range have {
		switch c {
		case "keypoints":
			kpCol = len(cols)
			cols = append(cols, c)
		case "corners":
			cornersCol = len(cols)
			cols = append(cols, c)
		case "mask_rle":
			maskCol = len(cols)
			cols = append(cols, c)
		}
	}
	err = export.ScanVideo(ctx, path, id, cols, mem, func(r arrow.Record) error {
		fi, cls, sc := r.Column(0).(*array.Int64), r.Column(1).(*array.String), r.Column(2).(*array.Float32)
		var b [4]*array.Float32
		for k := range b {
			b[k] = r.Column(3 + k).(*array.Float32)
		}
		tr := r.Column(7).(*array.Int64)
		for i := 0; i < int(r.NumRows()); i++ {
			d := previewDet{class: cls.Value(i), score: sc.Value(i), track: -1,
				box: [4]float32{b[0].Value(i), b[1].Value(i), b[2].Value(i), b[3].Value(i)}}
			if kpCol >= 0 {
				err := export.Keypoints(r.Column(kpCol), i, func(_ string, k export.Keypoint) {
					d.points = append(d.points, [3]float32{k.X, k.Y, k.Score})
				})
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			if cornersCol >= 0 {
				forPoints(r.Column(cornersCol).(*array.List), i, func(p *array.Struct, j int) {
					d.corners = append(d.corners, [2]float32{p.Field(0).(*array.Float32).Value(j), p.Field(1).(*array.Float32).Value(j)})
				})
			}
			if maskCol >= 0 {
				d.mask, d.maskH, d.maskW = maskRLE(r.Column(maskCol).(*array.Struct), i)
			}
			if tr.IsValid(i) {
				d.track = tr.Value(i)
				if trails[d.track] == nil {
					trails[d.track] = map[int64][2]float32{}
				}
				trails[d.track][fi.Value(i)] = [2]float32{(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2}
			}
			dets[fi.Value(i)] = append(dets[fi.Value(i)], d)
		}
		return nil
	})
	return dets, trails, err
}

// forPoints calls fn for each element of row i of a list of structs.
func forPoints(l *array.List, i int, fn func(p *array.Struct, j int)) {
	if l.IsNull(i) {
		return
	}
	p := l.ListValues().(*array.Struct)
	start, end := l.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		fn(p, j)
	}
}

// maxTiles bounds a contact sheet.
const maxTiles = 64

// renderFrames decodes the selected frames, draws the detections on them,
// each scaled to tileW pixels wide, and hands them to sink in order until
// it returns false.
// previewData is what preview draws on a video's frames.
type previewData struct {
	dets   map[int64][]previewDet
	trails map[int64]map[int64][2]float32
	cam    *events.Camera // lines and zones, or nil
	events []previewEvent // the video's events by frame, for live counts
}

// previewEvent is an event as preview counts it.
type previewEvent struct {
	frame           int64
	kind, name, dir string
}

// loadPreviewEvents reads a video's events, in frame order.
func loadPreviewEvents(ctx context.Context, path string, id int64) ([]previewEvent, error) {
	var evs []previewEvent
	err := export.ScanVideo(ctx, path, id, []string{"frame_index", "kind", "name", "direction"}, memory.NewGoAllocator(), func(r arrow.Record) error {
		fi, kind, name, dir := r.Column(0).(*array.Int64), r.Column(1).(*array.String), r.Column(2).(*array.String), r.Column(3).(*array.String)
		for i := 0; i < int(r.NumRows()); i++ {
			evs = append(evs, previewEvent{fi.Value(i), kind.Value(i), name.Value(i), dir.Value(i)})
		}
		return nil
	})
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].frame < evs[j].frame })
	return evs, err
}

// liveCounts are, at a frame, each line's crossings by direction and each
// zone's objects inside.
func liveCounts(evs []previewEvent, frame int64) (crossings map[string]map[string]int, inside map[string]int) {
	crossings, inside = map[string]map[string]int{}, map[string]int{}
	for _, e := range evs {
		if e.frame > frame {
			break
		}
		switch e.kind {
		case "line_cross":
			if crossings[e.name] == nil {
				crossings[e.name] = map[string]int{}
			}
			crossings[e.name][e.dir]++
		case "zone_enter":
			inside[e.name]++
		case "zone_exit":
			inside[e.name]--
		}
	}
	return crossings, inside
}

func renderFrames(ctx context.Context, video string, sel frameSel, data previewData, tileW int, sink func(tile) (bool, error)) error {
	d, err := decode.Open(ctx, video, decode.Options{Format: decode.RGB24})
	if err != nil {
		return err
	}
	defer d.Close()
	var f decode.Frame
	var best *tile
	for {
		err := d.Next(ctx, &f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if sel.at >= 0 {
			// The frame shown at time at: the last one starting at or before it.
			if f.PTS > sel.at+1e-6 && best != nil {
				break
			}
			t := drawFrame(&f, data, tileW)
			best = &t
			continue
		}
		if f.Index >= sel.end {
			break
		}
		if f.Index < sel.start || (f.Index-sel.start)%sel.stride != 0 {
			continue
		}
		more, err := sink(drawFrame(&f, data, tileW))
		if err != nil || !more {
			return err
		}
	}
	if best != nil {
		_, err := sink(*best)
		return err
	}
	return nil
}

type tile struct {
	img   *image.RGBA
	label string
}

func drawFrame(f *decode.Frame, data previewData, tileW int) tile {
	dets, trails := data.dets[f.Index], data.trails
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	for i, j := 0, 0; i < len(f.Data); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = f.Data[i], f.Data[i+1], f.Data[i+2], 255
	}
	scale := 1.0
	if f.Width > tileW {
		scale = float64(tileW) / float64(f.Width)
		small := image.NewRGBA(image.Rect(0, 0, tileW, int(math.Round(float64(f.Height)*scale))))
		xdraw.BiLinear.Scale(small, small.Bounds(), img, img.Bounds(), xdraw.Src, nil)
		img = small
	}
	s := float32(scale)
	crossings, inside := liveCounts(data.events, f.Index)
	drawGeometry(img, data.cam, f.Width, f.Height, s, crossings, inside)
	for _, d := range dets {
		drawMask(img, d, s, trackColor(d.track))
	}
	for _, d := range dets {
		col := trackColor(d.track)
		if d.track >= 0 {
			drawTrail(img, trails[d.track], f.Index, s, col)
		}
		x1, y1, x2, y2 := int(d.box[0]*s), int(d.box[1]*s), int(d.box[2]*s), int(d.box[3]*s)
		if len(d.corners) > 1 {
			drawPolygon(img, d.corners, s, col)
		} else {
			drawRect(img, x1, y1, x2, y2, col)
		}
		drawSkeleton(img, d.points, s, col)
		label := fmt.Sprintf("%s %.2f", d.class, d.score)
		if d.track >= 0 {
			label += fmt.Sprintf(" #%d", d.track)
		}
		drawLabel(img, x1, y1, label, col)
	}
	return tile{img: img, label: fmt.Sprintf("frame %d  %.3fs  %d detections", f.Index, f.PTS, len(dets))}
}
