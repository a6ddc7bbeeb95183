package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/internal/atomicfile"
	"github.com/dsbatch/dsbatch/job"
)

func planCommand() *cli.Command {
	flags := append(discoveryFlags(), gpuFlags()...)
	flags = append(flags, shardFlags("keep only this node's share i/n of the archive (0 <= i < n)")...)
	flags = append(flags,
		&cli.IntFlag{Name: "cpu-workers", Value: 1, Usage: "CPU workers when no GPU is used"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "plan.json", Usage: "where to write the plan as JSON (- for standard output)"},
	)
	return &cli.Command{
		Name:      "plan",
		Usage:     "assign the videos under PATH... to workers, balanced by decode cost",
		ArgsUsage: "PATH...",
		Description: "Probes the archive (through the cache), estimates each video's decode cost\n" +
			"(frames x pixels x codec weight) and assigns videos longest-first to the least\n" +
			"loaded worker: one per GPU, or --cpu-workers without a GPU. The same input always\n" +
			"gives the same plan. Prints per-worker totals and writes the plan as JSON.",
		Flags:  flags,
		Action: runPlan,
	}
}

func runPlan(c *cli.Context) error {
	shard, err := resolveShard(c)
	if err != nil {
		return err
	}
	devs, decoders, err := gpusAndDecoders(c)
	if err != nil {
		return err
	}
	videos, err := probeArchive(c, shard, decoders)
	if err != nil {
		return err
	}
	plan := job.MakePlan(videos, job.Workers(devs, c.Int("cpu-workers")), shard)

	out := c.String("output")
	write := func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(plan)
	}
	if out == "-" {
		err = write(c.App.Writer)
	} else {
		err = atomicfile.Write(out, write)
	}
	if err != nil {
		return err
	}
	summary := c.App.Writer
	if out == "-" {
		summary = c.App.ErrWriter
	}
	if err := writePlanSummary(summary, plan); err != nil {
		return err
	}
	if out != "-" {
		fmt.Fprintf(summary, "plan written to %s\n", out)
	}
	if len(plan.Skipped) > 0 {
		for _, s := range plan.Skipped {
			fmt.Fprintf(c.App.ErrWriter, "skipped %s\n", oneLine(s.Error))
		}
		return errPartial
	}
	return nil
}

func writePlanSummary(w io.Writer, p *job.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKER\tDEVICE\tVIDEOS\tFRAMES\tBYTES\tCOST\tSHARE\t")
	for _, wp := range p.Workers {
		device := "cpu"
		if wp.GPU != nil {
			device = fmt.Sprintf("gpu %d %s", wp.GPU.Index, wp.GPU.Name)
		}
		share := 0.0
		if p.Cost > 0 {
			share = 100 * wp.Cost / p.Cost
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%.1f\t%.1f%%\t\n", wp.ID, device, len(wp.Videos), wp.Frames, bytesIEC(wp.Bytes), wp.Cost, share)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d videos, %d frames, shard %s, %d skipped; imbalance (max/mean-1) %.2f%%\n",
		p.Videos, p.Frames, p.Shard, len(p.Skipped), 100*p.Imbalance)
	return err
}

func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
