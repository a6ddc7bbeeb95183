package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/dsbatch/dsbatch/job"
)

// startProgress reports a run's counters until the returned stop is
// called: a progress bar on a terminal, else a plain line every interval.
func startProgress(w io.Writer, c *job.Counters, workers int, interval time.Duration) (stop func()) {
	f, isFile := w.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		var bar *progressbar.ProgressBar
		tick := interval
		if tty {
			tick = 250 * time.Millisecond
			bar = progressbar.NewOptions64(max(1, c.FramesPlanned.Load()), progressbar.OptionSetWriter(w),
				progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("frames"),
				progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
		}
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					bar.Finish()
				}
				return
			case <-t.C:
				if bar != nil {
					bar.ChangeMax64(max(1, c.FramesPlanned.Load()))
					bar.Describe(videosLine(c, workers, time.Since(start)))
					bar.Set64(c.FramesDone.Load())
				} else {
					fmt.Fprintln(w, progressLine(c, workers, time.Since(start)))
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func videosLine(c *job.Counters, workers int, elapsed time.Duration) string {
	s := fmt.Sprintf("videos %d/%d, %d failed", c.VideosDone.Load(), c.VideosPlanned.Load(), c.VideosFailed.Load())
	if workers > 1 {
		s += "; " + perWorker(c, elapsed)
	}
	for i, g := range c.GPU.Loads() {
		s += fmt.Sprintf("; gpu%d sm %d%% dec %d%%", i, g.Last.SM, g.Last.Decoder)
	}
	return s
}

func perWorker(c *job.Counters, elapsed time.Duration) string {
	parts := make([]string, len(c.WorkerFrames))
	for i := range c.WorkerFrames {
		parts[i] = fmt.Sprintf("w%d %.0f/s", i, float64(c.WorkerFrames[i].Load())/elapsed.Seconds())
	}
	return strings.Join(parts, " ")
}

// progressLine is the plain-text progress report for logs.
func progressLine(c *job.Counters, workers int, elapsed time.Duration) string {
	done, planned := c.FramesDone.Load(), c.FramesPlanned.Load()
	rate := float64(done) / elapsed.Seconds()
	pct, eta := 0.0, "?"
	if planned > 0 {
		pct = 100 * float64(done) / float64(planned)
	}
	if rate > 0 && planned > done {
		eta = (time.Duration(float64(planned-done)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("progress: %d/%d frames (%.1f%%), %.1f frames/s, ETA %s, %s",
		done, planned, pct, rate, eta, videosLine(c, workers, elapsed))
}
