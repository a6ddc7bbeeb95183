package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/job"
)

func compactCommand() *cli.Command {
	return &cli.Command{
		Name:      "compact",
		Usage:     "rewrite OUT's small parts into large ones, convert a folder of one Parquet file per video (dsbatch before parts), gather what a killed run left",
		ArgsUsage: "OUT",
		Description: "Rewrites parts of under a quarter of a million detections (a slow run's, the last of each shard of a\n" +
			"merged run) into parts of about a million, and moves the rows of per-video files into parts (docs/SCHEMA.md,\n" +
			"\"Layout\"): a query running meanwhile may miss rows, never sees one twice. Per-video events files are\n" +
			"removed: rerun dsbatch events. A run resumes in OUT afterwards as in any folder it wrote.",
		Action: runCompact,
	}
}

func runCompact(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("compact: want one output folder")
	}
	rep, err := job.Compact(c.Context, c.Args().First(), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "compact %s: %d videos gathered into %d parts (%d converted from per-video files) in %.2fs\n",
		c.Args().First(), rep.Gathered, rep.Parts, rep.Converted, rep.Seconds)
	if rep.Rewritten > 0 {
		fmt.Fprintf(c.App.Writer, "%d small parts rewritten into large ones: %d parts now\n", rep.Rewritten, rep.PartsNow)
	}
	if rep.EventsRemoved > 0 {
		fmt.Fprintf(c.App.Writer, "removed %d per-video events files: rerun dsbatch events\n", rep.EventsRemoved)
	}
	if rep.Redo > 0 {
		fmt.Fprintf(c.App.Writer, "%d videos' results were incomplete: rerun the run to redo them\n", rep.Redo)
	}
	return nil
}
