package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/job"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "summarise the results in OUT: videos, failures, detections and tracks per class, throughput",
		ArgsUsage: "OUT",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "one JSON object"},
			&cli.IntFlag{Name: "top", Value: 10, Usage: "how many of the busiest videos to list"},
		},
		Action: runInspect,
	}
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("inspect: give the output folder of a run")
	}
	out := c.Args().First()
	in, err := job.Inspect(c.Context, out, c.Int("top"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return writeInspection(c.App.Writer, in)
}

func writeInspection(w io.Writer, in *job.Inspection) error {
	fmt.Fprintf(w, "%s: %d videos, %d done, %d failed; %d frames inferred", in.Out, in.Videos, in.Done, len(in.Failed), in.Frames)
	if in.WallSeconds > 0 {
		fmt.Fprintf(w, " in %.1fs (%.1f frames/s, last run)", in.WallSeconds, in.FPS)
	}
	fmt.Fprintln(w)
	switch {
	case in.Layout == "per-video":
		fmt.Fprintf(w, "rows in one file per video (dsbatch before parts): `dsbatch compact %s` converts them\n", in.Out)
	case in.SmallParts > 0:
		fmt.Fprintf(w, "rows in %d parts, %d of them small: `dsbatch compact %s` rewrites those into large ones\n", in.Parts, in.SmallParts, in.Out)
	default:
		fmt.Fprintf(w, "rows in %d parts\n", in.Parts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	classes := map[string]bool{}
	for k := range in.Detections {
		classes[k] = true
	}
	for k := range in.Tracks {
		classes[k] = true
	}
	names := make([]string, 0, len(classes))
	for k := range classes {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if in.Detections[names[i]] != in.Detections[names[j]] {
			return in.Detections[names[i]] > in.Detections[names[j]]
		}
		return names[i] < names[j]
	})
	fmt.Fprintln(tw, "\nCLASS\tDETECTIONS\tTRACKS")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, in.Detections[n], in.Tracks[n])
	}
	fmt.Fprintln(tw, "\nBUSIEST VIDEO\tDETECTIONS\tFRAMES")
	for _, b := range in.Busiest {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", b.Path, b.Detections, b.Frames)
	}
	if len(in.Keypoints) > 0 {
		fmt.Fprintln(tw, "\nKEYPOINT\tDETECTIONS\tVISIBLE")
		for _, k := range in.Keypoints {
			fmt.Fprintf(tw, "%s\t%d\t%.1f%%\n", k.Name, k.Detections, 100*k.Share)
		}
	}
	if len(in.Masks) > 0 {
		fmt.Fprintln(tw, "\nMASKS OF CLASS\tDETECTIONS\tMEAN AREA PX\tMIN\tMAX\tEMPTY")
		for _, m := range in.Masks {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%d\n", m.Class, m.Detections, m.Mean, m.Min, m.Max, m.Empty)
		}
	}
	if len(in.Events) > 0 {
		fmt.Fprintln(tw, "\nEVENTS\tNAME\tDIRECTION\tCOUNT\tMEAN DWELL")
		for _, e := range in.Events {
			dwell := ""
			if e.Kind == "visits" {
				dwell = fmt.Sprintf("%.1fs", e.MeanDwell)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Kind, e.Name, e.Direction, e.Count, dwell)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(in.Failed) > 0 {
		fmt.Fprintln(w, "\nFAILED")
		for _, f := range in.Failed {
			fmt.Fprintln(w, oneLine(f.Error))
		}
	}
	return nil
}
