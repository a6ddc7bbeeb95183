package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/job"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "gather the shards of a multi-node run into one dataset",
		ArgsUsage: "OUT...",
		Description: "Each OUT is a run's shared output folder (holding shards/) or one shard's folder.\n" +
			"Checks that every shard 0..n-1 is there once, finished, with the same model and settings;\n" +
			"then writes into --out (default: the one OUT given) detections/ and tracks/ (hard links to\n" +
			"the shards' files), videos.parquet and run.json, so the result reads like one run.\n" +
			"Merging again gives the same result. Exit status: 0 merged, 3 merged but some videos\n" +
			"failed (or --partial with shards missing), 1 nothing merged.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "where the merged dataset goes (default: the one OUT given)"},
			&cli.BoolFlag{Name: "partial", Usage: "merge the finished shards even if others are missing or unfinished"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: runMerge,
	}
}

func runMerge(c *cli.Context) error {
	sources := c.Args().Slice()
	dest := c.String("out")
	switch {
	case len(sources) == 0:
		return errors.New("merge: give the run's output folder (or its shards' folders)")
	case dest == "" && len(sources) > 1:
		return errors.New("merge: give --out when merging several folders")
	case dest == "":
		dest = sources[0]
	}
	rep, err := job.Merge(dest, sources, job.MergeOptions{Partial: c.Bool("partial")})
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetEscapeHTML(false)
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		printMerge(c.App.Writer, rep)
	}
	switch {
	case err != nil && rep.Merged && errors.Is(err, job.ErrShardsIncomplete):
		fmt.Fprintln(c.App.ErrWriter, "dsbatch:", err)
		return errPartial
	case err != nil:
		return err
	case len(rep.Failed) > 0:
		return errPartial
	}
	return nil
}

func printMerge(w io.Writer, r *job.MergeReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tSTATE\tVIDEOS\tDONE\tFAILED\tFOLDER")
	for _, s := range r.Shards {
		state := s.State
		if s.Problem != "" && s.State != "finished" {
			state += ": " + s.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.Shard, state, s.Videos, s.Done, s.Failed, s.Dir)
	}
	tw.Flush()
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "missing: shards %v of %d\n", r.Missing, r.Count)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", oneLine(p))
	}
	if !r.Merged {
		fmt.Fprintln(w, "nothing merged")
		return
	}
	fmt.Fprintf(w, "merged %d shard(s) of %d into %s: %d videos (%d done, %d failed), %d frames, %d detections; %d files linked, %d copied\n",
		r.MergedShards, r.Count, r.Dest, r.Videos, r.Done, len(r.Failed), r.Frames, r.Detections, r.Linked, r.Copied)
	for _, f := range r.Failed {
		fmt.Fprintf(w, "failed: %s\n", oneLine(f.Error))
	}
}
