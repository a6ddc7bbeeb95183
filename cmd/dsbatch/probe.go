package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/job"
)

func probeCommand() *cli.Command {
	return &cli.Command{
		Name:      "probe",
		Usage:     "describe the video files under PATH...",
		ArgsUsage: "PATH...",
		Description: "Walks files and folders, probes every video in parallel (cached by path, size and\n" +
			"modification time) and prints a table, or one JSON object per line with --json.\n" +
			"Exits with 3 when some files cannot be read.",
		Flags:  append(append(discoveryFlags(), gpuFlags()...), &cli.BoolFlag{Name: "json", Usage: "one JSON object per file"}),
		Action: runProbe,
	}
}

// probeArchive discovers and probes the command's PATH arguments, keeping
// only the files of shard. It returns the videos in path order.
func probeArchive(c *cli.Context, shard job.Shard, decoders *gpu.Decoders) ([]job.Video, error) {
	found, err := discover(c)
	if err != nil {
		return nil, err
	}
	files := shard.Filter(found.Files)
	cache, err := openCache(c)
	if err != nil {
		return nil, err
	}
	progress := newCounter(c.App.ErrWriter, len(files), "probing")
	var mu sync.Mutex
	videos, err := job.ProbeAll(c.Context, files, job.ProbeOptions{
		Jobs:        c.Int("jobs"),
		Cache:       cache,
		CountFrames: c.Bool("count-frames"),
		AssumeFPS:   c.Float64("assume-fps"),
		Decoders:    decoders,
		Progress: func(int) {
			mu.Lock()
			progress.Add(1)
			mu.Unlock()
		},
	})
	progress.Finish()
	if cache != nil {
		// Save what was probed even when interrupted part-way: nothing lost.
		if serr := cache.Save(); serr != nil {
			fmt.Fprintln(c.App.ErrWriter, "dsbatch: warning:", serr)
		}
	}
	return videos, err
}

// gpusAndDecoders selects the GPUs the flags ask for and reads the NVDEC
// capabilities of the first one (nil without a GPU).
func gpusAndDecoders(c *cli.Context) ([]gpu.Device, *gpu.Decoders, error) {
	devs, host, err := selectGPUs(c)
	if err != nil || host == nil {
		return nil, nil, err
	}
	defer host.Close()
	if len(devs) == 0 {
		return nil, nil, nil
	}
	d, err := host.Decoders(devs[0].UUID)
	if err != nil {
		fmt.Fprintln(c.App.ErrWriter, "dsbatch: warning: cannot read NVDEC capabilities:", err)
		return devs, nil, nil
	}
	return devs, d, nil
}

func runProbe(c *cli.Context) error {
	_, decoders, err := gpusAndDecoders(c)
	if err != nil {
		return err
	}
	videos, err := probeArchive(c, job.Shard{}, decoders)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		err = writeProbeJSON(c.App.Writer, videos)
	} else {
		err = writeProbeTable(c.App.Writer, videos, decoders != nil)
	}
	if err != nil {
		return err
	}
	failed, cached := 0, 0
	for _, v := range videos {
		if !v.OK() {
			failed++
		}
		if v.Cached {
			cached++
		}
	}
	fmt.Fprintf(c.App.ErrWriter, "%d files: %d readable, %d failed (%d from the cache)\n",
		len(videos), len(videos)-failed, failed, cached)
	if failed > 0 {
		return errPartial
	}
	return nil
}

func writeProbeJSON(w io.Writer, videos []job.Video) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range videos {
		if err := enc.Encode(&videos[i]); err != nil {
			return err
		}
	}
	return nil
}

func writeProbeTable(w io.Writer, videos []job.Video, withNVDEC bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "PATH\tCONTAINER\tCODEC\tPROFILE\tSIZE\tPIXFMT\tBITS\tFPS AVG/REAL\tDURATION\tFRAMES\tROT\tBITRATE"
	if withNVDEC {
		head += "\tNVDEC"
	}
	fmt.Fprintln(tw, head+"\tERROR")
	for _, v := range videos {
		if !v.OK() {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t", shownPath(v.Path))
			if withNVDEC {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprintf(tw, "\t%s\n", oneLine(strings.TrimPrefix(v.Error, "probe "+v.Path+": ")))
			continue
		}
		frames := fmt.Sprint(v.Frames)
		if v.Estimated {
			frames = "~" + frames
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%dx%d\t%s\t%d\t%.3g/%.3g\t%s\t%s\t%d\t%s",
			shownPath(v.Path), v.Container, v.Codec, dash(v.Profile), v.Width, v.Height, v.PixelFormat, v.BitDepth,
			v.AvgFPS, v.RealFPS, seconds(v.Duration), frames, v.Rotation, bitrate(v.BitRate))
		if withNVDEC {
			fmt.Fprintf(tw, "\t%s", v.NVDEC)
		}
		fmt.Fprint(tw, "\t\n")
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line whatever the error says.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shownPath is path as a table shows it: quoted, with escapes, when it
// holds characters that would break the line or hide (a newline, a tab,
// control codes); as it is otherwise.
func shownPath(path string) string {
	if strings.ContainsFunc(path, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(path)
	}
	return path
}

func seconds(s float64) string {
	h, m := int(s)/3600, int(s)%3600/60
	sec := s - float64(h*3600+m*60)
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%05.2f", h, m, sec)
	}
	return fmt.Sprintf("%d:%05.2f", m, sec)
}

func bitrate(b int64) string {
	switch {
	case b <= 0:
		return "-"
	case b >= 1e6:
		return fmt.Sprintf("%.1f Mb/s", float64(b)/1e6)
	}
	return fmt.Sprintf("%d kb/s", b/1000)
}
