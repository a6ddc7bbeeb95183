package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/events"
	"github.com/dsbatch/dsbatch/job"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:      "events",
		Usage:     "line crossings and zone visits of the tracks in OUT, for lines and zones drawn per camera in a YAML file: no decoding, no inference",
		ArgsUsage: "OUT",
		Description: "Reads --zones (cameras matched to videos by a path glob, each with named lines and zones, in pixels\n" +
			"or normalised) and writes the events of every finished video a camera matches, OUT/events/<part>.parquet\n" +
			"beside each part of detections (docs/SCHEMA.md). Rerun it with other lines or zones: it replaces the\n" +
			"events, atomically.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "zones", Usage: "the lines and zones (YAML)", Required: true},
			&cli.IntFlag{Name: "jobs", Usage: "parts computed at once (default: the CPUs)"},
		},
		Action: runEvents,
	}
}

func runEvents(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("events: want one output folder")
	}
	b, err := os.ReadFile(c.String("zones"))
	if err != nil {
		return fmt.Errorf("--zones: %w", err)
	}
	g, err := events.ParseGeometry(b)
	if err != nil {
		return fmt.Errorf("--zones %s: %w", c.String("zones"), err)
	}
	sum, err := job.WriteEvents(c.Context, c.Args().First(), g, c.Int("jobs"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "events: %d in %d videos (%d finished videos matched no camera), %.2fs\n", sum.Events, sum.Videos, sum.Unmatched, sum.Seconds)
	keys := make([]string, 0, len(sum.Counts))
	for k := range sum.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tCOUNT")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%d\n", k, sum.Counts[k])
	}
	return tw.Flush()
}
