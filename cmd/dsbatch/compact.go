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
		Usage:     "convert an output folder of one Parquet file per video (dsbatch before parts) to parts, and gather what a killed run left",
		ArgsUsage: "OUT",
		Description: "Moves the rows of OUT's per-video files into parts (docs/SCHEMA.md, \"Layout\"): the rows move, so a\n" +
			"query running meanwhile may miss some, never sees one twice. Per-video events files are removed: rerun\n" +
			"dsbatch events. A run resumes in OUT afterwards as in any folder it wrote.",
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
	if rep.EventsRemoved > 0 {
		fmt.Fprintf(c.App.Writer, "removed %d per-video events files: rerun dsbatch events\n", rep.EventsRemoved)
	}
	if rep.Redo > 0 {
		fmt.Fprintf(c.App.Writer, "%d videos' results were incomplete: rerun the run to redo them\n", rep.Redo)
	}
	return nil
}
