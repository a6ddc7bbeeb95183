package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/job"
)

// discoveryFlags are shared by every command that takes PATH... arguments.
func discoveryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ext", Usage: "video file extensions, comma-separated", Value: strings.Join(job.DefaultExtensions, ",")},
		&cli.StringSliceFlag{Name: "include", Usage: "only files whose name or relative path matches this glob (repeatable)"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "skip files whose name or relative path matches this glob (repeatable)"},
		&cli.BoolFlag{Name: "follow-symlinks", Usage: "descend into symbolically linked folders"},
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "files probed at once", Value: runtime.NumCPU()},
		&cli.BoolFlag{Name: "count-frames", Usage: "count frames exactly (reads every packet) when the container does not store the count"},
		&cli.Float64Flag{Name: "assume-fps", Usage: "frame rate of raw .h264/.hevc streams, which carry no timestamps (default: the rate in their headers, else 25)"},
		&cli.StringFlag{Name: "cache-dir", Usage: "where the probe cache lives (default: the user cache folder)"},
		&cli.BoolFlag{Name: "no-cache", Usage: "neither read nor write the probe cache"},
	}
}

func gpuFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "gpus", Value: "all", Usage: "GPUs to use: all, a count N, or a list of indices or UUIDs like 0,2 (CUDA_VISIBLE_DEVICES is honoured)"},
	}
}

// discover runs job.Discover with the command's flags and reports folders it
// could not read.
func discover(c *cli.Context) (job.Found, error) {
	if c.NArg() == 0 {
		return job.Found{}, fmt.Errorf("%s: give at least one file or folder", c.Command.Name)
	}
	var exts []string
	for _, e := range strings.Split(c.String("ext"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			exts = append(exts, e)
		}
	}
	found, err := job.Discover(c.Context, c.Args().Slice(), job.DiscoverOptions{
		Extensions:     exts,
		Include:        c.StringSlice("include"),
		Exclude:        c.StringSlice("exclude"),
		FollowSymlinks: c.Bool("follow-symlinks"),
	})
	if err != nil {
		return found, err
	}
	for _, e := range found.Errors {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: skipping %s: %s\n", e.Path, e.Err)
	}
	return found, nil
}

// openCache returns the probe cache the flags ask for, or nil.
func openCache(c *cli.Context) (*job.Cache, error) {
	if c.Bool("no-cache") {
		return nil, nil
	}
	dir := c.String("cache-dir")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache folder (%v): give --cache-dir or --no-cache", err)
		}
		dir = filepath.Join(base, "dsbatch")
	}
	return job.OpenCache(dir), nil
}

// selectGPUs opens NVML and selects the GPUs the flags ask for. Without a
// driver it says so in one line and returns no device (CPU workers), unless
// the user asked for specific GPUs. The host is nil when there is no GPU.
func selectGPUs(c *cli.Context) ([]gpu.Device, gpu.Host, error) {
	spec := c.String("gpus")
	host, err := gpu.Open()
	if err != nil {
		if errors.Is(err, gpu.ErrNoDriver) && (spec == "all" || spec == "0") {
			if spec == "all" {
				fmt.Fprintf(c.App.ErrWriter, "dsbatch: no GPU (%v): using CPU workers\n", err)
			}
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("--gpus %s: %w", spec, err)
	}
	all, err := host.Devices()
	if err != nil {
		host.Close()
		return nil, nil, err
	}
	visible, source := gpu.Visible(os.Getenv, len(all))
	devs, err := gpu.Select(all, spec, visible)
	if err != nil {
		host.Close()
		if source != "" && source != "CUDA_VISIBLE_DEVICES" {
			err = fmt.Errorf("%s=%s: %w", source, visible, err)
		}
		return nil, nil, err
	}
	if len(devs) == 0 && spec == "all" {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: no GPU visible (%s): using CPU workers\n", source)
	}
	return devs, host, nil
}
