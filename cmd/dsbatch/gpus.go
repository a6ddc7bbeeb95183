package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/gpu"
)

func gpusCommand() *cli.Command {
	return &cli.Command{
		Name:   "gpus",
		Usage:  "list the GPUs, their memory and what their NVDEC engines decode",
		Flags:  append(gpuFlags(), &cli.BoolFlag{Name: "json", Usage: "one JSON object per GPU"}),
		Action: runGPUs,
	}
}

func runGPUs(c *cli.Context) error {
	host, err := gpu.Open()
	if errors.Is(err, gpu.ErrNoDriver) {
		fmt.Fprintf(c.App.Writer, "no GPU: %v\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer host.Close()
	all, err := host.Devices()
	if err != nil {
		return err
	}
	devs, err := gpu.Select(all, c.String("gpus"), os.Getenv("CUDA_VISIBLE_DEVICES"))
	if err != nil {
		return err
	}
	for i := range devs {
		d, err := host.Decoders(devs[i].UUID)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "dsbatch: GPU %d: %v\n", devs[i].Index, err)
			continue
		}
		devs[i].Decoders = d
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		for i := range devs {
			if err := enc.Encode(&devs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tNAME\tUUID\tMEMORY\tCOMPUTE\tDRIVER\tCUDA\tNVDEC\tDECODES")
	for _, d := range devs {
		engines := "-"
		if d.Decoders != nil {
			engines = fmt.Sprint(d.Decoders.Engines)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Index, d.Name, d.UUID, bytesIEC(int64(d.MemoryTotal)),
			d.Compute, d.Driver, d.CUDA, engines, decodesSummary(d.Decoders))
	}
	return tw.Flush()
}

// decodesSummary lists codecs with their largest 8-bit 4:2:0 size and the
// bit depths and chroma formats they support: "h264 4096x4096 (8-bit 4:2:0)".
func decodesSummary(d *gpu.Decoders) string {
	if d == nil {
		return "-"
	}
	type agg struct {
		maxW, maxH int
		forms      []string
	}
	by := map[string]*agg{}
	var order []string
	for _, c := range d.Caps {
		a, ok := by[c.Codec]
		if !ok {
			a = &agg{}
			by[c.Codec] = a
			order = append(order, c.Codec)
		}
		if c.MaxWidth*c.MaxHeight > a.maxW*a.maxH {
			a.maxW, a.maxH = c.MaxWidth, c.MaxHeight
		}
		a.forms = append(a.forms, fmt.Sprintf("%d-bit %s", c.BitDepth, c.Chroma))
	}
	sort.Strings(order)
	parts := make([]string, 0, len(order))
	for _, codec := range order {
		a := by[codec]
		parts = append(parts, fmt.Sprintf("%s %dx%d (%s)", codec, a.maxW, a.maxH, strings.Join(a.forms, ", ")))
	}
	return strings.Join(parts, "; ")
}
