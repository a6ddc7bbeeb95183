// Command dsbatch turns archives of video into analysable data: it probes
// and plans folders of recordings, decodes them (NVDEC on GPUs, FFmpeg on
// CPUs), runs a detector and writes Parquet.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/asticode/go-astiav"
	"github.com/urfave/cli/v2"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the command itself could not run
	exitPartial = 3 // it ran, but some files failed
	exitDiffer  = 4 // compare: the runs agree less than asked
)

// errPartial marks a command that finished with some files failed; the
// failures were already reported.
var errPartial = errors.New("some files failed")

// errDisagree marks a comparison whose runs agree less than --min; the
// figures were already reported.
var errDisagree = errors.New("the runs disagree")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(os.Stdout, os.Stderr)
	err := app.RunContext(ctx, intersperse(app, os.Args))
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errPartial):
		return exitPartial
	case errors.Is(err, errDisagree):
		return exitDiffer
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "dsbatch: interrupted")
		return exitFailed
	}
	fmt.Fprintln(stderr, "dsbatch:", err)
	return exitFailed
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "dsbatch",
		Usage:     "turn archives of video into detections and tracks in Parquet",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verbose", Usage: "show FFmpeg's warnings"},
		},
		Before: func(c *cli.Context) error {
			level := astiav.LogLevelQuiet
			if c.Bool("verbose") {
				level = astiav.LogLevelWarning
			}
			astiav.SetLogLevel(level)
			return nil
		},
		Commands:        []*cli.Command{runCommand(), probeCommand(), planCommand(), inspectCommand(), compareCommand(), checkCommand(), eventsCommand(), previewCommand(), gpusCommand(), benchCommand(), slurmCommand(), mergeCommand(), compactCommand()},
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // exit codes are decided in main
	}
}
